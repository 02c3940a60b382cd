//! What the serving side knows of the peer's requests beyond their packets:
//! which the caller gave up (a cancel notice), what time budget each came
//! with (a budget notice), and whether the peer is gone. A handler asks
//! through its request's [`Context`](crate::Context).
//!
//! Most requests have no note, and answering one costs a look at a counter:
//! the table holds only the requests a notice was about.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use crate::conn::caller::Peer;
use crate::conn::calls::{Key, TagBuild};

#[derive(Default)]
struct Note {
    cancelled: bool,
    /// The caller's budget, and when its notice arrived.
    budget: Option<(Duration, Instant)>,
}

pub(crate) struct Notes {
    /// Makes requests back to the peer, for handlers.
    pub peer: Peer,
    table: Mutex<HashMap<Key, Note, TagBuild>>,
    /// Entries in the table, for a look without the lock.
    count: AtomicUsize,
    /// At most this many notes are kept: a peer's notices about requests it
    /// never sends cannot grow the table without bound.
    limit: usize,
    /// A cancel arrived, or the peer went.
    changed: Condvar,
    /// The peer sent its last packet (its EOF, or the stream ended).
    peer_gone: AtomicBool,
    /// Answers can no longer reach the peer (the stream failed, or the
    /// connection was given up), unlike after a clean EOF, when the peer
    /// still reads until this end's own.
    lost: AtomicBool,
}

impl Notes {
    pub fn new(peer: Peer, limit: usize) -> Self {
        Notes {
            peer,
            table: Mutex::new(HashMap::default()),
            count: AtomicUsize::new(0),
            limit: limit.max(1),
            changed: Condvar::new(),
            peer_gone: AtomicBool::new(false),
            lost: AtomicBool::new(false),
        }
    }

    fn note(&self, key: Key, change: impl FnOnce(&mut Note)) {
        let mut table = self.table.lock();
        if !table.contains_key(&key) && table.len() >= self.limit {
            log::debug!("dropping a notice about request {}:{}: too many notes", key.0, key.1);
            return;
        }
        change(table.entry(key).or_default());
        self.count.store(table.len(), SeqCst);
    }

    /// The caller of `key` waits at most `budget`. Its notice comes just
    /// before the request.
    pub fn budget(&self, key: Key, budget: Duration) {
        self.note(key, |note| note.budget = Some((budget, Instant::now())));
    }

    /// The caller gave `key` up; kept only while `in_service` says the
    /// request is. Noted first and looked at after: a request answered
    /// meanwhile has its note taken by [`answered`](Self::answered), which
    /// comes after the request leaves service, or else here.
    pub fn cancel_if(&self, key: Key, in_service: impl FnOnce() -> bool) {
        self.note(key, |note| note.cancelled = true);
        if in_service() {
            self.changed.notify_all();
        } else {
            self.answered(key);
        }
    }

    /// `key` was answered (or refused): its note, if any, goes.
    pub fn answered(&self, key: Key) {
        if self.count.load(SeqCst) == 0 {
            return;
        }
        let mut table = self.table.lock();
        table.remove(&key);
        self.count.store(table.len(), SeqCst);
    }

    /// Whether the caller gave `key` up, or its answer can no longer reach
    /// it.
    pub fn is_cancelled(&self, key: Key) -> bool {
        self.is_lost()
            || (self.count.load(SeqCst) > 0 && self.table.lock().get(&key).is_some_and(|note| note.cancelled))
    }

    /// The budget `key` came with, and when it arrived.
    pub fn budget_of(&self, key: Key) -> Option<(Duration, Instant)> {
        if self.count.load(SeqCst) == 0 {
            return None;
        }
        self.table.lock().get(&key).and_then(|note| note.budget)
    }

    /// Waits until `key` is cancelled (as [`is_cancelled`](Self::is_cancelled)
    /// says) or `deadline` passes (`None`: for as long as it takes); whether
    /// it was.
    pub fn wait_cancelled(&self, key: Key, deadline: Option<Instant>) -> bool {
        let mut table = self.table.lock();
        loop {
            if self.is_lost() || table.get(&key).is_some_and(|note| note.cancelled) {
                return true;
            }
            match deadline {
                None => self.changed.wait(&mut table),
                Some(deadline) => {
                    if self.changed.wait_until(&mut table, deadline).timed_out() {
                        return self.is_lost() || table.get(&key).is_some_and(|note| note.cancelled);
                    }
                }
            }
        }
    }

    /// The peer has sent its last packet; `lost`: and answers can no longer
    /// reach it.
    pub fn peer_went(&self, lost: bool) {
        self.peer_gone.store(true, SeqCst);
        if lost {
            self.lost.store(true, SeqCst);
        }
        let _table = self.table.lock();
        self.changed.notify_all();
    }

    fn is_lost(&self) -> bool {
        self.lost.load(SeqCst)
    }

    pub fn is_peer_gone(&self) -> bool {
        self.peer_gone.load(SeqCst)
    }
}
