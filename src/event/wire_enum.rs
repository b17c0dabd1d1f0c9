//! Enums over Monite's wire strings that never reject a value Monite adds later.

use std::fmt;

/// A wire string this version of the crate does not know, kept exactly as received.
///
/// It can only be made by parsing, so a known string never ends up here: `"payable"`
/// always parses to `ObjectType::Payable`, and equality stays meaningful.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UnknownValue(Box<str>);

impl UnknownValue {
    /// The string as Monite sent it.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub(crate) fn new(text: &str) -> Self {
        Self(text.into())
    }
}

impl fmt::Debug for UnknownValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl fmt::Display for UnknownValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Declares an enum of known wire strings plus `Unknown(UnknownValue)`, with `as_str`,
/// `Display`, `FromStr`/`From<&str>` and serde that round-trip every string unchanged.
macro_rules! wire_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident {
            $( $variant:ident => $wire:literal, )+
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum $name {
            $(
                #[doc = concat!("`", $wire, "`")]
                $variant,
            )+
            /// A value this version of the crate does not know; it round-trips unchanged.
            Unknown($crate::event::UnknownValue),
        }

        impl $name {
            /// Every value this version of the crate knows.
            pub const KNOWN: &'static [Self] = &[$(Self::$variant),+];

            /// The wire string, exactly as Monite sends it.
            #[must_use]
            pub fn as_str(&self) -> &str {
                match self {
                    $(Self::$variant => $wire,)+
                    Self::Unknown(value) => value.as_str(),
                }
            }

            /// Whether this version of the crate knows the value.
            #[must_use]
            pub const fn is_known(&self) -> bool {
                !matches!(self, Self::Unknown(_))
            }

            /// The value's position in [`KNOWN`](Self::KNOWN), for table lookups.
            #[allow(dead_code, reason = "not every enum is used as a table index")]
            pub(crate) fn known_index(&self) -> Option<usize> {
                #[allow(clippy::enum_variant_names, reason = "mirrors the public variants")]
                enum Index { $($variant),+ }
                match self {
                    $(Self::$variant => Some(Index::$variant as usize),)+
                    Self::Unknown(_) => None,
                }
            }

            fn parse_known(text: &str) -> Option<Self> {
                match text {
                    $($wire => Some(Self::$variant),)+
                    _ => None,
                }
            }
        }

        impl From<&str> for $name {
            fn from(text: &str) -> Self {
                Self::parse_known(text)
                    .unwrap_or_else(|| Self::Unknown($crate::event::UnknownValue::new(text)))
            }
        }

        impl std::str::FromStr for $name {
            type Err = std::convert::Infallible;

            fn from_str(text: &str) -> Result<Self, Self::Err> {
                Ok(Self::from(text))
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl std::fmt::Debug for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                match self {
                    Self::Unknown(value) => write!(f, "Unknown({value:?})"),
                    known => write!(f, "{}({:?})", stringify!($name), known.as_str()),
                }
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                struct Visitor;
                impl serde::de::Visitor<'_> for Visitor {
                    type Value = $name;
                    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                        f.write_str("a string")
                    }
                    fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<$name, E> {
                        Ok($name::from(text))
                    }
                }
                deserializer.deserialize_str(Visitor)
            }
        }
    };
}

pub(crate) use wire_enum;
