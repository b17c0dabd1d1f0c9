//! The keyring file: where the client and the command-line tool keep the secrets Monite
//! returns only once, and where receivers read them.

use std::collections::hash_map::RandomState;
use std::ffi::{OsStr, OsString};
use std::fmt;
use std::hash::{BuildHasher as _, Hasher as _};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::de::{self, MapAccess, Visitor, value::MapAccessDeserializer};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::error::Category;

use super::{Keyring, looks_like_secret};
use crate::error::{Error, ErrorKind, Result};
use crate::signature::secret::{KeyConvention, Secret};

/// The format's version, written as `"monite_webhooks_keyring"`.
const FORMAT: u32 = 1;

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    monite_webhooks_keyring: u32,
    #[serde(default)]
    subscriptions: Vec<Subscription>,
    /// Read as [`KeyConvention::Raw`] unless an entry names its own convention.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    unkeyed: Vec<Entry>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Subscription {
    id: String,
    /// Newest first: the current secret, then the previous one during a rotation.
    secrets: Vec<Entry>,
    /// The convention of the secrets that do not name their own.
    #[serde(default, skip_serializing_if = "is_raw")]
    convention: Convention,
}

/// One secret: its text alone, read with the convention of its place (the subscription's,
/// or raw for an unkeyed secret), or an object that names its own convention.
///
/// Written as an object only where the convention differs from its place's, so a keyring
/// that format 1 could already hold is written exactly as before (and older readers, which
/// refuse the object form loudly, never misread a secret).
#[derive(Serialize)]
#[serde(untagged)]
enum Entry {
    Text(String),
    Object(Written),
}

// By hand rather than `untagged`: that would also take `["whsec_…"]` as an object's fields.
impl<'de> Deserialize<'de> for Entry {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> Visitor<'de> for Visit {
            type Value = Entry;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(r#"a secret: a string, or {"secret": …, "convention": …}"#)
            }
            fn visit_str<E: de::Error>(self, text: &str) -> Result<Entry, E> {
                Ok(Entry::Text(text.to_owned()))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Entry, A::Error> {
                Written::deserialize(MapAccessDeserializer::new(map)).map(Entry::Object)
            }
        }
        deserializer.deserialize_any(Visit)
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Written {
    secret: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    convention: Option<Convention>,
}

impl Entry {
    /// How `secret` is written where `place` is the convention a bare string gets.
    fn of(secret: &Secret, place: KeyConvention) -> Self {
        let text = secret.expose_text().to_owned();
        if secret.convention() == place {
            Self::Text(text)
        } else {
            Self::Object(Written {
                secret: text,
                convention: Some(Convention::of(secret.convention())),
            })
        }
    }

    /// The secret's text and convention, where a bare string gets `place`.
    fn read(&self, place: KeyConvention) -> (&str, KeyConvention) {
        match self {
            Self::Text(text) => (text, place),
            Self::Object(written) => (
                &written.secret,
                written.convention.map_or(place, Convention::key),
            ),
        }
    }
}

#[derive(Serialize, Deserialize, Default, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
enum Convention {
    #[default]
    Raw,
    WhsecBase64,
}

fn is_raw(convention: &Convention) -> bool {
    *convention == Convention::Raw
}

impl Convention {
    // Exhaustive both ways, so that a new convention cannot be saved as another one.
    fn of(convention: KeyConvention) -> Self {
        match convention {
            KeyConvention::Raw => Self::Raw,
            KeyConvention::WhsecBase64 => Self::WhsecBase64,
        }
    }

