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

/// Whether the calling thread may run on one CPU only (its affinity, which
/// the threads it starts inherit): then no two of them run at once, and a
/// thread that waits by spinning only takes the CPU from the one it waits
/// for.
#[cfg(target_os = "linux")]
pub(crate) fn on_one_cpu() -> bool {
    // SAFETY: a zeroed cpu_set_t is a valid empty set, and sched_getaffinity
    // writes at most `size_of::<cpu_set_t>()` bytes into it.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: as above; pid 0 is the calling thread.
    if unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) } != 0 {
        return false;
    }
    // SAFETY: `set` was filled in by the kernel.
    unsafe { libc::CPU_COUNT(&set) == 1 }
}

/// Elsewhere the affinity is not known: assume several CPUs.
#[cfg(not(target_os = "linux"))]
pub(crate) fn on_one_cpu() -> bool {
    false
}

#[cfg(all(test, target_os = "linux"))]
mod affinity_tests {
    use super::on_one_cpu;

    #[test]
    fn a_thread_bound_to_one_cpu_knows_it_and_its_children_inherit_it() {
        let several = std::thread::available_parallelism().map_or(1, |n| n.get()) > 1;
        if several {
            assert!(!on_one_cpu(), "the test thread may use every CPU");
        }
        let bound = std::thread::spawn(|| {
            let size = std::mem::size_of::<libc::cpu_set_t>();
            // SAFETY: zeroed cpu_set_t values are empty sets; the kernel
            // fills `allowed` (at most `size` bytes) and reads `one`; the
            // CPU_* helpers stay within a set.
            unsafe {
                let mut allowed: libc::cpu_set_t = std::mem::zeroed();
                assert_eq!(libc::sched_getaffinity(0, size, &mut allowed), 0);
                let first = (0..libc::CPU_SETSIZE as usize).find(|&cpu| libc::CPU_ISSET(cpu, &allowed));
                let mut one: libc::cpu_set_t = std::mem::zeroed();
                libc::CPU_SET(first.expect("some CPU is allowed"), &mut one);
                assert_eq!(libc::sched_setaffinity(0, size, &one), 0);
            }
            let inherited = std::thread::spawn(on_one_cpu).join().expect("child thread");
            (on_one_cpu(), inherited)
        });
        assert_eq!(bound.join().expect("bound thread"), (true, true));
    }
}
