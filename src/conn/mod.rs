//! One connection: [`PacketConnection`], the handle, and its start.
//!
//! The parts below share nothing but what they need, each behind its own
//! `Arc`:
//! - [`calls`]: this side's requests in flight (the mutex-guarded tag map)
//!   and what waits on them; [`pending`]: the handle a caller blocks on;
//! - [`send`]: the send path — the staging buffer written by senders in
//!   groups, the crossbeam queue feeding the writer thread, and the
//!   packet-grace timer;
//! - [`serve`]: the blocking reader thread, routing by channel, the handler
//!   pool and the reader hand-off;
//! - [`control`]: the extension mechanism's end of the connection;
//! - [`streams`]: streams inside a request, at both ends;
//! - [`link`]: what a caller's handles share: the tag map, the send path,
//!   the negotiation;
//! - [`close`]: shutdown as named steps, with a report.

pub(crate) mod answer;
pub(crate) mod caller;
pub(crate) mod calls;
pub(crate) mod close;
pub(crate) mod control;
pub(crate) mod error;
pub(crate) mod keepalive;
pub(crate) mod link;
pub(crate) mod pending;
pub(crate) mod send;
pub(crate) mod serve;
pub(crate) mod stats;
pub(crate) mod streams;

use std::io;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError};
use parking_lot::Mutex;

use self::answer::Response;
pub use self::caller::Peer;
use self::calls::Calls;
use self::close::{CloseError, CloseOptions, Finished, Parts, Threads};
use self::control::Control;
use self::error::{CallError, CallTimeoutError, ConnectionError, JoinTimeoutError, SubmitError, SubmitTimeoutError};
use self::keepalive::{Keepalive, Watched};
use self::link::{Link, Reading};
use self::pending::Pending;
use self::send::writer;
use self::send::SendPath;
use self::serve::handler::Handler;
use self::serve::lead::Lead;
use self::serve::notes::Notes;
use self::serve::pool::Pool;
use self::serve::reading::ReadStateFields;
use self::serve::responder::Incoming;
use self::serve::route::Routes;
use self::serve::serving::{Serve, Serving};
use self::stats::Stats;
use self::streams::calling::{Stream, StreamOpenError, StreamOptions};
use self::streams::served::ServedStreams;
use crate::config::Config;
use crate::ext;
use crate::ext::negotiation::State as Extensions;
use crate::threads;
use crate::transport::{self, Hooks, Transport};
use crate::wire::{Packet, PacketReader};

/// A bidirectional request/response connection over a byte stream.
///
/// Any number of threads may submit requests through `&self` at once; the
/// peer's requests are answered by the handler given at start, on a pool of
/// worker threads. See the [crate documentation](crate) for a tour.
pub struct PacketConnection {
    name: Arc<str>,
    caller: Peer,
    calls: Arc<Calls>,
    send: Arc<SendPath>,
    serving: Arc<Serving>,
    control: Arc<Control>,
    /// Wakes whoever waits for reading to end.
    reading_done: Receiver<()>,
    close_timeout: Duration,
    /// Taken by close.
    open: Option<Open>,
}

/// What close takes over.
struct Open {
    threads: Threads,
    /// Only close touches it; the mutex makes the connection `Sync`
    /// although a shutdown hook need not be.
    hooks: Mutex<Hooks>,
}

impl PacketConnection {
    /// Starts a connection that makes requests but serves none: the peer's
    /// requests are refused with `no request handler`.
    ///
    /// # Errors
    /// When an on-demand transport fails to open, a thread cannot start, or
    /// the configuration asks to serve a reserved channel.
    pub fn new(transport: Transport, config: impl Into<Config>) -> io::Result<Self> {
        Self::start(transport, config.into(), Serve::Nothing)
    }

    /// Starts a connection whose peer's requests are answered by `handler`.
    ///
    /// # Errors
    /// As [`new`](Self::new).
    pub fn with_handler(transport: Transport, config: impl Into<Config>, handler: impl Handler) -> io::Result<Self> {
        Self::start(transport, config.into(), Serve::Handler(Arc::new(handler)))
    }

