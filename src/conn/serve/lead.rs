//! Callers that read for themselves: Leader/Followers between the reading
//! thread and the callers waiting for their answers.
//!
//! A caller that waits while the reading thread reads costs three thread
//! wake-ups per call: the peer's, the reading thread's, and its own, woken
//! by the reading thread. A caller that reads the stream itself is woken by
//! its answer, as a program that writes a request and reads the reply is:
//! two. So when the reading thread has just delivered an answer and nothing
//! more is buffered, and nobody waits, it leaves the stream *vacant* for a
//! while ([`LINGER`]) instead of blocking on it: the next caller to wait
//! takes the stream and reads until its own answer comes, delivering
//! whatever else arrives as the reader would (other callers' answers;
//! requests, to the workers), then leaves it vacant again. The reading
//! thread takes the stream back when a linger passes with the stream
//! vacant, or at once when a caller leaves it while others still wait.
//!
//! What reading promises holds for a caller too: it runs no handler, never
//! waits for anything but the stream (its writes go through the writer
//! thread), and reads only until its own deadline, in slices short enough
//! to notice that its wait was ended from outside (a failed connection): a
//! frame it stops in the middle of resumes with whoever reads next.
//!
//! It needs a stream whose reads can wait with a deadline (a file
//! descriptor); the in-memory transport and arbitrary readers keep the
//! reading thread. While a stream is open, or a conversation of the
//! connection's own is, the reading thread does not leave: their waits are
//! not a caller's. And lingers that no caller takes make it stop leaving
//! for a while, so that a connection whose callers come seldom keeps its
//! reading thread on the stream.

use std::thread::{self, Thread};
use std::time::Duration;

use parking_lot::Mutex;

use super::reading::ReadState;
use crate::conn::calls::Slot;

/// How long the reading thread leaves the stream to the callers before it
/// takes it back: as long as a packet may be held back to leave with others
/// ([`DEFAULT_PACKET_GRACE`](crate::DEFAULT_PACKET_GRACE)), the latency the
/// connection allows itself elsewhere.
pub(crate) const LINGER: Duration = Duration::from_millis(1);

/// After this many lingers in a row that no caller took, the reading
/// thread stays on the stream for [`SKIP`] answers.
const MISSES: u32 = 4;
const SKIP: u32 = 64;

/// What became of a linger.
pub(crate) enum Lingered {
    /// The reading state, back with the reading thread.
    Back(ReadState),
    /// A caller saw the stream end, and finished reading.
    Ended,
}

/// The stream's vacancy, and who waits.
pub(crate) struct Lead {
    /// Whether callers may read at all (the stream can wait with a
    /// deadline, and the configuration allows it).
    enabled: bool,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// The reading state while nobody reads.
    vacant: Option<ReadState>,
    /// The thread that left the stream, parked for the linger.
    lingerer: Option<Thread>,
    /// Callers waiting (reading or not).
    waiters: usize,
    /// Whether a caller reads now.
    leading: bool,
    /// Whether a caller took the stream during the current linger.
    taken: bool,
    /// Reading ended on a caller's thread.
    ended: bool,
    missed: u32,
    skip: u32,
}

impl Lead {
    pub fn new(enabled: bool) -> Self {
        // Disabled, it is never vacant (see `linger`), and nobody enters.
        Lead { enabled, state: Mutex::new(State::default()) }
    }

    /// Whether callers may read (else they need not even be counted).
    pub fn is_enabled(&self) -> bool {
        self.enabled
    }

    /// Leaves the stream vacant for a linger and parks until the reading
    /// state comes back (or reading ended); gives it back at once if it may
    /// not be left now.
    pub fn linger(&self, reading: ReadState) -> Lingered {
        let mut state = self.state.lock();
        if !self.enabled || state.waiters > 0 || state.ended {
            return Lingered::Back(reading);
        }
        if state.skip > 0 {
            state.skip -= 1;
            return Lingered::Back(reading);
        }
        state.vacant = Some(reading);
        state.lingerer = Some(thread::current());
        state.taken = false;
        drop(state);
        loop {
            thread::park_timeout(LINGER);
            let mut state = self.state.lock();
            if state.ended {
                state.lingerer = None;
                return Lingered::Ended;
            }
            if state.leading {
                // A caller reads; the linger starts again when it is done.
                continue;
            }
            if let Some(reading) = state.vacant.take() {
                if state.taken {
                    state.missed = 0;
                } else {
                    state.missed += 1;
                    if state.missed >= MISSES {
                        state.missed = 0;
                        state.skip = SKIP;
                    }
                }
                state.lingerer = None;
                return Lingered::Back(reading);
            }
        }
    }

    /// A caller starts waiting on `slot`; the reading state if the stream
    /// is vacant (the caller then reads).
    pub fn enter(&self, slot: &Slot) -> Option<ReadState> {
        let mut state = self.state.lock();
        state.waiters += 1;
        // Counted before the reader can see the slot's answer as someone's.
        slot.count_waiter();
        if state.leading {
            return None;
        }
        let reading = state.vacant.take()?;
        state.leading = true;
        state.taken = true;
        Some(reading)
    }

    /// The reader delivered the answer of a caller counted as waiting.
    pub fn released(&self) {
        self.state.lock().waiters -= 1;
    }

    /// The caller that read gives the stream back (`None`: reading ended on
    /// its thread), and the reading thread is woken if others wait (it reads
    /// for them) or reading ended (it has nothing left to do).
    pub fn give_back(&self, reading: Option<ReadState>, slot: &Slot) {
        let mut state = self.state.lock();
        state.leading = false;
        match reading {
            Some(reading) => state.vacant = Some(reading),
            None => state.ended = true,
        }
        // The caller counts as waiting until `leave`, unless it read its own
        // answer; others waiting need a reader.
        let others = state.waiters - usize::from(slot.is_counted());
        let wake = state.ended || others > 0;
        let lingerer = if wake { state.lingerer.clone() } else { None };
        drop(state);
        if let Some(lingerer) = lingerer {
            lingerer.unpark();
        }
    }

    /// A caller stops waiting on `slot`.
    pub fn leave(&self, slot: &Slot) {
        if slot.release_waiter() {
            self.state.lock().waiters -= 1;
        }
    }
}
