//! The connection: starts the reader and writer threads, hands out request
//! handles, and shuts everything down in order.

use std::any::Any;
use std::process::ExitStatus;
use std::sync::atomic::{AtomicU32, Ordering::SeqCst};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, SendTimeoutError, Sender, TrySendError};
use parking_lot::Mutex;

use crate::codec::PacketReader;
use crate::config::Config;
use crate::error::Error;
use crate::handler::{Handler, Response};
use crate::outbox::{Backlog, Outbox, CORK_BYTES, DIRECT_PAYLOAD};
use crate::packet::{check_request, Packet};
use crate::pending::{Pending, Slot};
use crate::pool::Pool;
use crate::reader::{self, ReaderEnd};
use crate::stats::{Counters, Stats};
use crate::tagmap::{Lookup, TagMap};
use crate::threads::{self, Thread};
use crate::transport::{self, Hooks, Transport, WriteHalf};
use crate::writer::{self, Outgoing};

/// After close has interrupted the transport, how long it still waits for the
/// threads to notice.
const AFTER_INTERRUPT: Duration = Duration::from_secs(1);

/// The least time close leaves for sending EOF and hearing the peer's, even
/// when handlers used up the close timeout.
const FAREWELL: Duration = Duration::from_millis(200);

/// A packet is flushed at once by the thread that sends it when at most this
/// many requests (ours, or the peer's in service) are in flight: latency is
/// what matters then. More in flight means load, where leaving it staged to
/// go out with others saves write calls and wake-ups.
pub(crate) const FEW_IN_FLIGHT: usize = 4;

/// State shared by the connection handle, its threads and the request handles.
pub(crate) struct Shared {
    pub name: String,
    pub config: Config,
    pub tags: Mutex<TagMap>,
    /// The send queue, to the writer thread.
    pub out: Sender<Outgoing>,
    /// The staging buffer and the stream.
    pub outbox: Outbox,
    pub counters: Counters,
    pub pool: Pool,
    /// How reading ended: `Ok` for the peer's EOF or end of stream.
    recv_end: Mutex<Option<Result<(), Error>>>,
    /// What reading left, for close.
    reader_end: Mutex<Option<ReaderEnd>>,
    /// Dropped when reading ends.
    recv_done: Mutex<Option<Sender<()>>>,
    /// Waits with many requests in flight that sleep at once, after a spin
    /// that the answer did not end.
    pub spin_backoff: AtomicU32,
}

impl Shared {
    /// A response arrived: find its caller's slot and what to deliver there.
    pub fn resolve(&self, packet: Packet) -> Option<(Arc<Slot>, Result<Response, Error>)> {
        let (channel, tag) = (packet.channel, packet.tag);
        let found = self.tags.lock().lookup(channel, tag);
        match found {
            Lookup::Waiting(slot) => {
                Counters::bump(&self.counters.reader.responses_in, 1);
                let flags = packet.wire_flags >> 1;
                let payload = packet.payload;
                let outcome = if packet.wire_flags & 1 == 1 {
                    Ok(Response { flags, payload })
                } else {
                    Err(Error::Failed(crate::Failure { flags, payload }))
                };
                Some((slot, outcome))
            }
            Lookup::Forgotten => {
                log::debug!("{}: dropping late response to cancelled request {channel}:{tag}", self.name);
                None
            }
            Lookup::Unknown => {
                log::warn!("{}: ignoring response to unknown request {channel}:{tag}", self.name);
                None
            }
        }
    }

    /// A cancelled or dropped request: free its tag.
    pub fn forget(&self, channel: u64, tag: u64) {
        self.tags.lock().remove(channel, tag);
    }

    /// Sends a packet. A small one without a deadline is staged, and
    /// flushed at once when `urgent` (few packets in flight); anything else
    /// goes through the queue to the writer thread, waiting for room until
    /// `deadline`.
    pub fn send(&self, packet: Packet, urgent: bool, deadline: Option<Instant>) -> Result<(), Error> {
        // Staging while packets are queued would let this one overtake them.
        if deadline.is_none() && packet.payload.len() < DIRECT_PAYLOAD && self.out.is_empty() {
            let backlog = self.outbox.stage(&packet, self)?;
            return self.after_staging(backlog, urgent);
        }
        let packet = Outgoing::Packet(packet);
        match deadline {
            None => self.out.send(packet).map_err(|_| self.ended_reason()),
            Some(deadline) => self.out.send_deadline(packet, deadline).map_err(|error| match error {
                SendTimeoutError::Timeout(_) => Error::Timeout,
                SendTimeoutError::Disconnected(_) => self.ended_reason(),
            }),
        }
    }

