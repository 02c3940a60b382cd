//! The handler pool: worker threads that run the request handler, so that a
//! slow request does not hold up the others, and the watch that lets the
//! reader run quick requests itself.
//!
//! Handing a request from the reader to a worker costs a thread wake-up on
//! every round trip, and for a handler that answers in a microsecond that is
//! most of the work. So when the pool is idle the reader runs the handler
//! itself, in a *section*: before it starts, it leaves its reading state
//! here, and the idle worker on top of the stack watches with a timed park.
//! If the same section is still running one [`WATCH_TICK`] later (a handler
//! that blocks, calls back into the peer, or a write the peer does not
//! read), that worker takes the reading state and carries on reading in the
//! reader's place; the stuck thread becomes a worker when it is free. Slow
//! handlers (and a takeover) pause this for [`INLINE_PAUSE`], so that
//! requests go to the workers, in parallel, as before.
//!
//! The queue is a plain mutex and a stack of parked workers rather than a
//! channel. An idle worker parks at once: on a small machine a worker that
//! spins or yields while waiting takes the CPU from the thread doing the work.
//! The worker woken is the one that went idle last, whose cache is still warm
//! (waking the longest-idle one, as a condition variable does, halves the
//! rate of sequential calls on two cores). The same lock keeps the set of
//! requests in service, so admitting a request and finishing one cost one
//! lock each.

use std::collections::{HashSet, VecDeque};
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::thread::{self as std_thread, Thread};
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex, MutexGuard};

use crate::connection::{Shared, FEW_IN_FLIGHT};
use crate::error::{Error, ProtocolError};
use crate::handler::{Handler, Request};
use crate::packet::Packet;
use crate::reader::{self, ReadState};
use crate::tagmap::TagBuild;
use crate::threads::{self, panic_message, Thread as Worker};

/// How often the watching worker looks at the reader's section; a section
/// running across a whole tick is taken to be stuck.
pub(crate) const WATCH_TICK: Duration = Duration::from_millis(1);
/// A handler the reader ran for longer than this counts as slow.
const INLINE_SLOW: Duration = Duration::from_micros(200);
/// One in this many handlers the reader runs is timed.
const INLINE_TIMED: u64 = 8;
/// After a slow handler or a takeover, requests go to the workers for this
/// long before the reader tries again.
const INLINE_PAUSE: Duration = Duration::from_millis(100);

pub(crate) enum Job {
    /// A request for the handler.
    Serve(Packet),
    /// A ready response that the reader could not queue without blocking.
    Send(Packet),
    /// The reader is stuck: read in its place.
    Read(ReadState),
}

/// `(channel, tag)` of a request.
pub(crate) type Key = (u64, u64);

/// The reader's section in progress.
struct Section {
    number: u64,
    /// The request whose handler runs, or `None` for a flush.
    key: Option<Key>,
    /// Which thread runs it.
    thread: usize,
    /// The reading state, left here for a takeover.
    reading: ReadState,
}

#[derive(Default)]
struct State {
    /// Unbounded so that the reader never waits on it; `max_incoming` bounds
    /// what it holds.
    jobs: VecDeque<Job>,
    /// The peer's requests admitted and not yet answered, by `(channel, tag)`.
    serving: HashSet<Key, TagBuild>,
    /// Parked workers, by worker number, the last to go idle on top. The
    /// top one watches the reader's sections.
    idle: Vec<(usize, Thread)>,
    /// Whether the worker on top of `idle` parks with a timeout to watch;
    /// when false it sleeps until woken.
    watching: bool,
    /// The section in progress; a takeover ends it early.
    section: Option<Section>,
    /// Sections started so far, so a watcher can tell a new one from an old.
    sections: u64,
    /// The reader runs no handler before then.
    inline_paused_until: Option<Instant>,
    /// Which threads are in a handler, by thread number (the workers, then
    /// the reader), for close to name them.
    busy: Vec<bool>,
    /// Set by close: requests are refused from now on.
    closing: bool,
    /// Set once reading has ended and close is done: workers exit.
    closed: bool,
    /// Workers start with the first job, so a connection that serves nothing
    /// has none.
    started: bool,
}

