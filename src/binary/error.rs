//! What can go wrong when a field is decoded or encoded.

use std::fmt;

/// Why bytes could not be decoded.
///
/// Every variant says where in the input the trouble is, counted in bytes
/// from the start of the buffer the [`Reader`](super::Reader) was made from,
/// so an error inside a nested structure still points into the whole payload.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// The input ended before the field did (Python raises `EOFError`).
    Short {
        /// What was being read, such as `"UInt32BE"` or `"BSData length"`.
        what: &'static str,
        /// Where the missing bytes should have started.
        offset: usize,
        /// How many bytes the field needs from `offset`. For a `BSUInt`, whose
        /// length is only known at its last byte, this is a lower bound: one
        /// more than there were.
        needed: u64,
        /// How many bytes there were from `offset` to the end of the input.
        available: usize,
    },
    /// The value decoded, but bytes were left after it where the whole input
    /// should have been used (Python's `ValueError "unparsed data at offset N"`).
    Trailing {
        /// Where the first unused byte is.
        offset: usize,
        /// How many bytes were left over.
        len: usize,
    },
    /// A `BSUInt` whose value does not fit in a `u64`. Python has no such
    /// limit; a Rust `u64` has.
    UIntOverflow {
        /// What was being read, such as `"BSUInt"` or `"BSData length"`.
        what: &'static str,
        /// Where the integer starts.
        offset: usize,
    },
    /// Text that is not valid UTF-8 (Python raises `UnicodeDecodeError`).
    Utf8 {
        /// Which field held the text, such as `"BSString"`.
        what: &'static str,
        /// Where the first byte that is not part of a valid character is.
        offset: usize,
    },
    /// Text that is not valid UTF-16: an unpaired surrogate.
    Utf16 {
        /// Which field held the text.
        what: &'static str,
        /// Where the first code unit that is not part of a valid character is.
        offset: usize,
    },
    /// A `BSSFloat` whose text Python's `float()` would refuse.
    BadFloat {
        /// Where the `BSSFloat` starts (its length prefix).
        offset: usize,
        /// The text that was sent.
        text: String,
    },
    /// A NUL-terminated field whose terminator never came before the end of
    /// the input, where the format requires it (Python raises `EOFError`).
    MissingNul {
        /// Which field was being read.
        what: &'static str,
        /// Where the field starts.
        offset: usize,
    },
    /// A value the format can carry but the decoder refuses, for decoders
    /// written by hand (for example an unsupported version byte).
    Invalid {
        /// Where the refused value starts.
        offset: usize,
        /// Why it was refused.
        reason: String,
    },
}

impl DecodeError {
    /// Where in the input the error is.
    pub fn offset(&self) -> usize {
        match self {
            DecodeError::Short { offset, .. }
            | DecodeError::Trailing { offset, .. }
            | DecodeError::UIntOverflow { offset, .. }
            | DecodeError::Utf8 { offset, .. }
            | DecodeError::Utf16 { offset, .. }
            | DecodeError::BadFloat { offset, .. }
            | DecodeError::MissingNul { offset, .. }
            | DecodeError::Invalid { offset, .. } => *offset,
        }
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::Short { what, offset, needed, available } => {
                write!(f, "short input at offset {offset}: {what} needs {needed} bytes, {available} left")
            }
            DecodeError::Trailing { offset, len } => {
                write!(f, "unparsed data at offset {offset} ({len} bytes)")
            }
            DecodeError::UIntOverflow { what, offset } => {
                write!(f, "{what} at offset {offset} does not fit in 64 bits")
            }
            DecodeError::Utf8 { what, offset } => write!(f, "invalid UTF-8 in {what} at offset {offset}"),
            DecodeError::Utf16 { what, offset } => write!(f, "invalid UTF-16 in {what} at offset {offset}"),
            DecodeError::BadFloat { offset, text } => {
                write!(f, "BSSFloat at offset {offset}: {text:?} is not a float")
            }
            DecodeError::MissingNul { what, offset } => {
                write!(f, "{what} at offset {offset} has no terminating NUL")
            }
            DecodeError::Invalid { offset, reason } => write!(f, "invalid value at offset {offset}: {reason}"),
        }
    }
}

impl std::error::Error for DecodeError {}

/// Why a value could not be encoded.
///
/// Most values cannot fail: the Rust value types are chosen so that what does
/// not fit cannot be written down (a `UInt8` takes a `u8`, a `BSUInt` a `u64`,
/// so nothing is negative or too big, and `FixedBytes<N>` takes exactly `N`
/// bytes). What is left is what the types cannot rule out. Python would encode
/// these silently into bytes that do not decode back; this crate refuses.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EncodeError {
    /// A string for a NUL-terminated field that itself contains a NUL, which
    /// would end the field early on the other side.
    ContainsNul {
        /// Which field type, such as `"BinaryUTF8NUL"`.
        what: &'static str,
        /// Where in the string (in bytes of its UTF-8 form) the NUL is.
        index: usize,
    },
    /// A value an encoder written by hand refuses.
    Invalid {
        /// Why it was refused.
        reason: String,
    },
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EncodeError::ContainsNul { what, index } => {
                write!(f, "{what} value contains a NUL at byte {index}")
            }
            EncodeError::Invalid { reason } => write!(f, "cannot encode value: {reason}"),
        }
    }
}

impl std::error::Error for EncodeError {}