    /// Flushes what is staged if it is time to, else leaves it to the grace
    /// timer.
    fn after_staging(&self, backlog: Backlog, urgent: bool) -> Result<(), Error> {
        if backlog.over_limit() {
            self.outbox.flush_waiting(self)
        } else if urgent || backlog.worth_a_write() || self.config.packet_grace.is_zero() {
            self.outbox.flush(self)
        } else {
            self.start_grace_timer();
            Ok(())
        }
    }

    /// Makes sure the writer thread's grace timer will flush what is staged.
    fn start_grace_timer(&self) {
        let armed = &self.outbox.timer_armed;
        if !armed.load(SeqCst) && !armed.swap(true, SeqCst) && self.out.try_send(Outgoing::Corked).is_err() {
            // A full queue keeps the writer busy, and it writes what is
            // staged with every batch; a closed one has nothing to flush.
            armed.store(false, SeqCst);
        }
    }

    /// Has the writer thread flush what is staged, for the reader, which
    /// must not write when no one could read in its place. A full queue
    /// means the writer is at work and will.
    pub fn request_flush(&self) {
        let _ = self.out.try_send(Outgoing::Flush);
    }

    /// Sends the answer to a request the reader ran itself, from inside its
    /// section: staged, to be written with the others before the reader
    /// blocks on the stream again (as an echo server flushes when its input
    /// runs dry), or at once if it is large. Returns whether the staging
    /// buffer is past its limit.
    pub fn send_reply(&self, packet: Packet) -> bool {
        let packet = if packet.payload.len() >= DIRECT_PAYLOAD {
            match self.out.try_send(Outgoing::Packet(packet)) {
                Ok(()) => {
                    Counters::add(&self.counters.senders.responses_out, 1);
                    return false;
                }
                Err(TrySendError::Full(Outgoing::Packet(packet))) => packet,
                Err(_) => return false,
            }
        } else {
            packet
        };
        let Ok(backlog) = self.outbox.stage(&packet, self) else {
            return false;
        };
        Counters::add(&self.counters.senders.responses_out, 1);
        if backlog.bytes >= CORK_BYTES {
            let _ = self.outbox.flush(self);
        }
        backlog.over_limit()
    }

    /// Why packets can no longer be sent: the error that stopped the
    /// connection, if any.
    pub fn ended_reason(&self) -> Error {
        self.tags.lock().refusal().unwrap_or(Error::Closed)
    }

    /// Sends a handler's response, waiting for room: a worker may wait for
    /// the peer, the reader may not.
    pub fn send_response(&self, packet: Packet, alone: bool) {
        if self.send(packet, alone, None).is_ok() {
            Counters::add(&self.counters.senders.responses_out, 1);
        }
    }

    /// Queues a refusal (ok = 0 with `text`) without ever blocking: if the
    /// queue is full, a worker sends it.
    pub fn reject(self: &Arc<Self>, channel: u64, tag: u64, text: String) -> Result<(), Error> {
        log::debug!("{}: refusing request {channel}:{tag}: {text}", self.name);
        let packet = Packet::response_unchecked(channel, tag, false, 0, text.into_bytes());
        match self.out.try_send(Outgoing::Packet(packet)) {
            Ok(()) => {
                Counters::add(&self.counters.senders.responses_out, 1);
                Ok(())
            }
            Err(TrySendError::Full(Outgoing::Packet(packet))) => self.pool.send_later(packet, self),
            Err(_) => Ok(()),
        }
    }

    /// Fails every waiting request with `reason` and refuses new ones.
    pub fn connection_failed(&self, reason: Error) {
        let slots = self.tags.lock().fail_all(reason.clone());
        for slot in slots {
            slot.complete(Err(reason.clone()));
        }
    }

