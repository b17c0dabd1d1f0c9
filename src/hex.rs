//! Hex for 32-byte tags: all the hex this crate needs, so it takes no dependency for it.

const DIGITS: &[u8; 16] = b"0123456789abcdef";

/// Lower-case hex of `bytes`, appended to `out`.
pub(crate) fn encode_into(bytes: &[u8], out: &mut String) {
    out.reserve(bytes.len() * 2);
    for &b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
}

/// Decodes exactly 64 hex digits of either case; anything else is `None`.
pub(crate) fn decode_32(text: &[u8]) -> Option<[u8; 32]> {
    if text.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (byte, pair) in out.iter_mut().zip(text.chunks_exact(2)) {
        *byte = (nibble(pair[0])? << 4) | nibble(pair[1])?;
    }
    Some(out)
}

const fn nibble(digit: u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        b'A'..=b'F' => Some(digit - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_bad_input() {
        let bytes: [u8; 32] = std::array::from_fn(|i| (i as u8).wrapping_mul(37));
        let mut text = String::new();
        encode_into(&bytes, &mut text);
        assert_eq!(text.len(), 64);
        assert_eq!(decode_32(text.as_bytes()), Some(bytes));
        assert_eq!(decode_32(text.to_uppercase().as_bytes()), Some(bytes));
        assert_eq!(decode_32(&text.as_bytes()[..63]), None);
        assert_eq!(decode_32(&[b'g'; 64]), None);
    }
}
