//! The serving side of typed requests (cs.packetstream's
//! `HasPacketConnection.conn_handle_request`): a handler that decodes each
//! request into its type and runs the function that fulfils it.

use std::fmt;

use super::handshake::Handshake;
use super::request::TypedRequest;
use super::response::TypedResponse;
use super::table::{self, Table};
use crate::conn::answer::{Failure, Response};
use crate::conn::serve::handler::{Handler, IntoFailure, Request};

/// What fulfils one request type: decodes, runs, encodes.
type Fulfil<C> = Box<dyn Fn(&C, u64, &[u8]) -> Result<Response, Failure> + Send + Sync>;

/// A [`Handler`] built from a list of request types, each with the function
/// that fulfils it against a shared context (Python's `fulfil(self,
/// context)`, with the context first).
///
/// Each request is decoded into its type ([`TypedRequest::from_request`]),
/// given to its function with the context, and the function's answer
/// encoded ([`TypedResponse::into_response`]). What goes wrong becomes a
/// failed response whose text says what, where cs.packetstream sends
/// `exception during handler` for all of them:
///
/// | what | failure text |
/// |---|---|
/// | a request type not listed | `unknown request type N` |
/// | a payload that does not decode | `cannot decode NAME (request type N): ` and the [`DecodeError`](crate::binary::DecodeError), such as `unparsed data at offset 7 (1 bytes)` |
/// | the function's error | the error as it is: its text, or a [`Failure`] with its flags |
/// | an answer that cannot be encoded | `cannot encode the answer to NAME: ` and the [`EncodeError`](crate::binary::EncodeError) |
/// | a function that panics | `handler panicked: MESSAGE` (from the connection) |
///
/// ```
/// use std::sync::Mutex;
/// use packetstream::binary::BSUInt;
/// use packetstream::rpc::{CallTyped, Dispatcher};
/// use packetstream::{Config, PacketConnection, Transport};
///
/// packetstream::typed_request! {
///     /// Adds to the counter; the answer is the new total.
///     pub struct Add(0, "counter:add") -> u64 { pub n: BSUInt }
///     /// The total.
///     pub struct Total(1, "counter:total") -> u64;
/// }
///
/// # fn main() -> Result<(), packetstream::Error> {
/// let dispatcher = Dispatcher::new(Mutex::new(0u64))
///     .on::<Add, _, String>(|total, add| {
///         let mut total = total.lock().unwrap();
///         *total = total.checked_add(add.n).ok_or("the total would overflow")?;
///         Ok(*total)
///     })
///     .on::<Total, _, String>(|total, _| Ok(*total.lock().unwrap()));
/// let (a, b) = Transport::memory_pair();
/// let server = PacketConnection::with_handler(b, Config::default(), dispatcher)?;
/// let client = PacketConnection::new(a, Config::default())?;
/// assert_eq!(client.call_typed(&Add { n: 40 })?, 40);
/// assert_eq!(client.call_typed(&Add { n: 2 })?, 42);
/// assert_eq!(client.call_typed(&Total)?, 42);
/// assert!(client.call_typed(&Add { n: u64::MAX }).is_err());
/// let unknown = client.call(9, 0, Vec::new()).unwrap_err();
/// assert_eq!(unknown.failure().unwrap().text(), "unknown request type 9");
/// # let closing = std::thread::spawn(move || server.close());
/// # client.close()?;
/// # closing.join().unwrap()?;
/// # Ok(()) }
/// ```
pub struct Dispatcher<C> {
    context: C,
    table: Table<Fulfil<C>>,
}

impl<C: Send + Sync + 'static> Dispatcher<C> {
    /// A dispatcher with no request types yet, fulfilling them against
    /// `context`.
    pub fn new(context: C) -> Self {
        Dispatcher { context, table: Table::new() }
    }

    /// Serves request type `R` with `fulfil`, which gets the context and the
    /// decoded request and returns the answer or an error (a [`Failure`],
    /// or anything `Display`).
    ///
    /// # Panics
    /// When a request type of the same number is served already.
    #[must_use]
    pub fn on<R, F, E>(mut self, fulfil: F) -> Self
    where
        R: TypedRequest,
        F: Fn(&C, R) -> Result<R::Response, E> + Send + Sync + 'static,
        E: IntoFailure,
    {
        let serve = move |context: &C, flags: u64, payload: &[u8]| -> Result<Response, Failure> {
            let request = R::from_request(flags, payload).map_err(|e| Failure::new(table::undecodable::<R>(&e)))?;
            let answer = fulfil(context, request).map_err(IntoFailure::into_failure)?;
            answer.into_response().map_err(|e| Failure::new(table::unencodable::<R>(&e)))
        };
        self.table.insert::<R>(Box::new(serve));
        self
    }

    /// Reads the peer's request type numbers through `handshake`, for an
    /// end that adapts its numbers to the peer's (see [`Handshake`]). Such an
    /// end starts its [`Session`](super::Session) at once: a request that
    /// comes before the outcome waits for it, at most
    /// [`INCOMING_WAIT`](super::INCOMING_WAIT), and is refused after that.
    /// An end that keeps its numbers needs no translation and never waits,
    /// but the handshake lets it refuse requests once the registries turned
    /// out to differ.
    #[must_use]
    pub fn handshake(mut self, handshake: &Handshake) -> Self {
        self.table.set_handshake(handshake);
        self
    }

    /// The context.
    pub fn context(&self) -> &C {
        &self.context
    }
}

impl<C: Send + Sync + 'static> Handler for Dispatcher<C> {
    fn handle(&self, request: Request) -> Result<Response, Failure> {
        let serve = self.table.find(request.rq_type).map_err(Failure::new)?;
        serve(&self.context, request.flags, &request.payload)
    }
}

impl<C> fmt::Debug for Dispatcher<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Dispatcher").field("serves", &self.table.served().collect::<Vec<_>>()).finish_non_exhaustive()
    }
}
