//! BSUInt, the variable-length unsigned integer of the wire format.
//!
//! Big-endian base 128: the value is cut into 7-bit groups, most significant
//! first, and every byte but the last has its high bit set. This is *not*
//! LEB128, whose groups run least significant first.

use super::error::ProtocolError;

/// The longest encoding accepted. Ten 7-bit groups hold 70 bits, enough for
/// any `u64`; a longer run of continuation bytes can only be padding or an
/// attack, so it is refused rather than read forever.
pub const MAX_VARINT_LEN: usize = 10;

/// How many bytes [`encode_varint`] writes for `value`.
pub fn varint_len(value: u64) -> usize {
    let bits = (u64::BITS - value.leading_zeros()) as usize;
    bits.div_ceil(7).max(1)
}

/// Appends the canonical (shortest) encoding of `value` to `out`.
pub fn encode_varint(value: u64, out: &mut Vec<u8>) {
    let mut bytes = [0u8; MAX_VARINT_LEN];
    let len = put_varint(value, &mut bytes);
    out.extend_from_slice(&bytes[..len]);
}

/// Writes the canonical encoding of `value` at the start of `buf`, which
/// has room for it, and says how long it is.
pub(super) fn put_varint(value: u64, buf: &mut [u8]) -> usize {
    // Most integers of a header (tags, flags, small channels) are one byte.
    if value < 0x80 {
        buf[0] = value as u8;
        return 1;
    }
    let len = varint_len(value);
    let mut rest = value;
    for (i, byte) in buf[..len].iter_mut().enumerate().rev() {
        let continuation = if i + 1 == len { 0 } else { 0x80 };
        *byte = (rest & 0x7f) as u8 | continuation;
        rest >>= 7;
    }
    len
}

/// Decodes one integer from the front of `buf`.
///
/// Returns `Ok(None)` when `buf` ends before the integer does (more bytes are
/// needed), or the value with the number of bytes it used. Like the Python
/// decoder this accepts leading `0x80` padding bytes, as long as the whole
/// encoding stays within [`MAX_VARINT_LEN`] bytes.
///
/// # Errors
/// [`ProtocolError::VarintOverflow`] for a value that does not fit a `u64`,
/// [`ProtocolError::VarintTooLong`] for an encoding over ten bytes.
pub fn decode_varint(buf: &[u8]) -> Result<Option<(u64, usize)>, ProtocolError> {
    let mut value: u64 = 0;
    for (i, &byte) in buf.iter().take(MAX_VARINT_LEN).enumerate() {
        if value > u64::MAX >> 7 {
            return Err(ProtocolError::VarintOverflow);
        }
        value = (value << 7) | u64::from(byte & 0x7f);
        if byte & 0x80 == 0 {
            return Ok(Some((value, i + 1)));
        }
    }
    if buf.len() >= MAX_VARINT_LEN {
        return Err(ProtocolError::VarintTooLong);
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(v: u64) -> Vec<u8> {
        let mut out = Vec::new();
        encode_varint(v, &mut out);
        out
    }

    // The wire-format document's table is tested through the public API in
    // tests/codec.rs (`varint_table_of_the_wire_format`).

    #[test]
    fn round_trips_at_every_group_boundary() {
        let mut values = vec![u64::MAX, u64::MAX - 1];
        for shift in 0..64 {
            let v = 1u64 << shift;
            values.extend([v - 1, v, v + 1]);
        }
        for v in values {
            let bytes = enc(v);
            assert_eq!(bytes.len(), varint_len(v));
            assert_eq!(decode_varint(&bytes).unwrap(), Some((v, bytes.len())), "{v}");
            // Every proper prefix asks for more bytes rather than guessing.
            for cut in 0..bytes.len() {
                assert_eq!(decode_varint(&bytes[..cut]).unwrap(), None);
            }
        }
    }

    #[test]
    fn u64_max_is_ten_bytes() {
        assert_eq!(enc(u64::MAX), [0x81, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f]);
    }

    #[test]
    fn values_past_u64_are_refused() {
        // 2^64, the first value that does not fit.
        let over = [0x82, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00];
        assert_eq!(decode_varint(&over), Err(ProtocolError::VarintOverflow));
        // Refused as soon as the overflow is certain, before the last byte arrives.
        assert_eq!(decode_varint(&over[..9]).unwrap(), None);
        assert_eq!(decode_varint(&[0xff; 9]).unwrap(), None);
        assert_eq!(decode_varint(&[0xff; 10]), Err(ProtocolError::VarintOverflow));
    }

    #[test]
    fn leading_padding_is_accepted_up_to_ten_bytes() {
        assert_eq!(decode_varint(&[0x80, 0x05]).unwrap(), Some((5, 2)));
        let mut nine_pads = vec![0x80; 9];
        nine_pads.push(0x05);
        assert_eq!(decode_varint(&nine_pads).unwrap(), Some((5, 10)));
        let mut ten_pads = vec![0x80; 10];
        ten_pads.push(0x05);
        assert_eq!(decode_varint(&ten_pads), Err(ProtocolError::VarintTooLong));
        assert_eq!(decode_varint(&[0x80; 10]), Err(ProtocolError::VarintTooLong));
    }
}