    fn key(self) -> KeyConvention {
        match self {
            Self::Raw => KeyConvention::Raw,
            Self::WhsecBase64 => KeyConvention::WhsecBase64,
        }
    }
}

impl Keyring {
    /// Reads a keyring file.
    ///
    /// The file is JSON, written by [`save`](Self::save), by the client's subscription
    /// set-up and by the `monite-webhooks` command-line tool:
    ///
    /// ```json
    /// {
    ///   "monite_webhooks_keyring": 1,
    ///   "subscriptions": [
    ///     { "id": "3f9c1a52-5b4e-4d6f-9a0e-0b8c2f7d1e44", "secrets": ["whsec_new", "whsec_old"] },
    ///     {
    ///       "id": "b7d2e013-5f4c-4a7e-9d51-3c0e8a2b6f90",
    ///       "secrets": ["whsec_bmV3", { "secret": "whsec_old", "convention": "raw" }],
    ///       "convention": "whsec_base64"
    ///     }
    ///   ],
    ///   "unkeyed": [
    ///     "whsec_for_deliveries_naming_no_subscription",
    ///     { "secret": "whsec_aGVsbG8=", "convention": "whsec_base64" }
    ///   ]
    /// }
    /// ```
    ///
    /// `secrets` lists a subscription's current secret first and, during a rotation, the
    /// previous one after it. Each secret is a string, read with its subscription's
    /// `convention` (`"raw"`, the default, or `"whsec_base64"`: see [`KeyConvention`]), or
    /// an object `{"secret": …, "convention": …}` that names its own. An unkeyed secret
    /// given as a string is raw. `unkeyed` is optional.
    ///
    /// # Errors
    /// [`ErrorKind::KeyringFile`] if the file cannot be read or is not such JSON;
    /// [`ErrorKind::InvalidSecret`] for a secret [`Secret::new`] refuses. Messages name the
    /// file, the subscription, and for a file that is not such JSON only the line, the
    /// column and the kind of fault, never a secret: an id that starts with `whsec_`
    /// (a secret pasted in the wrong place) is refused without being shown.
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let text = std::fs::read(path).map_err(|e| {
            file_error(format!("cannot read keyring file {}: {e}", path.display())).with_source(e)
        })?;
        let file: File = serde_json::from_slice(&text).map_err(|e| not_a_keyring(path, &e))?;
        if file.monite_webhooks_keyring != FORMAT {
            return Err(file_error(format!(
                "keyring file {} has format {}, not the format {FORMAT} this version reads",
                path.display(),
                file.monite_webhooks_keyring
            )));
        }
        let mut keyring = Self::new();
        for (position, subscription) in file.subscriptions.into_iter().enumerate() {
            if looks_like_secret(&subscription.id) {
                return Err(file_error(format!(
                    "keyring file {}, subscription {}: the id starts with `whsec_` (not shown)",
                    path.display(),
                    position + 1
                )));
            }
            let place = subscription.convention.key();
            let id = subscription.id;
            let read = |entry: &Entry| {
                let (text, convention) = entry.read(place);
                Secret::with_convention(text, convention).map_err(|e| {
                    Error::new(
                        ErrorKind::InvalidSecret,
                        format!("keyring file {}, subscription {id}: {e}", path.display()),
                    )
                })
            };
            let mut secrets = subscription.secrets.iter().rev();
            let Some(oldest) = secrets.next() else {
                return Err(file_error(format!(
                    "keyring file {}, subscription {id}: no secret",
                    path.display()
                )));
            };
            keyring.insert(id.clone(), read(oldest)?);
            for newer in secrets {
                keyring.rotate(id.clone(), read(newer)?);
            }
        }
        for (position, entry) in file.unkeyed.iter().enumerate() {
            let (text, convention) = entry.read(KeyConvention::Raw);
            let secret = Secret::with_convention(text, convention).map_err(|e| {
                Error::new(
                    ErrorKind::InvalidSecret,
                    format!(
                        "keyring file {}, unkeyed secret {}: {e}",
                        path.display(),
                        position + 1
                    ),
                )
            })?;
            keyring.push_unkeyed(secret.labeled(format!("unkeyed {}", position + 1)));
        }
        Ok(keyring)
    }

