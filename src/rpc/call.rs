//! Typed calls: a typed request encoded, sent under its number, and its
//! answer decoded (cs.packetstream's `conn_submit` and `conn_do_remote`).

use std::time::Duration;

use super::error::{InvalidTyped, TypedCallError, TypedCallTimeoutError, TypedSubmitError};
use super::pending::{decode_ok, TypedPending};
use super::request::TypedRequest;
use crate::conn::error::{CallError, CallTimeoutError, SubmitError};
use crate::conn::PacketConnection;

pub(crate) mod sealed {
    use super::{InvalidTyped, PacketConnection};

    /// Where typed calls go and under which numbers; implemented by the
    /// crate's connections only.
    pub trait Numbers {
        /// The connection the calls go out on.
        fn connection(&self) -> &PacketConnection;

        /// The number a request type travels under.
        fn wire_number(&self, name: &'static str, rq_type: u64) -> Result<u64, InvalidTyped>;
    }
}

/// Typed calls on a connection: a [`PacketConnection`] sends each request
/// type under its own number, as cs.packetstream's `HasPacketConnection`
/// does; a [`Session`](super::Session) under the number its registry
/// handshake settled.
///
/// ```
/// use packetstream::rpc::{CallTyped, Dispatcher, TypedCallError};
/// use packetstream::binary::BSString;
/// use packetstream::{Config, Failure, PacketConnection, Transport};
///
/// packetstream::typed_request! {
///     /// Greets someone; the answer is the greeting.
///     pub struct Greet(0, "demo:greet") -> String { pub name: BSString }
/// }
///
/// # fn main() -> Result<(), packetstream::Error> {
/// let (a, b) = Transport::memory_pair();
/// let dispatcher = Dispatcher::new("Hello").on::<Greet, _, Failure>(|greeting, rq| match rq.name.as_str() {
///     "" => Err(Failure::new("nobody to greet")),
///     name => Ok(format!("{greeting}, {name}!")),
/// });
/// let server = PacketConnection::with_handler(b, Config::default(), dispatcher)?;
/// let client = PacketConnection::new(a, Config::default())?;
///
/// assert_eq!(client.call_typed(&Greet { name: "Ada".into() })?, "Hello, Ada!");
/// match client.call_typed(&Greet { name: String::new() }) {
///     Err(TypedCallError::Failed(failure)) => assert_eq!(failure.text(), "nobody to greet"),
///     other => panic!("{other:?}"),
/// }
/// let pending = client.submit_typed(Greet { name: "Bob".into() })?;
/// assert_eq!(pending.wait()?, "Hello, Bob!");
/// # let closing = std::thread::spawn(move || server.close());
/// # client.close()?;
/// # closing.join().unwrap()?;
/// # Ok(()) }
/// ```
pub trait CallTyped: sealed::Numbers {
    /// Encodes `request`, sends it on channel 0 and returns its handle, which
    /// decodes the answer. Blocks while the send queue is full.
    ///
    /// # Errors
    /// [`TypedSubmitError::Invalid`] for a request that cannot be encoded or
    /// sent as given (nothing was sent); [`TypedSubmitError::Connection`]
    /// once the connection takes no new requests.
    fn submit_typed<R: TypedRequest>(&self, request: R) -> Result<TypedPending<R>, TypedSubmitError> {
        let (number, flags, payload) = prepare(self, &request)?;
        let pending = self.connection().submit(number, flags, payload).map_err(|error| match error {
            SubmitError::Invalid(error) => TypedSubmitError::Invalid(InvalidTyped::Request(error)),
            SubmitError::Connection(error) => TypedSubmitError::Connection(error),
        })?;
        Ok(TypedPending::new(pending, request))
    }

    /// Sends `request` and waits for its answer, decoded.
    ///
    /// # Errors
    /// [`TypedCallError::Failed`] for an ok = 0 answer,
    /// [`TypedCallError::Undecodable`] for an ok answer that does not
    /// decode, [`TypedCallError::Invalid`] for a request that cannot be
    /// sent, [`TypedCallError::Connection`] when the connection ends first.
    fn call_typed<R: TypedRequest>(&self, request: &R) -> Result<R::Response, TypedCallError> {
        let (number, flags, payload) = prepare(self, request)?;
        match self.connection().call(number, flags, payload) {
            Ok(response) => decode_ok(request, response).map_err(TypedCallError::Undecodable),
            Err(CallError::Failed(failure)) => Err(TypedCallError::Failed(failure)),
            Err(CallError::Invalid(error)) => Err(TypedCallError::Invalid(InvalidTyped::Request(error))),
            Err(CallError::Connection(error)) => Err(TypedCallError::Connection(error)),
        }
    }

    /// [`call_typed`](Self::call_typed) with one `timeout` for queueing and
    /// answer together. On [`TypedCallTimeoutError::Timeout`] the request is
    /// given up.
    ///
    /// # Errors
    /// As [`call_typed`](Self::call_typed), plus
    /// [`TypedCallTimeoutError::Timeout`].
    fn call_typed_timeout<R: TypedRequest>(
        &self,
        request: &R,
        timeout: Duration,
    ) -> Result<R::Response, TypedCallTimeoutError> {
        let (number, flags, payload) = prepare(self, request).map_err(TypedCallError::from)?;
        match self.connection().call_timeout(number, flags, payload, timeout) {
            Ok(response) => decode_ok(request, response).map_err(TypedCallTimeoutError::Undecodable),
            Err(CallTimeoutError::Timeout) => Err(TypedCallTimeoutError::Timeout),
            Err(CallTimeoutError::Failed(failure)) => Err(TypedCallTimeoutError::Failed(failure)),
            Err(CallTimeoutError::Invalid(error)) => Err(TypedCallTimeoutError::Invalid(InvalidTyped::Request(error))),
            Err(CallTimeoutError::Connection(error)) => Err(TypedCallTimeoutError::Connection(error)),
        }
    }
}

/// The number, flags and payload of `request`.
fn prepare<C, R>(conn: &C, request: &R) -> Result<(u64, u64, Vec<u8>), TypedSubmitError>
where
    C: sealed::Numbers + ?Sized,
    R: TypedRequest,
{
    let number = conn.wire_number(R::NAME, R::RQ_TYPE)?;
    let payload = request.encode_payload().map_err(|error| InvalidTyped::Encode { name: R::NAME, error })?;
    Ok((number, request.flags(), payload))
}

impl sealed::Numbers for PacketConnection {
    fn connection(&self) -> &PacketConnection {
        self
    }

    fn wire_number(&self, _name: &'static str, rq_type: u64) -> Result<u64, InvalidTyped> {
        Ok(rq_type)
    }
}

impl CallTyped for PacketConnection {}