impl State {
    fn drained(&self) -> bool {
        self.jobs.is_empty() && self.serving.is_empty() && self.section.as_ref().is_none_or(|s| s.key.is_none())
    }
}

pub(crate) struct Pool {
    handler: Option<Arc<dyn Handler>>,
    size: usize,
    limit: usize,
    state: Mutex<State>,
    /// Signalled while closing when the last request in service is done.
    drained: Condvar,
    workers: Mutex<Vec<Worker<()>>>,
    /// Which thread reads the stream, by number.
    reading: AtomicUsize,
}

impl Pool {
    pub fn new(handler: Option<Arc<dyn Handler>>, size: usize, limit: usize) -> Self {
        let state = State { busy: vec![false; size + 1], ..State::default() };
        Pool {
            handler,
            size,
            limit,
            state: Mutex::new(state),
            drained: Condvar::new(),
            workers: Mutex::new(Vec::new()),
            reading: AtomicUsize::new(size),
        }
    }

    pub fn set_reading_thread(&self, number: usize) {
        self.reading.store(number, Relaxed);
    }

    /// The number of the thread that reads the stream.
    pub fn reading_thread_number(&self) -> usize {
        self.reading.load(Relaxed)
    }

    pub fn has_handler(&self) -> bool {
        self.handler.is_some()
    }

    /// The reader thread's number, after the workers'.
    pub fn reader_number(&self) -> usize {
        self.size
    }

    /// The name of thread `number`: a worker, or the reader after them.
    pub fn thread_name(&self, number: usize, shared: &Shared) -> String {
        if number == self.size {
            format!("{}-reader", shared.name)
        } else {
            format!("{}-worker-{number}", shared.name)
        }
    }

    /// Admits requests for the handler, all under one lock and with one
    /// wake-up. Returns the refusals to send: `(channel, tag, text)` for a
    /// tag already in service, or every request once the pool is closing.
    ///
    /// # Errors
    /// [`ProtocolError::TooManyIncoming`] past the configured limit.
    pub fn admit(&self, requests: &mut Vec<Packet>, shared: &Arc<Shared>) -> Result<Vec<(u64, u64, String)>, Error> {
        let mut refusals = Vec::new();
        let mut too_many = false;
        let mut state = self.state.lock();
        for packet in requests.drain(..) {
            let (channel, tag) = (packet.channel, packet.tag);
            if state.closing {
                refusals.push((channel, tag, "connection closing".to_owned()));
            } else if state.serving.len() >= self.limit {
                too_many = true;
                break;
            } else if !state.serving.insert((channel, tag)) {
                refusals.push((channel, tag, format!("channel {channel}: tag already in use: {tag}")));
            } else {
                state.jobs.push_back(Job::Serve(packet));
            }
        }
        // Those admitted are served even if the connection fails.
        self.wake(state, shared)?;
        if too_many {
            return Err(ProtocolError::TooManyIncoming { limit: self.limit }.into());
        }
        Ok(refusals)
    }

    /// Has a worker send a response the reader could not queue at once.
    ///
    /// # Errors
    /// [`ProtocolError::TooManyIncoming`] when such responses pile up past
    /// the limit: the peer sends requests and does not read.
    pub fn send_later(&self, packet: Packet, shared: &Arc<Shared>) -> Result<(), Error> {
        let mut state = self.state.lock();
        if state.closed {
            return Ok(());
        }
        if state.jobs.len() >= self.limit {
            return Err(ProtocolError::TooManyIncoming { limit: self.limit }.into());
        }
        state.jobs.push_back(Job::Send(packet));
        self.wake(state, shared)
    }

