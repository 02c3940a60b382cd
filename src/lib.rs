//! A bidirectional, multiplexed request/response connection over any byte
//! stream, wire-compatible with Python's `cs.packetstream`.
//!
//! Over a pipe, a socket, a file descriptor or a child process's stdio, both
//! sides send requests and answer the other's, many at once. A request has a
//! type, flags and a payload; the peer's handler answers ok or failed, with
//! flags and a payload; the caller blocks on a [`Pending`] handle until the
//! answer comes. No async runtime: a reader thread, a writer thread and a
//! small pool of handler threads per connection (started with the first
//! request from the peer).
//!
//! # A tour
//!
//! Two connections in one process, over a pair of pipes. One serves, the
//! other calls:
//!
//! ```
//! use packetstream::{Config, Error, PacketConnection, Request, Transport};
//!
//! # fn main() -> Result<(), Error> {
//! let (client_side, server_side) = Transport::pipe_pair()?;
//!
//! // A handler gets the request and returns what the response should hold:
//! // bytes, a string, flags, (flags, bytes), nothing, or an error.
//! let server = PacketConnection::with_handler(server_side, Config::default(), |rq: Request| {
//!     match rq.rq_type {
//!         0 => Ok(rq.payload.to_ascii_uppercase()),
//!         _ => Err(format!("unknown request type {}", rq.rq_type)),
//!     }
//! })?;
//! let client = PacketConnection::new(client_side, Config::default())?;
//!
//! // `call` sends and waits.
//! let answer = client.call(0, 0, b"hello".to_vec())?;
//! assert_eq!(answer.payload, b"HELLO");
//!
//! // A failed answer (ok = 0) is an error carrying the peer's text.
//! let err = client.call(7, 0, Vec::new()).unwrap_err();
//! assert_eq!(err.failure().unwrap().text(), "unknown request type 7");
//!
//! // `submit` returns at once; many requests can be in flight.
//! let pending: Vec<_> = (0..10u8)
//!     .map(|i| client.submit(0, 0, vec![b'a' + i]))
//!     .collect::<Result<_, _>>()?;
//! for (i, p) in pending.into_iter().enumerate() {
//!     assert_eq!(p.wait()?.payload, vec![b'A' + i as u8]);
//! }
//!
//! // Close in order: the client ends, the server sees it and ends too.
//! let server_thread = std::thread::spawn(move || {
//!     server.join_recv()?;
//!     Ok::<_, Error>(server.close()?)
//! });
//! client.close()?;
//! server_thread.join().unwrap()?;
//! # Ok(()) }
//! ```
//!
//! # Waiting
//!
//! A [`Pending`] can be waited on without a limit ([`Pending::wait`]), with
//! one ([`Pending::wait_timeout`], [`Pending::wait_deadline`]), or just looked
//! at ([`Pending::try_wait`]); [`Pending::cancel`] (or dropping it) gives the
//! request up. Each operation has an error type of its own with only what
//! can happen there: a wait gets the peer's failure or the connection's end
//! ([`RequestError`]), and a timed wait hands the `Pending` back when time
//! runs out, so it can wait again. [`Error`] takes any of them, for `?`.
//!
//! ```
//! # use packetstream::*;
//! # use std::time::Duration;
//! # fn main() -> Result<(), Error> {
//! # let (a, b) = Transport::memory_pair();
//! let (gate_tx, gate_rx) = crossbeam_channel::bounded::<()>(0);
//! let gate_rx = std::sync::Mutex::new(gate_rx);
//! let server = PacketConnection::with_handler(b, Config::default(), move |_rq: Request| {
//!     let _ = gate_rx.lock().unwrap().recv(); // held until the test opens the gate
//! })?;
//! let client = PacketConnection::new(a, Config::default())?;
//! let pending = client.submit(0, 0, Vec::new())?;
//! let Err(TryWaitError::NotReady(pending)) = pending.try_wait() else { panic!("answered early") };
//! let Err(WaitTimeoutError::Timeout(pending)) = pending.wait_timeout(Duration::from_millis(10)) else {
//!     panic!("answered early")
//! };
//! gate_tx.send(()).unwrap();
//! assert_eq!(pending.wait_timeout(Duration::from_secs(10))?.flags, 0);
//! # drop(client); drop(server);
//! # Ok(()) }
//! ```
//!
//! # Talking to a child process
//!
//! [`Transport::spawn`] starts a command with piped stdin and stdout; at
//! close the child's stdin is closed and the child reaped:
//!
//! ```no_run
//! # use packetstream::*;
//! # fn main() -> Result<(), Error> {
//! let mut command = std::process::Command::new("my-server");
//! let conn = PacketConnection::new(Transport::spawn(&mut command)?, Config::default())?;
//! let answer = conn.call(0, 0, b"ping".to_vec())?;
//! let finished = conn.close()?;
//! println!("{:?} then child exited: {:?}", answer, finished.exit_status());
//! # Ok(()) }
//! ```
//!
//! The child serves with [`Transport::stdio`] and must write nothing else to
//! its stdout.
//!
//! # The wire
//!
//! The byte format is `cs.packetstream`'s (release 20240630), byte for byte;
//! [`wire`] encodes and decodes it as plain functions. Channel 0's tags start
//! at 2 and are never reused; tags 0 and 1 are the EOF and ERQ control
//! packets. Only channel 0 is served unless [`ConfigBuilder::serve_channel`]
//! says otherwise, as in cs.packetstream.
//!
//! # Extensions
//!
//! Beyond cs.packetstream, two `packetstream` peers can agree on protocol
//! extensions ([`ext`]), off unless [`ConfigBuilder::extensions`] turns them
//! on: a close that tells the peer why; streams inside a request, with
//! credit flow control ([`Peer::stream`], [`stream`]); a caller's cancel and
//! time budget that reach the peer's handler ([`Context`]). A plain peer
//! refuses the one probe and the connection carries on as before.
//!
//! ```
//! # use packetstream::*;
//! # fn main() -> Result<(), Error> {
//! let (a, b) = Transport::memory_pair();
//! let on = || Config::builder().extensions(true);
//! let server = PacketConnection::with_handler(b, on().name("server"), |rq: Request| rq.payload)?;
//! let client = PacketConnection::new(a, on().name("client"))?;
//! let server_thread = std::thread::spawn(move || {
//!     server.join_recv()?;
//!     Ok::<_, Error>(server.close()?)
//! });
//! client.close_with(CloseOptions::new().reason("going for lunch"))?;
//! let finished = server_thread.join().unwrap()?;
//! assert_eq!(finished.peer_quit_reason(), Some("going for lunch"));
//! # Ok(()) }
//! ```
//!
//! # Streams
//!
//! A streaming request is one conversation: the caller opens it with
//! [`PacketConnection::stream`] and gets a [`StreamReceiver`] (an iterator
//! of the handler's items) and/or a [`StreamSender`] (whose `send` waits
//! for credit), and a [`StreamReply`] for the final answer. The handler
//! finds the other two ends in its request's [`Context`]. A slow reader
//! grants credit slowly, so neither side holds more than a window of items.
//!
//! ```
//! # use packetstream::*;
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let (a, b) = Transport::memory_pair();
//! let on = || Config::builder().extensions(true);
//! // Sums the numbers the caller streams, and answers the total.
//! let server = PacketConnection::with_handler(b, on(), |rq: Request| {
//!     let numbers = rq.context().take_receiver().ok_or("not a stream")?;
//!     let mut total = 0u64;
//!     for item in numbers {
//!         total += u64::from_be_bytes(item.map_err(|end| end.to_string())?.try_into().map_err(|_| "8 bytes")?);
//!     }
//!     Ok::<_, String>(total.to_string())
//! })?;
//! let client = PacketConnection::new(a, on())?;
//! let Stream { sender, reply, .. } = client.stream(0, 0, Vec::new(), StreamOptions::send().window(4, 1024))?;
//! let sender = sender.expect("asked to send");
//! for n in 1..=100u64 {
//!     sender.send(n.to_be_bytes())?;
//! }
//! sender.finish();
//! assert_eq!(reply.wait()?.payload, b"5050");
//! # drop(client); drop(server);
//! # Ok(()) }
//! ```
//!
//! # Typed requests
//!
//! The [`rpc`] layer gives each kind of request a Rust type, as
//! cs.packetstream's `BaseRequest` and `HasPacketConnection` do: a request
//! type is defined from its cs.binary fields with
//! [`typed_request!`](crate::typed_request), called with
//! [`rpc::CallTyped::call_typed`], and served by an [`rpc::Dispatcher`]
//! (or, pulled, through an [`rpc::Router`]). A [`rpc::Registry`] names the
//! request types, and an optional handshake lets an end built with other
//! numbers adapt to its peer's.
//!
//! ```
//! use packetstream::rpc::{CallTyped, Dispatcher};
//! # use packetstream::*;
//! # fn main() -> Result<(), Error> {
//! packetstream::typed_request! {
//!     /// Adds two numbers.
//!     pub struct Add(0, "math:add") -> u64 { pub a: packetstream::binary::BSUInt, pub b: packetstream::binary::BSUInt }
//! }
//! let (a, b) = Transport::memory_pair();
//! let dispatcher = Dispatcher::new(()).on::<Add, _, &str>(|_, add| add.a.checked_add(add.b).ok_or("overflow"));
//! let server = PacketConnection::with_handler(b, Config::default(), dispatcher)?;
//! let client = PacketConnection::new(a, Config::default())?;
//! assert_eq!(client.call_typed(&Add { a: 40, b: 2 })?, 42);
//! # let closing = std::thread::spawn(move || server.close());
//! # client.close()?;
//! # closing.join().unwrap()?;
//! # Ok(()) }
//! ```
//!
//! # Servers and clients
//!
//! [`net`] serves connections on TCP, Unix and in-process listeners
//! ([`net::Server`]), connects to them ([`net::connect`]), and keeps a
//! client's connection open across the peer's restarts
//! ([`net::Reconnecting`]) or a helper process running
//! ([`net::Supervised`]):
//!
//! ```
//! use std::time::{Duration, Instant};
//! use packetstream::net::{ConnectionInfo, MemoryListener, Server};
//! use packetstream::{Config, PacketConnection, Request};
//! # fn main() -> Result<(), packetstream::Error> {
//! let listener = MemoryListener::new(); // or .listen(addr) for sockets
//! let connector = listener.connector();
//! let server = Server::builder().listen_memory(listener).serve(|_: &ConnectionInfo| |rq: Request| rq.payload)?;
//! server.spawn()?;
//! let client = PacketConnection::new(connector.connect(Duration::from_secs(1))?, Config::default())?;
//! assert_eq!(client.call(0, 0, b"in process".to_vec())?.payload, b"in process");
//! client.close()?;
//! server.shutdown(Instant::now() + Duration::from_secs(1));
//! # Ok(()) }
//! ```
//!
//! # The command-line tool
//!
//! The crate `packetstream-cli` (in the repository's `cli/`) is a binary,
//! `packetstream`, built on this library: `call` sends a request to a
//! server or a child and prints the answer, `serve` makes echo or any shell
//! command a service (`--exec 'CMD'`), `tap` sits between a parent and its
//! child and logs every packet, `decode` reads a captured stream,
//! `check` runs a conformance suite against a peer, and `bench` measures
//! one.
//!
//! ```text
//! packetstream call --text hello --connect 127.0.0.1:7000
//! packetstream serve --exec 'tr a-z A-Z' --listen unix:/tmp/upper.sock
//! packetstream check -- python3 my_echo_server.py
//! ```
//!
//! # Logging
//!
//! Through the `log` crate: every packet in and out at trace level (`->` and
//! `<-`, prefixed with the connection's name), start and shutdown at debug.

