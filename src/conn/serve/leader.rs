//! The reader hand-off, a Leader/Followers arrangement: the thread that reads
//! the stream (the leader) runs a quick request's handler itself, and an idle
//! worker (a follower) watches; if the handler has not returned a tick later,
//! the follower takes the reading state and becomes the leader, and the old
//! leader becomes a worker once its handler returns.
//!
//! Handing each request from the reader to a worker costs a thread wake-up
//! per round trip, and for a handler that answers in a microsecond that is
//! most of the work. Running it on the reading thread saves the wake-up, but
//! a handler may block, call back into the peer, or write to a peer that is
//! not reading; reading must go on meanwhile, or two peers flooding each
//! other would stop for good. So the leader runs handlers (and its own
//! write calls) only in a *section* that a follower watches.
//!
//! [`Handoff`] is the state of that arrangement with no lock and no thread
//! inside: the worker pool keeps it under its own lock (admitting requests
//! and starting a section cost one lock together) and parks and wakes the
//! threads it names. Time is passed in, so the logic is tested without
//! sleeping.

use std::time::{Duration, Instant};

use crate::conn::calls::Key;

/// How often the watching follower looks at the leader's section; a section
/// running across a whole tick is taken to be stuck.
pub(crate) const WATCH_TICK: Duration = Duration::from_millis(1);

/// A section of the leader: a handler it runs, or a write call it makes,
/// while a follower watches.
pub(crate) struct Section<T> {
    pub number: u64,
    /// The request whose handler runs, or `None` for a write.
    pub key: Option<Key>,
    /// Which thread runs it.
    pub thread: usize,
    /// The reading state, left here for a takeover.
    pub reading: T,
}

/// What a follower's look at the leader found.
pub(crate) enum Verdict<T> {
    /// The same section ran across a whole tick: read in its place.
    TakeOver(Section<T>),
    /// A section runs, or ran since the last look: look again in a tick.
    Watch,
    /// No section since the last look: stop watching, sleep until woken.
    Sleep,
}

/// What a watching follower remembers between two looks.
#[derive(Default)]
pub(crate) struct Look {
    /// The section seen running, and when it was first seen.
    seen: Option<(u64, Instant)>,
    /// How many sections had begun at the last look.
    sections: u64,
}

impl Look {
    /// A look that starts at `handoff`'s present: only sections begun after
    /// it count as new.
    pub fn since<T>(handoff: &Handoff<T>) -> Look {
        Look { seen: None, sections: handoff.sections }
    }

    /// Forgets the section seen: the follower stopped watching, and a
    /// section it sees when it watches again must run a whole tick anew.
    pub fn forget_section(&mut self) {
        self.seen = None;
    }
}

/// The state of the hand-off.
pub(crate) struct Handoff<T> {
    section: Option<Section<T>>,
    /// Sections begun so far, so that a follower tells a new one from an old.
    sections: u64,
    /// Whether the follower on top of the idle stack watches (parks with a
    /// timeout); when false it sleeps until woken.
    watching: bool,
    /// The leader runs no handler before then.
    paused_until: Option<Instant>,
    /// How long a takeover pauses handlers on the leader.
    pause: Duration,
}

impl<T> Handoff<T> {
    pub fn new(pause: Duration) -> Self {
        Handoff { section: None, sections: 0, watching: false, paused_until: None, pause }
    }

    /// Whether the leader may run a handler now: not within a pause. The
    /// clock (`now`) is read only while a pause is on: this runs for every
    /// request, and reading the clock costs as much as a quick handler.
    pub fn may_run_handler(&mut self, now: impl FnOnce() -> Instant) -> bool {
        match self.paused_until {
            None => true,
            Some(until) if now() < until => false,
            Some(_) => {
                self.paused_until = None;
                true
            }
        }
    }

    /// Pauses handlers on the leader from `now` (after a slow handler).
    pub fn pause_from(&mut self, now: Instant) {
        if !self.pause.is_zero() {
            self.paused_until = Some(now + self.pause);
        }
    }

    /// Begins a section of `thread`, leaving the reading state here. Returns
    /// its number, and whether the follower on top of the idle stack must be
    /// woken to watch (it was asleep).
    pub fn begin(&mut self, thread: usize, key: Option<Key>, reading: T) -> (u64, bool) {
        self.sections += 1;
        let number = self.sections;
        self.section = Some(Section { number, key, thread, reading });
        let wake = !std::mem::replace(&mut self.watching, true);
        (number, wake)
    }

    /// Ends section `number`: the reading state back, or `None` if a
    /// follower took it over meanwhile.
    pub fn end(&mut self, number: u64) -> Option<T> {
        if self.section.as_ref().is_some_and(|section| section.number == number) {
            self.section.take().map(|section| section.reading)
        } else {
            None
        }
    }

    /// The request whose handler runs in the current section, if any.
    pub fn running(&self) -> Option<Key> {
        self.section.as_ref().and_then(|section| section.key)
    }

    /// Whether a section is running.
    pub fn in_section(&self) -> bool {
        self.section.is_some()
    }