    pub fn reading_ended(&self, outcome: Result<(), Error>, end: ReaderEnd) {
        // No more responses can arrive: whoever still waits gets the reason.
        self.connection_failed(outcome.clone().err().unwrap_or(Error::Closed));
        *self.recv_end.lock() = Some(outcome);
        *self.reader_end.lock() = Some(end);
        self.recv_done.lock().take();
    }
}

struct Threads {
    reader: Thread<()>,
    writer: Thread<Result<Box<dyn WriteHalf>, Error>>,
}

/// A bidirectional request/response connection over a byte stream.
///
/// Any number of threads may submit requests through `&self` at once; the
/// peer's requests are answered by the handler given at start, on a pool of
/// worker threads. See the [crate documentation](crate) for a tour.
pub struct PacketConnection {
    shared: Arc<Shared>,
    threads: Option<Threads>,
    /// Only touched by close; the mutex makes the connection `Sync` although
    /// a shutdown hook need not be.
    hooks: Mutex<Hooks>,
    recv_done: Receiver<()>,
}

/// What is left after a [`PacketConnection::close`].
pub struct Finished {
    exit_status: Option<ExitStatus>,
    streams: Option<(Box<dyn Any + Send>, Box<dyn Any + Send>)>,
    unread: Vec<u8>,
}

impl Finished {
    /// How the child process ended, for a [`Transport::spawn`] connection.
    pub fn exit_status(&self) -> Option<ExitStatus> {
        self.exit_status
    }

    /// Bytes the peer sent after its EOF packet, which nothing read.
    pub fn unread(&self) -> &[u8] {
        &self.unread
    }

    /// The streams the connection was given, still open, for reuse: `R` and
    /// `W` are the types passed to [`Transport::new`] (`TcpStream` for
    /// [`Transport::tcp`], `File` for [`Transport::fds`], ...). `None` if the
    /// types do not match, or for a child's stdio, which close has closed.
    pub fn into_streams<R: 'static, W: 'static>(self) -> Option<(R, W)> {
        let (reader, writer) = self.streams?;
        match (reader.downcast::<R>(), writer.downcast::<W>()) {
            (Ok(reader), Ok(writer)) => Some((*reader, *writer)),
            _ => None,
        }
    }
}

impl std::fmt::Debug for Finished {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Finished")
            .field("exit_status", &self.exit_status)
            .field("streams", &self.streams.is_some())
            .field("unread", &self.unread.len())
            .finish()
    }
}

impl PacketConnection {
    /// Starts a connection that makes requests but serves none: the peer's
    /// requests are refused with `no request handler`.
    ///
    /// # Errors
    /// When an on-demand transport fails to open or a thread cannot start.
    pub fn new(transport: Transport, config: Config) -> Result<Self, Error> {
        Self::start(transport, config, None)
    }

    /// Starts a connection whose peer's requests are answered by `handler`.
    ///
    /// # Errors
    /// As [`new`](Self::new).
    pub fn with_handler(transport: Transport, config: Config, handler: impl Handler) -> Result<Self, Error> {
        Self::start(transport, config, Some(Arc::new(handler)))
    }

    fn start(transport: Transport, config: Config, handler: Option<Arc<dyn Handler>>) -> Result<Self, Error> {
        let transport::Opened { reader, writer, hooks } = transport.open()?;
        let (out, queue) = crossbeam_channel::bounded(config.send_queue);
        let (recv_done_tx, recv_done) = crossbeam_channel::bounded(0);
        let name = config.name.clone();
        let shared = Arc::new(Shared {
            name: name.clone(),
            pool: Pool::new(handler, config.workers, config.max_incoming),
            tags: Mutex::new(TagMap::default()),
            out,
            outbox: Outbox::new(writer),
            counters: Counters::default(),
            recv_end: Mutex::new(None),
            reader_end: Mutex::new(None),
            recv_done: Mutex::new(Some(recv_done_tx)),
            spin_backoff: AtomicU32::new(0),
            config,
        });
        let writer = {
            let shared = Arc::clone(&shared);
            threads::spawn(format!("{name}-writer"), move || writer::run(queue, shared))?
        };
        let packets = PacketReader::new(reader, shared.config.max_packet_size);
        let reader = {
            let shared = Arc::clone(&shared);
            threads::spawn(shared.pool.thread_name(shared.pool.reader_number(), &shared), move || {
                reader::run(packets, shared)
            })
        };
        let reader = match reader {
            Ok(reader) => reader,
            Err(error) => {
                // The writer ends once it has sent EOF.
                let _ = shared.out.send(Outgoing::Packet(Packet::eof()));
                let _ = writer.join();
                return Err(error.into());
            }
        };
        log::debug!("{name}: started");
        Ok(PacketConnection { shared, recv_done, threads: Some(Threads { reader, writer }), hooks: Mutex::new(hooks) })
    }