    /// Wakes one idle worker for new jobs (it wakes the next if more are
    /// waiting), or starts the workers on the first job.
    fn wake(&self, mut state: MutexGuard<'_, State>, shared: &Arc<Shared>) -> Result<(), Error> {
        if state.jobs.is_empty() {
            return Ok(());
        }
        let woken = state.idle.pop();
        // The new top of the stack sleeps until a section wakes it.
        state.watching = false;
        let start = !std::mem::replace(&mut state.started, true);
        drop(state);
        if let Some((_, worker)) = woken {
            worker.unpark();
        }
        if start {
            self.start_workers(shared)?;
        }
        Ok(())
    }

    fn start_workers(&self, shared: &Arc<Shared>) -> Result<(), Error> {
        let mut workers = self.workers.lock();
        for i in 0..self.size {
            let shared = Arc::clone(shared);
            workers.push(threads::spawn(self.thread_name(i, &shared), move || work(i, &shared))?);
        }
        Ok(())
    }

    /// Starts a section of the reader (thread `thread`): the handler of
    /// request `key`, or a flush when `key` is `None`. Gives the reading
    /// state back if the reader must not: no idle worker could watch, or
    /// for a handler, its tag is in service, the reader ran a slow one
    /// lately, or close began.
    /// Returns the section's number, for [`end_section`](Self::end_section).
    pub fn begin_section(&self, thread: usize, key: Option<Key>, reading: ReadState) -> Result<u64, ReadState> {
        let mut state = self.state.lock();
        if state.idle.is_empty() {
            return Err(reading);
        }
        if let Some(key) = key {
            // A tag in service is refused by admit, and a request past the
            // limit ends the connection there.
            if state.closing || state.serving.len() >= self.limit || state.serving.contains(&key) {
                return Err(reading);
            }
            if let Some(until) = state.inline_paused_until {
                if Instant::now() < until {
                    return Err(reading);
                }
                state.inline_paused_until = None;
            }
            state.busy[thread] = true;
        }
        state.sections += 1;
        state.section = Some(Section { number: state.sections, key, thread, reading });
        let watcher = if state.watching {
            None
        } else {
            state.watching = true;
            state.idle.last().map(|(_, worker)| worker.clone())
        };
        let number = state.sections;
        drop(state);
        if let Some(worker) = watcher {
            worker.unpark();
        }
        Ok(number)
    }

    /// Ends section `number` of thread `thread`; gives the reading state
    /// back, or `None` if a worker took it over meanwhile. `slow`: the
    /// handler took long enough that requests should go to the workers for
    /// a while.
    pub fn end_section(&self, number: u64, thread: usize, key: Option<Key>, slow: bool) -> Option<ReadState> {
        let mut state = self.state.lock();
        if key.is_some() {
            state.busy[thread] = false;
        }
        let reading = if state.section.as_ref().is_some_and(|s| s.number == number) {
            state.section.take().map(|section| section.reading)
        } else {
            // Taken over: the request was put in service then.
            if let Some(key) = key {
                state.serving.remove(&key);
            }
            None
        };
        if slow {
            state.inline_paused_until = Some(Instant::now() + INLINE_PAUSE);
        }
        if state.closing && state.drained() {
            self.drained.notify_all();
        }
        reading
    }