    /// Whether the top follower watches.
    pub fn is_watching(&self) -> bool {
        self.watching
    }

    /// The top follower watches from now on: it went idle while a section
    /// ran that no one watched.
    pub fn start_watching(&mut self) {
        self.watching = true;
    }

    /// The top follower changed (it was woken for a job, or the pool is
    /// closing): the new one sleeps until a section wakes it.
    pub fn stop_watching(&mut self) {
        self.watching = false;
    }

    /// The watching follower looks at `now`.
    pub fn look(&mut self, look: &mut Look, now: Instant) -> Verdict<T> {
        let verdict = match (self.section.as_ref().map(|section| section.number), look.seen) {
            (Some(number), Some((seen, since))) if number == seen => {
                if now.saturating_duration_since(since) >= WATCH_TICK {
                    let section = self.section.take().expect("matched a section");
                    self.watching = false;
                    self.pause_from(now);
                    look.seen = None;
                    return Verdict::TakeOver(section);
                }
                Verdict::Watch
            }
            (Some(number), _) => {
                look.seen = Some((number, now));
                Verdict::Watch
            }
            (None, _) if self.sections == look.sections => {
                self.watching = false;
                look.seen = None;
                Verdict::Sleep
            }
            (None, _) => {
                look.seen = None;
                Verdict::Watch
            }
        };
        look.sections = self.sections;
        verdict
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEFAULT_PAUSE: Duration = Duration::from_millis(100);

    fn at(start: Instant, micros: u64) -> Instant {
        start + Duration::from_micros(micros)
    }

    #[test]
    fn a_quick_section_gives_the_reading_state_back() {
        let mut handoff = Handoff::new(DEFAULT_PAUSE);
        let (number, wake) = handoff.begin(4, Some((0, 2)), "reading");
        assert!(wake, "the first section wakes the follower");
        assert_eq!(handoff.running(), Some((0, 2)));
        assert_eq!(handoff.end(number), Some("reading"));
        assert!(!handoff.in_section());
        // Already watching: the next section wakes no one.
        let (number, wake) = handoff.begin(4, None, "reading");
        assert!(!wake);
        assert_eq!(handoff.end(number), Some("reading"));
    }

    #[test]
    fn a_section_running_across_a_tick_is_taken_over() {
        let start = Instant::now();
        let mut handoff = Handoff::new(DEFAULT_PAUSE);
        let mut look = Look::default();
        let (number, _) = handoff.begin(4, Some((0, 7)), "reading");
        assert!(matches!(handoff.look(&mut look, at(start, 0)), Verdict::Watch));
        assert!(matches!(handoff.look(&mut look, at(start, 999)), Verdict::Watch));
        let Verdict::TakeOver(section) = handoff.look(&mut look, at(start, 1000)) else {
            panic!("not taken over after a tick")
        };
        assert_eq!(
            (section.number, section.key, section.thread, section.reading),
            (number, Some((0, 7)), 4, "reading")
        );
        // The stuck leader finds its state gone, and handlers pause.
        assert_eq!(handoff.end(number), None);
        assert!(!handoff.is_watching());
        assert!(!handoff.may_run_handler(|| at(start, 1000 + 99_999)));
        assert!(handoff.may_run_handler(|| at(start, 1000 + 100_000)));
        assert!(handoff.may_run_handler(|| panic!("no clock is read once the pause is over")));
    }

    #[test]
    fn short_sections_in_a_row_are_never_taken_over() {
        let start = Instant::now();
        let mut handoff = Handoff::new(DEFAULT_PAUSE);
        let mut look = Look::default();
        for i in 0..10u64 {
            let (number, _) = handoff.begin(4, Some((0, i)), i);
            // Each look sees a new section: never the same one twice.
            assert!(matches!(handoff.look(&mut look, at(start, i * 900)), Verdict::Watch));
            assert_eq!(handoff.end(number), Some(i));
        }
    }

    #[test]
    fn the_follower_sleeps_once_no_section_has_begun_since_its_last_look() {
        let start = Instant::now();
        let mut handoff = Handoff::new(DEFAULT_PAUSE);
        let mut look = Look::default();
        let (number, _) = handoff.begin(4, None, ());
        assert!(matches!(handoff.look(&mut look, start), Verdict::Watch));
        handoff.end(number);
        // It ended since the look: one more look, then sleep.
        let (number, _) = handoff.begin(4, None, ());
        handoff.end(number);
        assert!(matches!(handoff.look(&mut look, at(start, 1000)), Verdict::Watch));
        assert!(matches!(handoff.look(&mut look, at(start, 2000)), Verdict::Sleep));
        assert!(!handoff.is_watching());
        // The next section must wake it.
        assert!(handoff.begin(4, None, ()).1);
    }

    #[test]
    fn pausing_can_be_turned_off() {
        let start = Instant::now();
        let mut handoff: Handoff<()> = Handoff::new(Duration::ZERO);
        handoff.pause_from(start);
        assert!(handoff.may_run_handler(|| start));
    }
}
