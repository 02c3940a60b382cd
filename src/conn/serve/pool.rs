//! The handler pool: worker threads that run request handlers, so that a
//! slow request does not hold up the others. Its idle workers are also the
//! followers of the reader hand-off ([`leader`](super::leader)), whose state
//! it keeps under the same lock.
//!
//! The queue is a plain mutex and a stack of parked workers rather than a
//! channel. An idle worker parks at once: on a small machine a worker that
//! spins or yields while waiting takes the CPU from the thread doing the work.
//! The worker woken is the one that went idle last, whose cache is still warm
//! (waking the longest-idle one, as a condition variable does, halves the
//! rate of sequential calls on two cores). The same lock keeps the set of
//! requests in service, so admitting a request and finishing one cost one
//! lock each.
//!
//! The pool knows nothing of what a worker does with a job: it is generic
//! over the reading state `R` that a takeover hands on, and starts workers
//! through a function given at construction.

use std::collections::{HashSet, VecDeque};
use std::io;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::Relaxed, Ordering::SeqCst};
use std::sync::Arc;
use std::thread::{self as std_thread, Thread as Parked};
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex, MutexGuard};

use super::leader::{Handoff, Look, Verdict, WATCH_TICK};
use crate::conn::calls::{Key, TagBuild};
use crate::conn::error::ConnectionError;
use crate::conn::send::policy;
use crate::threads::{Panicked, Thread};
use crate::wire::Packet;

/// What a worker is given to do.
pub(crate) enum Job<R> {
    /// A request for the handler.
    Serve(Packet),
    /// A ready response that the reader could not queue without blocking.
    Send(Packet),
    /// The reader is stuck: read in its place.
    Read(R),
}

/// A request refused at admission, and why.
pub(crate) struct Refusal {
    pub key: Key,
    pub text: String,
}

/// Starts worker thread `number` (the pool calls it for each, on the first
/// job).
pub(crate) type Spawner = Box<dyn Fn(usize) -> io::Result<Thread<()>> + Send + Sync>;

/// How closing the pool went.
#[derive(Default)]
pub(crate) struct PoolClosed {
    /// The first worker that panicked.
    pub panicked: Option<Panicked>,
    /// Workers still in a handler, left running detached.
    pub stuck: Vec<String>,
}

struct State<R> {
    /// Unbounded so that the reader never waits on it; `max_incoming` bounds
    /// what it holds.
    jobs: VecDeque<Job<R>>,
    /// The peer's requests admitted and not yet answered, by `(channel, tag)`.
    serving: HashSet<Key, TagBuild>,
    /// Parked workers, by worker number, the last to go idle on top. The
    /// top one is the follower that watches the reader's sections.
    idle: Vec<(usize, Parked)>,
    handoff: Handoff<R>,
    /// Which threads are in a handler, by thread number (the workers, then
    /// the reader), for close to name them.
    busy: Vec<bool>,
    /// Set by close: requests are refused from now on.
    closing: bool,
    /// Set once reading has ended and close is done: workers exit.
    closed: bool,
    /// How many workers have been started. They start one at a time, when a
    /// job finds no idle worker, so a connection that serves nothing has none
    /// and one whose handlers run on the reading thread has one (to watch).
    started: usize,
}

impl<R> State<R> {
    /// Nothing admitted is unanswered, but for answers still being sent
    /// (see [`Pool::answering`]).
    fn idle(&self) -> bool {
        self.jobs.is_empty() && self.serving.is_empty() && self.handoff.running().is_none()
    }

    fn is_top_idle(&self, me: usize) -> bool {
        self.idle.last().is_some_and(|&(n, _)| n == me)
    }
}

pub(crate) struct Pool<R> {
    name: Arc<str>,
    size: usize,
    limit: usize,
    state: Mutex<State<R>>,
    /// Signalled while closing when the last request in service is done.
    drained: Condvar,
    /// The workers started, by number.
    workers: Mutex<Vec<(usize, Thread<()>)>>,
    spawn: Spawner,
    /// Which thread reads the stream, by number.
    reading: AtomicUsize,
    /// Answers taken out of service but not yet handed to the send path,
    /// and those the reader left to a worker ([`Pool::send_later`]). A
    /// request leaves service before its answer is sent (so that a peer
    /// reusing the tag at once is not refused), and close must not send EOF
    /// ahead of such an answer: draining waits for this to reach zero too.
    answering: AtomicUsize,
    /// Set with the state's `closing`, for [`Pool::answered`] to look at
    /// without the lock.
    closing: AtomicBool,
}

