//! Errors of the typed calls, one per operation as in the rest of the crate:
//! a submit can find the request unsendable or the connection gone; a wait
//! can get a failed answer, an answer that does not decode, or the
//! connection's end; a call can get any of these.

use std::fmt;

use crate::binary::{DecodeError, EncodeError};
use crate::conn::answer::{Failure, Response};
use crate::conn::error::{operation_error, ConnectionError, InvalidRequest};

/// A typed request that cannot be sent; nothing was sent.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InvalidTyped {
    /// Its fields could not be encoded.
    Encode {
        /// The request type's name.
        name: &'static str,
        /// Why.
        error: EncodeError,
    },
    /// Its type or flags do not fit on the wire.
    Request(InvalidRequest),
    /// The session's registry does not have it under its number, so there
    /// is no number to send it with.
    Unregistered {
        /// The request type's name.
        name: &'static str,
        /// Its number.
        rq_type: u64,
    },
}

impl fmt::Display for InvalidTyped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InvalidTyped::Encode { name, error } => write!(f, "cannot encode {name}: {error}"),
            InvalidTyped::Request(error) => fmt::Display::fmt(error, f),
            InvalidTyped::Unregistered { name, rq_type } => {
                write!(f, "{name} (request type {rq_type}) is not in the session's registry")
            }
        }
    }
}

impl std::error::Error for InvalidTyped {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            InvalidTyped::Encode { error, .. } => Some(error),
            InvalidTyped::Request(error) => Some(error),
            InvalidTyped::Unregistered { .. } => None,
        }
    }
}

/// A successful answer that is not a valid response of its request type:
/// the answer is kept, as it came.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UndecodableResponse {
    name: &'static str,
    response: Response,
    error: DecodeError,
}

impl UndecodableResponse {
    pub(crate) fn new(name: &'static str, response: Response, error: DecodeError) -> Self {
        UndecodableResponse { name, response, error }
    }

    /// The request type's name.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The answer as it came.
    pub fn response(&self) -> &Response {
        &self.response
    }

    /// The answer as it came, taken.
    pub fn into_response(self) -> Response {
        self.response
    }

    /// What is wrong with it.
    pub fn error(&self) -> &DecodeError {
        &self.error
    }
}

impl fmt::Display for UndecodableResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "undecodable answer to {}: {}", self.name, self.error)
    }
}

impl std::error::Error for UndecodableResponse {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.error)
    }
}

/// Why [`CallTyped::submit_typed`](super::CallTyped::submit_typed) sent
/// nothing.
#[non_exhaustive]
#[derive(Debug, Clone)]
pub enum TypedSubmitError {
    /// The request cannot be sent as given.
    Invalid(InvalidTyped),
    /// The connection takes no new requests.
    Connection(ConnectionError),
}

operation_error!(TypedSubmitError { Invalid(InvalidTyped), Connection(ConnectionError) });

/// Why [`TypedPending::wait`](crate::rpc::TypedPending::wait) returned no answer.
#[non_exhaustive]
#[derive(Debug, Clone)]
pub enum TypedRequestError {
    /// The peer answered ok = 0.
    Failed(Failure),
    /// The peer answered ok, with flags and a payload that are not a
    /// response of the request's type.
    Undecodable(UndecodableResponse),
    /// The connection ended before an answer came.
    Connection(ConnectionError),
}

operation_error!(TypedRequestError { Failed(Failure), Undecodable(UndecodableResponse), Connection(ConnectionError) });

/// Why [`CallTyped::call_typed`](super::CallTyped::call_typed) returned no
/// answer.
#[non_exhaustive]
#[derive(Debug, Clone)]
pub enum TypedCallError {
    /// The request cannot be sent as given; nothing was sent.
    Invalid(InvalidTyped),
    /// The peer answered ok = 0.
    Failed(Failure),
    /// The peer answered ok, with flags and a payload that are not a
    /// response of the request's type.
    Undecodable(UndecodableResponse),
    /// The connection takes no new requests, or ended before an answer came.
    Connection(ConnectionError),
}

operation_error!(TypedCallError {
    Invalid(InvalidTyped),
    Failed(Failure),
    Undecodable(UndecodableResponse),
    Connection(ConnectionError)
});

/// Why [`CallTyped::call_typed_timeout`](super::CallTyped::call_typed_timeout)
/// returned no answer.
#[non_exhaustive]
#[derive(Debug, Clone)]
pub enum TypedCallTimeoutError {
    /// No answer in time; the request was given up.
    Timeout,
    /// The request cannot be sent as given; nothing was sent.
    Invalid(InvalidTyped),
    /// The peer answered ok = 0.
    Failed(Failure),
    /// The peer answered ok, with flags and a payload that are not a
    /// response of the request's type.
    Undecodable(UndecodableResponse),
    /// The connection takes no new requests, or ended before an answer came.
    Connection(ConnectionError),
}

operation_error!(TypedCallTimeoutError {
    Invalid(InvalidTyped),
    Failed(Failure),
    Undecodable(UndecodableResponse),
    Connection(ConnectionError);
    Timeout => "timed out"
});

// The conversions between the operations' errors: a call is a submit and a
// wait, and any of them can be passed up as a timed call's.

impl From<TypedSubmitError> for TypedCallError {
    fn from(error: TypedSubmitError) -> Self {
        match error {
            TypedSubmitError::Invalid(error) => TypedCallError::Invalid(error),
            TypedSubmitError::Connection(error) => TypedCallError::Connection(error),
        }
    }
}

impl From<TypedRequestError> for TypedCallError {
    fn from(error: TypedRequestError) -> Self {
        match error {
            TypedRequestError::Failed(failure) => TypedCallError::Failed(failure),
            TypedRequestError::Undecodable(error) => TypedCallError::Undecodable(error),
            TypedRequestError::Connection(error) => TypedCallError::Connection(error),
        }
    }
}

impl From<TypedCallError> for TypedCallTimeoutError {
    fn from(error: TypedCallError) -> Self {
        match error {
            TypedCallError::Invalid(error) => TypedCallTimeoutError::Invalid(error),
            TypedCallError::Failed(failure) => TypedCallTimeoutError::Failed(failure),
            TypedCallError::Undecodable(error) => TypedCallTimeoutError::Undecodable(error),
            TypedCallError::Connection(error) => TypedCallTimeoutError::Connection(error),
        }
    }
}

/// The peer's failure, for the errors that can carry one.
macro_rules! failure_getter {
    ($($name:ident),*) => {$(
        impl $name {
            /// The peer's failure, for a failed answer.
            pub fn failure(&self) -> Option<&Failure> {
                match self {
                    $name::Failed(failure) => Some(failure),
                    _ => None,
                }
            }
        }
    )*};
}

failure_getter!(TypedRequestError, TypedCallError, TypedCallTimeoutError);