    /// Writes the keyring to `path` in the format [`load`](Self::load) reads, readable
    /// and writable by its owner only (mode `0600` on Unix), replacing the file in one
    /// step (written to a uniquely named temporary file beside it, synced, renamed over it,
    /// and the directory synced on Unix) so a reader never sees half of it and a power loss
    /// does not undo it. Subscriptions are written sorted by id, so a file under version
    /// control diffs cleanly.
    ///
    /// Every secret keeps its [`KeyConvention`]: a subscription's `convention` is its
    /// current secret's, and a secret of another convention (a previous one, or an unkeyed
    /// one that is not raw) is written as `{"secret": …, "convention": …}`. A keyring whose
    /// secrets need no such object is written in the same form as before those objects
    /// existed.
    ///
    /// # Errors
    /// [`ErrorKind::KeyringFile`] if the file cannot be written, naming the path that
    /// failed: the temporary file, the keyring file, or its directory.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        let mut subscriptions: Vec<Subscription> = self
            .subscriptions()
            .map(|(id, held)| {
                let place = held.current().convention();
                Subscription {
                    id: id.to_owned(),
                    secrets: held
                        .as_slice()
                        .iter()
                        .map(|s| Entry::of(s, place))
                        .collect(),
                    convention: Convention::of(place),
                }
            })
            .collect();
        subscriptions.sort_by(|a, b| a.id.cmp(&b.id));
        let file = File {
            monite_webhooks_keyring: FORMAT,
            subscriptions,
            unkeyed: self
                .unkeyed()
                .iter()
                .map(|s| Entry::of(s, KeyConvention::Raw))
                .collect(),
        };
        let mut json = serde_json::to_vec_pretty(&file)
            .map_err(|e| file_error(format!("cannot encode the keyring: {e}")))?;
        json.push(b'\n');
        write_private(path, &json)
    }
}

/// Writes `bytes` to a new owner-only file beside `path`, renames it over `path`, then
/// syncs the directory so that the rename survives a power loss. Each error names the path
/// that failed.
fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    let Some(name) = path.file_name() else {
        return Err(file_error(format!(
            "cannot write keyring file {}: the path names no file",
            path.display()
        )));
    };
    let (temporary, mut file) = create_temporary(path, name)?;
    let written = file.write_all(bytes).and_then(|()| file.sync_all());
    drop(file);
    let failed = match written {
        Err(e) => Some(io_error(
            &format!(
                "cannot write temporary keyring file {}",
                temporary.display()
            ),
            e,
        )),
        Ok(()) => std::fs::rename(&temporary, path).err().map(|e| {
            io_error(
                &format!(
                    "cannot rename {} to keyring file {}",
                    temporary.display(),
                    path.display()
                ),
                e,
            )
        }),
    };
    if let Some(error) = failed {
        let _ = std::fs::remove_file(&temporary);
        return Err(error);
    }
    sync_directory(path)
}

/// Creates an owner-only temporary file beside `path`, under a name no other attempt has:
/// the process id, a counter, and a random number, so that neither a concurrent save nor
/// a file left by a process killed mid-save (in a container, the next run often has the
/// same pid) is ever in the way.
fn create_temporary(path: &Path, name: &OsStr) -> Result<(PathBuf, std::fs::File)> {
    static ATTEMPTS: AtomicU64 = AtomicU64::new(0);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut collisions = 0;
    loop {
        let attempt = ATTEMPTS.fetch_add(1, Ordering::Relaxed);
        let mut random = RandomState::new().build_hasher();
        random.write_u64(attempt);
        if let Ok(since) = SystemTime::now().duration_since(UNIX_EPOCH) {
            random.write_u128(since.as_nanos());
        }
        let mut temporary_name = OsString::from(".");
        temporary_name.push(name);
        temporary_name.push(format!(
            ".{}.{attempt}.{:016x}.tmp",
            std::process::id(),
            random.finish()
        ));
        let temporary = path.with_file_name(temporary_name);
        match options.open(&temporary) {
            Ok(file) => return Ok((temporary, file)),
            // Only ever by chance: try another name, a few times.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && collisions < 8 => {
                collisions += 1;
            }
            Err(e) => {
                return Err(io_error(
                    &format!(
                        "cannot create temporary keyring file {}",
                        temporary.display()
                    ),
                    e,
                ));
            }
        }
    }
}

