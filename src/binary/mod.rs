//! The field types of Python's `cs.binary` (release 20240630), byte for byte.
//!
//! cs.packetstream's typed requests carry their fields in cs.binary's
//! formats. This module reads and writes those formats; it knows nothing of
//! packets or connections.
//!
//! # How cs.binary maps to Rust
//!
//! Each cs.binary class is a zero-sized marker type that implements
//! [`Field`], which names the Rust type of its value and encodes and decodes
//! it. The marker is never a value itself: `BSUInt` is how a `u64` travels.
//!
//! | cs.binary | marker | value | bytes |
//! |---|---|---|---|
//! | `BSUInt` | [`BSUInt`] | `u64` | big-endian base 128, high bit on all but the last |
//! | `BSData` | [`BSData`] | `Vec<u8>` | `BSUInt` length, then the bytes |
//! | `BSString` | [`BSString`] | `String` | `BSUInt` length in bytes, then UTF-8 |
//! | `BSSFloat` | [`BSSFloat`] | `f64` | a `BSString` of Python's `repr(x)` |
//! | `UInt8` | [`UInt8`] | `u8` | `B` |
//! | — | [`Int8`] | `i8` | `b` |
//! | `Int16BE`, `Int16LE` | [`Int16BE`], [`Int16LE`] | `i16` | `>h`, `<h` |
//! | `UInt16BE`, `UInt16LE` | [`UInt16BE`], [`UInt16LE`] | `u16` | `>H`, `<H` |
//! | `Int32BE`, `Int32LE` | [`Int32BE`], [`Int32LE`] | `i32` | `>l`, `<l` |
//! | `UInt32BE`, `UInt32LE` | [`UInt32BE`], [`UInt32LE`] | `u32` | `>L`, `<L` |
//! | — | [`Int64BE`], [`Int64LE`] | `i64` | `>q`, `<q` |
//! | `UInt64BE`, `UInt64LE` | [`UInt64BE`], [`UInt64LE`] | `u64` | `>Q`, `<Q` |
//! | `Float64BE`, `Float64LE` | [`Float64BE`], [`Float64LE`] | `f64` | `>d`, `<d` |
//! | `BinaryFixedBytes(name, N)` | [`FixedBytes<N>`] | `[u8; N]` | `>{N}s` |
//! | `BinaryUTF8NUL` | [`Utf8Nul`] | `String` | UTF-8, then `00` |
//! | `BinaryUTF16NUL` (`utf_16_le`, `utf_16_be`) | [`Utf16LeNul`], [`Utf16BeNul`] | `String` | UTF-16, then `00 00` |
//! | `BinaryMultiStruct(name, fmt, fields)` | a tuple of markers, or [`binary_struct!`] | a tuple, or the struct | the fields in order |
//! | `BinaryMultiValue(name, {field: spec})` | [`binary_struct!`] | the struct | the fields in order |
//! | — | [`Rest`] | `Vec<u8>` | everything left |
//!
//! The rows marked — have no cs.binary class of that name: `Int8`, `Int64BE`
//! and `Int64LE` are the `struct` formats cs.binary leaves out, `Rest` is the
//! raw tail that Python code reads by hand.
//!
//! ```
//! use packetstream::binary::{BSString, BSUInt, Field, UInt16BE};
//!
//! let mut out = Vec::new();
//! BSUInt::encode_value(&300, &mut out)?;
//! BSString::encode_value(&"€".to_string(), &mut out)?;
//! UInt16BE::encode_value(&0x1234, &mut out)?;
//! assert_eq!(out, [0x82, 0x2c, 0x03, 0xe2, 0x82, 0xac, 0x12, 0x34]);
//!
//! // A tuple of markers is a field too: the fields one after another.
//! assert_eq!(<(BSUInt, BSString, UInt16BE)>::value_from_bytes(&out)?, (300, "€".to_string(), 0x1234));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Whole payloads
//!
//! [`Binary`] is for values that are a payload by themselves: the structs of
//! [`binary_struct!`], `()` (no payload) and `Vec<u8>` (the raw payload).
//! [`Binary::decode_all`] insists that the whole input is used, as Python's
//! `from_bytes` does:
//!
//! ```
//! use packetstream::binary::{Binary, BSData, BSUInt, DecodeError};
//!
//! packetstream::binary_struct! {
//!     /// cs.packetstream's example request.
//!     #[derive(Debug, PartialEq)]
//!     pub struct AddRequest { pub hashenum: BSUInt, pub data: BSData }
//! }
//!
//! let rq = AddRequest { hashenum: 1, data: b"hello".to_vec() };
//! assert_eq!(rq.to_bytes()?, [0x01, 0x05, b'h', b'e', b'l', b'l', b'o']);
//! assert_eq!(
//!     AddRequest::decode_all(b"\x01\x05hello!"),
//!     Err(DecodeError::Trailing { offset: 7, len: 1 })
//! );
//! assert_eq!(<()>::decode_all(b"")?, ());
//! assert_eq!(Vec::<u8>::decode_all(b"raw")?, b"raw");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Where this side is stricter than Python
//!
//! Decoding never panics and never trusts a length before the bytes are
//! there: short input, trailing bytes, a `BSUInt` over `u64::MAX`, bad UTF-8
//! and float text that Python would not parse are each a [`DecodeError`]
//! that says where. Encoding never pads, cuts or wraps a value: the value
//! types cannot hold what does not fit, and a string with a NUL for a
//! NUL-terminated field is an [`EncodeError`]. Python, by contrast, encodes
//! a negative `BSUInt` as garbage, pads or cuts fixed bytes silently, and
//! sends a NUL inside a NUL-terminated string.

