//! Serving the peer's requests: what a handler receives and may return.

use crate::error::Failure;

/// A request from the peer, as a handler receives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The channel it came on (0 unless extra channels are served).
    pub channel: u64,
    /// The peer's tag for it.
    pub tag: u64,
    /// The application's request type.
    pub rq_type: u64,
    /// The request's flags.
    pub flags: u64,
    /// The request's payload.
    pub payload: Vec<u8>,
}

/// A successful answer: flags and payload. Callers receive it from
/// [`Pending::wait`](crate::Pending::wait); handlers return anything that
/// converts into it, as cs.packetstream handlers do:
///
/// | handler returns | flags | payload |
/// |---|---|---|
/// | `()` | 0 | empty |
/// | `u64` | that | empty |
/// | `Vec<u8>`, `&[u8]` | 0 | those bytes |
/// | `String`, `&str` | 0 | its UTF-8 bytes |
/// | `(u64, Vec<u8>)` | the pair | |
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Response {
    /// The application flags.
    pub flags: u64,
    /// The payload.
    pub payload: Vec<u8>,
}

impl From<()> for Response {
    fn from(_: ()) -> Self {
        Response::default()
    }
}

impl From<u64> for Response {
    fn from(flags: u64) -> Self {
        Response { flags, payload: Vec::new() }
    }
}

impl From<Vec<u8>> for Response {
    fn from(payload: Vec<u8>) -> Self {
        Response { flags: 0, payload }
    }
}

impl From<&[u8]> for Response {
    fn from(payload: &[u8]) -> Self {
        Response { flags: 0, payload: payload.to_vec() }
    }
}

impl From<String> for Response {
    fn from(text: String) -> Self {
        Response { flags: 0, payload: text.into_bytes() }
    }
}

impl From<&str> for Response {
    fn from(text: &str) -> Self {
        Response { flags: 0, payload: text.as_bytes().to_vec() }
    }
}

impl From<(u64, Vec<u8>)> for Response {
    fn from((flags, payload): (u64, Vec<u8>)) -> Self {
        Response { flags, payload }
    }
}

/// What a handler's return value means: an answer, or a failure.
///
/// Implemented for everything that converts into [`Response`] (always a
/// success) and for `Result<R, E>` where `R` converts into [`Response`] and
/// `E` is a [`Failure`] or anything `Display` (any error, `String`, `&str`):
/// an `Err` becomes an ok = 0 response carrying the error's text.
pub trait IntoOutcome {
    /// Converts into the response to send.
    fn into_outcome(self) -> Result<Response, Failure>;
}

impl<R: Into<Response>> IntoOutcome for R {
    fn into_outcome(self) -> Result<Response, Failure> {
        Ok(self.into())
    }
}

impl<R: Into<Response>, E: IntoFailure> IntoOutcome for Result<R, E> {
    fn into_outcome(self) -> Result<Response, Failure> {
        self.map(Into::into).map_err(IntoFailure::into_failure)
    }
}

/// What a handler's error means on the wire: a [`Failure`] as it is, anything
/// else that is `Display` as a failure with flags 0 and its text (what
/// cs.packetstream sends).
///
/// `Failure` deliberately has no `Display` impl of its own; that is what lets
/// these two impls stand side by side.
pub trait IntoFailure {
    /// Converts into the failure to send.
    fn into_failure(self) -> Failure;
}

impl IntoFailure for Failure {
    fn into_failure(self) -> Failure {
        self
    }
}

impl<E: std::fmt::Display> IntoFailure for E {
    fn into_failure(self) -> Failure {
        Failure::new(self.to_string())
    }
}

/// Serves the peer's requests. Closures `Fn(Request) -> O` implement it for
/// any `O: IntoOutcome`:
///
/// ```
/// use packetstream::{Failure, Request};
/// let echo = |rq: Request| rq.payload;
/// let picky = |rq: Request| -> Result<String, Failure> {
///     match rq.rq_type {
///         0 => Ok("zero".to_owned()),
///         other => Err(Failure::new(format!("no such request type {other}"))),
///     }
/// };
/// # fn takes(_: impl packetstream::Handler) {}
/// # takes(echo); takes(picky);
/// ```
///
/// Handlers run on the connection's worker threads, several at once. While
/// the workers are idle, a request is run by the thread that read it, which
/// saves a thread wake-up per request; an idle worker watches, and takes
/// over reading if the handler has not returned within a millisecond or so,
/// so a handler may block, or call back into the peer, wherever it runs. A
/// handler that panics fails only its own request.
pub trait Handler: Send + Sync + 'static {
    /// Answers one request.
    fn handle(&self, request: Request) -> Result<Response, Failure>;
}

impl<F, O> Handler for F
where
    F: Fn(Request) -> O + Send + Sync + 'static,
    O: IntoOutcome,
{
    fn handle(&self, request: Request) -> Result<Response, Failure> {
        self(request).into_outcome()
    }
}