/// Syncs the directory that holds `path`, after a rename into it.
#[cfg(unix)]
fn sync_directory(path: &Path) -> Result<()> {
    let directory = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    match std::fs::File::open(directory).and_then(|opened| opened.sync_all()) {
        Ok(()) => Ok(()),
        // Some file systems cannot sync a directory; the file itself was synced.
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::InvalidInput | std::io::ErrorKind::Unsupported
            ) =>
        {
            Ok(())
        }
        Err(e) => Err(io_error(
            &format!(
                "keyring file {} was replaced, but its directory {} cannot be synced",
                path.display(),
                directory.display()
            ),
            e,
        )),
    }
}

/// Elsewhere a directory cannot be opened to be synced; the file itself was synced.
#[cfg(not(unix))]
fn sync_directory(_path: &Path) -> Result<()> {
    Ok(())
}

fn io_error(doing: &str, e: std::io::Error) -> Error {
    file_error(format!("{doing}: {e}")).with_source(e)
}

/// Where the file stops being a keyring, and what kind of fault it is: never serde_json's
/// own message, which quotes the value it refused (`invalid type: string "whsec_…"`), and
/// any value in a keyring file may be a secret.
fn not_a_keyring(path: &Path, e: &serde_json::Error) -> Error {
    let what = match e.classify() {
        Category::Syntax => "not valid JSON",
        Category::Eof => "the JSON ends early",
        Category::Data => "a field that is unknown, or of the wrong type or value",
        Category::Io => "unreadable",
    };
    file_error(format!(
        "keyring file {} is not a monite-webhooks keyring: {what} at line {} column {}",
        path.display(),
        e.line(),
        e.column()
    ))
}

fn file_error(message: String) -> Error {
    Error::new(ErrorKind::KeyringFile, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> std::path::PathBuf {
        let dir =
            std::env::temp_dir().join(format!("monite-keyring-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir.join("keyring.json")
    }

    #[test]
    fn a_saved_keyring_loads_the_same_and_only_its_owner_reads_it() {
        let path = scratch("roundtrip");
        let mut keyring = Keyring::new()
            .with_subscription("sub-b", Secret::new("whsec_b1").unwrap())
            .with_subscription("sub-a", Secret::whsec_base64("whsec_aGVsbG8=").unwrap())
            .with_unkeyed(Secret::new("whsec_u").unwrap());
        keyring.rotate("sub-b", Secret::new("whsec_b2").unwrap());
        keyring.save(&path).unwrap();

        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let loaded = Keyring::load(&path).unwrap();
        let b = loaded.get("sub-b").unwrap();
        assert_eq!(b.current().expose_text(), "whsec_b2");
        assert_eq!(b.previous().unwrap().expose_text(), "whsec_b1");
        let a = loaded.get("sub-a").unwrap();
        assert_eq!(a.current().convention(), KeyConvention::WhsecBase64);
        assert_eq!(loaded.unkeyed()[0].expose_text(), "whsec_u");

        // Saving again replaces the file whole.
        loaded.save(&path).unwrap();
        assert_eq!(Keyring::load(&path).unwrap().len(), 2);
    }

    #[test]
    fn bad_files_are_clear_errors_that_show_no_secret() {
        let path = scratch("bad");
        for (text, says) in [
            ("not json", "not valid JSON at line 1 column 2"),
            (r#"{"monite_webhooks_keyring":2}"#, "format 2"),
            (
                r#"{"monite_webhooks_keyring":1,"subscriptions":[{"id":"s","secrets":[]}]}"#,
                "subscription s: no secret",
            ),
            (
                r#"{"monite_webhooks_keyring":1,"subscriptions":[{"id":"s","secrets":[" whsec_padded"]}]}"#,
                "subscription s",
            ),
        ] {
            std::fs::write(&path, text).unwrap();
            let message = Keyring::load(&path).unwrap_err().to_string();
            assert!(message.contains(says), "{message}");
            assert!(!message.contains("whsec_"), "a secret leaked: {message}");
        }
        let missing = Keyring::load(path.with_file_name("absent.json")).unwrap_err();
        assert_eq!(missing.kind(), ErrorKind::KeyringFile);
    }
}