    /// The next job for worker `me`, parking while there is none; `None`
    /// once closed and drained.
    fn next_job(&self, me: usize, shared: &Shared) -> Option<Job> {
        let mut state = self.state.lock();
        let mut flushed = false;
        // The section seen at this worker's last look, when it watches, and
        // when it was first seen.
        let mut seen: Option<(u64, Instant)> = None;
        let mut seen_sections = state.sections;
        loop {
            if let Some(job) = state.jobs.pop_front() {
                // A worker woken spuriously is still on the stack; a wake-up
                // meant for an idle worker must not land on a busy one.
                if state.idle.last().is_some_and(|&(n, _)| n == me) {
                    state.watching = false;
                }
                state.idle.retain(|&(n, _)| n != me);
                if let Job::Serve(_) = job {
                    state.busy[me] = true;
                }
                // Pass the wake-up on while work remains, so that a slow
                // handler does not hold up the jobs queued behind it.
                let next = if state.jobs.is_empty() { None } else { state.idle.pop() };
                if next.is_some() {
                    state.watching = false;
                }
                drop(state);
                if let Some((_, worker)) = next {
                    worker.unpark();
                }
                return Some(job);
            }
            if state.closed {
                state.idle.retain(|&(n, _)| n != me);
                return None;
            }
            if !flushed {
                // Answers this worker left staged go out before it sleeps.
                flushed = true;
                MutexGuard::unlocked(&mut state, || {
                    let _ = shared.outbox.flush(shared);
                });
                continue;
            }
            if !state.idle.iter().any(|&(n, _)| n == me) {
                state.idle.push((me, std_thread::current()));
            }
            let on_top = state.idle.last().is_some_and(|&(n, _)| n == me);
            if on_top && state.section.is_some() {
                // A section began while no one was idle to watch it.
                state.watching = true;
            }
            if !(on_top && state.watching) {
                seen = None;
                MutexGuard::unlocked(&mut state, std_thread::park);
                continue;
            }
            match (state.section.as_ref().map(|s| s.number), seen) {
                (Some(number), Some((seen_number, since))) if number == seen_number => {
                    if since.elapsed() >= WATCH_TICK {
                        let section = state.section.take().expect("matched a section");
                        log::debug!(
                            "{}: {} stuck for {:?}: {} reads in its place",
                            shared.name,
                            self.thread_name(section.thread, shared),
                            since.elapsed(),
                            self.thread_name(me, shared)
                        );
                        if let Some(key) = section.key {
                            state.serving.insert(key);
                        }
                        state.inline_paused_until = Some(Instant::now() + INLINE_PAUSE);
                        state.idle.pop();
                        state.watching = false;
                        return Some(Job::Read(section.reading));
                    }
                }
                (Some(number), _) => seen = Some((number, Instant::now())),
                (None, _) if state.sections == seen_sections => {
                    // No section since the last look: sleep until one
                    // starts.
                    state.watching = false;
                    seen = None;
                    MutexGuard::unlocked(&mut state, std_thread::park);
                    seen_sections = state.sections;
                    continue;
                }
                (None, _) => seen = None,
            }
            seen_sections = state.sections;
            MutexGuard::unlocked(&mut state, || std_thread::park_timeout(WATCH_TICK));
        }
    }

    /// Marks a request answered; returns whether its answer is alone enough
    /// to be written directly: few others in service. With many in service
    /// the answer is left staged to go out with others.
    fn finish(&self, me: usize, key: Key) -> bool {
        let mut state = self.state.lock();
        state.serving.remove(&key);
        state.busy[me] = false;
        if state.closing && state.drained() {
            self.drained.notify_all();
        }
        state.serving.len() < FEW_IN_FLIGHT
    }

    /// Refuses new requests and waits until `deadline` for those in service
    /// to be answered.
    ///
    /// # Errors
    /// [`Error::CloseTimeout`] naming the threads still in a handler.
    pub fn drain(&self, deadline: Instant, shared: &Shared) -> Result<(), Error> {
        let mut state = self.state.lock();
        state.closing = true;
        while !state.drained() {
            if self.drained.wait_until(&mut state, deadline).timed_out() && !state.drained() {
                let names: Vec<String> =
                    (0..=self.size).filter(|&n| state.busy[n]).map(|n| self.thread_name(n, shared)).collect();
                let mut what = format!("request handlers still running on {}", names.join(", "));
                if names.is_empty() {
                    what = format!("{} requests still waiting for a handler", state.jobs.len());
                }
                return Err(Error::CloseTimeout(what));
            }
        }
        Ok(())
    }

    /// Whether thread `number` is in a handler.
    pub fn is_busy(&self, number: usize) -> bool {
        self.state.lock().busy[number]
    }

