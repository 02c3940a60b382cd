//! The errors of the clients ([`Reconnecting`](super::Reconnecting),
//! [`Supervised`](super::Supervised)), one per operation: what a
//! connection's own operation can say, and [`OpenError`] when there was no
//! connection to send on.

use std::fmt;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use super::crash::CrashLoop;
use crate::conn::answer::Failure;
use crate::conn::error::{CallError, CallTimeoutError, ConnectionError, InvalidRequest, RequestError, SubmitError};

/// Why a client had no connection to send a request on.
#[non_exhaustive]
#[derive(Debug, Clone)]
pub enum OpenError {
    /// Opening failed: the connect was refused or timed out, the program
    /// could not start...
    Failed {
        /// What was opened (an address, a program).
        opener: String,
        /// Why.
        error: Arc<io::Error>,
    },
    /// The peer ended during the start-up check (a child that exits at
    /// once: the error carries its status and last stderr lines).
    Startup {
        /// What was opened.
        opener: String,
        /// How the connection ended.
        error: ConnectionError,
    },
    /// The peer did not answer the start-up check in time.
    NoAnswer {
        /// What was opened.
        opener: String,
        /// How long the check waited.
        waited: Duration,
    },
    /// A supervised child exited too often too quickly: it is not started
    /// again until [`Supervised::reset`](super::Supervised::reset).
    CrashLoop(Arc<CrashLoop>),
    /// The client was closed.
    Closed,
}

impl fmt::Display for OpenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OpenError::Failed { opener, error } => write!(f, "cannot open {opener}: {error}"),
            OpenError::Startup { opener, error } => write!(f, "{opener} ended at start-up: {error}"),
            OpenError::NoAnswer { opener, waited } => {
                write!(f, "{opener} did not answer at start-up within {:.1} s", waited.as_secs_f64())
            }
            OpenError::CrashLoop(crash) => fmt::Display::fmt(crash, f),
            OpenError::Closed => f.write_str("the client is closed"),
        }
    }
}

impl std::error::Error for OpenError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            OpenError::Failed { error, .. } => Some(&**error),
            OpenError::Startup { error, .. } => Some(error),
            _ => None,
        }
    }
}

/// Why a client's [`submit`](super::Reconnecting::submit) sent nothing.
#[non_exhaustive]
#[derive(Debug, Clone)]
pub enum ClientSubmitError {
    /// The request cannot be sent as given.
    Invalid(InvalidRequest),
    /// The connection ended just as the request was submitted (nothing was
    /// sent; the next request opens a new one).
    Connection(ConnectionError),
    /// There was no connection, and none could be opened.
    Open(OpenError),
}

/// Why a client's [`call`](super::Reconnecting::call) got no ok answer.
#[non_exhaustive]
#[derive(Debug, Clone)]
pub enum ClientCallError {
    /// The peer answered ok = 0.
    Failed(Failure),
    /// The request cannot be sent as given.
    Invalid(InvalidRequest),
    /// The connection ended before the answer came (the request was in
    /// flight), or as it was submitted.
    Connection(ConnectionError),
    /// There was no connection, and none could be opened.
    Open(OpenError),
}

/// Why a client's [`call_timeout`](super::Reconnecting::call_timeout) got
/// no ok answer.
#[non_exhaustive]
#[derive(Debug, Clone)]
pub enum ClientCallTimeoutError {
    /// No answer in time (waiting for the backoff, the open, room to send
    /// or the answer); the request, if sent, was given up.
    Timeout,
    /// The peer answered ok = 0.
    Failed(Failure),
    /// The request cannot be sent as given.
    Invalid(InvalidRequest),
    /// The connection ended before the answer came, or as it was submitted.
    Connection(ConnectionError),
    /// There was no connection, and none could be opened.
    Open(OpenError),
}

macro_rules! client_error {
    ($name:ident { $($variant:ident),* } $(, $unit:ident => $text:literal)?) => {
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                match self {
                    $($name::$variant(inner) => client_error!(@show f, $variant, inner),)*
                    $($name::$unit => f.write_str($text),)?
                }
            }
        }

        impl std::error::Error for $name {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                match self {
                    $($name::$variant(inner) => client_error!(@source $variant, inner),)*
                    #[allow(unreachable_patterns)]
                    _ => None,
                }
            }
        }

        impl From<OpenError> for $name {
            fn from(error: OpenError) -> Self {
                $name::Open(error)
            }
        }
    };
    (@show $f:ident, Failed, $inner:ident) => { $inner.describe($f) };
    (@show $f:ident, $variant:ident, $inner:ident) => { fmt::Display::fmt($inner, $f) };
    (@source Failed, $inner:ident) => {{
        let _ = $inner;
        None
    }};
    (@source $variant:ident, $inner:ident) => { Some($inner) };
}

client_error!(ClientSubmitError { Invalid, Connection, Open });
client_error!(ClientCallError { Failed, Invalid, Connection, Open });
client_error!(ClientCallTimeoutError { Failed, Invalid, Connection, Open }, Timeout => "timed out");

impl From<SubmitError> for ClientSubmitError {
    fn from(error: SubmitError) -> Self {
        match error {
            SubmitError::Invalid(error) => ClientSubmitError::Invalid(error),
            SubmitError::Connection(error) => ClientSubmitError::Connection(error),
        }
    }
}

impl From<ClientSubmitError> for ClientCallError {
    fn from(error: ClientSubmitError) -> Self {
        match error {
            ClientSubmitError::Invalid(error) => ClientCallError::Invalid(error),
            ClientSubmitError::Connection(error) => ClientCallError::Connection(error),
            ClientSubmitError::Open(error) => ClientCallError::Open(error),
        }
    }
}

impl From<RequestError> for ClientCallError {
    fn from(error: RequestError) -> Self {
        match error {
            RequestError::Failed(failure) => ClientCallError::Failed(failure),
            RequestError::Connection(error) => ClientCallError::Connection(error),
        }
    }
}

impl From<CallError> for ClientCallError {
    fn from(error: CallError) -> Self {
        match error {
            CallError::Failed(failure) => ClientCallError::Failed(failure),
            CallError::Invalid(error) => ClientCallError::Invalid(error),
            CallError::Connection(error) => ClientCallError::Connection(error),
        }
    }
}

impl From<CallTimeoutError> for ClientCallTimeoutError {
    fn from(error: CallTimeoutError) -> Self {
        match error {
            CallTimeoutError::Timeout => ClientCallTimeoutError::Timeout,
            CallTimeoutError::Failed(failure) => ClientCallTimeoutError::Failed(failure),
            CallTimeoutError::Invalid(error) => ClientCallTimeoutError::Invalid(error),
            CallTimeoutError::Connection(error) => ClientCallTimeoutError::Connection(error),
        }
    }
}

impl ClientCallError {
    /// The peer's failure, for [`ClientCallError::Failed`].
    pub fn failure(&self) -> Option<&Failure> {
        match self {
            ClientCallError::Failed(failure) => Some(failure),
            _ => None,
        }
    }
}

impl ClientCallTimeoutError {
    /// The peer's failure, for [`ClientCallTimeoutError::Failed`].
    pub fn failure(&self) -> Option<&Failure> {
        match self {
            ClientCallTimeoutError::Failed(failure) => Some(failure),
            _ => None,
        }
    }
}
