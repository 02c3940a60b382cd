//! One error for everything, so that `?` works across operations: each
//! operation's own error converts into [`Error`].
//!
//! The operations return errors of their own ([`SubmitError`],
//! [`RequestError`], [`CallError`], [`CloseError`], ...) whose variants are
//! only what can happen there; match on those. This type is for code that
//! just passes errors up.

use std::fmt;
use std::io;

use crate::conn::answer::Failure;
use crate::conn::close::CloseError;
use crate::conn::error::{
    CallError, CallTimeoutError, ConnectionError, InvalidRequest, JoinTimeoutError, RequestError, SubmitError,
    SubmitTimeoutError,
};
use crate::conn::pending::{TryWaitError, WaitTimeoutError};
#[cfg(unix)]
use crate::net::{ClientCallError, ClientCallTimeoutError, ClientSubmitError, OpenError};
use crate::rpc::{
    HandshakeError, HandshakeFailed, InvalidTyped, RegistryError, TypedCallError, TypedCallTimeoutError, TypedRequest,
    TypedRequestError, TypedSubmitError, TypedWaitTimeoutError, UndecodableResponse,
};

/// Any error of the crate.
#[non_exhaustive]
#[derive(Debug)]
pub enum Error {
    /// The peer answered ok = 0.
    Failed(Failure),
    /// The request could not be sent as given.
    Invalid(InvalidRequest),
    /// The connection no longer carries requests.
    Connection(ConnectionError),
    /// A timed operation ran out of time.
    Timeout,
    /// The answer had not arrived (from [`Pending::try_wait`](crate::Pending::try_wait)).
    NotReady,
    /// Close did not go cleanly.
    Close(CloseError),
    /// Starting a connection or a transport failed.
    Io(io::Error),
    /// A typed request could not be sent as given.
    InvalidTyped(InvalidTyped),
    /// A typed request's ok answer did not decode.
    Undecodable(UndecodableResponse),
    /// The request registry handshake gave no numbering.
    Handshake(HandshakeError),
    /// A request type could not be registered.
    Registry(RegistryError),
    /// A client had no connection, and could open none.
    #[cfg(unix)]
    Open(OpenError),
}

impl Error {
    /// The peer's failure, for [`Error::Failed`].
    pub fn failure(&self) -> Option<&Failure> {
        match self {
            Error::Failed(failure) => Some(failure),
            _ => None,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Failed(failure) => failure.describe(f),
            Error::Invalid(error) => fmt::Display::fmt(error, f),
            Error::Connection(error) => fmt::Display::fmt(error, f),
            Error::Timeout => f.write_str("timed out"),
            Error::NotReady => f.write_str("the answer has not arrived"),
            Error::Close(error) => fmt::Display::fmt(error, f),
            Error::Io(error) => fmt::Display::fmt(error, f),
            Error::InvalidTyped(error) => fmt::Display::fmt(error, f),
            Error::Undecodable(error) => fmt::Display::fmt(error, f),
            Error::Handshake(error) => fmt::Display::fmt(error, f),
            Error::Registry(error) => fmt::Display::fmt(error, f),
            #[cfg(unix)]
            Error::Open(error) => fmt::Display::fmt(error, f),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Invalid(error) => Some(error),
            Error::Connection(error) => Some(error),
            Error::Close(error) => Some(error),
            Error::Io(error) => Some(error),
            Error::InvalidTyped(error) => Some(error),
            Error::Undecodable(error) => Some(error),
            Error::Handshake(error) => Some(error),
            Error::Registry(error) => Some(error),
            #[cfg(unix)]
            Error::Open(error) => Some(error),
            _ => None,
        }
    }
}

impl From<io::Error> for Error {
    fn from(error: io::Error) -> Self {
        Error::Io(error)
    }
}

impl From<ConnectionError> for Error {
    fn from(error: ConnectionError) -> Self {
        Error::Connection(error)
    }
}

impl From<InvalidRequest> for Error {
    fn from(error: InvalidRequest) -> Self {
        Error::Invalid(error)
    }
}

impl From<CloseError> for Error {
    fn from(error: CloseError) -> Self {
        Error::Close(error)
    }
}

impl From<SubmitError> for Error {
    fn from(error: SubmitError) -> Self {
        match error {
            SubmitError::Invalid(error) => Error::Invalid(error),
            SubmitError::Connection(error) => Error::Connection(error),
        }
    }
}

impl From<SubmitTimeoutError> for Error {
    fn from(error: SubmitTimeoutError) -> Self {
        match error {
            SubmitTimeoutError::Timeout(_) => Error::Timeout,
            SubmitTimeoutError::Invalid(error) => Error::Invalid(error),
            SubmitTimeoutError::Connection(error) => Error::Connection(error),
        }
    }
}

impl From<RequestError> for Error {
    fn from(error: RequestError) -> Self {
        match error {
            RequestError::Failed(failure) => Error::Failed(failure),
            RequestError::Connection(error) => Error::Connection(error),
        }
    }
}

impl From<CallError> for Error {
    fn from(error: CallError) -> Self {
        match error {
            CallError::Failed(failure) => Error::Failed(failure),
            CallError::Invalid(error) => Error::Invalid(error),
            CallError::Connection(error) => Error::Connection(error),
        }
    }
}

impl From<CallTimeoutError> for Error {
    fn from(error: CallTimeoutError) -> Self {
        match error {
            CallTimeoutError::Timeout => Error::Timeout,
            CallTimeoutError::Failed(failure) => Error::Failed(failure),
            CallTimeoutError::Invalid(error) => Error::Invalid(error),
            CallTimeoutError::Connection(error) => Error::Connection(error),
        }
    }
}

