//! The handle a caller blocks on for one answer, and the wait policy: spin
//! briefly, then park.

use std::fmt;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use super::answer::{Failure, Response};
use super::calls::{Key, Slot};
use super::error::{ConnectionError, RequestError};
use super::link::Link;
use super::send::policy;
use crate::ext::{self, notice::Notice, Feature};

/// With many requests in flight, how many waits sleep at once after a spin
/// that did not pay.
const SPIN_BACKOFF: u32 = 8;

/// A request in flight. Wait on it for the answer, or cancel it.
///
/// The answer is `Ok(Response)` for an ok response and
/// [`RequestError::Failed`] for a failed one; [`RequestError::Connection`]
/// means the request got no answer because the connection ended. The timed
/// and non-blocking waits hand the `Pending` back when the answer is not
/// there yet, so it can be waited on again. Dropping a `Pending` cancels the
/// request: its answer, when it comes, is dropped quietly, and a
/// `packetstream` peer is told at once, so that its handler can see it
/// ([`Context::is_cancelled`](crate::Context::is_cancelled)). A plain
/// cs.packetstream peer is told nothing.
#[must_use = "dropping a Pending cancels its request"]
pub struct Pending {
    /// Holds the request's channel too (see [`Slot`]).
    slot: Arc<Slot>,
    tag: u64,
    link: Arc<Link>,
}

/// Why [`Pending::wait_timeout`] or [`Pending::wait_deadline`] returned no
/// ok answer.
#[non_exhaustive]
pub enum WaitTimeoutError {
    /// No answer yet; the request is still in flight, and here it is back.
    Timeout(Pending),
    /// The peer answered ok = 0.
    Failed(Failure),
    /// The connection ended before an answer came.
    Connection(ConnectionError),
}

/// Why [`Pending::try_wait`] returned no ok answer.
#[non_exhaustive]
pub enum TryWaitError {
    /// No answer yet; the request is still in flight, and here it is back.
    NotReady(Pending),
    /// The peer answered ok = 0.
    Failed(Failure),
    /// The connection ended before an answer came.
    Connection(ConnectionError),
}

impl Pending {
    pub(crate) fn new(slot: Arc<Slot>, tag: u64, link: Arc<Link>) -> Self {
        link.calls.wait.hold(true);
        Pending { slot, tag, link }
    }

    /// The request's channel.
    pub fn channel(&self) -> u64 {
        self.slot.channel()
    }

    /// The request's tag.
    pub fn tag(&self) -> u64 {
        self.tag
    }

    fn key(&self) -> Key {
        (self.slot.channel(), self.tag)
    }

    /// Blocks until the answer arrives or the connection ends.
    ///
    /// # Errors
    /// [`RequestError::Failed`] for an ok = 0 response;
    /// [`RequestError::Connection`] when the connection ended first.
    pub fn wait(mut self) -> Result<Response, RequestError> {
        match self.take(None) {
            Some(outcome) => outcome,
            None => unreachable!("an unbounded wait ends with an outcome"),
        }
    }

    /// Waits at most `timeout`.
    ///
    /// # Errors
    /// [`WaitTimeoutError::Timeout`] with this handle back if no answer came
    /// in time; otherwise as [`wait`](Self::wait).
    pub fn wait_timeout(self, timeout: Duration) -> Result<Response, WaitTimeoutError> {
        match Instant::now().checked_add(timeout) {
            Some(deadline) => self.wait_deadline(deadline),
            None => self.wait().map_err(WaitTimeoutError::from),
        }
    }

    /// Waits until `deadline`.
    ///
    /// # Errors
    /// As [`wait_timeout`](Self::wait_timeout).
    pub fn wait_deadline(mut self, deadline: Instant) -> Result<Response, WaitTimeoutError> {
        match self.take(Some(deadline)) {
            Some(outcome) => outcome.map_err(WaitTimeoutError::from),
            None => Err(WaitTimeoutError::Timeout(self)),
        }
    }

    /// The answer if it has arrived, without blocking.
    ///
    /// # Errors
    /// [`TryWaitError::NotReady`] with this handle back if not yet;
    /// otherwise as [`wait`](Self::wait).
    pub fn try_wait(mut self) -> Result<Response, TryWaitError> {
        match self.take(Some(Instant::now())) {
            Some(outcome) => outcome.map_err(TryWaitError::from),
            None => Err(TryWaitError::NotReady(self)),
        }
    }

    /// Whether the answer (or an error) is ready to be taken.
    pub fn is_ready(&self) -> bool {
        self.flush_if_waiting()
    }

    /// Gives up on the request: its tag is freed here, and a late answer is
    /// dropped quietly. A `packetstream` peer that agreed on
    /// [`Feature::Cancel`](crate::ext::Feature::Cancel) is told at once; a
    /// plain cs.packetstream peer cannot be (its wire format has no way to).
    pub fn cancel(self) {
        // Drop does the work.
    }

    /// The one wait behind every public variant: `deadline` None blocks,
    /// Some(past instant) only looks. `None` means still waiting.
    fn take(&mut self, deadline: Option<Instant>) -> Option<Result<Response, RequestError>> {
        if self.flush_if_waiting() {
            return self.slot.take(deadline);
        }
        // Reads the stream itself while nobody else does; else waits as
        // before, counted as waiting so that the stream is not left unread.
        let reading = self.link.reading();
        if let Some(reading) = &reading {
            Arc::clone(reading).enter_wait(&self.slot, deadline);
        }
        if !self.slot.is_done() {
            self.spin(deadline);
        }
        let outcome = self.slot.take(deadline);
        if let Some(reading) = reading {
            reading.leave_wait(&self.slot);
        }
        outcome
    }

