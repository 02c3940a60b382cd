//! Typed pulled requests: each request pulled from
//! [`PacketConnection::with_incoming`](crate::PacketConnection::with_incoming)'s
//! channel decoded into a message of the program's own, with a responder
//! that answers it in its type.

use std::fmt;
use std::marker::PhantomData;

use super::handshake::Handshake;
use super::request::TypedRequest;
use super::response::TypedResponse;
use super::table::{self, Table};
use crate::conn::serve::handler::IntoFailure;
use crate::conn::serve::responder::{Incoming, Responder};

/// What turns one request type, from its flags and payload, into a message.
type Route<M> = Box<dyn Fn(u64, &[u8], Responder) -> Result<M, Rejected> + Send + Sync>;

/// Decodes pulled requests into the program's own messages, `M`: usually
/// an enum with a variant per request type, each holding a [`Typed`]. A
/// program's loop then matches on its own enum, and can `select!` over the
/// requests and its other channels.
///
/// A request that cannot become a message (a type not listed, a payload
/// that does not decode) is failed at once, with the text a
/// [`Dispatcher`](super::Dispatcher) would send, and reported as
/// [`Rejected`].
///
/// ```
/// use packetstream::binary::{BSData, BSString};
/// use packetstream::rpc::{CallTyped, Router, Typed};
/// use packetstream::{Config, PacketConnection, Transport};
///
/// packetstream::typed_request! {
///     pub struct Put(0, "kv:put") -> bool { pub key: BSString, pub value: BSData }
///     pub struct Get(1, "kv:get") -> Vec<u8> { pub key: BSString }
/// }
///
/// /// What the loop gets.
/// enum Kv {
///     Put(Typed<Put>),
///     Get(Typed<Get>),
/// }
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let (a, b) = Transport::memory_pair();
/// let (server, incoming) = PacketConnection::with_incoming(b, Config::default())?;
/// let client = PacketConnection::new(a, Config::default())?;
/// let router = Router::new().on(Kv::Put).on(Kv::Get);
/// let caller = std::thread::spawn(move || {
///     let replaced = client.call_typed(&Put { key: "k".into(), value: b"v".to_vec() })?;
///     let value = client.call_typed(&Get { key: "k".into() })?;
///     // Closing waits for the server's end of the stream.
///     client.close()?;
///     Ok::<_, packetstream::Error>((replaced, value))
/// });
/// let mut store = std::collections::HashMap::new();
/// for _ in 0..2 {
///     match router.route(incoming.recv()?) {
///         Ok(Kv::Put(put)) => put.responder.ok(store.insert(put.request.key, put.request.value).is_some()),
///         Ok(Kv::Get(get)) => match store.get(&get.request.key) {
///             Some(value) => get.responder.ok(value.clone()),
///             None => get.responder.fail(format!("no such key: {}", get.request.key)),
///         },
///         Err(rejected) => eprintln!("{rejected}"),
///     }
/// }
/// # let closing = std::thread::spawn(move || server.close());
/// assert_eq!(caller.join().unwrap()?, (false, b"v".to_vec()));
/// # closing.join().unwrap()?;
/// # Ok(()) }
/// ```
pub struct Router<M> {
    table: Table<Route<M>>,
}

/// A decoded request, and what answers it.
pub struct Typed<R: TypedRequest> {
    /// The request.
    pub request: R,
    /// Answers it, once; dropped unanswered it fails the request.
    pub responder: TypedResponder<R>,
}

/// Answers one typed request, with its response type. Dropping it
/// unanswered fails the request with
/// [`DROPPED_UNANSWERED`](crate::DROPPED_UNANSWERED), as a
/// [`Responder`] does.
#[must_use = "dropping a TypedResponder fails its request"]
pub struct TypedResponder<R> {
    responder: Responder,
    request_type: PhantomData<fn(R)>,
}

/// A pulled request that did not become a message; it has been failed with
/// [`text`](Self::text).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    rq_type: u64,
    text: String,
}

