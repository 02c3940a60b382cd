//! The two outcomes of a request the peer answered: ok with flags and a
//! payload ([`Response`]), or failed ([`Failure`]).

use std::borrow::Cow;
use std::fmt;

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

/// A response with ok = 0: the peer could not fulfil the request.
///
/// `cs.packetstream` peers send flags 0 and a short UTF-8 text; a Rust
/// handler may choose both (see [`Failure::with_flags`]).
///
/// `Failure` deliberately has no `Display` of its own: that is what lets a
/// handler return either a `Failure` or any `Display` error (see
/// [`IntoFailure`](crate::IntoFailure)). Use [`Failure::text`] to show it.
#[derive(Clone, PartialEq, Eq)]
pub struct Failure {
    /// The application flags of the failed response.
    pub flags: u64,
    /// The payload of the failed response, usually a UTF-8 message.
    pub payload: Vec<u8>,
}

impl Failure {
    /// A failure with flags 0 and `text` as its payload, as cs.packetstream sends.
    pub fn new(text: impl Into<String>) -> Self {
        Failure { flags: 0, payload: text.into().into_bytes() }
    }

    /// A failure with chosen flags and payload.
    pub fn with_flags(flags: u64, payload: impl Into<Vec<u8>>) -> Self {
        Failure { flags, payload: payload.into() }
    }

    /// The payload read as UTF-8, with any invalid bytes replaced.
    pub fn text(&self) -> Cow<'_, str> {
        String::from_utf8_lossy(&self.payload)
    }

    /// `request failed: TEXT (flags F)`, for the errors that carry one.
    pub(crate) fn describe(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "request failed: {}", self.text())?;
        if self.flags != 0 {
            write!(f, " (flags {})", self.flags)?;
        }
        Ok(())
    }
}

impl fmt::Debug for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Failure").field("flags", &self.flags).field("text", &self.text()).finish()
    }
}

impl From<String> for Failure {
    fn from(text: String) -> Self {
        Failure::new(text)
    }
}

impl From<&str> for Failure {
    fn from(text: &str) -> Self {
        Failure::new(text)
    }
}

/// A handler's outcome as the ok bit, flags and payload of its answer, on
/// the wire or as a stream's final reply. Flags too large for a response
/// fail the request instead, saying why.
pub(crate) fn answer_parts(outcome: Result<Response, Failure>) -> (bool, u64, Vec<u8>) {
    let (ok, flags, payload) = match outcome {
        Ok(response) => (true, response.flags, response.payload),
        Err(failure) => (false, failure.flags, failure.payload),
    };
    match crate::wire::check_response_flags(flags) {
        Ok(()) => (ok, flags, payload),
        Err(error) => (false, 0, format!("handler's answer does not fit: {error}").into_bytes()),
    }
}
