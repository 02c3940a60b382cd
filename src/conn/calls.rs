//! This side's requests in flight: the mutex-guarded tag map, and what
//! waits on each of its entries — one answer (a [`Slot`], which a
//! [`Pending`](crate::Pending) blocks on), or a conversation that takes
//! many packets before its last.
//!
//! The map itself ([`TagMap`]) is a plain data structure with no lock
//! inside; [`Calls`] puts it behind one mutex and delivers outcomes outside
//! it.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU8, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use super::answer::{Failure, Response};
use super::error::{ChildEnd, ConnectionError, RequestError};
use crate::ext;
use crate::transport::{ChildProcess, ChildReport, Cpu};
use crate::wire::Packet;

/// Tags are small sequential integers chosen by us (or the peer, for the
/// incoming set), so a multiply-and-fold hash is enough and much cheaper
/// than SipHash on the per-packet path.
#[derive(Default)]
pub(crate) struct TagHasher(u64);

impl Hasher for TagHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

pub(crate) type TagBuild = BuildHasherDefault<TagHasher>;

/// `(channel, tag)` of a request.
pub(crate) type Key = (u64, u64);

/// Tag 0 and 1 of channel 0 belong to the EOF and ERQ packets.
const FIRST_TAG_CHANNEL_0: u64 = 2;

/// Where the answer to one request lands. The tag map holds one reference,
/// the caller's [`Pending`](crate::Pending) the other.
///
/// Every request in flight holds one, so it is kept within the allocator's
/// 64-byte class: the outcome is boxed once it arrives (an answer in hand
/// is short-lived, a request in flight may not be), and the request's
/// channel lives here, in what would be padding, rather than in `Pending`.
pub(crate) struct Slot {
    /// The outcome, from its delivery until a caller takes it: before, and
    /// after, `None` (which one, `done` tells).
    outcome: Mutex<Option<Box<Outcome>>>,
    ready: Condvar,
    channel: u64,
    /// Set with the outcome, for a look without the lock, and never unset.
    done: AtomicBool,
    /// Whether a caller is counted as waiting on this slot by the reading
    /// side ([`WAITER_COUNTED`]), and whether that count was given back
    /// ([`WAITER_RELEASED`]): by the reader as it delivers the answer, so
    /// that it knows at once that nobody waits, or by the caller.
    waiter: AtomicU8,
}

const WAITER_COUNTED: u8 = 1;
const WAITER_RELEASED: u8 = 2;

type Outcome = Result<Response, RequestError>;

impl Slot {
    /// The slot of a request on `channel`.
    pub fn new(channel: u64) -> Self {
        Slot {
            outcome: Mutex::new(None),
            ready: Condvar::new(),
            channel,
            done: AtomicBool::new(false),
            waiter: AtomicU8::new(0),
        }
    }

    /// The channel of its request.
    pub fn channel(&self) -> u64 {
        self.channel
    }

    /// A caller is counted as waiting on this slot.
    pub fn count_waiter(&self) {
        self.waiter.store(WAITER_COUNTED, Ordering::SeqCst);
    }

    /// Whether a caller is counted as waiting on this slot still.
    pub fn is_counted(&self) -> bool {
        self.waiter.load(Ordering::SeqCst) == WAITER_COUNTED
    }

    /// Gives the count of a waiting caller back, once: true for whoever
    /// does (the reader delivering the answer, or the caller leaving).
    pub fn release_waiter(&self) -> bool {
        // Most answers have nobody counted (a pipelining caller waits on one
        // of many): a look first, and the locked exchange only for a count.
        self.waiter.load(Ordering::SeqCst) == WAITER_COUNTED
            && self.waiter.compare_exchange(WAITER_COUNTED, WAITER_RELEASED, Ordering::SeqCst, Ordering::SeqCst).is_ok()
    }

