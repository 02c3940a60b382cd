//! A caller waiting for its answer reads the stream itself while it is
//! vacant: the follower's side of the Leader/Followers hand-over whose
//! state is [`Lead`](super::lead::Lead).

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::reader::{self, Role, Step};
use super::serving::Serving;
use crate::conn::calls::Slot;
use crate::conn::link::Reading;
use crate::conn::stats::Counters;

/// How often a caller reading for itself looks up from the stream, to see
/// whether its wait was ended from outside.
const SLICE: Duration = Duration::from_millis(10);

/// A caller reading for itself looks at the clock at least once in this
/// many packets.
const CLOCK_EVERY: u32 = 32;

impl Reading for Serving {
    fn enter_wait(self: Arc<Self>, slot: &Slot, deadline: Option<Instant>) {
        // The reading thread leaves the stream only when nothing but callers
        // waits on it (see `Serving::others_wait`).
        let Some(mut reading) = self.lead.enter(slot) else { return };
        let done = || slot.is_done();
        Counters::add(&self.send.counters.caller_reads, 1);
        let slice_end = |now: Instant| deadline.map_or(now + SLICE, |deadline| deadline.min(now + SLICE));
        reading.until = Some(slice_end(Instant::now()));
        let mut unclocked = 0u32;
        let (mut reading, ended) = loop {
            // Whole frames already read are dispatched before the stream is
            // left: nobody may read again for a linger.
            let buffered = reading.packets.has_buffered_packet();
            if done() && !buffered {
                break (reading, None);
            }
            // The clock is read when a read gave up (the slice or the
            // deadline passed) and every so many packets otherwise, not for
            // each: a stream of packets that are not this caller's answer
            // must not keep it past its deadline.
            if unclocked >= CLOCK_EVERY {
                unclocked = 0;
                let now = Instant::now();
                if deadline.is_some_and(|deadline| deadline <= now) && !buffered {
                    break (reading, None);
                }
                reading.until = Some(slice_end(now));
            }
            unclocked += 1;
            match reader::read_one(reading, Role::Caller, &self) {
                Step::Go(next) => reading = next,
                Step::Suspended(next) => {
                    reading = next;
                    unclocked = CLOCK_EVERY;
                }
                Step::End(last, outcome) => break (last, Some(outcome)),
                Step::TakenOver | Step::Linger(_) => unreachable!("a caller runs no section and never lingers"),
            }
        };
        reading.until = None;
        // Requests decoded here go to the workers before the stream is left.
        let ended = match ended {
            None => reader::hand_on(&mut reading, &self).err().map(Err),
            Some(outcome) => Some(outcome),
        };
        match ended {
            None => self.lead.give_back(Some(reading), slot),
            Some(outcome) => {
                reader::finish(reading, outcome, &self);
                self.lead.give_back(None, slot);
            }
        }
    }

    fn leave_wait(&self, slot: &Slot) {
        self.lead.leave(slot);
    }
}