impl From<WaitTimeoutError> for Error {
    /// A timeout gives the request up.
    fn from(error: WaitTimeoutError) -> Self {
        match error {
            WaitTimeoutError::Timeout(_) => Error::Timeout,
            WaitTimeoutError::Failed(failure) => Error::Failed(failure),
            WaitTimeoutError::Connection(error) => Error::Connection(error),
        }
    }
}

impl From<TryWaitError> for Error {
    /// An answer not yet there gives the request up.
    fn from(error: TryWaitError) -> Self {
        match error {
            TryWaitError::NotReady(_) => Error::NotReady,
            TryWaitError::Failed(failure) => Error::Failed(failure),
            TryWaitError::Connection(error) => Error::Connection(error),
        }
    }
}

impl From<JoinTimeoutError> for Error {
    fn from(error: JoinTimeoutError) -> Self {
        match error {
            JoinTimeoutError::Timeout => Error::Timeout,
            JoinTimeoutError::Connection(error) => Error::Connection(error),
        }
    }
}

impl From<InvalidTyped> for Error {
    fn from(error: InvalidTyped) -> Self {
        Error::InvalidTyped(error)
    }
}

impl From<UndecodableResponse> for Error {
    fn from(error: UndecodableResponse) -> Self {
        Error::Undecodable(error)
    }
}

impl From<HandshakeError> for Error {
    fn from(error: HandshakeError) -> Self {
        Error::Handshake(error)
    }
}

impl From<HandshakeFailed> for Error {
    /// The connection handed back is dropped, which closes it.
    fn from(failed: HandshakeFailed) -> Self {
        Error::Handshake(failed.into_parts().0)
    }
}

impl From<RegistryError> for Error {
    fn from(error: RegistryError) -> Self {
        Error::Registry(error)
    }
}

impl From<TypedSubmitError> for Error {
    fn from(error: TypedSubmitError) -> Self {
        match error {
            TypedSubmitError::Invalid(error) => Error::InvalidTyped(error),
            TypedSubmitError::Connection(error) => Error::Connection(error),
        }
    }
}

#[cfg(unix)]
impl From<OpenError> for Error {
    fn from(error: OpenError) -> Self {
        Error::Open(error)
    }
}

#[cfg(unix)]
impl From<ClientSubmitError> for Error {
    fn from(error: ClientSubmitError) -> Self {
        match error {
            ClientSubmitError::Invalid(error) => Error::Invalid(error),
            ClientSubmitError::Connection(error) => Error::Connection(error),
            ClientSubmitError::Open(error) => Error::Open(error),
        }
    }
}

impl From<TypedRequestError> for Error {
    fn from(error: TypedRequestError) -> Self {
        match error {
            TypedRequestError::Failed(failure) => Error::Failed(failure),
            TypedRequestError::Undecodable(error) => Error::Undecodable(error),
            TypedRequestError::Connection(error) => Error::Connection(error),
        }
    }
}

#[cfg(unix)]
impl From<ClientCallError> for Error {
    fn from(error: ClientCallError) -> Self {
        match error {
            ClientCallError::Failed(failure) => Error::Failed(failure),
            ClientCallError::Invalid(error) => Error::Invalid(error),
            ClientCallError::Connection(error) => Error::Connection(error),
            ClientCallError::Open(error) => Error::Open(error),
        }
    }
}

impl From<TypedCallError> for Error {
    fn from(error: TypedCallError) -> Self {
        match error {
            TypedCallError::Invalid(error) => Error::InvalidTyped(error),
            TypedCallError::Failed(failure) => Error::Failed(failure),
            TypedCallError::Undecodable(error) => Error::Undecodable(error),
            TypedCallError::Connection(error) => Error::Connection(error),
        }
    }
}

impl From<TypedCallTimeoutError> for Error {
    fn from(error: TypedCallTimeoutError) -> Self {
        match error {
            TypedCallTimeoutError::Timeout => Error::Timeout,
            TypedCallTimeoutError::Invalid(error) => Error::InvalidTyped(error),
            TypedCallTimeoutError::Failed(failure) => Error::Failed(failure),
            TypedCallTimeoutError::Undecodable(error) => Error::Undecodable(error),
            TypedCallTimeoutError::Connection(error) => Error::Connection(error),
        }
    }
}

impl<R: TypedRequest> From<TypedWaitTimeoutError<R>> for Error {
    /// A timeout gives the request up.
    fn from(error: TypedWaitTimeoutError<R>) -> Self {
        match error {
            TypedWaitTimeoutError::Timeout(_) => Error::Timeout,
            TypedWaitTimeoutError::Failed(failure) => Error::Failed(failure),
            TypedWaitTimeoutError::Undecodable(error) => Error::Undecodable(error),
            TypedWaitTimeoutError::Connection(error) => Error::Connection(error),
        }
    }
}

#[cfg(unix)]
impl From<ClientCallTimeoutError> for Error {
    fn from(error: ClientCallTimeoutError) -> Self {
        match error {
            ClientCallTimeoutError::Timeout => Error::Timeout,
            ClientCallTimeoutError::Failed(failure) => Error::Failed(failure),
            ClientCallTimeoutError::Invalid(error) => Error::Invalid(error),
            ClientCallTimeoutError::Connection(error) => Error::Connection(error),
            ClientCallTimeoutError::Open(error) => Error::Open(error),
        }
    }
}