    /// Delivers the outcome. Only the first delivery counts: a cancellation
    /// racing with a response leaves whichever came first.
    pub fn complete(&self, outcome: Outcome) {
        let mut held = self.outcome.lock();
        // Under the lock, `done` is only ever set by this same code.
        if !self.done.load(Ordering::Relaxed) {
            *held = Some(Box::new(outcome));
            self.done.store(true, Ordering::Release);
            drop(held);
            self.ready.notify_all();
        }
    }

    /// Whether the outcome has arrived (or was given up on).
    pub fn is_done(&self) -> bool {
        self.done.load(Ordering::Acquire)
    }

    /// Takes the outcome, blocking until `deadline` (`None`: for as long as
    /// it takes). `None` if it has not arrived by then. (Taken already
    /// cannot be seen: the one handle that takes is consumed by the taking.)
    pub fn take(&self, deadline: Option<Instant>) -> Option<Outcome> {
        let mut held = self.outcome.lock();
        while !self.done.load(Ordering::Relaxed) {
            match deadline {
                None => self.ready.wait(&mut held),
                Some(deadline) => {
                    if self.ready.wait_until(&mut held, deadline).timed_out() {
                        break;
                    }
                }
            }
        }
        held.take().map(|outcome| *outcome)
    }
}

/// What a conversation says about a packet delivered to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Delivered {
    /// More packets belong to it; its entry stays.
    More,
    /// That was its last packet; its entry goes.
    Last,
}

/// An entry that takes packets as they arrive (for instance a stream's
/// items), run on the reading thread: it must not block.
pub(crate) trait Conversation: Send + Sync {
    /// One packet for this `(channel, tag)`. What it makes this end send
    /// goes into `replies`, for the reader to send without waiting.
    fn deliver(&self, packet: Packet, replies: &mut Vec<Packet>) -> Delivered;
    /// The connection ended before the last packet.
    fn fail(&self, error: ConnectionError);
}

/// What waits on one tag.
pub(crate) enum Entry {
    /// One answer, for a caller.
    Answer(Arc<Slot>),
    /// Many packets.
    Conversation(Arc<dyn Conversation>),
}

/// The outcome of an answer packet: ok, or the peer's failure.
fn outcome(packet: Packet) -> Result<Response, RequestError> {
    let flags = packet.wire_flags >> 1;
    let payload = packet.payload;
    if packet.wire_flags & 1 == 1 {
        Ok(Response { flags, payload })
    } else {
        Err(RequestError::Failed(Failure { flags, payload }))
    }
}

/// The requests in flight and the tags handed out so far.
///
/// Answers and conversations are kept apart: an answer's entry is one thin
/// pointer, and the map of answers, looked up for every packet and holding
/// every request in flight, stays as compact as it can be.
#[derive(Default)]
pub(crate) struct TagMap {
    next_tag: HashMap<u64, u64, TagBuild>,
    /// Channel 0's answers, by tag alone: nearly every request is there,
    /// and an entry without its channel is a third smaller.
    answers_0: HashMap<u64, Arc<Slot>, TagBuild>,
    /// The other channels' answers.
    answers: HashMap<Key, Arc<Slot>, TagBuild>,
    conversations: HashMap<Key, Arc<dyn Conversation>, TagBuild>,
    /// Once set, no new requests are taken; the reason is what submit returns.
    refusing: Option<ConnectionError>,
}

/// What became of a packet for one of our tags.
pub(crate) enum Found {
    /// Deliver it there.
    Answer(Arc<Slot>),
    Conversation(Arc<dyn Conversation>),
    /// A tag we issued whose request was cancelled or timed out and forgotten.
    Forgotten,
    /// A tag we never issued.
    Unknown,
}

impl TagMap {
    /// Allocates the next tag on `channel` and files `entry` under it.
    pub fn register(&mut self, channel: u64, entry: Entry) -> Result<u64, ConnectionError> {
        if let Some(reason) = &self.refusing {
            return Err(reason.clone());
        }
        self.register_anyway(channel, entry)
    }