    /// The connection's name (see [`Config::name`]).
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// The connection's counters.
    pub fn stats(&self) -> Stats {
        self.shared.counters.snapshot()
    }

    /// How many of this side's requests await an answer.
    pub fn outstanding(&self) -> usize {
        self.shared.tags.lock().outstanding()
    }

    /// Sends a request of type `rq_type` on channel 0 and returns its handle.
    /// Blocks while the send queue is full.
    ///
    /// # Errors
    /// [`Error::FlagsTooLarge`] / [`Error::RqTypeTooLarge`] for values that
    /// do not fit on the wire; a connection error once the connection has
    /// ended or after [`end_requests`](Self::end_requests).
    pub fn submit(&self, rq_type: u64, flags: u64, payload: impl Into<Vec<u8>>) -> Result<Pending, Error> {
        self.submit_inner(0, rq_type, flags, payload.into(), None)
    }

    /// [`submit`](Self::submit) on a chosen channel.
    ///
    /// # Errors
    /// As [`submit`](Self::submit).
    pub fn submit_on(
        &self,
        channel: u64,
        rq_type: u64,
        flags: u64,
        payload: impl Into<Vec<u8>>,
    ) -> Result<Pending, Error> {
        self.submit_inner(channel, rq_type, flags, payload.into(), None)
    }

    /// [`submit_on`](Self::submit_on), waiting at most `timeout` for room in
    /// the send queue; [`Error::Timeout`] if there is none by then, and then
    /// nothing was sent.
    ///
    /// # Errors
    /// As [`submit`](Self::submit), plus [`Error::Timeout`].
    pub fn submit_timeout(
        &self,
        channel: u64,
        rq_type: u64,
        flags: u64,
        payload: impl Into<Vec<u8>>,
        timeout: Duration,
    ) -> Result<Pending, Error> {
        let deadline = Instant::now().checked_add(timeout);
        self.submit_inner(channel, rq_type, flags, payload.into(), deadline)
    }

    fn submit_inner(
        &self,
        channel: u64,
        rq_type: u64,
        flags: u64,
        payload: Vec<u8>,
        deadline: Option<Instant>,
    ) -> Result<Pending, Error> {
        check_request(rq_type, flags)?;
        let slot = Arc::new(Slot::new());
        let (tag, in_flight) = {
            let mut tags = self.shared.tags.lock();
            (tags.register(channel, Arc::clone(&slot))?, tags.outstanding())
        };
        let packet = Packet { channel, tag, wire_flags: flags, wire_type: Some(rq_type + 1), payload };
        if let Err(error) = self.shared.send(packet, in_flight <= FEW_IN_FLIGHT, deadline) {
            self.shared.forget(channel, tag);
            return Err(error);
        }
        Counters::add(&self.shared.counters.senders.requests_out, 1);
        Ok(Pending::new(slot, channel, tag, Arc::clone(&self.shared)))
    }

    /// Sends a request and waits for its answer.
    ///
    /// # Errors
    /// [`Error::Failed`] when the peer answers ok = 0; otherwise as
    /// [`submit`](Self::submit) and [`Pending::wait`].
    pub fn call(&self, rq_type: u64, flags: u64, payload: impl Into<Vec<u8>>) -> Result<Response, Error> {
        self.submit(rq_type, flags, payload)?.wait()
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
    ) -> Result<Response, Error> {
        self.submit_on(channel, rq_type, flags, payload)?.wait()
    }

    /// [`call`](Self::call) with one `timeout` for queueing and answer
    /// together. On [`Error::Timeout`] the request is cancelled.
    ///
    /// # Errors
    /// As [`call`](Self::call), plus [`Error::Timeout`].
    pub fn call_timeout(
        &self,
        rq_type: u64,
        flags: u64,
        payload: impl Into<Vec<u8>>,
        timeout: Duration,
    ) -> Result<Response, Error> {
        let deadline = Instant::now().checked_add(timeout);
        let mut pending = self.submit_inner(0, rq_type, flags, payload.into(), deadline)?;
        match deadline {
            Some(deadline) => pending.wait_deadline(deadline),
            None => pending.wait(),
        }
    }