    /// Starts a connection whose peer's requests are pulled from a channel
    /// rather than given to a handler: each comes with a
    /// [`Responder`](crate::Responder) that answers it once (dropped
    /// unanswered, it fails the request). The program's own loop can
    /// `select!` over the channel and its others. At most
    /// [`Config::max_incoming`] requests are unanswered at once; close
    /// waits (within its timeout) for those the program holds.
    ///
    /// ```
    /// # use packetstream::*;
    /// # fn main() -> Result<(), Error> {
    /// let (a, b) = Transport::memory_pair();
    /// let (server, requests) = PacketConnection::with_incoming(b, Config::default())?;
    /// let client = PacketConnection::new(a, Config::default())?;
    /// let pending = client.submit(0, 7, b"pulled".to_vec())?;
    /// let incoming = requests.recv().unwrap();
    /// assert_eq!(incoming.request.payload, b"pulled");
    /// let flags = incoming.request.flags + 1;
    /// incoming.respond(flags);
    /// assert_eq!(pending.wait()?.flags, 8);
    /// # drop(client); drop(server);
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// As [`new`](Self::new).
    pub fn with_incoming(
        transport: Transport,
        config: impl Into<Config>,
    ) -> io::Result<(Self, crossbeam_channel::Receiver<Incoming>)> {
        let (requests, incoming) = crossbeam_channel::unbounded();
        Ok((Self::start(transport, config.into(), Serve::Queue(requests))?, incoming))
    }

    fn start(transport: Transport, config: Config, serve: Serve) -> io::Result<Self> {
        if let Some(&channel) = config.served_channels().iter().find(|&&channel| ext::is_reserved(channel)) {
            let error = format!("channel {channel} is reserved for the protocol extensions and cannot be served");
            return Err(io::Error::new(io::ErrorKind::InvalidInput, error));
        }
        let transport::Opened { reader, writer, hooks } = transport.open()?;
        let name: Arc<str> = config.name().into();
        // On one CPU a spinning caller only delays the threads it waits for.
        let one_cpu = threads::on_one_cpu();
        let spin = if one_cpu { Duration::ZERO } else { config.wait_spin() };
        let calls = Arc::new(Calls::new(Arc::clone(&name), spin, one_cpu, hooks.child.clone()));
        let (send, queue) =
            SendPath::new(Arc::clone(&name), writer, Arc::clone(&calls), &config, one_cpu, hooks.writes_to_pipe);
        let send = Arc::new(send);
        let control = Arc::new(Control::new(Arc::clone(&name), config.extensions(), config.services().clone()));
        let routes = Routes::new(config.served_channels().to_vec(), config.serves_all_channels(), control.is_on());
        let (done, reading_done) = crossbeam_channel::bounded(0);
        let caller = Peer::new(Link::new(Arc::clone(&calls), Arc::clone(&send), Arc::clone(&control)));
        let notes = Arc::new(Notes::new(caller.clone(), config.max_incoming()));
        let streams = ServedStreams::new(
            config.max_streams(),
            config.stream_window(),
            config.stream_overflow(),
            config.thread_stack_size(),
        );
        let serving = Arc::new_cyclic(|serving| {
            let spawner = serve::spawner(serving.clone(), config.thread_stack_size());
            let pool =
                Pool::new(Arc::clone(&name), config.workers(), config.max_incoming(), config.handler_pause(), spawner);
            Serving::new(
                Arc::clone(&name),
                serve,
                routes,
                pool,
                Arc::clone(&calls),
                Arc::clone(&send),
                Arc::clone(&control),
                notes,
                streams,
                Lead::new(hooks.readable.is_some() && config.caller_reads()),
                done,
            )
        });
        if serving.lead.is_enabled() {
            caller.link().set_reading(Arc::downgrade(&serving) as Weak<dyn Reading>);
        }

        let writer = {
            let (send, name) = (Arc::clone(&send), Arc::clone(&name));
            let stack = config.thread_stack_size();
            threads::spawn(format!("{name}-writer"), stack, move || {
                writer::run(queue, &send.outbox, &send.timer, &name)
            })?
        };
        let packets = PacketReader::new(reader, config.max_packet_size());
        let readable = hooks.readable;
        let reader = {
            let serving = Arc::clone(&serving);
            let thread_name = serving.pool.thread_name(serving.pool.reader_number());
            threads::spawn(thread_name, config.thread_stack_size(), move || {
                serve::read_then_work(ReadStateFields::boxed(packets, readable), serving)
            })
        };
        let reader = match reader {
            Ok(reader) => reader,
            Err(error) => {
                // The writer ends once it has sent EOF.
                let _ = send.send_control(Packet::eof(), None);
                let _ = writer.join();
                return Err(error);
            }
        };
        if let Some(probe) = control.probe(&calls) {
            // Its answer, or the connection's end, settles the negotiation;
            // a failed send fails the connection, which settles it too.
            let _ = send.send(probe, true, None);
        }
        let keepalive = match config.keepalive() {
            Some((interval, timeout)) => {
                let watched = Watched {
                    calls: Arc::clone(&calls),
                    send: Arc::clone(&send),
                    serving: Arc::clone(&serving),
                    control: Arc::clone(&control),
                    interrupt: hooks.interrupt.clone(),
                };
                match Keepalive::start(&name, config.thread_stack_size(), interval, timeout, watched) {
                    Ok(keepalive) => Some(keepalive),
                    Err(error) => {
                        let threads = Threads { reader, writer, keepalive: None };
                        let open = Open { threads, hooks: Mutex::new(hooks) };
                        let conn = PacketConnection {
                            name,
                            caller,
                            calls,
                            send,
                            serving,
                            control,
                            reading_done,
                            close_timeout: config.close_timeout(),
                            open: None,
                        };
                        let _ = conn.shut(open, CloseOptions::new());
                        return Err(error);
                    }
                }
            }
            None => None,
        };
        log::debug!("{name}: started");
        Ok(PacketConnection {
            name,
            caller,
            calls,
            send,
            serving,
            control,
            reading_done,
            close_timeout: config.close_timeout(),
            open: Some(Open { threads: Threads { reader, writer, keepalive }, hooks: Mutex::new(hooks) }),
        })
    }