    /// [`register`](Self::register) even while new requests are refused:
    /// for the connection's own requests at close (the quit request).
    pub fn register_anyway(&mut self, channel: u64, entry: Entry) -> Result<u64, ConnectionError> {
        // 2^64 requests on one channel will not happen; refuse rather than reuse.
        let tag = self.allocate(channel).ok_or(ConnectionError::Closed)?;
        match entry {
            Entry::Answer(slot) if channel == 0 => self.answers_0.insert(tag, slot).map(drop),
            Entry::Answer(slot) => self.answers.insert((channel, tag), slot).map(drop),
            Entry::Conversation(conversation) => self.conversations.insert((channel, tag), conversation).map(drop),
        };
        Ok(tag)
    }

    /// Allocates the next tag on `channel` with nothing waiting on it, for
    /// a packet that is never answered (a notice).
    pub fn allocate(&mut self, channel: u64) -> Option<u64> {
        let first = if channel == 0 { FIRST_TAG_CHANNEL_0 } else { 0 };
        let next = self.next_tag.entry(channel).or_insert(first);
        let tag = *next;
        *next = next.checked_add(1)?;
        Some(tag)
    }

    /// Files `make(tag)` under the next tag on `channel`: for a
    /// conversation that must know its tag.
    pub fn register_with(
        &mut self,
        channel: u64,
        make: impl FnOnce(u64) -> Arc<dyn Conversation>,
    ) -> Result<u64, ConnectionError> {
        if let Some(reason) = &self.refusing {
            return Err(reason.clone());
        }
        let tag = self.allocate(channel).ok_or(ConnectionError::Closed)?;
        self.conversations.insert((channel, tag), make(tag));
        Ok(tag)
    }

    /// Forgets what waits on `key`; whether something waited there.
    pub fn remove(&mut self, key: Key) -> bool {
        self.take_answer(key).is_some() || (!self.conversations.is_empty() && self.conversations.remove(&key).is_some())
    }

    /// Finds the entry a packet for `key` belongs to. An answer's entry is
    /// removed at once; a conversation's stays until it says it is done.
    pub fn find(&mut self, key: Key) -> Found {
        if let Some(slot) = self.take_answer(key) {
            return Found::Answer(slot);
        }
        if let Some(conversation) = self.conversations.get(&key) {
            return Found::Conversation(Arc::clone(conversation));
        }
        let (channel, tag) = key;
        let first = if channel == 0 { FIRST_TAG_CHANNEL_0 } else { 0 };
        match self.next_tag.get(&channel) {
            Some(&next) if (first..next).contains(&tag) => Found::Forgotten,
            _ => Found::Unknown,
        }
    }

    /// Takes no new requests from now on; requests in flight keep waiting.
    pub fn refuse_new(&mut self, reason: ConnectionError) {
        self.refusing.get_or_insert(reason);
    }

    /// Why new requests are refused, if they are.
    pub fn refusal(&self) -> Option<&ConnectionError> {
        self.refusing.as_ref()
    }

    /// Takes no new requests and hands back every entry, to be failed
    /// outside the lock.
    pub fn take_all(&mut self, reason: ConnectionError) -> Vec<Entry> {
        self.refuse_new(reason);
        let answers_0 = self.answers_0.drain().map(|(_, slot)| Entry::Answer(slot));
        let answers = answers_0.chain(self.answers.drain().map(|(_, slot)| Entry::Answer(slot)));
        answers.chain(self.conversations.drain().map(|(_, conversation)| Entry::Conversation(conversation))).collect()
    }

    pub fn outstanding(&self) -> usize {
        self.answers_0.len() + self.answers.len() + self.conversations.len()
    }

    fn take_answer(&mut self, (channel, tag): Key) -> Option<Arc<Slot>> {
        if channel == 0 {
            self.answers_0.remove(&tag)
        } else {
            self.answers.remove(&(channel, tag))
        }
    }

    pub fn has_conversations(&self) -> bool {
        !self.conversations.is_empty()
    }

