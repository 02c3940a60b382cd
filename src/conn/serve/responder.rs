//! Pulled requests: instead of a handler, the connection hands the peer's
//! requests to a channel, each with a [`Responder`] that answers it once.
//! A program's own loop can then `select!` over requests and its other
//! channels (lsp-server's model). A responder dropped unanswered sends a
//! failure: the peer never waits for an answer that will not come.

use std::fmt;
use std::sync::Arc;

use super::handler::{IntoFailure, IntoOutcome, Request};
use crate::conn::answer::{Failure, Response};
use crate::conn::calls::Key;
use crate::conn::streams::served::ServedStream;
use crate::wire::Packet;

/// The text a request gets when its [`Responder`] is dropped unanswered.
pub const DROPPED_UNANSWERED: &str = "request dropped unanswered";

/// A request from the peer, pulled from the channel of
/// [`PacketConnection::with_incoming`](crate::PacketConnection::with_incoming).
pub struct Incoming {
    /// The request.
    pub request: Request,
    /// Answers it, once.
    pub responder: Responder,
}

impl Incoming {
    /// Answers with what a handler would return (see [`IntoOutcome`]).
    pub fn respond(self, outcome: impl IntoOutcome) {
        self.responder.respond(outcome);
    }
}

impl fmt::Debug for Incoming {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Incoming").field("request", &self.request).finish_non_exhaustive()
    }
}

/// Where a responder's answer goes: the serving side of the connection,
/// which holds the channel of pulled requests and so cannot be named here.
pub(crate) trait Answering: Send + Sync {
    /// Sends the answer to request `key`.
    fn answer(&self, key: Key, outcome: Result<Response, Failure>);
    /// Ends the stream of request `tag` with its final reply.
    fn finish_stream(&self, tag: u64, stream: &ServedStream, outcome: Result<Response, Failure>);
}

/// Answers one request of the peer. Dropping it unanswered fails the
/// request with [`DROPPED_UNANSWERED`].
#[must_use = "dropping a Responder fails its request"]
pub struct Responder {
    key: Key,
    serving: Arc<dyn Answering>,
    answered: bool,
    /// For a streaming request, its stream: the answer is its final reply.
    stream: Option<Arc<ServedStream>>,
}

impl Responder {
    pub(crate) fn new(key: Key, serving: Arc<dyn Answering>) -> Self {
        Responder { key, serving, answered: false, stream: None }
    }

    pub(crate) fn for_stream(key: Key, serving: Arc<dyn Answering>, stream: Arc<ServedStream>) -> Self {
        Responder { key, serving, answered: false, stream: Some(stream) }
    }

    /// The request's channel.
    pub fn channel(&self) -> u64 {
        self.key.0
    }

    /// The peer's tag of the request.
    pub fn tag(&self) -> u64 {
        self.key.1
    }

    /// Answers with what a handler would return: `()`, flags, bytes, a
    /// string, `(flags, bytes)`, or an `Err` (see [`IntoOutcome`]).
    pub fn respond(mut self, outcome: impl IntoOutcome) {
        self.answer(outcome.into_outcome().map_err(IntoFailure::into_failure));
    }

    /// Fails the request with `failure` (a [`Failure`](crate::Failure), or
    /// anything `Display`).
    pub fn fail(mut self, failure: impl IntoFailure) {
        self.answer(Err(failure.into_failure()));
    }

    /// Lets go without answering: the caller answers for it (the reader,
    /// which must not block on the send path).
    pub(crate) fn withdraw(mut self) {
        self.answered = true;
    }

    fn answer(&mut self, outcome: Result<Response, Failure>) {
        self.answered = true;
        match self.stream.take() {
            Some(stream) => self.serving.finish_stream(self.key.1, &stream, outcome),
            None => self.serving.answer(self.key, outcome),
        }
    }
}

impl Drop for Responder {
    fn drop(&mut self) {
        if !self.answered {
            self.answer(Err(Failure::new(DROPPED_UNANSWERED)));
        }
    }
}

impl fmt::Debug for Responder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Responder").field("channel", &self.key.0).field("tag", &self.key.1).finish()
    }
}

/// A response packet for a refused pulled request (the channel is gone).
pub(crate) fn refused(key: Key) -> Packet {
    Packet::response_unchecked(key.0, key.1, false, 0, b"requests are no longer taken".to_vec())
}
