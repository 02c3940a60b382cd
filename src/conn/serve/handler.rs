//! Serving the peer's requests: what a handler receives and may return.

use std::panic::{self, AssertUnwindSafe};
use std::sync::Arc;

use super::context::Context;
use super::notes::Notes;
use crate::conn::answer::{Failure, Response};
use crate::threads::panic_message;
use crate::wire::Packet;

/// A request from the peer, as a handler receives it.
///
/// Beyond its fields, its [`context`](Self::context) says whether the caller
/// gave it up, what time budget it gave, and holds a streaming request's
/// ends.
#[derive(Debug, Clone)]
pub struct Request {
    /// The channel it came on: 0 unless extra channels are served, and
    /// [`stream::UP`](crate::stream::message::UP) for a streaming request.
    pub channel: u64,
    /// The peer's tag for it.
    pub tag: u64,
    /// The application's request type.
    pub rq_type: u64,
    /// The request's flags.
    pub flags: u64,
    /// The request's payload.
    pub payload: Vec<u8>,
    context: Context,
}

impl Request {
    /// A request that did not come from a connection, for testing a
    /// handler: never cancelled, with no budget and no peer to call back.
    pub fn new(channel: u64, tag: u64, rq_type: u64, flags: u64, payload: impl Into<Vec<u8>>) -> Self {
        let context = Context::detached((channel, tag));
        Request { channel, tag, rq_type, flags, payload: payload.into(), context }
    }

    pub(crate) fn from_parts(
        channel: u64,
        tag: u64,
        rq_type: u64,
        flags: u64,
        payload: Vec<u8>,
        context: Context,
    ) -> Self {
        Request { channel, tag, rq_type, flags, payload, context }
    }

    pub(crate) fn with_context(packet: Packet, context: Context) -> Self {
        Request {
            channel: packet.channel,
            tag: packet.tag,
            rq_type: packet.rq_type().unwrap_or_default(),
            flags: packet.wire_flags,
            payload: packet.payload,
            context,
        }
    }

    /// What the handler can learn and do beyond the request's bytes.
    pub fn context(&self) -> &Context {
        &self.context
    }

    /// Whether this is a streaming request (its ends are in its
    /// [`context`](Self::context)).
    pub fn is_stream(&self) -> bool {
        self.context.is_stream()
    }
}

impl PartialEq for Request {
    /// Requests are equal when their fields are; the context is not
    /// compared.
    fn eq(&self, other: &Self) -> bool {
        (self.channel, self.tag, self.rq_type, self.flags, &self.payload)
            == (other.channel, other.tag, other.rq_type, other.flags, &other.payload)
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

/// The request a handler receives, from its packet.
pub(crate) fn request(packet: Packet, notes: &Arc<Notes>) -> Request {
    let context = Context::plain((packet.channel, packet.tag), notes);
    Request::with_context(packet, context)
}

/// Runs `handler` on one request and makes the response: a panic fails only
/// this request, and an answer whose flags do not fit fails it with a text
/// that says so.
pub(crate) fn answer(handler: &dyn Handler, packet: Packet, notes: &Arc<Notes>, name: &str) -> Packet {
    let (channel, tag) = (packet.channel, packet.tag);
    let outcome = run(handler, request(packet, notes), name);
    response_packet(channel, tag, outcome)
}

/// Runs `handler` on `request`: a panic fails only this request.
pub(crate) fn run(handler: &dyn Handler, request: Request, name: &str) -> Result<Response, Failure> {
    let (channel, tag) = (request.channel, request.tag);
    match panic::catch_unwind(AssertUnwindSafe(|| handler.handle(request))) {
        Ok(outcome) => outcome,
        Err(payload) => {
            let message = panic_message(&*payload);
            log::warn!("{name}: handler panicked on channel {channel} tag {tag}: {message}");
            Err(Failure::new(format!("handler panicked: {message}")))
        }
    }
}

/// The response packet of an answer; one whose flags do not fit fails the
/// request with a text that says so.
pub(crate) fn response_packet(channel: u64, tag: u64, outcome: Result<Response, Failure>) -> Packet {
    let (ok, flags, payload) = crate::conn::answer::answer_parts(outcome);
    Packet::response_unchecked(channel, tag, ok, flags, payload)
}