#![deny(missing_docs)]
#![warn(rust_2018_idioms)]

pub mod binary;
pub mod ext;
#[cfg(unix)]
pub mod net;
pub mod rpc;
pub mod stream;
pub mod wire;

mod config;
mod conn;
mod error;
mod threads;
mod transport;

pub use config::{Config, ConfigBuilder, DEFAULT_PACKET_GRACE, DEFAULT_WAIT_SPIN};
pub use conn::answer::{Failure, Response};
pub use conn::close::{
    CloseError, CloseOptions, CloseProblem, CloseReport, CloseStep, Finished, StepOutcome, StepReport,
};
pub use conn::error::{
    CallError, CallTimeoutError, ChildEnd, ConnectionError, InvalidRequest, JoinTimeoutError, RequestError,
    SubmitError, SubmitTimeoutError,
};
pub use conn::pending::{Pending, TryWaitError, WaitTimeoutError};
pub use conn::serve::context::Context;
pub use conn::serve::handler::{Handler, IntoFailure, IntoOutcome, Request};
pub use conn::serve::responder::{Incoming, Responder, DROPPED_UNANSWERED};
pub use conn::stats::Stats;
pub use conn::streams::calling::{
    ReplyError, ReplyTimeoutError, Stream, StreamOpenError, StreamOptions, StreamReply, DEFAULT_WINDOW_BYTES,
    DEFAULT_WINDOW_ITEMS,
};
pub use conn::streams::handles::{
    StreamEnd, StreamReceiver, StreamRecvError, StreamRecvTimeoutError, StreamSendError, StreamSendTimeoutError,
    StreamSender, StreamTryRecvError, StreamTrySendError,
};
pub use conn::{PacketConnection, Peer};
pub use error::Error;
pub use transport::{memory_pipe, MemoryReader, MemoryWriter, ReadHalf, Transport, WriteHalf};
pub use wire::{Packet, ProtocolError, ValueTooLarge, MAX_REQUEST_FLAGS, MAX_RESPONSE_FLAGS, MAX_RQ_TYPE};

// The README's examples are compiled with the doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
