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
#[inline]
pub(crate) fn decode_32(text: &[u8]) -> Option<[u8; 32]> {
    let text: &[u8; 64] = text.try_into().ok()?;
    // Arithmetic rather than a table or branches, so that the loop vectorises: this runs
    // on every request.
    let mut nibbles = [0u8; 64];
    let mut valid = true;
    for (nibble, &c) in nibbles.iter_mut().zip(text) {
        let digit = c.wrapping_sub(b'0');
        let letter = (c | 0x20).wrapping_sub(b'a');
        valid &= (digit < 10) | (letter < 6);
        *nibble = if digit < 10 {
            digit
        } else {
            letter.wrapping_add(10)
        };
    }
    let mut out = [0u8; 32];
    for (byte, pair) in out.iter_mut().zip(nibbles.chunks_exact(2)) {
        *byte = (pair[0] << 4) | (pair[1] & 0x0f);
    }
    valid.then_some(out)
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
        let mut one_bad = text.clone().into_bytes();
        one_bad[63] = b'/';
        assert_eq!(decode_32(&one_bad), None);
    }
}
