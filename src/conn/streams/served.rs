//! The serving end's streams: one [`ServedStream`] per conversation the
//! peer opened, by its tag, and the threads that run their handlers.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use super::state::StreamState;
use crate::conn::answer::{answer_parts, Failure, Response};
use crate::conn::calls::TagBuild;
use crate::conn::error::ConnectionError;
use crate::stream::message::{Message, Reply};
use crate::stream::{Credit, Overflow};
use crate::threads::{Panicked, Thread};

/// One conversation the peer opened.
pub(crate) struct ServedStream {
    pub state: Arc<StreamState>,
    /// The caller's time budget, and when the open arrived.
    pub budget: Option<Duration>,
    pub opened: Instant,
}

impl ServedStream {
    /// Sends the final reply for the handler's `outcome`, after every item
    /// the handler sent, unless the conversation was already called off.
    /// An answer whose flags do not fit fails the request, saying so.
    pub fn reply(&self, outcome: Result<Response, Failure>) {
        let (ok, flags, payload) = answer_parts(outcome);
        self.state.reply(Message::Reply(Reply { ok, flags, payload }));
    }
}

/// Why a stream was not taken into the table.
pub(crate) enum NotServed {
    /// As many as the configuration allows are open.
    TooMany(usize),
    /// The peer's tag is that of a stream still open.
    TagInUse,
}

/// The peer's open streams, by tag, and the threads of their handlers.
pub(crate) struct ServedStreams {
    limit: usize,
    /// The window granted for the peer's items, and what a handler that
    /// falls behind does.
    pub window: Credit,
    pub overflow: Overflow,
    /// The stack size of the handlers' threads.
    pub stack: Option<usize>,
    open: Mutex<HashMap<u64, Arc<ServedStream>, TagBuild>>,
    /// Threads running handlers; finished ones are joined as new ones start.
    threads: Mutex<Vec<Thread<()>>>,
    /// The first panic of a finished thread, kept for close to report.
    panicked: Mutex<Option<Panicked>>,
}

impl ServedStreams {
    /// At most `limit` open at once.
    pub fn new(limit: usize, window: Credit, overflow: Overflow, stack: Option<usize>) -> Self {
        ServedStreams {
            limit: limit.max(1),
            window,
            overflow,
            stack,
            open: Mutex::new(HashMap::default()),
            threads: Mutex::new(Vec::new()),
            panicked: Mutex::new(None),
        }
    }

    /// Takes stream `tag` in.
    pub fn insert(&self, tag: u64, stream: Arc<ServedStream>) -> Result<(), NotServed> {
        let mut open = self.open.lock();
        if open.contains_key(&tag) {
            return Err(NotServed::TagInUse);
        }
        if open.len() >= self.limit {
            return Err(NotServed::TooMany(self.limit));
        }
        open.insert(tag, stream);
        Ok(())
    }

    /// Stream `tag`, if it is open.
    pub fn get(&self, tag: u64) -> Option<Arc<ServedStream>> {
        self.open.lock().get(&tag).cloned()
    }

    /// Whether none is open.
    pub fn is_empty(&self) -> bool {
        self.open.lock().is_empty()
    }

    /// Stream `tag` is over.
    pub fn remove(&self, tag: u64) {
        self.open.lock().remove(&tag);
    }

    /// Ends every open stream (the connection's end): blocked sends and
    /// iterations return, and handlers see it as a cancel.
    pub fn end_all(&self, error: &ConnectionError) {
        let open: Vec<Arc<ServedStream>> = self.open.lock().values().cloned().collect();
        for stream in open {
            stream.state.on_connection_end(error.clone());
        }
    }

    /// Keeps a handler's thread to join, joining those that have finished.
    pub fn adopt(&self, thread: Thread<()>) {
        let mut threads = self.threads.lock();
        let now = Instant::now();
        let (done, running): (Vec<_>, Vec<_>) = threads.drain(..).partition(|thread| thread.wait_until(now));
        *threads = running;
        threads.push(thread);
        drop(threads);
        for thread in done {
            self.joined(thread);
        }
    }

    fn joined(&self, thread: Thread<()>) {
        if let Err(panicked) = thread.join() {
            self.panicked.lock().get_or_insert(panicked);
        }
    }

    /// Joins the handlers' threads, waiting until `deadline` for each;
    /// those still running are left detached and named.
    pub fn join(&self, deadline: Instant) -> (Option<Panicked>, Vec<String>) {
        let threads = std::mem::take(&mut *self.threads.lock());
        let mut stuck = Vec::new();
        for thread in threads {
            if thread.wait_until(deadline) {
                self.joined(thread);
            } else {
                stuck.push(thread.detach());
            }
        }
        (self.panicked.lock().take(), stuck)
    }
}
