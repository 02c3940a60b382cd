//! The handler pool: a fixed number of worker threads that run the request
//! handler, so that one slow request does not hold up the others.
//!
//! Its queue is a plain mutex and a stack of parked workers rather than a
//! channel. An idle worker parks at once: on a small machine a worker that
//! spins or yields while waiting takes the CPU from the thread doing the work.
//! The worker woken is the one that went idle last, whose cache is still warm
//! (waking the longest-idle one, as a condition variable does, halves the
//! rate of sequential calls on two cores). The same lock keeps the set of
//! requests in service, so admitting a request and finishing one cost one
//! lock each.

use std::collections::{HashSet, VecDeque};
use std::panic::{self, AssertUnwindSafe};
use std::sync::Arc;
use std::thread::{self as std_thread, Thread};
use std::time::Instant;

use parking_lot::{Mutex, MutexGuard};

use crate::connection::{Shared, DIRECT_WRITE_IN_FLIGHT};
use crate::error::{Error, ProtocolError};
use crate::handler::{Handler, Request};
use crate::packet::Packet;
use crate::tagmap::TagBuild;
use crate::threads::{self, panic_message, Thread as Worker};

enum Job {
    /// A request for the handler.
    Serve(Packet),
    /// A ready response that the reader could not queue without blocking.
    Send(Packet),
}

#[derive(Default)]
struct State {
    /// Unbounded so that the reader never waits on it; `max_incoming` bounds
    /// what it holds.
    jobs: VecDeque<Job>,
    /// The peer's requests admitted and not yet answered, by `(channel, tag)`.
    serving: HashSet<(u64, u64), TagBuild>,
    /// Parked workers, by worker number, the last to go idle on top.
    idle: Vec<(usize, Thread)>,
    closed: bool,
    /// Workers start with the first job, so a connection that serves nothing
    /// has none.
    started: bool,
}

pub(crate) struct Pool {
    handler: Option<Arc<dyn Handler>>,
    size: usize,
    limit: usize,
    state: Mutex<State>,
    workers: Mutex<Vec<Worker<()>>>,
}

impl Pool {
    pub fn new(handler: Option<Arc<dyn Handler>>, size: usize, limit: usize) -> Self {
        Pool { handler, size, limit, state: Mutex::new(State::default()), workers: Mutex::new(Vec::new()) }
    }

    pub fn has_handler(&self) -> bool {
        self.handler.is_some()
    }

    /// Admits requests for the handler, all under one lock and with one
    /// wake-up. Returns the refusals to send: `(channel, tag, text)` for a
    /// tag already in service, or every request once the pool is closed.
    ///
    /// # Errors
    /// [`ProtocolError::TooManyIncoming`] past the configured limit.
    pub fn admit(&self, requests: &mut Vec<Packet>, shared: &Arc<Shared>) -> Result<Vec<(u64, u64, String)>, Error> {
        let mut refusals = Vec::new();
        let mut state = self.state.lock();
        for packet in requests.drain(..) {
            let (channel, tag) = (packet.channel, packet.tag);
            if state.closed {
                refusals.push((channel, tag, "connection closing".to_owned()));
            } else if state.serving.len() >= self.limit {
                return Err(ProtocolError::TooManyIncoming { limit: self.limit }.into());
            } else if !state.serving.insert((channel, tag)) {
                refusals.push((channel, tag, format!("channel {channel}: tag already in use: {tag}")));
            } else {
                state.jobs.push_back(Job::Serve(packet));
            }
        }
        self.wake(state, shared)?;
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
            workers.push(threads::spawn(format!("{}-worker-{i}", shared.name), move || work(i, &shared))?);
        }
        Ok(())
    }

    /// The next job for worker `me`, parking while there is none; `None`
    /// once closed and drained.
    fn next_job(&self, me: usize) -> Option<Job> {
        let mut state = self.state.lock();
        loop {
            if let Some(job) = state.jobs.pop_front() {
                // A worker woken spuriously is still on the stack; a wake-up
                // meant for an idle worker must not land on a busy one.
                state.idle.retain(|&(n, _)| n != me);
                // Pass the wake-up on while work remains, so that a slow
                // handler does not hold up the jobs queued behind it.
                let next = if state.jobs.is_empty() { None } else { state.idle.pop() };
                drop(state);
                if let Some((_, worker)) = next {
                    worker.unpark();
                }
                return Some(job);
            }
            if state.closed {
                return None;
            }
            // Woken spuriously, a worker may still be on the stack.
            if !state.idle.iter().any(|&(n, _)| n == me) {
                state.idle.push((me, std_thread::current()));
            }
            // An unpark between the unlock and the park is not lost: it
            // leaves a token that makes the park return at once.
            MutexGuard::unlocked(&mut state, std_thread::park);
        }
    }

    /// Marks a request answered; returns whether its answer is alone enough
    /// to be written directly: few others in service. With many in service
    /// the answer goes to the writer thread, which sends the answers that
    /// gather meanwhile in one write call.
    fn finish(&self, key: (u64, u64)) -> bool {
        let mut state = self.state.lock();
        state.serving.remove(&key);
        state.serving.len() < DIRECT_WRITE_IN_FLIGHT
    }

    /// Stops taking jobs and waits until `deadline` for the queued ones to be
    /// done. Workers still busy then are left running, detached, and named in
    /// the error.
    pub fn close(&self, deadline: Instant) -> Result<(), Error> {
        let idle = {
            let mut state = self.state.lock();
            state.closed = true;
            std::mem::take(&mut state.idle)
        };
        for (_, worker) in idle {
            worker.unpark();
        }
        let workers = std::mem::take(&mut *self.workers.lock());
        let mut outcome = Ok(());
        let mut stuck = Vec::new();
        for worker in workers {
            if worker.wait_until(deadline) {
                if let Err(error) = worker.join() {
                    outcome = outcome.and(Err(error));
                }
            } else {
                stuck.push(worker.detach());
            }
        }
        if !stuck.is_empty() {
            return Err(Error::CloseTimeout(format!("request handlers still running on {}", stuck.join(", "))));
        }
        outcome
    }
}

fn work(me: usize, shared: &Shared) {
    let pool = &shared.pool;
    while let Some(job) = pool.next_job(me) {
        match job {
            Job::Serve(packet) => {
                let key = (packet.channel, packet.tag);
                let response = match pool.handler.as_deref() {
                    Some(handler) => answer(handler, packet, &shared.name),
                    None => Packet::response_unchecked(key.0, key.1, false, 0, b"no request handler".to_vec()),
                };
                // Out of service before the answer can reach the peer, so a
                // peer that reuses the tag after the answer is not refused.
                let alone = pool.finish(key);
                shared.send_response(response, alone);
            }
            Job::Send(packet) => shared.send_response(packet, false),
        }
    }
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