impl<R> Pool<R> {
    /// A pool of `size` workers admitting at most `limit` requests at once;
    /// a takeover pauses handlers on the reader for `pause`.
    pub fn new(name: Arc<str>, size: usize, limit: usize, pause: Duration, spawn: Spawner) -> Self {
        let state = State {
            jobs: VecDeque::new(),
            serving: HashSet::default(),
            idle: Vec::new(),
            handoff: Handoff::new(pause),
            busy: vec![false; size + 1],
            closing: false,
            closed: false,
            started: 0,
        };
        Pool {
            name,
            size,
            limit,
            state: Mutex::new(state),
            drained: Condvar::new(),
            workers: Mutex::new(Vec::new()),
            spawn,
            reading: AtomicUsize::new(size),
            answering: AtomicUsize::new(0),
            closing: AtomicBool::new(false),
        }
    }

    fn drained(&self, state: &State<R>) -> bool {
        state.idle() && self.answering.load(SeqCst) == 0
    }

    pub fn set_reading_thread(&self, number: usize) {
        self.reading.store(number, Relaxed);
    }

    /// The number of the thread that reads the stream.
    pub fn reading_thread_number(&self) -> usize {
        self.reading.load(Relaxed)
    }

    /// The reader thread's number, after the workers'.
    pub fn reader_number(&self) -> usize {
        self.size
    }

    /// The name of thread `number`: a worker, or the reader after them.
    pub fn thread_name(&self, number: usize) -> String {
        if number == self.size {
            format!("{}-reader", self.name)
        } else {
            format!("{}-worker-{number}", self.name)
        }
    }

    /// Admits requests for the handler, all under one lock and with one
    /// wake-up. Returns the refusals to send: a tag already in service, or
    /// every request once the pool is closing.
    ///
    /// # Errors
    /// [`ConnectionError::TooManyIncoming`] past the configured limit.
    pub fn admit(&self, requests: &mut Vec<Packet>) -> Result<Vec<Refusal>, ConnectionError> {
        let mut refusals = Vec::new();
        let mut too_many = false;
        let mut state = self.state.lock();
        for packet in requests.drain(..) {
            let key = (packet.channel, packet.tag);
            if state.closing {
                refusals.push(Refusal { key, text: "connection closing".to_owned() });
            } else if state.serving.len() >= self.limit {
                too_many = true;
                break;
            } else if !state.serving.insert(key) {
                refusals.push(Refusal { key, text: format!("channel {}: tag already in use: {}", key.0, key.1) });
            } else {
                state.jobs.push_back(Job::Serve(packet));
            }
        }
        // Those admitted are served even if the connection fails.
        self.wake(state)?;
        if too_many {
            return Err(ConnectionError::TooManyIncoming { limit: self.limit });
        }
        Ok(refusals)
    }

    /// Admits one request that is answered later, outside the pool (a
    /// pulled request): it is in service, and close drains it, until
    /// [`finish_deferred`](Self::finish_deferred). Returns the refusal if it
    /// cannot be admitted.
    ///
    /// # Errors
    /// [`ConnectionError::TooManyIncoming`] past the configured limit.
    pub fn admit_deferred(&self, key: Key) -> Result<Option<Refusal>, ConnectionError> {
        let mut state = self.state.lock();
        if state.closing {
            return Ok(Some(Refusal { key, text: "connection closing".to_owned() }));
        }
        if state.serving.len() >= self.limit {
            return Err(ConnectionError::TooManyIncoming { limit: self.limit });
        }
        if !state.serving.insert(key) {
            return Ok(Some(Refusal { key, text: format!("channel {}: tag already in use: {}", key.0, key.1) }));
        }
        Ok(None)
    }

    /// Takes a request admitted with [`admit_deferred`](Self::admit_deferred)
    /// out of service; then as [`finish`](Self::finish).
    pub fn finish_deferred(&self, key: Key) -> bool {
        let mut state = self.state.lock();
        let in_service = state.serving.len();
        state.serving.remove(&key);
        self.answering.fetch_add(1, SeqCst);
        policy::is_light(in_service)
    }

    /// Has a worker send a response the reader could not queue at once.
    ///
    /// # Errors
    /// [`ConnectionError::TooManyIncoming`] when such responses pile up past
    /// the limit: the peer sends requests and does not read.
    pub fn send_later(&self, packet: Packet) -> Result<(), ConnectionError> {
        let mut state = self.state.lock();
        if state.closed {
            return Ok(());
        }
        if state.jobs.len() >= self.limit {
            return Err(ConnectionError::TooManyIncoming { limit: self.limit });
        }
        // An answer on its way until the worker has sent it: a drain waits
        // for it, and is woken by the worker's `answered`, not by the job
        // leaving the queue (which would let EOF overtake it).
        self.answering.fetch_add(1, SeqCst);
        state.jobs.push_back(Job::Send(packet));
        self.wake(state)
    }

