//! The typed request: a value that knows its request type, its flags, how it
//! travels as a payload, and what its answer decodes into (cs.packetstream's
//! `BaseRequest`).

use super::response::TypedResponse;
use crate::binary::{Binary, DecodeError, EncodeError, Reader};

/// A request type of an application protocol, as a Rust type: Python's
/// `BaseRequest` subclass.
///
/// The payload is the value's [`Binary`] encoding (Python's `bytes(rq)`);
/// the request type number is [`RQ_TYPE`](Self::RQ_TYPE), the *user* type
/// (the wire carries it plus one, as with every request); the answer
/// decodes into [`Response`](Self::Response). Most request types are
/// defined with [`typed_request!`](crate::typed_request); implement it by
/// hand to carry flags or to decode the answer according to the request:
///
/// ```
/// use packetstream::binary::{Binary, BSUInt, DecodeError};
/// use packetstream::rpc::TypedRequest;
///
/// packetstream::binary_struct! {
///     /// Reads up to `count` bytes; the answer's flags say whether more follow.
///     #[derive(Debug)]
///     pub struct Read { pub count: BSUInt }
/// }
///
/// impl TypedRequest for Read {
///     const RQ_TYPE: u64 = 4;
///     const NAME: &'static str = "files:read";
///     /// Whether more follow, and the bytes.
///     type Response = (u64, Vec<u8>);
///
///     fn decode_response(&self, flags: u64, payload: &[u8]) -> Result<(u64, Vec<u8>), DecodeError> {
///         // A short read is an answer; a long one is not.
///         if payload.len() as u64 > self.count {
///             let reason = format!("{} bytes for a read of {}", payload.len(), self.count);
///             return Err(DecodeError::Invalid { offset: 0, reason });
///         }
///         Ok((flags, payload.to_vec()))
///     }
/// }
/// # let rq = Read { count: 2 };
/// # assert_eq!(rq.decode_response(1, b"ab").unwrap(), (1, b"ab".to_vec()));
/// # assert!(rq.decode_response(1, b"abc").is_err());
/// # assert_eq!(rq.to_bytes().unwrap(), [2]);
/// ```
pub trait TypedRequest: Binary {
    /// The request type (the user's number, as in a Python `rq_type_map`).
    const RQ_TYPE: u64;

    /// The name the request [registry](super::Registry) knows it by, in the
    /// form `"application:request"`. Nothing sends it unless two ends
    /// compare registries.
    const NAME: &'static str;

    /// What a successful answer decodes into: raw flags and payload
    /// ([`Response`](crate::Response)) unless the request type says
    /// otherwise. The serving side answers with one of these.
    type Response: TypedResponse;

    /// The flags of the request packet. Default 0: the fields travel in the
    /// payload.
    fn flags(&self) -> u64 {
        0
    }

    /// The payload of the request packet: the [`Binary`] encoding.
    ///
    /// # Errors
    /// [`EncodeError`] for a value the fields cannot carry.
    fn encode_payload(&self) -> Result<Vec<u8>, EncodeError> {
        self.to_bytes()
    }

    /// The request from a packet's flags and payload, on the serving side
    /// (Python's `from_request_payload`). The default decodes the payload,
    /// all of it, and ignores the flags, as Python's default assumes 0.
    ///
    /// # Errors
    /// [`DecodeError`] for a payload that is not one of these.
    fn from_request(flags: u64, payload: &[u8]) -> Result<Self, DecodeError> {
        let _ = flags;
        Self::decode_all(payload)
    }

    /// Decodes a successful answer (Python's `decode_response_payload`).
    /// The default is [`TypedResponse::from_response`]; a request type
    /// overrides it when the answer's meaning depends on the request.
    ///
    /// # Errors
    /// [`DecodeError`] for an answer that is not a valid response.
    fn decode_response(&self, flags: u64, payload: &[u8]) -> Result<Self::Response, DecodeError> {
        Self::Response::from_response(flags, payload)
    }
}

/// A typed request sent with chosen flags, as Python's `AddRequest(flags=3,
/// ...)`: the flags travel in the packet, the request's fields in the
/// payload. On the serving side it hands the flags of the request it
/// decoded to the fulfilling function.
///
/// ```
/// use packetstream::rpc::{Flagged, TypedRequest};
///
/// packetstream::typed_request! {
///     /// cs.packetstream's example request.
///     pub struct AddRequest(0, "cs:add") {
///         pub hashenum: packetstream::binary::BSUInt,
///         pub data: packetstream::binary::BSData,
///     }
/// }
///
/// let rq = Flagged { flags: 3, request: AddRequest { hashenum: 1, data: b"hello".to_vec() } };
/// assert_eq!(rq.flags(), 3);
/// assert_eq!(rq.encode_payload()?, b"\x01\x05hello");
/// assert_eq!(Flagged::<AddRequest>::from_request(3, b"\x01\x05hello")?.flags, 3);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Flagged<R> {
    /// The request packet's flags.
    pub flags: u64,
    /// The request.
    pub request: R,
}

/// The request's own encoding: the flags are not part of the payload.
impl<R: Binary> Binary for Flagged<R> {
    fn encode(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        self.request.encode(out)
    }

    fn decode(input: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Flagged { flags: 0, request: R::decode(input)? })
    }
}

impl<R: TypedRequest> TypedRequest for Flagged<R> {
    const RQ_TYPE: u64 = R::RQ_TYPE;
    const NAME: &'static str = R::NAME;
    type Response = R::Response;

    fn flags(&self) -> u64 {
        self.flags
    }

    fn encode_payload(&self) -> Result<Vec<u8>, EncodeError> {
        self.request.encode_payload()
    }

    fn from_request(flags: u64, payload: &[u8]) -> Result<Self, DecodeError> {
        Ok(Flagged { flags, request: R::from_request(flags, payload)? })
    }

    fn decode_response(&self, flags: u64, payload: &[u8]) -> Result<Self::Response, DecodeError> {
        self.request.decode_response(flags, payload)
    }
}