    /// Lets the workers go and waits for them until `deadline`; those in a
    /// handler, and `reading` (a thread blocked on the stream), are not
    /// waited for. Workers still running are left, detached; those in a
    /// handler are named in the error.
    pub fn close(&self, deadline: Instant, reading: Option<usize>) -> Result<(), Error> {
        let (idle, busy) = {
            let mut state = self.state.lock();
            state.closed = true;
            state.watching = false;
            (std::mem::take(&mut state.idle), state.busy.clone())
        };
        for (_, worker) in idle {
            worker.unpark();
        }
        let workers = std::mem::take(&mut *self.workers.lock());
        let mut outcome = Ok(());
        let mut stuck = Vec::new();
        for (number, worker) in workers.into_iter().enumerate() {
            let blocked = busy[number] || reading == Some(number);
            if worker.wait_until(if blocked { Instant::now() } else { deadline }) {
                if let Err(error) = worker.join() {
                    outcome = outcome.and(Err(error));
                }
            } else {
                let name = worker.detach();
                if reading != Some(number) {
                    stuck.push(name);
                }
            }
        }
        if !stuck.is_empty() {
            return Err(Error::CloseTimeout(format!("request handlers still running on {}", stuck.join(", "))));
        }
        outcome
    }
}

/// A worker: runs jobs until the pool closes. `me` is its number; the
/// reader thread comes here too, numbered after the workers, once a worker
/// has taken reading over from it.
pub(crate) fn work(me: usize, shared: &Arc<Shared>) {
    let pool = &shared.pool;
    while let Some(job) = pool.next_job(me, shared) {
        match job {
            Job::Serve(packet) => {
                let key = (packet.channel, packet.tag);
                let response = match pool.handler.as_deref() {
                    Some(handler) => answer(handler, packet, &shared.name),
                    None => Packet::response_unchecked(key.0, key.1, false, 0, b"no request handler".to_vec()),
                };
                // Out of service before the answer can reach the peer, so a
                // peer that reuses the tag after the answer is not refused.
                let alone = pool.finish(me, key);
                shared.send_response(response, alone);
            }
            Job::Send(packet) => shared.send_response(packet, false),
            Job::Read(reading) => {
                reader::serve(reading, me, shared);
            }
        }
    }
}

/// Runs the handler on one request, in the reader's section: returns the
/// response and whether the handler was slow. Only every
/// [`INLINE_TIMED`]th call is timed: reading the clock costs as much as a
/// quick handler, and a run of slow handlers shows in a sample as well.
pub(crate) fn answer_inline(shared: &Shared, packet: Packet, count: u64) -> (Packet, bool) {
    let handler = shared.pool.handler.as_deref().expect("sections run only with a handler");
    if !count.is_multiple_of(INLINE_TIMED) {
        return (answer(handler, packet, &shared.name), false);
    }
    let started = Instant::now();
    let response = answer(handler, packet, &shared.name);
    (response, started.elapsed() >= INLINE_SLOW)
}

fn answer(handler: &dyn Handler, packet: Packet, name: &str) -> Packet {
    let (channel, tag) = (packet.channel, packet.tag);
    let request = Request {
        channel,
        tag,
        rq_type: packet.rq_type().unwrap_or_default(),
        flags: packet.wire_flags,
        payload: packet.payload,
    };
    let (ok, flags, payload) = match panic::catch_unwind(AssertUnwindSafe(|| handler.handle(request))) {
        Ok(Ok(response)) => (true, response.flags, response.payload),
        Ok(Err(failure)) => (false, failure.flags, failure.payload),
        Err(payload) => {
            let message = panic_message(&*payload);
            log::warn!("{name}: handler panicked on channel {channel} tag {tag}: {message}");
            (false, 0, format!("handler panicked: {message}").into_bytes())
        }
    };
    Packet::response(channel, tag, ok, flags, payload).unwrap_or_else(|error| {
        Packet::response_unchecked(
            channel,
            tag,
            false,
            0,
            format!("handler's answer does not fit: {error}").into_bytes(),
        )
    })
}