    /// Wakes one idle worker for new jobs (it wakes the next if more are
    /// waiting), or starts one more worker if none is idle.
    fn wake(&self, mut state: MutexGuard<'_, State<R>>) -> Result<(), ConnectionError> {
        if state.jobs.is_empty() {
            return Ok(());
        }
        let woken = state.idle.pop();
        // The new top of the stack sleeps until a section wakes it.
        state.handoff.stop_watching();
        let grow = if woken.is_none() { self.reserve_worker(&mut state) } else { None };
        drop(state);
        if let Some((_, worker)) = woken {
            worker.unpark();
        }
        match grow {
            Some(number) => self.start_worker(number),
            None => Ok(()),
        }
    }

    /// The number of one more worker to start, if the pool may grow.
    fn reserve_worker(&self, state: &mut State<R>) -> Option<usize> {
        (state.started < self.size && !state.closed).then(|| {
            state.started += 1;
            state.started - 1
        })
    }

    fn start_worker(&self, number: usize) -> Result<(), ConnectionError> {
        let worker = (self.spawn)(number)?;
        self.workers.lock().push((number, worker));
        Ok(())
    }

    /// Starts a section of the reader (thread `thread`): the handler of
    /// request `key`, or a write call when `key` is `None`. Gives the reading
    /// state back if the reader must not: no idle worker could watch, or
    /// for a handler, its tag is in service, handlers are paused on the
    /// reader, or close began. Returns the section's number, for
    /// [`end_section`](Self::end_section).
    pub fn begin_section(&self, thread: usize, key: Option<Key>, reading: R) -> Result<u64, R> {
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
            if !state.handoff.may_run_handler(Instant::now) {
                return Err(reading);
            }
            state.busy[thread] = true;
        }
        let (number, wake) = state.handoff.begin(thread, key, reading);
        let watcher = if wake { state.idle.last().map(|(_, worker)| worker.clone()) } else { None };
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
    pub fn end_section(&self, number: u64, thread: usize, key: Option<Key>, slow: bool) -> Option<R> {
        let mut state = self.state.lock();
        if key.is_some() {
            state.busy[thread] = false;
        }
        let reading = state.handoff.end(number);
        if reading.is_none() {
            // Taken over: the request was put in service then.
            if let Some(key) = key {
                state.serving.remove(&key);
            }
        }
        if slow {
            state.handoff.pause_from(Instant::now());
        }
        if state.closing && self.drained(&state) {
            self.drained.notify_all();
        }
        reading
    }

    /// The next job for worker `me`, parking while there is none; `None`
    /// once closed and drained. `before_park` runs (outside the lock) once
    /// before the worker first parks: answers it left staged go out before
    /// it sleeps.
    pub fn next_job(&self, me: usize, before_park: &dyn Fn()) -> Option<Job<R>> {
        let mut state = self.state.lock();
        let mut flushed = false;
        let mut look = Look::since(&state.handoff);
        loop {
            if let Some(job) = state.jobs.pop_front() {
                // A worker woken spuriously is still on the stack; a wake-up
                // meant for an idle worker must not land on a busy one.
                if state.is_top_idle(me) {
                    state.handoff.stop_watching();
                }
                state.idle.retain(|&(n, _)| n != me);
                if let Job::Serve(_) = job {
                    state.busy[me] = true;
                }
                // Pass the wake-up on while work remains, so that a slow
                // handler does not hold up the jobs queued behind it: to an
                // idle worker, or to one more started.
                let next = if state.jobs.is_empty() { None } else { state.idle.pop() };
                if next.is_some() {
                    state.handoff.stop_watching();
                }
                let grow =
                    if next.is_none() && !state.jobs.is_empty() { self.reserve_worker(&mut state) } else { None };
                drop(state);
                if let Some((_, worker)) = next {
                    worker.unpark();
                }
                if let Some(number) = grow {
                    if let Err(error) = self.start_worker(number) {
                        // This worker serves on; the jobs wait for it.
                        log::warn!("{}: could not start another worker: {error}", self.name);
                    }
                }
                return Some(job);
            }
            if state.closed {
                state.idle.retain(|&(n, _)| n != me);
                return None;
            }
            if !flushed {
                flushed = true;
                MutexGuard::unlocked(&mut state, before_park);
                continue;
            }
            if !state.idle.iter().any(|&(n, _)| n == me) {
                state.idle.push((me, std_thread::current()));
            }
            let on_top = state.is_top_idle(me);
            if on_top && state.handoff.in_section() {
                // A section began while no one was idle to watch it.
                state.handoff.start_watching();
            }
            if !(on_top && state.handoff.is_watching()) {
                look.forget_section();
                MutexGuard::unlocked(&mut state, std_thread::park);
                continue;
            }
            match state.handoff.look(&mut look, Instant::now()) {
                Verdict::TakeOver(section) => {
                    log::debug!(
                        "{}: {} stuck in a section: {} reads in its place",
                        self.name,
                        self.thread_name(section.thread),
                        self.thread_name(me)
                    );
                    if let Some(key) = section.key {
                        state.serving.insert(key);
                    }
                    state.idle.pop();
                    return Some(Job::Read(section.reading));
                }
                Verdict::Sleep => MutexGuard::unlocked(&mut state, std_thread::park),
                Verdict::Watch => MutexGuard::unlocked(&mut state, || std_thread::park_timeout(WATCH_TICK)),
            }
        }
    }