    /// Sends ERQ: this side will make no more requests (its requests in
    /// flight are still answered). Further submits fail with
    /// [`Error::Closed`].
    ///
    /// # Errors
    /// A connection error if the connection has already ended.
    pub fn end_requests(&self) -> Result<(), Error> {
        self.shared.tags.lock().refuse_new(Error::Closed);
        self.shared.out.send(Outgoing::Packet(Packet::erq())).map_err(|_| self.shared.ended_reason())
    }

    /// Blocks until the peer ends its stream (EOF packet or end of input), as
    /// a server does before closing. `Ok` for a clean end.
    ///
    /// # Errors
    /// The I/O or protocol error that ended reading.
    pub fn join_recv(&self) -> Result<(), Error> {
        let _ = self.recv_done.recv();
        self.recv_outcome()
    }

    /// [`join_recv`](Self::join_recv) for at most `timeout`.
    ///
    /// # Errors
    /// As [`join_recv`](Self::join_recv), plus [`Error::Timeout`].
    pub fn join_recv_timeout(&self, timeout: Duration) -> Result<(), Error> {
        match self.recv_done.recv_timeout(timeout) {
            Err(RecvTimeoutError::Timeout) => Err(Error::Timeout),
            _ => self.recv_outcome(),
        }
    }

    fn recv_outcome(&self) -> Result<(), Error> {
        self.shared.recv_end.lock().clone().unwrap_or(Err(Error::Closed))
    }

    /// Shuts the connection down in order: ERQ; running handlers finish and
    /// their answers are sent; EOF; flush; then wait for the peer's EOF. The
    /// whole takes at most [`Config::close_timeout`], plus 200 ms kept for
    /// sending EOF when handlers used up the timeout, plus a second if the
    /// transport had to be interrupted or a child had to be waited for and
    /// killed: a peer that never sends EOF cannot hold it up. Requests still waiting then fail with [`Error::Closed`].
    ///
    /// # Errors
    /// The first thing that went wrong: an I/O or protocol error that ended
    /// the connection earlier, [`Error::CloseTimeout`] naming what was still
    /// running at the deadline, a thread's panic, a child that could not be
    /// reaped.
    pub fn close(mut self) -> Result<Finished, Error> {
        self.shutdown()
    }

