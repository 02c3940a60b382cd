//! NUL-terminated strings.

use super::{DecodeError, EncodeError, Field, Reader};

/// cs.binary's `BinaryUTF8NUL`: text in UTF-8, then a `00` byte, as a
/// `String`.
///
/// As in Python, decoding accepts a missing NUL when the input ends first: the
/// text is then everything that was left, which may be nothing. Encoding
/// refuses a string that contains a NUL, since the other side would stop
/// there (Python would send it anyway).
///
/// ```
/// use packetstream::binary::{Field, Utf8Nul};
///
/// assert_eq!(Utf8Nul::value_to_bytes(&"ab".to_string())?, b"ab\0");
/// assert_eq!(Utf8Nul::value_from_bytes(b"ab")?, "ab");
/// assert!(Utf8Nul::value_to_bytes(&"a\0b".to_string()).is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Utf8Nul;

const UTF8_NUL: &str = "BinaryUTF8NUL";

impl Field for Utf8Nul {
    type Value = String;

    fn encode_value(value: &String, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        refuse_nul(value, UTF8_NUL)?;
        out.extend_from_slice(value.as_bytes());
        out.push(0);
        Ok(())
    }

    fn decode_value(input: &mut Reader<'_>) -> Result<String, DecodeError> {
        let start = input.offset();
        let rest = input.remaining();
        let text_len = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
        let bytes = input.take(text_len, UTF8_NUL)?;
        if !input.is_empty() {
            input.take(1, UTF8_NUL)?;
        }
        match std::str::from_utf8(bytes) {
            Ok(text) => Ok(text.to_owned()),
            Err(e) => Err(DecodeError::Utf8 { what: UTF8_NUL, offset: start + e.valid_up_to() }),
        }
    }
}

/// cs.binary's `BinaryUTF16NUL` with `encoding='utf_16_le'`: text in
/// UTF-16, little-endian, no byte-order mark, then `00 00`, as a `String`.
///
/// Unlike [`Utf8Nul`], the terminator is required: a missing one is an error,
/// as in Python. The terminator is looked for on two-byte boundaries from the
/// start of the field. Unpaired surrogates are an error. Encoding refuses a
/// string that contains a NUL.
///
/// ```
/// use packetstream::binary::{Field, Utf16LeNul};
///
/// assert_eq!(Utf16LeNul::value_to_bytes(&"ab".to_string())?, b"a\0b\0\0\0");
/// assert_eq!(Utf16LeNul::value_from_bytes(b"a\0b\0\0\0")?, "ab");
/// assert!(Utf16LeNul::value_from_bytes(b"a\0b\0").is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Utf16LeNul;

/// cs.binary's `BinaryUTF16NUL` with `encoding='utf_16_be'`: text in
/// UTF-16, big-endian, no byte-order mark, then `00 00`, as a `String`.
///
/// Otherwise as [`Utf16LeNul`].
///
/// ```
/// use packetstream::binary::{Field, Utf16BeNul};
///
/// assert_eq!(Utf16BeNul::value_to_bytes(&"ab".to_string())?, b"\0a\0b\0\0");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Utf16BeNul;

const UTF16_NUL: &str = "BinaryUTF16NUL";

impl Field for Utf16LeNul {
    type Value = String;

    fn encode_value(value: &String, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        encode_utf16(value, u16::to_le_bytes, out)
    }

    fn decode_value(input: &mut Reader<'_>) -> Result<String, DecodeError> {
        decode_utf16(input, u16::from_le_bytes)
    }
}

impl Field for Utf16BeNul {
    type Value = String;

    fn encode_value(value: &String, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        encode_utf16(value, u16::to_be_bytes, out)
    }

    fn decode_value(input: &mut Reader<'_>) -> Result<String, DecodeError> {
        decode_utf16(input, u16::from_be_bytes)
    }
}

fn refuse_nul(value: &str, what: &'static str) -> Result<(), EncodeError> {
    match value.bytes().position(|b| b == 0) {
        Some(index) => Err(EncodeError::ContainsNul { what, index }),
        None => Ok(()),
    }
}

fn encode_utf16(value: &str, to_bytes: fn(u16) -> [u8; 2], out: &mut Vec<u8>) -> Result<(), EncodeError> {
    refuse_nul(value, UTF16_NUL)?;
    for unit in value.encode_utf16() {
        out.extend_from_slice(&to_bytes(unit));
    }
    out.extend_from_slice(&[0, 0]);
    Ok(())
}

fn decode_utf16(input: &mut Reader<'_>, from_bytes: fn([u8; 2]) -> u16) -> Result<String, DecodeError> {
    let start = input.offset();
    let rest = input.remaining();
    let units = rest.len() / 2;
    let Some(text_units) = (0..units).find(|&i| rest[2 * i] == 0 && rest[2 * i + 1] == 0) else {
        return Err(DecodeError::MissingNul { what: UTF16_NUL, offset: start });
    };
    let bytes = input.take(2 * text_units, UTF16_NUL)?;
    input.take(2, UTF16_NUL)?;
    let code_units = bytes.chunks_exact(2).map(|pair| from_bytes([pair[0], pair[1]]));
    let mut text = String::with_capacity(bytes.len() / 2);
    let mut units_read = 0;
    for decoded in char::decode_utf16(code_units) {
        match decoded {
            Ok(c) => {
                text.push(c);
                units_read += c.len_utf16();
            }
            Err(_) => return Err(DecodeError::Utf16 { what: UTF16_NUL, offset: start + 2 * units_read }),
        }
    }
    Ok(text)
}
