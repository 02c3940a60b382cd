//! The requests this side has in flight, by `(channel, tag)`, and the tags
//! handed out so far.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;

use crate::error::Error;
use crate::pending::Slot;

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

/// Tag 0 and 1 of channel 0 belong to the EOF and ERQ packets.
const FIRST_TAG_CHANNEL_0: u64 = 2;

#[derive(Default)]
pub(crate) struct TagMap {
    next_tag: HashMap<u64, u64, TagBuild>,
    outstanding: HashMap<(u64, u64), Arc<Slot>, TagBuild>,
    /// Once set, no new requests are taken; the reason is what submit returns.
    refusing: Option<Error>,
}

/// What became of a response's `(channel, tag)`.
pub(crate) enum Lookup {
    Waiting(Arc<Slot>),
    /// A tag we issued whose request was cancelled or timed out and forgotten.
    Forgotten,
    /// A tag we never issued.
    Unknown,
}

impl TagMap {
    /// Allocates the next tag on `channel` and files `slot` under it.
    pub fn register(&mut self, channel: u64, slot: Arc<Slot>) -> Result<u64, Error> {
        if let Some(reason) = &self.refusing {
            return Err(reason.clone());
        }
        let first = if channel == 0 { FIRST_TAG_CHANNEL_0 } else { 0 };
        let next = self.next_tag.entry(channel).or_insert(first);
        let tag = *next;
        // 2^64 requests on one channel will not happen; refuse rather than reuse.
        *next = next.checked_add(1).ok_or(Error::Closed)?;
        self.outstanding.insert((channel, tag), slot);
        Ok(tag)
    }

    pub fn remove(&mut self, channel: u64, tag: u64) -> Option<Arc<Slot>> {
        self.outstanding.remove(&(channel, tag))
    }

    pub fn lookup(&mut self, channel: u64, tag: u64) -> Lookup {
        if let Some(slot) = self.outstanding.remove(&(channel, tag)) {
            return Lookup::Waiting(slot);
        }
        let first = if channel == 0 { FIRST_TAG_CHANNEL_0 } else { 0 };
        match self.next_tag.get(&channel) {
            Some(&next) if (first..next).contains(&tag) => Lookup::Forgotten,
            _ => Lookup::Unknown,
        }
    }

    /// Takes no new requests from now on; requests in flight keep waiting.
    pub fn refuse_new(&mut self, reason: Error) {
        self.refusing.get_or_insert(reason);
    }

    /// Why new requests are refused, if they are.
    pub fn refusal(&self) -> Option<Error> {
        self.refusing.clone()
    }

    /// Takes no new requests and hands back every waiting slot, to be failed
    /// outside the lock.
    pub fn fail_all(&mut self, reason: Error) -> Vec<Arc<Slot>> {
        self.refuse_new(reason);
        self.outstanding.drain().map(|(_, slot)| slot).collect()
    }

    pub fn outstanding(&self) -> usize {
        self.outstanding.len()
    }
}
