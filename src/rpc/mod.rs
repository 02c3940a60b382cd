//! Typed requests over a connection: cs.packetstream's `BaseRequest` and
//! `HasPacketConnection`, and packetmq's request registry with its
//! handshake.
//!
//! The wire carries `(rq_type, flags, payload)`; an application wants a
//! type per request. Here a request type is a Rust type, [`TypedRequest`]:
//! its number, its fields (cs.binary fields, encoded one after another as a
//! `BinaryMultiValue` is), its flags, and what its answer decodes into
//! ([`TypedResponse`]). [`typed_request!`](crate::typed_request) defines
//! one from a field list. The bytes are cs.packetstream's, so either end can
//! be Python.
//!
//! - Calling: [`CallTyped`] on a connection, `conn.call_typed(&request)`,
//!   whose error tells a failed answer, an answer that does not decode and
//!   the connection's end apart ([`TypedCallError`]).
//! - Serving: a [`Dispatcher`], a handler built from a list of request
//!   types and the functions that fulfil them; or, with pulled requests, a
//!   [`Router`] that decodes each into the program's own message, with a
//!   [`TypedResponder`].
//! - Numbering: request types travel under their own numbers, as with
//!   cs.packetstream. A [`Registry`] names them (`"application:request"`),
//!   and an optional [`Handshake`] on the protocol extensions compares the
//!   two ends' registries by name, so that the end that adapts maps its
//!   numbers to the peer's ([`Session`]). `docs/protocol.md` has the bytes.
//!
//! ```
//! use packetstream::binary::{BSData, BSUInt};
//! use packetstream::rpc::{CallTyped, Dispatcher};
//! use packetstream::{Config, PacketConnection, Transport};
//!
//! packetstream::typed_request! {
//!     /// cs.packetstream's example request; the answer is `(flags, payload)`.
//!     #[derive(Debug)]
//!     pub struct AddRequest(0, "cs:add") { pub hashenum: BSUInt, pub data: BSData }
//! }
//!
//! # fn main() -> Result<(), packetstream::Error> {
//! let (a, b) = Transport::memory_pair();
//! let dispatcher = Dispatcher::new(()).on::<AddRequest, _, String>(|_, rq| {
//!     Ok(packetstream::Response { flags: rq.hashenum, payload: rq.data.to_ascii_uppercase() })
//! });
//! let server = PacketConnection::with_handler(b, Config::default(), dispatcher)?;
//! let client = PacketConnection::new(a, Config::default())?;
//! let answer = client.call_typed(&AddRequest { hashenum: 1, data: b"hello".to_vec() })?;
//! assert_eq!((answer.flags, answer.payload), (1, b"HELLO".to_vec()));
//! # let closing = std::thread::spawn(move || server.close());
//! # client.close()?;
//! # closing.join().unwrap()?;
//! # Ok(()) }
//! ```

mod agreement;
mod call;
mod dispatcher;
mod error;
pub mod exchange;
mod handshake;
mod macros;
mod pending;
mod pulled;
mod registry;
mod request;
mod response;
mod session;
mod table;

pub use agreement::{compare, Mapping, Mismatch, Numbering, Role};
pub use call::CallTyped;
pub use dispatcher::Dispatcher;
pub use error::{
    InvalidTyped, TypedCallError, TypedCallTimeoutError, TypedRequestError, TypedSubmitError, UndecodableResponse,
};
pub use handshake::{Handshake, HandshakeError, INCOMING_WAIT};
pub use pending::{TypedPending, TypedWaitTimeoutError};
pub use pulled::{Rejected, Router, Typed, TypedResponder};
pub use registry::{Registry, RegistryError};
pub use request::{Flagged, TypedRequest};
pub use response::TypedResponse;
pub use session::{HandshakeFailed, Session};

#[doc(inline)]
pub use crate::typed_request;
