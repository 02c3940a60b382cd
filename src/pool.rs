//! The handler pool: a fixed number of worker threads that run the request
//! handler, so that one slow request does not hold up the others.

use std::panic::{self, AssertUnwindSafe};
use std::sync::Arc;
use std::time::Instant;

use crossbeam_channel::{Receiver, Sender};
use parking_lot::Mutex;

use crate::connection::{Shared, DIRECT_WRITE_IN_FLIGHT};
use crate::error::{Error, ProtocolError};
use crate::handler::{Handler, Request};
use crate::packet::Packet;
use crate::threads::{self, panic_message, Thread};

pub(crate) enum Job {
    /// A request for the handler.
    Serve(Packet),
    /// A ready response that the reader could not queue without blocking.
    Send(Packet),
}

pub(crate) struct Pool {
    handler: Option<Arc<dyn Handler>>,
    size: usize,
    /// The job queue is unbounded so that the reader never waits on it; the
    /// serving set and `max_incoming` bound what it holds. `None` once closed.
    jobs: Mutex<Option<Sender<Job>>>,
    queue: Receiver<Job>,
    /// Started on the first job, so a connection that serves nothing has no
    /// workers.
    workers: Mutex<Vec<Thread<()>>>,
}

impl Pool {
    pub fn new(handler: Option<Arc<dyn Handler>>, size: usize) -> Self {
        let (jobs, queue) = crossbeam_channel::unbounded();
        Pool { handler, size, jobs: Mutex::new(Some(jobs)), queue, workers: Mutex::new(Vec::new()) }
    }

    pub fn has_handler(&self) -> bool {
        self.handler.is_some()
    }

    /// Queues a job. After close, a request is refused instead.
    pub fn submit(&self, job: Job, shared: &Arc<Shared>) -> Result<(), Error> {
        let jobs = self.jobs.lock();
        let Some(sender) = jobs.as_ref() else {
            drop(jobs);
            if let Job::Serve(packet) = job {
                shared.serving.lock().remove(&(packet.channel, packet.tag));
                shared.reject(packet.channel, packet.tag, "connection closing".to_owned())?;
            }
            return Ok(());
        };
        let limit = shared.config.max_incoming;
        if self.queue.len() >= limit {
            return Err(ProtocolError::TooManyIncoming { limit }.into());
        }
        // Cannot fail: the pool holds the receiving end.
        let _ = sender.send(job);
        drop(jobs);
        self.start_workers(shared)
    }

    fn start_workers(&self, shared: &Arc<Shared>) -> Result<(), Error> {
        let mut workers = self.workers.lock();
        if !workers.is_empty() {
            return Ok(());
        }
        for i in 0..self.size {
            let queue = self.queue.clone();
            let shared = Arc::clone(shared);
            let handler = self.handler.clone();
            workers.push(threads::spawn(format!("{}-worker-{i}", shared.name), move || {
                work(&queue, &shared, handler.as_deref())
            })?);
        }
        Ok(())
    }

    /// Stops taking jobs and waits until `deadline` for the queued ones to be
    /// done. Workers still busy then are left running, detached, and named in
    /// the error.
    pub fn close(&self, deadline: Instant) -> Result<(), Error> {
        drop(self.jobs.lock().take());
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

fn work(queue: &Receiver<Job>, shared: &Shared, handler: Option<&dyn Handler>) {
    for job in queue.iter() {
        match job {
            Job::Serve(packet) => {
                let key = (packet.channel, packet.tag);
                let response = match handler {
                    Some(handler) => answer(handler, packet, &shared.name),
                    None => Packet::response_unchecked(key.0, key.1, false, 0, b"no request handler".to_vec()),
                };
                // Out of the serving set before the answer can reach the
                // peer, so a peer that reuses the tag after the answer is not
                // refused for a duplicate.
                let in_service = {
                    let mut serving = shared.serving.lock();
                    serving.remove(&key);
                    serving.len()
                };
                shared.send_response(response, in_service < DIRECT_WRITE_IN_FLIGHT);
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