    /// The connection's name (see [`ConfigBuilder::name`](crate::ConfigBuilder::name)).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The connection's counters.
    pub fn stats(&self) -> Stats {
        Stats::collect(&self.serving.counters, &self.send.outbox.counters, &self.send.counters)
    }

    /// How many of this side's requests and streams await their answer
    /// (the connection's own, such as its probe, not counted).
    pub fn outstanding(&self) -> usize {
        self.calls.callers_waiting()
    }

    /// How many of the peer's requests this side is serving: admitted and
    /// not yet answered (queued, in a handler, pulled and held by the
    /// application), open streams included.
    pub fn in_service(&self) -> usize {
        self.serving.pool.in_service()
    }

    /// Why this side can make no more requests, once it cannot: the
    /// connection ended or failed, or this side ended its requests. `None`
    /// while it takes requests.
    pub fn closed_reason(&self) -> Option<ConnectionError> {
        self.calls.refusal()
    }

    /// A handle that makes requests on this connection, to give to other
    /// threads (it is cheap to clone) or to keep where a borrow of the
    /// connection would not do. It fails with [`ConnectionError::Closed`]
    /// once the connection is closed.
    pub fn peer(&self) -> Peer {
        self.caller.clone()
    }

    /// Sends a request of type `rq_type` on channel 0 and returns its handle.
    /// Blocks while the send queue is full.
    ///
    /// # Errors
    /// [`SubmitError::Invalid`] for values that do not fit on the wire;
    /// [`SubmitError::Connection`] once the connection has ended or after
    /// [`end_requests`](Self::end_requests).
    pub fn submit(&self, rq_type: u64, flags: u64, payload: impl Into<Vec<u8>>) -> Result<Pending, SubmitError> {
        self.caller.submit(rq_type, flags, payload)
    }

    /// [`submit`](Self::submit) on a chosen channel.
    ///
    /// # Errors
    /// As [`submit`](Self::submit), and [`InvalidRequest::ReservedChannel`](crate::InvalidRequest::ReservedChannel)
    /// for a channel the protocol extensions keep.
    pub fn submit_on(
        &self,
        channel: u64,
        rq_type: u64,
        flags: u64,
        payload: impl Into<Vec<u8>>,
    ) -> Result<Pending, SubmitError> {
        self.caller.submit_on(channel, rq_type, flags, payload)
    }

