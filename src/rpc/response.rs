//! What a typed request's successful answer is, both ways: the serving side
//! turns it into flags and a payload, the calling side decodes it back.

use crate::binary::{Binary, DecodeError, EncodeError};
use crate::conn::answer::Response;

/// The answer of a typed request: how it becomes a response's flags and
/// payload, and how it is read back from them.
///
/// | type | flags | payload |
/// |---|---|---|
/// | [`Response`] | as they are | as it is (Python's default `decode_response_payload`) |
/// | any [`Binary`] (`()`, `Vec<u8>`, a [`binary_struct!`](crate::binary_struct)) | 0, ignored when read | its encoding, all of it |
/// | `(u64, T)`, `T` [`Binary`] | the `u64` | `T`'s encoding |
/// | `u64` | the value | empty |
/// | `bool` | 1 or 0 | empty |
/// | `String` | 0, ignored when read | the UTF-8 text, all of it |
///
/// Reading is strict where writing is determined: bytes left after the
/// value, a payload where none belongs, and a `bool` other than 0 or 1 are
/// errors, never ignored.
pub trait TypedResponse: Sized {
    /// The flags and payload of the answer.
    ///
    /// # Errors
    /// [`EncodeError`] for a value its fields cannot carry.
    fn into_response(self) -> Result<Response, EncodeError>;

    /// The answer from a successful response's flags and payload.
    ///
    /// # Errors
    /// [`DecodeError`] for a response that is not one of these.
    fn from_response(flags: u64, payload: &[u8]) -> Result<Self, DecodeError>;
}

impl TypedResponse for Response {
    fn into_response(self) -> Result<Response, EncodeError> {
        Ok(self)
    }

    fn from_response(flags: u64, payload: &[u8]) -> Result<Self, DecodeError> {
        Ok(Response { flags, payload: payload.to_vec() })
    }
}

impl<T: Binary> TypedResponse for T {
    fn into_response(self) -> Result<Response, EncodeError> {
        Ok(Response { flags: 0, payload: self.to_bytes()? })
    }

    fn from_response(_flags: u64, payload: &[u8]) -> Result<Self, DecodeError> {
        T::decode_all(payload)
    }
}

impl<T: Binary> TypedResponse for (u64, T) {
    fn into_response(self) -> Result<Response, EncodeError> {
        Ok(Response { flags: self.0, payload: self.1.to_bytes()? })
    }

    fn from_response(flags: u64, payload: &[u8]) -> Result<Self, DecodeError> {
        Ok((flags, T::decode_all(payload)?))
    }
}

impl TypedResponse for u64 {
    fn into_response(self) -> Result<Response, EncodeError> {
        Ok(Response { flags: self, payload: Vec::new() })
    }

    fn from_response(flags: u64, payload: &[u8]) -> Result<Self, DecodeError> {
        <()>::decode_all(payload)?;
        Ok(flags)
    }
}

impl TypedResponse for bool {
    fn into_response(self) -> Result<Response, EncodeError> {
        Ok(Response { flags: u64::from(self), payload: Vec::new() })
    }

    fn from_response(flags: u64, payload: &[u8]) -> Result<Self, DecodeError> {
        <()>::decode_all(payload)?;
        match flags {
            0 => Ok(false),
            1 => Ok(true),
            // The flags are not in the payload: offset 0 is the best there is.
            other => {
                Err(DecodeError::Invalid { offset: 0, reason: format!("flags {other} are not a yes (1) or no (0)") })
            }
        }
    }
}

impl TypedResponse for String {
    fn into_response(self) -> Result<Response, EncodeError> {
        Ok(Response { flags: 0, payload: self.into_bytes() })
    }

    fn from_response(_flags: u64, payload: &[u8]) -> Result<Self, DecodeError> {
        std::str::from_utf8(payload)
            .map(str::to_owned)
            .map_err(|error| DecodeError::Utf8 { what: "text answer", offset: error.valid_up_to() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strict_where_writing_is_determined() {
        assert_eq!(u64::from_response(5, b""), Ok(5));
        assert_eq!(u64::from_response(5, b"x"), Err(DecodeError::Trailing { offset: 0, len: 1 }));
        assert_eq!(bool::from_response(1, b""), Ok(true));
        assert_eq!(bool::from_response(0, b""), Ok(false));
        assert!(matches!(bool::from_response(2, b""), Err(DecodeError::Invalid { .. })));
        assert_eq!(<()>::from_response(9, b""), Ok(()));
        assert_eq!(String::from_response(0, b"\xe2\x82"), Err(DecodeError::Utf8 { what: "text answer", offset: 0 }));
        assert_eq!(<(u64, Vec<u8>)>::from_response(3, b"ab"), Ok((3, b"ab".to_vec())));
    }

    #[test]
    fn written_as_read() {
        assert_eq!(true.into_response(), Ok(Response { flags: 1, payload: Vec::new() }));
        assert_eq!(7u64.into_response(), Ok(Response { flags: 7, payload: Vec::new() }));
        assert_eq!((2u64, b"p".to_vec()).into_response(), Ok(Response { flags: 2, payload: b"p".to_vec() }));
        assert_eq!("é".to_owned().into_response(), Ok(Response { flags: 0, payload: "é".as_bytes().to_vec() }));
        let raw = Response { flags: 4, payload: b"raw".to_vec() };
        assert_eq!(raw.clone().into_response(), Ok(raw.clone()));
        assert_eq!(Response::from_response(4, b"raw"), Ok(raw));
    }
}