    /// How many of the application's requests and streams wait (the
    /// connection's own, on the control channel, not counted).
    pub fn callers_waiting(&self) -> usize {
        let of_the_application = |&(channel, _): &Key| channel != ext::CONTROL_CHANNEL;
        self.answers_0.len()
            + self.answers.keys().filter(|key| of_the_application(key)).count()
            + self.conversations.keys().filter(|key| of_the_application(key)).count()
    }
}

/// How long a waiting caller spins before it sleeps, and the back-off that
/// keeps spinning only while it pays (see [`Pending`](crate::Pending)).
///
/// On a cache line of its own: callers write the back-off on their waits,
/// and beside the tag map's lock it would make the reader's every lookup
/// fetch the line back.
#[repr(align(64))]
pub(crate) struct WaitPolicy {
    pub spin: Duration,
    /// Waits with many requests in flight that sleep at once, after a spin
    /// that the answer did not end.
    pub backoff: AtomicU32,
    /// Handles ([`Pending`](crate::Pending)) that callers hold: how many
    /// requests they juggle. Answered requests leave the tag map at once,
    /// so a pipelining caller that has just had its window answered looks
    /// idle there while it still holds every handle; counted here, it does
    /// not (see `policy::request_is_light`). Counted only on one CPU, the
    /// one place that asks.
    held: Option<AtomicUsize>,
}

impl WaitPolicy {
    /// How many handles callers hold (0 where they are not counted).
    pub fn held(&self) -> usize {
        self.held.as_ref().map_or(0, |held| held.load(Ordering::Relaxed))
    }

    /// Where a caller reading for itself runs (see
    /// [`transport::Cpu`](crate::transport::Cpu)): the handles are counted
    /// on one CPU only.
    pub fn cpu(&self) -> Cpu {
        match &self.held {
            None => Cpu::Several,
            Some(held) if held.load(Ordering::Relaxed) <= 1 => Cpu::Alone,
            Some(_) => Cpu::Shared,
        }
    }

    /// A handle is made (`true`) or dropped.
    pub fn hold(&self, made: bool) {
        match &self.held {
            Some(held) if made => held.fetch_add(1, Ordering::Relaxed),
            Some(held) => held.fetch_sub(1, Ordering::Relaxed),
            None => 0,
        };
    }
}

/// The tag map behind its mutex, with the connection's name for the log.
pub(crate) struct Calls {
    name: Arc<str>,
    map: Mutex<TagMap>,
    pub wait: WaitPolicy,
    /// The child process at the other end, if it is one: the end of its
    /// stream is explained by how the child ended.
    child: Option<Arc<ChildProcess>>,
}

impl Calls {
    /// `counts_held`: whether the handles callers hold are counted (see
    /// [`WaitPolicy::held`]).
    pub fn new(name: Arc<str>, spin: Duration, counts_held: bool, child: Option<Arc<ChildProcess>>) -> Self {
        let held = counts_held.then(|| AtomicUsize::new(0));
        Calls {
            name,
            map: Mutex::new(TagMap::default()),
            wait: WaitPolicy { spin, backoff: AtomicU32::new(0), held },
            child,
        }
    }

    /// The connection's name, for the log.
    pub fn name(&self) -> Arc<str> {
        Arc::clone(&self.name)
    }

    /// Files a new request on `channel`: its tag, and how many requests
    /// are in flight with it.
    pub fn register(&self, channel: u64, entry: Entry) -> Result<(u64, usize), ConnectionError> {
        let mut map = self.map.lock();
        let tag = map.register(channel, entry)?;
        Ok((tag, map.outstanding()))
    }

    /// Files one of the connection's own requests (a quit at close, a
    /// keepalive's ping), even when the application's are refused: its tag
    /// (`None` only once a channel's 2^64 tags are spent).
    pub fn register_at_close(&self, channel: u64, entry: Entry) -> Option<u64> {
        self.map.lock().register_anyway(channel, entry).ok()
    }