    /// [`submit_on`](Self::submit_on), waiting at most `timeout` for room in
    /// the send queue. The request never goes out on the caller's thread, so
    /// the timeout holds against a peer that stopped reading.
    ///
    /// # Errors
    /// As [`submit_on`](Self::submit_on), plus [`SubmitTimeoutError::Timeout`]
    /// (with the payload back) when there was no room in time; then nothing
    /// was sent.
    pub fn submit_timeout(
        &self,
        channel: u64,
        rq_type: u64,
        flags: u64,
        payload: impl Into<Vec<u8>>,
        timeout: Duration,
    ) -> Result<Pending, SubmitTimeoutError> {
        self.caller.submit_timeout(channel, rq_type, flags, payload, timeout)
    }

    /// Sends a request of type `rq_type` on the control channel, for the
    /// layers above the connection that serve a feature there (see
    /// [`ext::service`]). Requests of the application cannot go there.
    pub(crate) fn control_request(&self, rq_type: u64, payload: Vec<u8>) -> Result<Pending, SubmitError> {
        self.caller.control_request(rq_type, payload)
    }

    /// [`submit_on`](Self::submit_on), telling a `packetstream` peer that
    /// this caller waits at most `budget` (see [`Peer::submit_with_budget`]).
    ///
    /// # Errors
    /// As [`submit_on`](Self::submit_on).
    pub fn submit_with_budget(
        &self,
        channel: u64,
        rq_type: u64,
        flags: u64,
        payload: impl Into<Vec<u8>>,
        budget: Duration,
    ) -> Result<Pending, SubmitError> {
        self.caller.submit_with_budget(channel, rq_type, flags, payload, budget)
    }

    /// Opens a streaming request (see [`Peer::stream`], which has an
    /// example).
    ///
    /// # Errors
    /// As [`Peer::stream`].
    pub fn stream(
        &self,
        rq_type: u64,
        flags: u64,
        payload: impl Into<Vec<u8>>,
        options: StreamOptions,
    ) -> Result<Stream, StreamOpenError> {
        self.caller.stream(rq_type, flags, payload, options)
    }

    /// Sends a request and waits for its answer.
    ///
    /// # Errors
    /// [`CallError::Failed`] when the peer answers ok = 0; otherwise as
    /// [`submit`](Self::submit) and [`Pending::wait`].
    pub fn call(&self, rq_type: u64, flags: u64, payload: impl Into<Vec<u8>>) -> Result<Response, CallError> {
        self.caller.call(rq_type, flags, payload)
    }

    /// [`call`](Self::call) on a chosen channel.
    ///
    /// # Errors
    /// As [`call`](Self::call).
    pub fn call_on(
        &self,
        channel: u64,
        rq_type: u64,
        flags: u64,
        payload: impl Into<Vec<u8>>,
    ) -> Result<Response, CallError> {
        self.caller.call_on(channel, rq_type, flags, payload)
    }

    /// [`call`](Self::call) with one `timeout` for queueing and answer
    /// together. On [`CallTimeoutError::Timeout`] the request is given up.
    ///
    /// # Errors
    /// As [`call`](Self::call), plus [`CallTimeoutError::Timeout`].
    pub fn call_timeout(
        &self,
        rq_type: u64,
        flags: u64,
        payload: impl Into<Vec<u8>>,
        timeout: Duration,
    ) -> Result<Response, CallTimeoutError> {
        self.caller.call_timeout(rq_type, flags, payload, timeout)
    }

    /// Sends ERQ: this side will make no more requests (its requests in
    /// flight are still answered). Further submits fail with
    /// [`ConnectionError::Closed`].
    ///
    /// # Errors
    /// Why the connection has already ended, if it has.
    pub fn end_requests(&self) -> Result<(), ConnectionError> {
        self.calls.refuse_new(ConnectionError::Closed);
        self.send.send_control(Packet::erq(), None).map_err(|_| self.send.ended_reason())
    }

    /// Blocks until the peer ends its stream (EOF packet or end of input), as
    /// a server does before closing. `Ok` for a clean end.
    ///
    /// # Errors
    /// The I/O or protocol error that ended reading.
    pub fn join_recv(&self) -> Result<(), ConnectionError> {
        let _ = self.reading_done.recv();
        self.reading_outcome()
    }

    /// [`join_recv`](Self::join_recv) for at most `timeout`.
    ///
    /// # Errors
    /// As [`join_recv`](Self::join_recv), plus [`JoinTimeoutError::Timeout`].
    pub fn join_recv_timeout(&self, timeout: Duration) -> Result<(), JoinTimeoutError> {
        match self.reading_done.recv_timeout(timeout) {
            Err(RecvTimeoutError::Timeout) => Err(JoinTimeoutError::Timeout),
            _ => Ok(self.reading_outcome()?),
        }
    }

