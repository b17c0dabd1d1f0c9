//! Reading the signature header from whatever header map a framework hands over.

/// The header Monite signs deliveries with, lower-cased as HTTP/2 and most maps store it.
pub const SIGNATURE_HEADER: &str = "monite-signature";

/// Looks up a request header by name, ignoring case.
///
/// Implemented for `http::HeaderMap` (axum, hyper, `lambda_http`, most serverless runtimes)
/// and for slices of `(name, value)` string pairs; the `actix-web` feature implements it for
/// actix's own header map, so no headers are copied on the way in.
pub trait HeaderLookup {
    /// The value of the first header called `name` (compared ignoring ASCII case), if any.
    /// `name` is always lower-case.
    fn header(&self, name: &str) -> Option<&[u8]>;
}

/// The signature header's name, built once: looking it up by `&str` would parse and
/// lower-case the name on every request.
static SIGNATURE_HEADER_NAME: http::HeaderName = http::HeaderName::from_static(SIGNATURE_HEADER);

/// Up to this many distinct header names, the signature header is found by comparing
/// names in order rather than by hashing its name (`parts/header_lookup` measures both).
const SCAN_AT_MOST: usize = 12;

impl HeaderLookup for http::HeaderMap {
    fn header(&self, name: &str) -> Option<&[u8]> {
        // The two names every delivery looks up skip parsing; any other is parsed.
        let value = match name {
            // A request's dozen headers are compared faster than the name is hashed.
            SIGNATURE_HEADER if self.keys_len() <= SCAN_AT_MOST => self
                .iter()
                // Against a constant: compared inline, without a call to `memcmp`.
                .find(|(name, _)| name.as_str() == SIGNATURE_HEADER)
                .map(|(_, value)| value),
            SIGNATURE_HEADER => self.get(&SIGNATURE_HEADER_NAME),
            "content-length" => self.get(http::header::CONTENT_LENGTH),
            _ => self.get(name),
        };
        value.map(http::HeaderValue::as_bytes)
    }
}

impl<N: AsRef<str>, V: AsRef<[u8]>> HeaderLookup for [(N, V)] {
    fn header(&self, name: &str) -> Option<&[u8]> {
        self.iter()
            .find(|(n, _)| n.as_ref().eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_ref())
    }
}

impl<N: AsRef<str>, V: AsRef<[u8]>, const LEN: usize> HeaderLookup for [(N, V); LEN] {
    fn header(&self, name: &str) -> Option<&[u8]> {
        self.as_slice().header(name)
    }
}

impl<N: AsRef<str>, V: AsRef<[u8]>> HeaderLookup for Vec<(N, V)> {
    fn header(&self, name: &str) -> Option<&[u8]> {
        self.as_slice().header(name)
    }
}

impl<T: HeaderLookup + ?Sized> HeaderLookup for &T {
    fn header(&self, name: &str) -> Option<&[u8]> {
        (**self).header(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookups_ignore_case() {
        let pairs = [("Monite-Signature", "t=1,v1=ab")];
        assert_eq!(pairs.header(SIGNATURE_HEADER), Some(&b"t=1,v1=ab"[..]));

        let mut map = http::HeaderMap::new();
        map.insert("MONITE-SIGNATURE", http::HeaderValue::from_static("x"));
        assert_eq!(map.header(SIGNATURE_HEADER), Some(&b"x"[..]));
        assert_eq!(map.header("other"), None);
    }

    #[test]
    fn small_and_large_maps_give_the_first_value() {
        for others in [0, SCAN_AT_MOST - 2, SCAN_AT_MOST, 3 * SCAN_AT_MOST] {
            let mut map = http::HeaderMap::new();
            for i in 0..others {
                let name = http::HeaderName::try_from(format!("x-other-{i}")).unwrap();
                map.insert(name, http::HeaderValue::from_static("o"));
            }
            map.append("Monite-Signature", http::HeaderValue::from_static("first"));
            map.append("monite-signature", http::HeaderValue::from_static("second"));
            assert_eq!(
                map.header(SIGNATURE_HEADER),
                Some(&b"first"[..]),
                "{others}"
            );
            map.remove("monite-signature");
            assert_eq!(map.header(SIGNATURE_HEADER), None, "{others}");
        }
    }
}