    /// Takes a request out of service once its handler returned; the caller
    /// sends the answer and then calls [`answered`](Self::answered). Returns
    /// whether the answer is alone enough to be written at once: few others
    /// in service. With many in service it is left staged to go out with
    /// others.
    pub fn finish(&self, me: usize, key: Key) -> bool {
        let mut state = self.state.lock();
        let in_service = state.serving.len();
        state.serving.remove(&key);
        state.busy[me] = false;
        self.answering.fetch_add(1, SeqCst);
        policy::is_light(in_service)
    }

    /// The answer of a request [`finish`](Self::finish)ed is with the send
    /// path. Takes the lock only while closing, to wake the drain.
    pub fn answered(&self) {
        if self.answering.fetch_sub(1, SeqCst) == 1 && self.closing.load(SeqCst) {
            let state = self.state.lock();
            if self.drained(&state) {
                self.drained.notify_all();
            }
        }
    }

    /// Refuses new requests and waits until `deadline` for those in service
    /// to be answered.
    ///
    /// # Errors
    /// What is still running at the deadline: the threads in a handler, or
    /// how many requests wait for one.
    pub fn drain(&self, deadline: Instant) -> Result<(), String> {
        let mut state = self.state.lock();
        state.closing = true;
        self.closing.store(true, SeqCst);
        while !self.drained(&state) {
            if self.drained.wait_until(&mut state, deadline).timed_out() && !self.drained(&state) {
                let names: Vec<String> =
                    (0..=self.size).filter(|&n| state.busy[n]).map(|n| self.thread_name(n)).collect();
                return Err(if !names.is_empty() {
                    format!("request handlers still running on {}", names.join(", "))
                } else if !state.jobs.is_empty() {
                    format!("{} requests still waiting for a handler", state.jobs.len())
                } else if !state.serving.is_empty() {
                    format!("{} pulled requests still unanswered", state.serving.len())
                } else {
                    "answers still waiting for room in the send queue".to_owned()
                });
            }
        }
        Ok(())
    }

    /// Whether request `key` is admitted and not yet answered (queued, in a
    /// handler, or pulled and held by the application).
    pub fn is_in_service(&self, key: Key) -> bool {
        let state = self.state.lock();
        state.serving.contains(&key) || state.handoff.running() == Some(key)
    }

    /// How many requests are admitted and not yet answered.
    pub fn in_service(&self) -> usize {
        let state = self.state.lock();
        state.serving.len() + usize::from(state.handoff.running().is_some())
    }

    /// Whether thread `number` is in a handler.
    pub fn is_busy(&self, number: usize) -> bool {
        self.state.lock().busy[number]
    }

    /// Lets the workers go and waits for them until `deadline`; those in a
    /// handler, and `reading` (a thread blocked on the stream), are not
    /// waited for but left running, detached.
    pub fn close(&self, deadline: Instant, reading: Option<usize>) -> PoolClosed {
        let (idle, busy) = {
            let mut state = self.state.lock();
            state.closed = true;
            state.handoff.stop_watching();
            (std::mem::take(&mut state.idle), state.busy.clone())
        };
        for (_, worker) in idle {
            worker.unpark();
        }
        let workers = std::mem::take(&mut *self.workers.lock());
        let mut closed = PoolClosed::default();
        for (number, worker) in workers {
            let blocked = busy[number] || reading == Some(number);
            if worker.wait_until(if blocked { Instant::now() } else { deadline }) {
                if let Err(panicked) = worker.join() {
                    closed.panicked.get_or_insert(panicked);
                }
            } else {
                let name = worker.detach();
                if reading != Some(number) {
                    closed.stuck.push(name);
                }
            }
        }
        closed
    }
}