mod bytes;
mod compose;
mod error;
mod fixed;
mod float;
mod macros;
mod nul_terminated;
mod reader;
mod uint;
mod unicode;

pub use bytes::{BSData, BSString, Rest};
pub use error::{DecodeError, EncodeError};
pub use fixed::{
    FixedBytes, Float64BE, Float64LE, Int16BE, Int16LE, Int32BE, Int32LE, Int64BE, Int64LE, Int8, UInt16BE, UInt16LE,
    UInt32BE, UInt32LE, UInt64BE, UInt64LE, UInt8,
};
pub use float::{float_repr, parse_float, BSSFloat};
pub use nul_terminated::{Utf16BeNul, Utf16LeNul, Utf8Nul};
pub use reader::Reader;
pub use uint::BSUInt;

#[doc(inline)]
pub use crate::binary_struct;

/// A cs.binary field type: how one value is laid out in bytes.
///
/// Implemented by zero-sized markers ([`BSUInt`], [`UInt16BE`], …), by
/// tuples of markers (the fields one after another), and by the structs of
/// [`binary_struct!`] (with themselves as the value). The methods are named
/// after Python's `transcribe_value` and `parse_value`.
pub trait Field {
    /// The Rust type of the value, such as `u64` for [`BSUInt`].
    type Value;

    /// Appends the bytes of `value` to `out`.
    ///
    /// # Errors
    /// [`EncodeError`] for a value the format cannot carry faithfully; on
    /// error `out` may hold part of the value.
    fn encode_value(value: &Self::Value, out: &mut Vec<u8>) -> Result<(), EncodeError>;

    /// Takes one value from the front of `input`.
    ///
    /// # Errors
    /// [`DecodeError`] for input that does not hold a valid value; how much
    /// of `input` was taken is then unspecified.
    fn decode_value(input: &mut Reader<'_>) -> Result<Self::Value, DecodeError>;

    /// The bytes of `value` on their own.
    ///
    /// # Errors
    /// As [`Field::encode_value`].
    fn value_to_bytes(value: &Self::Value) -> Result<Vec<u8>, EncodeError> {
        let mut out = Vec::new();
        Self::encode_value(value, &mut out)?;
        Ok(out)
    }

    /// Decodes a value that must use all of `bytes`.
    ///
    /// # Errors
    /// As [`Field::decode_value`], and [`DecodeError::Trailing`] when bytes
    /// are left after the value.
    fn value_from_bytes(bytes: &[u8]) -> Result<Self::Value, DecodeError> {
        let mut input = Reader::new(bytes);
        let value = Self::decode_value(&mut input)?;
        input.finish()?;
        Ok(value)
    }
}

/// The value type of a field marker: `ValueOf<BSUInt>` is `u64`. The fields
/// of a [`binary_struct!`] struct have these types.
pub type ValueOf<F> = <F as Field>::Value;

/// A value that is a whole payload: a cs.binary `AbstractBinary` instance.
///
/// Implemented by the structs of [`binary_struct!`], by `()` (no bytes) and
/// by `Vec<u8>` (the bytes as they are). Implement it by hand for a layout
/// that depends on its own contents, as Python code overrides `parse` and
/// `transcribe`.
pub trait Binary: Sized {
    /// Appends the bytes of `self` to `out`.
    ///
    /// # Errors
    /// [`EncodeError`] for a value the format cannot carry faithfully; on
    /// error `out` may hold part of the value.
    fn encode(&self, out: &mut Vec<u8>) -> Result<(), EncodeError>;

    /// Takes one value from the front of `input`.
    ///
    /// # Errors
    /// [`DecodeError`] for input that does not hold a valid value.
    fn decode(input: &mut Reader<'_>) -> Result<Self, DecodeError>;

    /// The bytes of `self` (Python's `bytes(obj)`).
    ///
    /// # Errors
    /// As [`Binary::encode`].
    fn to_bytes(&self) -> Result<Vec<u8>, EncodeError> {
        let mut out = Vec::new();
        self.encode(&mut out)?;
        Ok(out)
    }

    /// Decodes a value that must use all of `bytes` (Python's
    /// `cls.from_bytes(bs)`).
    ///
    /// # Errors
    /// As [`Binary::decode`], and [`DecodeError::Trailing`] ("unparsed data
    /// at offset N") when bytes are left after the value.
    fn decode_all(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut input = Reader::new(bytes);
        let value = Self::decode(&mut input)?;
        input.finish()?;
        Ok(value)
    }
}