    fn shutdown(&mut self) -> Result<Finished, Error> {
        let Some(threads) = self.threads.take() else {
            return Err(Error::Closed);
        };
        let shared = &self.shared;
        let hooks = self.hooks.get_mut();
        let deadline = Instant::now() + shared.config.close_timeout;
        let mut problem: Option<Error> = None;
        log::debug!("{}: closing", shared.name);

        shared.tags.lock().refuse_new(Error::Closed);
        // If the writer is gone these cannot be sent; its join says why.
        let _ = shared.out.send_deadline(Outgoing::Packet(Packet::erq()), deadline);
        if let Err(error) = shared.pool.drain(deadline, shared) {
            problem.get_or_insert(error);
        }
        // Handlers may have used up the deadline; the goodbye still gets a
        // moment to go out.
        let deadline = deadline.max(Instant::now() + FAREWELL);
        if let Err(SendTimeoutError::Timeout(_)) = shared.out.send_deadline(Outgoing::Packet(Packet::eof()), deadline) {
            problem.get_or_insert(Error::CloseTimeout("the peer is not reading: send queue still full".into()));
        }

        let reading_done =
            |until: Instant| !matches!(self.recv_done.recv_deadline(until), Err(RecvTimeoutError::Timeout));
        let mut writer_done = threads.writer.wait_until(deadline);
        let mut read_done = writer_done && reading_done(deadline);
        if !(writer_done && read_done) {
            if let Some(interrupt) = &hooks.interrupt {
                log::debug!("{}: close deadline passed: interrupting the transport", shared.name);
                // Said before the threads are looked at: an interrupted
                // socket reads as a clean end, which it was not.
                problem.get_or_insert(Error::CloseTimeout(
                    "the peer did not finish by the deadline: transport interrupted".into(),
                ));
                interrupt();
                let grace = Instant::now() + AFTER_INTERRUPT;
                writer_done = threads.writer.wait_until(grace);
                read_done = reading_done(grace);
            } else {
                read_done = reading_done(Instant::now());
            }
        }

        // What ended reading is the cause; a writer's broken pipe after it
        // is only a consequence.
        if let Some(Err(error)) = shared.recv_end.lock().clone() {
            problem.get_or_insert(error);
        }
        let mut stuck = Vec::new();
        // The thread blocked on the stream, if reading did not end.
        let reading_thread = (!read_done).then(|| shared.pool.reading_thread_number());
        let writer = if writer_done {
            match threads.writer.join() {
                Ok(Ok(writer)) => Some(writer),
                // The peer ended cleanly and went away before our own EOF
                // could reach it: nothing was lost.
                Ok(Err(Error::Io(error))) if peer_gone(&error) && matches!(*shared.recv_end.lock(), Some(Ok(()))) => {
                    None
                }
                Ok(Err(error)) | Err(error) => {
                    problem.get_or_insert(error);
                    None
                }
            }
        } else {
            stuck.push(threads.writer.detach());
            None
        };
        // Reading is over (or stuck for good): the workers and the reader
        // thread can go, except a thread stuck in a handler or on the stream.
        let exit_by = Instant::now() + AFTER_INTERRUPT;
        if let Err(error) = shared.pool.close(exit_by, reading_thread) {
            problem.get_or_insert(error);
        }
        let reader_number = shared.pool.reader_number();
        let reader_stuck = shared.pool.is_busy(reader_number) || reading_thread == Some(reader_number);
        if threads.reader.wait_until(if reader_stuck { Instant::now() } else { exit_by }) {
            if let Err(error) = threads.reader.join() {
                problem.get_or_insert(error);
            }
        } else {
            let name = threads.reader.detach();
            if reading_thread != Some(reader_number) {
                problem.get_or_insert(Error::CloseTimeout(format!("request handlers still running on {name}")));
            }
        }
        if let Some(number) = reading_thread {
            stuck.push(shared.pool.thread_name(number, shared));
        }
        if !stuck.is_empty() {
            let what = format!("{} still blocked on the stream, left running", stuck.join(" and "));
            problem.get_or_insert(Error::CloseTimeout(what));
        }
        shared.connection_failed(Error::Closed);

        let reader = shared.reader_end.lock().take();
        let unread = reader.as_ref().map(|end| end.unread.clone()).unwrap_or_default();
        let mut streams = match (reader, writer) {
            (Some(reader), Some(writer)) => Some((reader.reader.into_any(), writer.into_any())),
            _ => None,
        };
        if hooks.close_streams {
            streams = None;
        }
        let mut exit_status = None;
        if let Some(child) = hooks.child.take() {
            // Its stdin must be closed (dropped above) before it can exit.
            let reap_by = deadline.max(Instant::now() + Duration::from_millis(500));
            match transport::reap(&child, reap_by) {
                Ok(status) => exit_status = Some(status),
                Err(error) => {
                    problem.get_or_insert(Error::Child(Arc::new(error)));
                }
            }
        }
        if let Some(shutdown) = hooks.shutdown.take() {
            shutdown();
        }
        log::debug!("{}: closed", shared.name);
        match problem {
            Some(error) => Err(error),
            None => Ok(Finished { exit_status, streams, unread }),
        }
    }
}

fn peer_gone(error: &std::io::Error) -> bool {
    matches!(error.kind(), std::io::ErrorKind::BrokenPipe | std::io::ErrorKind::ConnectionReset)
}

// Callers share one connection across threads.
const _: () = {
    const fn is_send_sync<T: Send + Sync>() {}
    is_send_sync::<PacketConnection>();
    is_send_sync::<Pending>();
};

impl Drop for PacketConnection {
    fn drop(&mut self) {
        if self.threads.is_some() {
            if let Err(error) = self.shutdown() {
                log::warn!("{}: close on drop: {error}", self.shared.name);
            }
        }
    }
}

impl std::fmt::Debug for PacketConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PacketConnection")
            .field("name", &self.shared.name)
            .field("open", &self.threads.is_some())
            .field("outstanding", &self.outstanding())
            .finish()
    }
}
