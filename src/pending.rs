//! The caller's side of one request: a slot the reader fills and a handle
//! that waits on it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use crate::connection::{Shared, FEW_IN_FLIGHT};
use crate::error::Error;
use crate::handler::Response;

/// With many requests in flight, how many waits sleep at once after a spin
/// that did not pay.
const SPIN_BACKOFF: u32 = 8;

enum State {
    Waiting,
    Done(Result<Response, Error>),
    Taken,
}

/// Where the answer to one request lands. The tag map holds one reference,
/// the caller's [`Pending`] the other.
pub(crate) struct Slot {
    state: Mutex<State>,
    ready: Condvar,
    /// Set with the outcome, for a look without the lock.
    done: AtomicBool,
}

impl Slot {
    pub fn new() -> Self {
        Slot { state: Mutex::new(State::Waiting), ready: Condvar::new(), done: AtomicBool::new(false) }
    }

    /// Delivers the outcome. Only the first delivery counts: a cancellation
    /// racing with a response leaves whichever came first.
    pub fn complete(&self, outcome: Result<Response, Error>) {
        let mut state = self.state.lock();
        if matches!(*state, State::Waiting) {
            *state = State::Done(outcome);
            self.done.store(true, Ordering::Release);
            drop(state);
            self.ready.notify_all();
        }
    }

    fn is_waiting(&self) -> bool {
        !self.done.load(Ordering::Acquire)
    }

    /// Stays awake for at most `spin` (and not past `deadline`) while the
    /// outcome is not there, letting other runnable threads have the CPU.
    /// An answer that comes meanwhile is taken without the sleep and
    /// wake-up, which on a virtual machine whose CPU went idle can cost
    /// tens of microseconds.
    fn spin(&self, spin: Duration, deadline: Option<Instant>) -> bool {
        let start = Instant::now();
        let until = deadline.map_or(start + spin, |deadline| deadline.min(start + spin));
        while self.is_waiting() && Instant::now() < until {
            thread::yield_now();
        }
        !self.is_waiting()
    }

    /// The one wait behind every public variant: `deadline` None blocks,
    /// Some(past instant) only looks. `None` means still waiting.
    fn take(&self, deadline: Option<Instant>) -> Option<Result<Response, Error>> {
        let mut state = self.state.lock();
        while matches!(*state, State::Waiting) {
            match deadline {
                None => self.ready.wait(&mut state),
                Some(deadline) => {
                    if self.ready.wait_until(&mut state, deadline).timed_out() {
                        break;
                    }
                }
            }
        }
        match std::mem::replace(&mut *state, State::Taken) {
            State::Waiting => {
                *state = State::Waiting;
                None
            }
            State::Done(outcome) => Some(outcome),
            State::Taken => Some(Err(Error::AlreadyTaken)),
        }
    }
}

/// A request in flight. Wait on it for the answer, or cancel it.
///
/// The answer is `Ok(Response)` for an ok response and
/// `Err(Error::Failed(..))` for a failed one; any other error means the
/// request got no answer (the connection ended, the wait timed out, ...).
/// Dropping a `Pending` cancels the request: its answer, when it comes, is
/// dropped quietly.
#[must_use = "dropping a Pending cancels its request"]
pub struct Pending {
    slot: Arc<Slot>,
    /// Set once a wait has returned the final outcome, so that drop need not
    /// look at the slot again.
    settled: bool,
    channel: u64,
    tag: u64,
    shared: Arc<Shared>,
}

impl Pending {
    pub(crate) fn new(slot: Arc<Slot>, channel: u64, tag: u64, shared: Arc<Shared>) -> Self {
        Pending { slot, settled: false, channel, tag, shared }
    }

    /// The request's channel.
    pub fn channel(&self) -> u64 {
        self.channel
    }

    /// The request's tag.
    pub fn tag(&self) -> u64 {
        self.tag
    }

    /// Blocks until the answer arrives or the connection ends.
    ///
    /// # Errors
    /// [`Error::Failed`] for an ok = 0 response; a connection error when the
    /// connection ended first.
    pub fn wait(mut self) -> Result<Response, Error> {
        self.take(None).expect("an unbounded wait ends with an outcome")
    }