    /// A receiver that disconnects when reading ends, for the layers above
    /// that watch many connections at once with one `Select` (a server)
    /// instead of a thread blocked in [`join_recv`](Self::join_recv) each.
    pub(crate) fn reading_ended(&self) -> Receiver<()> {
        self.reading_done.clone()
    }

    /// What unblocks the threads on the transport (shuts a socket down,
    /// kills a child), for a layer above that must end many connections
    /// against one deadline: close interrupts only after its own deadline,
    /// one connection at a time.
    pub(crate) fn interrupter(&self) -> Option<Arc<dyn Fn() + Send + Sync>> {
        self.open.as_ref().and_then(|open| open.hooks.lock().interrupt.clone())
    }

    fn reading_outcome(&self) -> Result<(), ConnectionError> {
        self.serving.reading_outcome().unwrap_or(Err(ConnectionError::Closed))
    }

    /// Where the negotiation of protocol extensions stands (see
    /// [`ConfigBuilder::extensions`](crate::ConfigBuilder::extensions)).
    pub fn extensions(&self) -> Extensions {
        self.control.state()
    }

    /// Waits at most `timeout` for the negotiation of extensions to settle
    /// (the peer's answer to the probe); where it stands then.
    pub fn wait_extensions(&self, timeout: Duration) -> Extensions {
        self.control.wait_settled(Instant::now().checked_add(timeout))
    }

    /// The reason the peer gave when it closed, if it has closed with one.
    pub fn peer_quit_reason(&self) -> Option<String> {
        self.control.peer_quit_reason().map(|reason| reason.to_string())
    }

    /// Shuts the connection down in order: ERQ; running handlers finish and
    /// their answers are sent; EOF; then wait for the peer's EOF. The whole
    /// takes at most [`Config::close_timeout`], plus 200 ms kept for sending
    /// EOF when handlers used up the timeout, plus a second if the transport
    /// had to be interrupted or a child had to be waited for and killed: a
    /// peer that never sends EOF cannot hold it up. Requests still waiting
    /// then fail with [`ConnectionError::Closed`]. The steps and their
    /// outcomes are in the report ([`Finished::report`], [`CloseError::report`]).
    ///
    /// # Errors
    /// The first thing that went wrong (see [`CloseError::problem`]): an
    /// I/O or protocol error that ended the connection earlier, a deadline
    /// that passed with something still running, a thread's panic, a child
    /// that could not be reaped.
    pub fn close(self) -> Result<Finished, CloseError> {
        self.close_with(CloseOptions::new())
    }

    /// [`close`](Self::close) with options: a reason for the peer, another
    /// timeout or a deadline.
    ///
    /// # Errors
    /// As [`close`](Self::close).
    pub fn close_with(mut self, options: CloseOptions) -> Result<Finished, CloseError> {
        let open = self.open.take().expect("only close and drop take the open parts, and both consume the connection");
        self.shut(open, options)
    }

    fn shut(&self, open: Open, options: CloseOptions) -> Result<Finished, CloseError> {
        let parts = Parts {
            name: &self.name,
            calls: &self.calls,
            send: &self.send,
            serving: &self.serving,
            control: &self.control,
            reading_done: &self.reading_done,
            threads: open.threads,
            hooks: open.hooks.into_inner(),
            timeout: self.close_timeout,
        };
        close::close(parts, options)
    }
}

// Callers share one connection across threads.
const _: () = {
    const fn is_send_sync<T: Send + Sync>() {}
    is_send_sync::<PacketConnection>();
    is_send_sync::<Pending>();
};

impl Drop for PacketConnection {
    fn drop(&mut self) {
        if let Some(open) = self.open.take() {
            if let Err(error) = self.shut(open, CloseOptions::new()) {
                log::warn!("{}: close on drop: {error}", self.name);
            }
        }
    }
}

impl std::fmt::Debug for PacketConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PacketConnection")
            .field("name", &self.name)
            .field("open", &self.open.is_some())
            .field("outstanding", &self.outstanding())
            .field("extensions", &self.extensions())
            .finish()
    }
}
