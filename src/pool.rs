//! The handler pool: a fixed number of worker threads that run the request
//! handler, so that one slow request does not hold up the others.
//!
//! Its queue is a plain mutex and condition variable rather than a channel:
//! an idle worker should park at once, since on a small machine a worker that
//! spins or yields while waiting takes the CPU from the thread doing the work.
//! The same lock keeps the set of requests in service, so admitting a request
//! and finishing one cost one lock each.

use std::collections::{HashSet, VecDeque};
use std::panic::{self, AssertUnwindSafe};
use std::sync::Arc;
use std::time::Instant;

use parking_lot::{Condvar, Mutex};

use crate::connection::{Shared, DIRECT_WRITE_IN_FLIGHT};
use crate::error::{Error, ProtocolError};
use crate::handler::{Handler, Request};
use crate::packet::Packet;
use crate::tagmap::TagBuild;
use crate::threads::{self, panic_message, Thread};

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
    idle: usize,
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
    work: Condvar,
    workers: Mutex<Vec<Thread<()>>>,
}

impl Pool {
    pub fn new(handler: Option<Arc<dyn Handler>>, size: usize, limit: usize) -> Self {
        Pool {
            handler,
            size,
            limit,
            state: Mutex::new(State::default()),
            work: Condvar::new(),
            workers: Mutex::new(Vec::new()),
        }
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
    fn wake(&self, mut state: parking_lot::MutexGuard<'_, State>, shared: &Arc<Shared>) -> Result<(), Error> {
        if state.jobs.is_empty() {
            return Ok(());
        }
        let wake = state.idle > 0;
        let start = !std::mem::replace(&mut state.started, true);
        drop(state);
        if wake {
            self.work.notify_one();
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
            workers.push(threads::spawn(format!("{}-worker-{i}", shared.name), move || work(&shared))?);
        }
        Ok(())
    }

    /// The next job, parking while there is none; `None` once closed and
    /// drained.
    fn next_job(&self) -> Option<Job> {
        let mut state = self.state.lock();
        loop {
            if let Some(job) = state.jobs.pop_front() {
                // Pass the wake-up on while work remains, so that a slow
                // handler does not hold up the jobs queued behind it.
                if !state.jobs.is_empty() && state.idle > 0 {
                    self.work.notify_one();
                }
                return Some(job);
            }
            if state.closed {
                return None;
            }
            state.idle += 1;
            self.work.wait(&mut state);
            state.idle -= 1;
        }
    }

    /// Marks a request answered; returns whether its answer is alone enough
    /// to be written directly: no jobs queued behind it and few in service.
    /// A worker inside a batch leaves its answer to the writer thread, which
    /// sends the whole batch's answers in one write call.
    fn finish(&self, key: (u64, u64)) -> bool {
        let mut state = self.state.lock();
        state.serving.remove(&key);
        state.jobs.is_empty() && state.serving.len() < DIRECT_WRITE_IN_FLIGHT
    }

    /// Stops taking jobs and waits until `deadline` for the queued ones to be
    /// done. Workers still busy then are left running, detached, and named in
    /// the error.
    pub fn close(&self, deadline: Instant) -> Result<(), Error> {
        self.state.lock().closed = true;
        self.work.notify_all();
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

fn work(shared: &Shared) {
    let pool = &shared.pool;
    while let Some(job) = pool.next_job() {
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
