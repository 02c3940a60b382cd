//! The handle of a typed request in flight: a [`Pending`] and the request,
//! which decodes the answer when it comes.

use std::fmt;
use std::time::{Duration, Instant};

use super::error::{TypedRequestError, UndecodableResponse};
use super::request::TypedRequest;
use crate::conn::answer::{Failure, Response};
use crate::conn::error::{ConnectionError, RequestError};
use crate::conn::pending::{Pending, WaitTimeoutError};

/// A typed request in flight. Wait on it for the decoded answer; dropping
/// it gives the request up, as dropping a [`Pending`] does.
#[must_use = "dropping a TypedPending cancels its request"]
pub struct TypedPending<R: TypedRequest> {
    pending: Pending,
    request: R,
}

impl<R: TypedRequest> TypedPending<R> {
    pub(crate) fn new(pending: Pending, request: R) -> Self {
        TypedPending { pending, request }
    }

    /// The request, which decodes the answer.
    pub fn request(&self) -> &R {
        &self.request
    }

    /// The request's channel.
    pub fn channel(&self) -> u64 {
        self.pending.channel()
    }

    /// The request's tag.
    pub fn tag(&self) -> u64 {
        self.pending.tag()
    }

    /// Blocks until the answer arrives or the connection ends.
    ///
    /// # Errors
    /// [`TypedRequestError::Failed`] for an ok = 0 answer,
    /// [`TypedRequestError::Undecodable`] for an ok one that does not decode,
    /// [`TypedRequestError::Connection`] when the connection ended first.
    pub fn wait(self) -> Result<R::Response, TypedRequestError> {
        let answer = self.pending.wait();
        decode(&self.request, answer)
    }

    /// Waits at most `timeout`.
    ///
    /// # Errors
    /// [`TypedWaitTimeoutError::Timeout`] with this handle back if no answer
    /// came in time; otherwise as [`wait`](Self::wait).
    pub fn wait_timeout(self, timeout: Duration) -> Result<R::Response, TypedWaitTimeoutError<R>> {
        match Instant::now().checked_add(timeout) {
            Some(deadline) => self.wait_deadline(deadline),
            None => self.wait().map_err(TypedWaitTimeoutError::from),
        }
    }

    /// Waits until `deadline`.
    ///
    /// # Errors
    /// As [`wait_timeout`](Self::wait_timeout).
    pub fn wait_deadline(self, deadline: Instant) -> Result<R::Response, TypedWaitTimeoutError<R>> {
        let TypedPending { pending, request } = self;
        let answer = match pending.wait_deadline(deadline) {
            Ok(response) => Ok(response),
            Err(WaitTimeoutError::Timeout(pending)) => {
                return Err(TypedWaitTimeoutError::Timeout(TypedPending { pending, request }))
            }
            Err(WaitTimeoutError::Failed(failure)) => Err(RequestError::Failed(failure)),
            Err(WaitTimeoutError::Connection(error)) => Err(RequestError::Connection(error)),
        };
        decode(&request, answer).map_err(TypedWaitTimeoutError::from)
    }

    /// Gives the request up (as dropping the handle does) and returns it.
    pub fn cancel(self) -> R {
        self.request
    }
}

/// The typed outcome of a raw one.
pub(crate) fn decode<R: TypedRequest>(
    request: &R,
    answer: Result<Response, RequestError>,
) -> Result<R::Response, TypedRequestError> {
    match answer {
        Ok(response) => decode_ok(request, response).map_err(TypedRequestError::Undecodable),
        Err(RequestError::Failed(failure)) => Err(TypedRequestError::Failed(failure)),
        Err(RequestError::Connection(error)) => Err(TypedRequestError::Connection(error)),
    }
}

/// Decodes an ok answer, keeping it when it does not decode.
pub(crate) fn decode_ok<R: TypedRequest>(request: &R, response: Response) -> Result<R::Response, UndecodableResponse> {
    request
        .decode_response(response.flags, &response.payload)
        .map_err(|error| UndecodableResponse::new(R::NAME, response, error))
}

impl<R: TypedRequest> fmt::Debug for TypedPending<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TypedPending").field("name", &R::NAME).field("pending", &self.pending).finish()
    }
}

/// Why [`TypedPending::wait_timeout`] or
/// [`TypedPending::wait_deadline`] returned no answer.
#[non_exhaustive]
pub enum TypedWaitTimeoutError<R: TypedRequest> {
    /// No answer yet; the request is still in flight, and here it is back.
    Timeout(TypedPending<R>),
    /// The peer answered ok = 0.
    Failed(Failure),
    /// The peer answered ok, with flags and a payload that are not a
    /// response of the request's type.
    Undecodable(UndecodableResponse),
    /// The connection ended before an answer came.
    Connection(ConnectionError),
}

impl<R: TypedRequest> TypedWaitTimeoutError<R> {
    /// The handle back, when the answer had not come.
    pub fn into_pending(self) -> Option<TypedPending<R>> {
        match self {
            TypedWaitTimeoutError::Timeout(pending) => Some(pending),
            _ => None,
        }
    }
}

impl<R: TypedRequest> From<TypedRequestError> for TypedWaitTimeoutError<R> {
    fn from(error: TypedRequestError) -> Self {
        match error {
            TypedRequestError::Failed(failure) => TypedWaitTimeoutError::Failed(failure),
            TypedRequestError::Undecodable(error) => TypedWaitTimeoutError::Undecodable(error),
            TypedRequestError::Connection(error) => TypedWaitTimeoutError::Connection(error),
        }
    }
}

impl<R: TypedRequest> fmt::Debug for TypedWaitTimeoutError<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TypedWaitTimeoutError::Timeout(pending) => f.debug_tuple("Timeout").field(pending).finish(),
            TypedWaitTimeoutError::Failed(failure) => f.debug_tuple("Failed").field(failure).finish(),
            TypedWaitTimeoutError::Undecodable(error) => f.debug_tuple("Undecodable").field(error).finish(),
            TypedWaitTimeoutError::Connection(error) => f.debug_tuple("Connection").field(error).finish(),
        }
    }
}

impl<R: TypedRequest> fmt::Display for TypedWaitTimeoutError<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TypedWaitTimeoutError::Timeout(_) => f.write_str("timed out waiting for the answer"),
            TypedWaitTimeoutError::Failed(failure) => failure.describe(f),
            TypedWaitTimeoutError::Undecodable(error) => fmt::Display::fmt(error, f),
            TypedWaitTimeoutError::Connection(error) => fmt::Display::fmt(error, f),
        }
    }
}

impl<R: TypedRequest> std::error::Error for TypedWaitTimeoutError<R> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            TypedWaitTimeoutError::Undecodable(error) => Some(error),
            TypedWaitTimeoutError::Connection(error) => Some(error),
            _ => None,
        }
    }
}

impl<R: TypedRequest> TypedWaitTimeoutError<R> {
    /// The peer's failure, for a failed answer.
    pub fn failure(&self) -> Option<&Failure> {
        match self {
            TypedWaitTimeoutError::Failed(failure) => Some(failure),
            _ => None,
        }
    }
}