    fn take(&mut self, deadline: Option<Instant>) -> Option<Result<Response, Error>> {
        if !self.flush_if_waiting() {
            self.spin(deadline);
        }
        let outcome = self.slot.take(deadline);
        self.settled |= outcome.is_some();
        outcome
    }

    /// Waits at most `timeout`. On [`Error::Timeout`] the request is still in
    /// flight and can be waited on again.
    ///
    /// # Errors
    /// As [`wait`](Self::wait), plus [`Error::Timeout`], and
    /// [`Error::AlreadyTaken`] after an earlier wait returned the answer.
    pub fn wait_timeout(&mut self, timeout: Duration) -> Result<Response, Error> {
        match Instant::now().checked_add(timeout) {
            Some(deadline) => self.wait_deadline(deadline),
            None => self.take(None).expect("an unbounded wait ends with an outcome"),
        }
    }

    /// Waits until `deadline`. On [`Error::Timeout`] the request is still in
    /// flight.
    ///
    /// # Errors
    /// As [`wait_timeout`](Self::wait_timeout).
    pub fn wait_deadline(&mut self, deadline: Instant) -> Result<Response, Error> {
        self.take(Some(deadline)).unwrap_or(Err(Error::Timeout))
    }

    /// The answer if it has arrived, without blocking; `None` if not yet.
    pub fn try_wait(&mut self) -> Option<Result<Response, Error>> {
        self.take(Some(Instant::now()))
    }

    /// Whether the answer (or an error) is ready to be taken.
    pub fn is_ready(&self) -> bool {
        self.flush_if_waiting()
    }

    /// Spins on the answer (see [`Config::wait_spin`](crate::Config::wait_spin)).
    /// With many requests in flight, only while spinning pays: after a spin
    /// that the answer did not end, the next [`SPIN_BACKOFF`] such waits
    /// sleep at once. A spin that fails takes CPU from the threads that move
    /// the caller's other requests, and a caller that spins all the time
    /// comes to be treated by the scheduler as a CPU hog, which places the
    /// connection's threads badly (BENCHMARKS.md has the figures).
    fn spin(&self, deadline: Option<Instant>) {
        let spin = self.shared.config.wait_spin;
        // A poll (`try_wait`) does not spin, nor count as a spin that failed.
        if spin.is_zero() || deadline.is_some_and(|deadline| deadline <= Instant::now()) {
            return;
        }
        let few = self.shared.tags.lock().outstanding() <= FEW_IN_FLIGHT;
        let backoff = &self.shared.spin_backoff;
        if !few {
            let skip = backoff.load(Ordering::Relaxed);
            if skip > 0 {
                backoff.store(skip - 1, Ordering::Relaxed);
                return;
            }
        }
        if !self.slot.spin(spin, deadline) && !few {
            backoff.store(SPIN_BACKOFF, Ordering::Relaxed);
        }
    }

    /// A caller about to wait (or to poll) sends what is staged first: its
    /// own request may be among it, and if not, the requests held back
    /// behind it are better on their way while this thread sleeps (waiting
    /// only for those of others, the stream could go idle). Returns whether
    /// the answer is ready.
    fn flush_if_waiting(&self) -> bool {
        if !self.slot.is_waiting() {
            return true;
        }
        // A failed write fails the request itself; the wait reports that.
        let _ = self.shared.outbox.flush(&self.shared);
        false
    }

    /// Gives up on the request: its tag is freed here, and a late answer is
    /// dropped quietly. The peer is not told (the wire format has no way to).
    pub fn cancel(self) {
        // Drop does the work.
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        if !self.settled && self.slot.is_waiting() {
            self.shared.forget(self.channel, self.tag);
            self.slot.complete(Err(Error::Cancelled));
        }
    }
}

impl std::fmt::Debug for Pending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pending")
            .field("channel", &self.channel)
            .field("tag", &self.tag)
            .field("ready", &self.is_ready())
            .finish()
    }
}