    /// Spins on the answer (see [`Config::wait_spin`](crate::Config::wait_spin)).
    /// With many requests in flight, only while spinning pays: after a spin
    /// that the answer did not end, the next [`SPIN_BACKOFF`] such waits
    /// sleep at once. A spin that fails takes CPU from the threads that move
    /// the caller's other requests, and a caller that spins all the time
    /// comes to be treated by the scheduler as a CPU hog, which places the
    /// connection's threads badly (BENCHMARKS.md has the figures).
    fn spin(&self, deadline: Option<Instant>) {
        let policy = &self.link.calls.wait;
        // A poll (`try_wait`) does not spin, nor count as a spin that failed.
        if policy.spin.is_zero() || deadline.is_some_and(|deadline| deadline <= Instant::now()) {
            return;
        }
        let light = policy::is_light(self.link.calls.outstanding());
        let backoff = &policy.backoff;
        if !light {
            let skip = backoff.load(Ordering::Relaxed);
            if skip > 0 {
                backoff.store(skip - 1, Ordering::Relaxed);
                return;
            }
        }
        if !spin_on(&self.slot, policy.spin, deadline) && !light {
            backoff.store(SPIN_BACKOFF, Ordering::Relaxed);
        }
    }

    /// A caller about to wait (or to poll) sends what is staged first: its
    /// own request may be among it, and if not, the requests held back
    /// behind it are better on their way while this thread sleeps (waiting
    /// only for those of others, the stream could go idle). Returns whether
    /// the answer is ready.
    fn flush_if_waiting(&self) -> bool {
        if self.slot.is_done() {
            return true;
        }
        self.link.send.flush();
        false
    }
}

/// Stays awake for at most `spin` (and not past `deadline`) while the
/// outcome is not there, letting other runnable threads have the CPU. An
/// answer that comes meanwhile is taken without the sleep and wake-up,
/// which on a virtual machine whose CPU went idle can cost tens of
/// microseconds.
fn spin_on(slot: &Slot, spin: Duration, deadline: Option<Instant>) -> bool {
    let start = Instant::now();
    let until = deadline.map_or(start + spin, |deadline| deadline.min(start + spin));
    while !slot.is_done() && Instant::now() < until {
        thread::yield_now();
    }
    slot.is_done()
}

impl Drop for Pending {
    fn drop(&mut self) {
        self.link.calls.wait.hold(false);
        // A taken outcome left the slot done: nothing to give up.
        if !self.slot.is_done() {
            let Link { calls, send, control, .. } = &*self.link;
            // Gone already: its answer is in, and there is nothing to cancel.
            let in_flight = calls.forget(self.key());
            // Whoever races us (the answer, a failed connection) loses: the
            // slot keeps the first outcome, and nobody will take it.
            self.slot.complete(Err(RequestError::Connection(ConnectionError::Closed)));
            let (channel, tag) = self.key();
            if in_flight && !ext::is_reserved(channel) && control.agreed(Feature::Cancel) {
                if let Some(packet) = control.notice(calls, &Notice::Cancel { channel, tag }) {
                    // Told at once: its handler may be working for nobody.
                    // A drop never blocks (a timed call drops its request
                    // at its deadline): with no room now, the notice goes.
                    let _ = send.send(packet, true, Some(Instant::now()));
                }
            }
        }
    }
}

impl fmt::Debug for Pending {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pending")
            .field("channel", &self.channel())
            .field("tag", &self.tag)
            .field("ready", &self.slot.is_done())
            .finish()
    }
}

macro_rules! pending_error {
    ($name:ident, $still:ident, $text:literal) => {
        impl From<RequestError> for $name {
            fn from(error: RequestError) -> Self {
                match error {
                    RequestError::Failed(failure) => $name::Failed(failure),
                    RequestError::Connection(error) => $name::Connection(error),
                }
            }
        }

        impl $name {
            /// The peer's failure, for a failed answer.
            pub fn failure(&self) -> Option<&Failure> {
                match self {
                    $name::Failed(failure) => Some(failure),
                    _ => None,
                }
            }

            /// The handle back, when the answer had not come.
            pub fn into_pending(self) -> Option<Pending> {
                match self {
                    $name::$still(pending) => Some(pending),
                    _ => None,
                }
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                match self {
                    $name::$still(pending) => f.debug_tuple(stringify!($still)).field(pending).finish(),
                    $name::Failed(failure) => f.debug_tuple("Failed").field(failure).finish(),
                    $name::Connection(error) => f.debug_tuple("Connection").field(error).finish(),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                match self {
                    $name::$still(_) => f.write_str($text),
                    $name::Failed(failure) => failure.describe(f),
                    $name::Connection(error) => fmt::Display::fmt(error, f),
                }
            }
        }

        impl std::error::Error for $name {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                match self {
                    $name::Connection(error) => Some(error),
                    _ => None,
                }
            }
        }
    };
}

pending_error!(WaitTimeoutError, Timeout, "timed out waiting for the answer");
pending_error!(TryWaitError, NotReady, "the answer has not arrived");