impl<M> Router<M> {
    /// A router that knows no request type yet.
    pub fn new() -> Self {
        Router { table: Table::new() }
    }

    /// Routes request type `R` to the message `wrap` makes of it, such as
    /// an enum variant's constructor.
    ///
    /// # Panics
    /// When a request type of the same number is routed already.
    #[must_use]
    pub fn on<R: TypedRequest>(mut self, wrap: impl Fn(Typed<R>) -> M + Send + Sync + 'static) -> Self {
        let route = move |flags: u64, payload: &[u8], responder: Responder| -> Result<M, Rejected> {
            match R::from_request(flags, payload) {
                Ok(request) => Ok(wrap(Typed { request, responder: TypedResponder::new(responder) })),
                Err(error) => Err(reject(R::RQ_TYPE, table::undecodable::<R>(&error), responder)),
            }
        };
        self.table.insert::<R>(Box::new(route));
        self
    }

    /// Reads the peer's request type numbers through `handshake` (see
    /// [`Dispatcher::handshake`](super::Dispatcher::handshake)).
    #[must_use]
    pub fn handshake(mut self, handshake: &Handshake) -> Self {
        self.table.set_handshake(handshake);
        self
    }

    /// The message of one pulled request.
    ///
    /// # Errors
    /// [`Rejected`] when the request could not become one; it has been
    /// failed already, with the text the error holds.
    pub fn route(&self, incoming: Incoming) -> Result<M, Rejected> {
        let Incoming { request, responder } = incoming;
        match self.table.find(request.rq_type) {
            Ok(route) => route(request.flags, &request.payload, responder),
            Err(text) => Err(reject(request.rq_type, text, responder)),
        }
    }
}

impl<M> Default for Router<M> {
    fn default() -> Self {
        Router::new()
    }
}

/// Fails the request with `text` and reports it.
fn reject(rq_type: u64, text: String, responder: Responder) -> Rejected {
    responder.fail(text.clone());
    Rejected { rq_type, text }
}

impl<R: TypedRequest> TypedResponder<R> {
    fn new(responder: Responder) -> Self {
        TypedResponder { responder, request_type: PhantomData }
    }

    /// The request's channel.
    pub fn channel(&self) -> u64 {
        self.responder.channel()
    }

    /// The peer's tag of the request.
    pub fn tag(&self) -> u64 {
        self.responder.tag()
    }

    /// Answers with `answer`, or fails with the error.
    pub fn respond<E: IntoFailure>(self, outcome: Result<R::Response, E>) {
        match outcome {
            Ok(answer) => self.ok(answer),
            Err(error) => self.fail(error),
        }
    }

    /// Answers with `answer`; one that cannot be encoded fails the request
    /// with a text that says so.
    pub fn ok(self, answer: R::Response) {
        match answer.into_response() {
            Ok(response) => self.responder.respond(response),
            Err(error) => self.responder.fail(table::unencodable::<R>(&error)),
        }
    }

    /// Fails the request with `failure` (a [`Failure`](crate::Failure), or
    /// anything `Display`).
    pub fn fail(self, failure: impl IntoFailure) {
        self.responder.fail(failure);
    }
}

impl Rejected {
    /// The request type the peer sent.
    pub fn rq_type(&self) -> u64 {
        self.rq_type
    }

    /// What the request was failed with.
    pub fn text(&self) -> &str {
        &self.text
    }
}

impl fmt::Display for Rejected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "request of type {} refused: {}", self.rq_type, self.text)
    }
}

impl std::error::Error for Rejected {}

impl<R: TypedRequest + fmt::Debug> fmt::Debug for Typed<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Typed").field("request", &self.request).field("responder", &self.responder).finish()
    }
}

impl<R> fmt::Debug for TypedResponder<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("TypedResponder").field(&self.responder).finish()
    }
}

impl<M> fmt::Debug for Router<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Router").field("routes", &self.table.served().collect::<Vec<_>>()).finish()
    }
}
