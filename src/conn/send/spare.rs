//! One large payload buffer kept for the next large payload read, instead
//! of being given back to the allocator.
//!
//! A bulk echo frees a large buffer on the sending side as it allocates
//! one on the reading side, once per request. Given back, such a buffer
//! tends to leave the process (glibc trims the top of a heap and unmaps
//! large blocks), and the next one is fresh memory: a page fault for every
//! 4 KiB of it. Kept here and reused by the reader, it is not.

use std::sync::atomic::{AtomicBool, Ordering};

use parking_lot::Mutex;

use super::policy::DIRECT_PAYLOAD;

/// The largest buffer kept: a bulk transfer's usual size, not a rare huge
/// one held for ever.
pub(crate) const SPARE_MAX: usize = 8 << 20;

#[derive(Default)]
pub(crate) struct Spare {
    /// Whether `buf` holds one, for a look without the lock on every read.
    full: AtomicBool,
    buf: Mutex<Option<Vec<u8>>>,
}

impl Spare {
    /// Keeps `payload`'s allocation if it is of the size worth keeping and
    /// none is kept; else it is freed as usual. Its bytes stay: the reader
    /// reads over them (see `PacketReader::give_spare`).
    pub fn give(&self, payload: Vec<u8>) {
        if !(DIRECT_PAYLOAD..=SPARE_MAX).contains(&payload.capacity()) || self.full.load(Ordering::Relaxed) {
            return;
        }
        let mut buf = self.buf.lock();
        if buf.is_none() {
            *buf = Some(payload);
            self.full.store(true, Ordering::Release);
        }
    }

    /// The buffer kept, if there is one.
    pub fn take(&self) -> Option<Vec<u8>> {
        if !self.full.load(Ordering::Acquire) {
            return None;
        }
        let taken = self.buf.lock().take();
        self.full.store(false, Ordering::Release);
        taken
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_one_buffer_of_a_bulk_size_and_hands_it_out_once() {
        let spare = Spare::default();
        spare.give(Vec::with_capacity(DIRECT_PAYLOAD - 1));
        assert!(spare.take().is_none(), "too small to be worth keeping");
        spare.give(Vec::with_capacity(SPARE_MAX + 1));
        assert!(spare.take().is_none(), "too large to hold on to");
        spare.give(vec![7; DIRECT_PAYLOAD]);
        spare.give(Vec::with_capacity(2 * DIRECT_PAYLOAD));
        let kept = spare.take().expect("one kept");
        assert_eq!((kept.len(), kept.capacity()), (DIRECT_PAYLOAD, DIRECT_PAYLOAD), "the first, with its bytes");
        assert!(spare.take().is_none());
    }
}
