//! Length-prefixed bytes and text, and the rest of the input.

use super::uint::decode_uint;
use super::{DecodeError, EncodeError, Field, Reader};
use crate::wire::encode_varint;

/// cs.binary's `BSData`: a [`BSUInt`](super::BSUInt) length, then that many
/// bytes, as a `Vec<u8>`.
///
/// ```
/// use packetstream::binary::{BSData, Field};
///
/// assert_eq!(BSData::value_to_bytes(&b"hello".to_vec())?, b"\x05hello");
/// assert_eq!(BSData::value_from_bytes(b"\x01A")?, b"A");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct BSData;

impl Field for BSData {
    type Value = Vec<u8>;

    fn encode_value(value: &Vec<u8>, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        encode_prefixed(value, out);
        Ok(())
    }

    fn decode_value(input: &mut Reader<'_>) -> Result<Vec<u8>, DecodeError> {
        Ok(decode_prefixed(input, "BSData length", "BSData")?.1.to_vec())
    }
}

/// cs.binary's `BSString`: a [`BSUInt`](super::BSUInt) length in bytes, then
/// the text in UTF-8, as a `String`.
///
/// The length counts bytes, not characters. Decoding is strict: bytes that
/// are not UTF-8 are an error, never replaced.
///
/// ```
/// use packetstream::binary::{BSString, Field};
///
/// assert_eq!(BSString::value_to_bytes(&"héllo".to_string())?, b"\x06h\xc3\xa9llo");
/// assert!(BSString::value_from_bytes(b"\x01\xff").is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct BSString;

impl Field for BSString {
    type Value = String;

    fn encode_value(value: &String, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        encode_prefixed(value.as_bytes(), out);
        Ok(())
    }

    fn decode_value(input: &mut Reader<'_>) -> Result<String, DecodeError> {
        decode_text(input, "BSString").map(str::to_owned)
    }
}

/// Everything left in the input, as a `Vec<u8>`, with no length of its own.
///
/// Not a cs.binary class: it is the raw tail a structure sometimes ends
/// with, where Python code would read `bfr` to its end by hand. As it takes
/// all that is left, it only makes sense as the last field.
///
/// ```
/// use packetstream::binary::{Field, Rest, Reader, UInt8};
///
/// let mut input = Reader::new(b"\x07tail");
/// assert_eq!(UInt8::decode_value(&mut input)?, 7);
/// assert_eq!(Rest::decode_value(&mut input)?, b"tail");
/// assert!(input.is_empty());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Rest;

impl Field for Rest {
    type Value = Vec<u8>;

    fn encode_value(value: &Vec<u8>, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        out.extend_from_slice(value);
        Ok(())
    }

    fn decode_value(input: &mut Reader<'_>) -> Result<Vec<u8>, DecodeError> {
        Ok(input.take_rest().to_vec())
    }
}

pub(crate) fn encode_prefixed(bytes: &[u8], out: &mut Vec<u8>) {
    encode_varint(bytes.len() as u64, out);
    out.extend_from_slice(bytes);
}

/// Takes a length prefix and the bytes it counts, without copying them.
/// Returns where the counted bytes start, for error offsets, and the bytes.
pub(crate) fn decode_prefixed<'a>(
    input: &mut Reader<'a>,
    length_what: &'static str,
    what: &'static str,
) -> Result<(usize, &'a [u8]), DecodeError> {
    let len = decode_uint(input, length_what)?;
    let start = input.offset();
    Ok((start, input.take_claimed(len, what)?))
}

/// Takes a `BSString`-style field and checks its UTF-8, naming it `what`.
pub(crate) fn decode_text<'a>(input: &mut Reader<'a>, what: &'static str) -> Result<&'a str, DecodeError> {
    let (start, bytes) = decode_prefixed(input, "BSString length", what)?;
    std::str::from_utf8(bytes).map_err(|e| DecodeError::Utf8 { what, offset: start + e.valid_up_to() })
}