    /// A tag on `channel` for a packet that is never answered (`None` only
    /// once the channel's 2^64 tags are spent).
    pub fn allocate(&self, channel: u64) -> Option<u64> {
        self.map.lock().allocate(channel)
    }

    /// Files a conversation that must know its tag: `make` builds it from
    /// the tag (under the map's lock, so it must only build).
    pub fn register_with(
        &self,
        channel: u64,
        make: impl FnOnce(u64) -> Arc<dyn Conversation>,
    ) -> Result<u64, ConnectionError> {
        self.map.lock().register_with(channel, make)
    }

    /// A request given up on (cancelled, timed out, or never sent): its
    /// tag is freed, and a late answer to it is dropped quietly.
    pub fn forget(&self, key: Key) -> bool {
        self.map.lock().remove(key)
    }

    /// A packet for one of our tags arrived: hands it to what waits on it.
    /// `received` runs first when something waits, so that a caller woken
    /// by the answer finds it counted. What a conversation wants sent in
    /// return goes into `replies`.
    /// Returns whether the answer released a caller counted as waiting (see
    /// [`Slot::release_waiter`]).
    pub fn deliver(&self, packet: Packet, replies: &mut Vec<Packet>, received: impl FnOnce()) -> bool {
        let key = (packet.channel, packet.tag);
        self.deliver_to(key, packet, replies, received)
    }

    /// [`deliver`](Self::deliver) to the entry of `key`, which need not be
    /// the packet's own (a stream's messages from its serving end come on
    /// a channel of their own, to the caller's tag).
    pub fn deliver_to(&self, key: Key, packet: Packet, replies: &mut Vec<Packet>, received: impl FnOnce()) -> bool {
        let found = self.map.lock().find(key);
        match found {
            Found::Answer(slot) => {
                received();
                slot.complete(outcome(packet));
                return slot.release_waiter();
            }
            Found::Conversation(conversation) => {
                received();
                if conversation.deliver(packet, replies) == Delivered::Last {
                    self.map.lock().remove(key);
                }
            }
            Found::Forgotten => {
                log::debug!("{}: dropping late answer to cancelled request {}:{}", self.name, key.0, key.1);
            }
            Found::Unknown => {
                log::warn!("{}: ignoring answer to unknown request {}:{}", self.name, key.0, key.1);
            }
        }
        false
    }

    /// Takes no new requests; those in flight keep waiting.
    pub fn refuse_new(&self, reason: ConnectionError) {
        self.map.lock().refuse_new(reason);
    }

    /// Why new requests are refused: the error that stopped the
    /// connection, or [`ConnectionError::Closed`].
    pub fn ended_reason(&self) -> ConnectionError {
        self.map.lock().refusal().cloned().unwrap_or(ConnectionError::Closed)
    }

    /// Fails every request in flight with `reason` and refuses new ones.
    /// The first reason given stands for later submits. When the peer is a
    /// child process, an end this side did not cause carries how the child
    /// ended ([`ConnectionError::Child`]).
    /// Returns the reason the requests got, explained.
    pub fn fail_all(&self, reason: ConnectionError) -> ConnectionError {
        let reason = self.explain(reason);
        let entries = self.map.lock().take_all(reason.clone());
        for entry in entries {
            match entry {
                Entry::Answer(slot) => slot.complete(Err(RequestError::Connection(reason.clone()))),
                Entry::Conversation(conversation) => conversation.fail(reason.clone()),
            }
        }
        reason
    }

    /// How many requests await an answer.
    pub fn outstanding(&self) -> usize {
        self.map.lock().outstanding()
    }

    /// Whether something waits here for many packets (a stream, the probe).
    pub fn has_conversations(&self) -> bool {
        self.map.lock().has_conversations()
    }

    /// How many of the application's requests and streams wait for their
    /// answer.
    pub fn callers_waiting(&self) -> usize {
        self.map.lock().callers_waiting()
    }

