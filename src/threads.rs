//! Named threads that can be waited on with a deadline and joined with their
//! panic turned into an error.

use std::any::Any;
use std::fmt;
use std::io;
use std::thread::{self, JoinHandle};
use std::time::Instant;

use crossbeam_channel::{Receiver, RecvTimeoutError};

/// A thread that panicked: its name and the panic's message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Panicked {
    pub thread: String,
    pub message: String,
}

impl fmt::Display for Panicked {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "thread {} panicked: {}", self.thread, self.message)
    }
}

pub(crate) struct Thread<T> {
    name: String,
    handle: JoinHandle<T>,
    /// Disconnects when the thread's closure returns or unwinds: std's
    /// `JoinHandle` has no timed join, a channel does.
    done: Receiver<()>,
}

/// Starts a named thread; `stack` bytes of stack, or the platform's default.
pub(crate) fn spawn<T, F>(name: String, stack: Option<usize>, body: F) -> io::Result<Thread<T>>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    let (done_tx, done) = crossbeam_channel::bounded::<()>(0);
    let mut builder = thread::Builder::new().name(name.clone());
    if let Some(stack) = stack {
        builder = builder.stack_size(stack);
    }
    let handle = builder.spawn(move || {
        let _done = done_tx;
        body()
    })?;
    Ok(Thread { name, handle, done })
}

impl<T> Thread<T> {
    /// Waits for the thread to end; false if it is still running at `deadline`.
    pub fn wait_until(&self, deadline: Instant) -> bool {
        !matches!(self.done.recv_deadline(deadline), Err(RecvTimeoutError::Timeout))
    }

    /// Joins a thread that has ended (or is about to), surfacing a panic.
    pub fn join(self) -> Result<T, Panicked> {
        let thread = self.name;
        self.handle.join().map_err(|payload| Panicked { thread, message: panic_message(&*payload) })
    }

    /// Gives up on a thread that will not end: it runs on, detached.
    pub fn detach(self) -> String {
        self.name
    }
}

pub(crate) fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(text) = payload.downcast_ref::<&str>() {
        (*text).to_owned()
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text.clone()
    } else {
        "(a non-string panic payload)".to_owned()
    }
}
