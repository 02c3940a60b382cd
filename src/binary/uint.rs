//! `BSUInt`, the variable-length unsigned integer.

use super::{DecodeError, EncodeError, Field, Reader};
use crate::wire::{decode_varint, encode_varint};

/// cs.binary's `BSUInt`: an unsigned integer in big-endian base 128, as a
/// `u64`.
///
/// Seven bits a byte, most significant group first, the high bit set on
/// every byte but the last. The encoding is always the shortest. Decoding
/// accepts any number of leading `0x80` bytes, which add nothing, as Python
/// does, and refuses a value over `u64::MAX` (Python's integers have no
/// limit).
///
/// ```
/// use packetstream::binary::{BSUInt, Field};
///
/// assert_eq!(BSUInt::value_to_bytes(&300)?, [0x82, 0x2c]);
/// assert_eq!(BSUInt::value_from_bytes(&[0x80, 0x80, 0x05])?, 5);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct BSUInt;

impl Field for BSUInt {
    type Value = u64;

    fn encode_value(value: &u64, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        encode_varint(*value, out);
        Ok(())
    }

    fn decode_value(input: &mut Reader<'_>) -> Result<u64, DecodeError> {
        decode_uint(input, "BSUInt")
    }
}

/// Decodes a `BSUInt`, naming it `what` in errors (a length prefix says
/// whose length it is).
pub(crate) fn decode_uint(input: &mut Reader<'_>, what: &'static str) -> Result<u64, DecodeError> {
    let start = input.offset();
    let rest = input.remaining();
    // Leading 0x80 bytes contribute no bits. The crate's varint decoder
    // stops at ten bytes, so the padding is skipped here to accept what
    // Python accepts. Once it is gone, ten bytes that still continue can only
    // be a value of 2^70 or more, so the decoder's "too long" is an overflow.
    let padding = rest.iter().take_while(|&&b| b == 0x80).count();
    let significant = rest.get(padding..).unwrap_or_default();
    match decode_varint(significant) {
        Ok(Some((value, used))) => {
            input.take(padding + used, what)?;
            Ok(value)
        }
        Ok(None) => {
            Err(DecodeError::Short { what, offset: start, needed: rest.len() as u64 + 1, available: rest.len() })
        }
        Err(_) => Err(DecodeError::UIntOverflow { what, offset: start }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_point_at_the_start_of_the_integer() {
        let mut input = Reader::new(&[0x07, 0x80, 0x80]);
        assert_eq!(input.take(1, "head"), Ok(&[0x07][..]));
        assert_eq!(
            decode_uint(&mut input, "length"),
            Err(DecodeError::Short { what: "length", offset: 1, needed: 3, available: 2 })
        );
        let mut input = Reader::new(&[0x07, 0x80, 0x82, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00]);
        input.take(1, "head").ok();
        assert_eq!(decode_uint(&mut input, "length"), Err(DecodeError::UIntOverflow { what: "length", offset: 1 }));
    }

    #[test]
    fn a_decoded_integer_is_taken_with_its_padding() {
        let mut input = Reader::new(&[0x80, 0x80, 0x81, 0x00, 0x2a]);
        assert_eq!(decode_uint(&mut input, "n"), Ok(128));
        assert_eq!(input.remaining(), [0x2a]);
    }
}