    /// Why new requests are refused, if they are.
    pub fn refusal(&self) -> Option<ConnectionError> {
        self.map.lock().refusal().cloned()
    }

    /// `reason`, with how the child at the other end ended when it is a
    /// child, this side did not end the connection, and the child exited
    /// or left lines on stderr. Asked only while someone can learn it: a
    /// request waits, or nothing is refused yet.
    fn explain(&self, reason: ConnectionError) -> ConnectionError {
        let Some(child) = &self.child else { return reason };
        if matches!(reason, ConnectionError::Closed | ConnectionError::Child(_)) {
            return reason;
        }
        {
            let map = self.map.lock();
            if map.outstanding() == 0 && map.refusal().is_some() {
                return reason;
            }
        }
        let ChildReport { program, status, stderr } = child.report();
        // A child still running with nothing to say adds nothing to the reason.
        if status.is_none() && stderr.is_empty() {
            return reason;
        }
        ConnectionError::Child(Arc::new(ChildEnd { program, status, stderr, cause: reason }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    fn answer(channel: u64, tag: u64, ok: bool, payload: &[u8]) -> Packet {
        Packet::response(channel, tag, ok, 3, payload.to_vec()).unwrap()
    }

    /// A reading caller is alone on one CPU while at most its own handle is
    /// held; where handles are not counted (several CPUs) it is neither.
    #[test]
    fn where_a_reading_caller_runs_follows_the_handles_held() {
        let several = Calls::new("t".into(), Duration::ZERO, false, None);
        several.wait.hold(true);
        several.wait.hold(true);
        assert_eq!(several.wait.cpu(), Cpu::Several);
        let one = Calls::new("t".into(), Duration::ZERO, true, None);
        assert_eq!(one.wait.cpu(), Cpu::Alone);
        one.wait.hold(true);
        assert_eq!(one.wait.cpu(), Cpu::Alone, "its own handle");
        one.wait.hold(true);
        assert_eq!(one.wait.cpu(), Cpu::Shared);
        one.wait.hold(false);
        assert_eq!(one.wait.cpu(), Cpu::Alone);
    }

    #[test]
    fn a_request_in_flight_holds_a_slot_of_the_64_byte_class_and_a_small_handle() {
        // An Arc's allocation is its two counts and the slot; glibc serves
        // up to 56 bytes of it from its 64-byte chunks.
        assert!(std::mem::size_of::<Slot>() + 16 <= 56, "slot is {} bytes", std::mem::size_of::<Slot>());
        assert_eq!(std::mem::size_of::<crate::Pending>(), 24);
    }

    #[test]
    fn a_slot_keeps_the_first_outcome_and_gives_it_once() {
        let slot = Slot::new(5);
        assert_eq!(slot.channel(), 5);
        assert!(slot.take(Some(Instant::now())).is_none(), "nothing yet");
        slot.complete(Ok(Response { flags: 2, payload: b"first".to_vec() }));
        slot.complete(Err(RequestError::Connection(ConnectionError::Closed)));
        assert!(slot.is_done());
        let outcome = slot.take(None).expect("an outcome").expect("the first, ok");
        assert_eq!((outcome.flags, outcome.payload.as_slice()), (2, &b"first"[..]));
    }

    #[test]
    fn tags_count_per_channel_and_skip_the_control_tags_on_channel_0() {
        let mut map = TagMap::default();
        let slot = || Entry::Answer(Arc::new(Slot::new(0)));
        assert_eq!(map.register(0, slot()).unwrap(), 2);
        assert_eq!(map.register(0, slot()).unwrap(), 3);
        assert_eq!(map.register(5, slot()).unwrap(), 0);
        assert_eq!(map.outstanding(), 3);
        assert!(matches!(map.find((0, 2)), Found::Answer(_)));
        // Answered: a second answer finds a forgotten tag, a never-issued one is unknown.
        assert!(matches!(map.find((0, 2)), Found::Forgotten));
        assert!(matches!(map.find((0, 9)), Found::Unknown));
        assert!(matches!(map.find((0, 1)), Found::Unknown));
        assert!(matches!(map.find((7, 0)), Found::Unknown));
    }

    #[test]
    fn refusing_keeps_the_first_reason() {
        let mut map = TagMap::default();
        map.refuse_new(ConnectionError::Closed);
        map.refuse_new(ConnectionError::TooManyIncoming { limit: 1 });
        assert!(matches!(map.register(0, Entry::Answer(Arc::new(Slot::new(0)))), Err(ConnectionError::Closed)));
    }

    #[test]
    fn an_answer_completes_its_slot_once() {
        let calls = Calls::new("t".into(), Duration::ZERO, false, None);
        let slot = Arc::new(Slot::new(0));
        let (tag, in_flight) = calls.register(0, Entry::Answer(Arc::clone(&slot))).unwrap();
        assert_eq!(in_flight, 1);
        let counted = AtomicUsize::new(0);
        let count = || {
            counted.fetch_add(1, Ordering::SeqCst);
        };
        calls.deliver(answer(0, tag, false, b"no"), &mut Vec::new(), count);
        calls.deliver(answer(0, tag, true, b"late"), &mut Vec::new(), count);
        assert_eq!(counted.load(Ordering::SeqCst), 1, "only the answer that found its caller counts");
        let failure = match slot.take(Some(Instant::now())) {
            Some(Err(RequestError::Failed(failure))) => failure,
            other => panic!("{other:?}"),
        };
        assert_eq!((failure.flags, failure.text().as_ref()), (3, "no"));
        assert_eq!(calls.outstanding(), 0);
    }

    struct Counting {
        seen: AtomicUsize,
        last_at: usize,
        failed: Mutex<Option<ConnectionError>>,
    }

    impl Conversation for Counting {
        fn deliver(&self, _packet: Packet, _replies: &mut Vec<Packet>) -> Delivered {
            let seen = self.seen.fetch_add(1, Ordering::SeqCst) + 1;
            if seen == self.last_at {
                Delivered::Last
            } else {
                Delivered::More
            }
        }

        fn fail(&self, error: ConnectionError) {
            *self.failed.lock() = Some(error);
        }
    }

    #[test]
    fn a_conversation_takes_packets_until_its_last() {
        let calls = Calls::new("t".into(), Duration::ZERO, false, None);
        let counting = Arc::new(Counting { seen: AtomicUsize::new(0), last_at: 3, failed: Mutex::new(None) });
        let (tag, _) = calls.register(9, Entry::Conversation(counting.clone())).unwrap();
        for _ in 0..4 {
            calls.deliver(answer(9, tag, true, b"item"), &mut Vec::new(), || {});
        }
        assert_eq!(counting.seen.load(Ordering::SeqCst), 3, "nothing is delivered after the last");
        assert_eq!(calls.outstanding(), 0);
    }

    #[test]
    fn failing_all_reaches_answers_and_conversations_and_refuses_new_requests() {
        let calls = Calls::new("t".into(), Duration::ZERO, false, None);
        let slot = Arc::new(Slot::new(0));
        calls.register(0, Entry::Answer(Arc::clone(&slot))).unwrap();
        let counting = Arc::new(Counting { seen: AtomicUsize::new(0), last_at: 9, failed: Mutex::new(None) });
        calls.register(9, Entry::Conversation(counting.clone())).unwrap();
        calls.fail_all(ConnectionError::TooManyIncoming { limit: 4 });
        assert!(matches!(
            slot.take(None),
            Some(Err(RequestError::Connection(ConnectionError::TooManyIncoming { limit: 4 })))
        ));
        assert!(matches!(*counting.failed.lock(), Some(ConnectionError::TooManyIncoming { limit: 4 })));
        assert!(matches!(calls.ended_reason(), ConnectionError::TooManyIncoming { .. }));
        assert!(calls.register(0, Entry::Answer(Arc::new(Slot::new(0)))).is_err());
    }
}
