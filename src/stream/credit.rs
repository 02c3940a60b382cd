//! Credit flow control, as arithmetic: what a sender may still send, and
//! what a receiver grants back as its application takes items.
//!
//! A receiver grants credit in items and bytes; a sender never has more
//! unacknowledged items or bytes in flight than it was granted, so a slow
//! reader bounds memory on both sides. The receiver grants its whole window
//! at the start, and grants again as items leave its buffer, in batches of
//! half a window so that credit messages stay few.

/// The default receive window: 64 items.
pub const DEFAULT_WINDOW_ITEMS: u64 = 64;
/// The default receive window: 1 MiB of items.
pub const DEFAULT_WINDOW_BYTES: u64 = 1 << 20;

/// A grant of credit: so many more items, so many more bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Credit {
    /// Items the sender may send more.
    pub items: u64,
    /// Bytes (of item payloads) the sender may send more.
    pub bytes: u64,
}

/// What a receiver does when items arrive faster than its application
/// takes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Overflow {
    /// Grant credit only as the application takes items: the sender waits.
    #[default]
    Block,
    /// Keep granting; when the buffer holds a window, drop its oldest item
    /// and tell both ends (a data-loss warning).
    DropOldest,
    /// Keep granting; when the buffer holds a window, end the stream (the
    /// sender is told to stop, with a data-loss code).
    End,
}

/// Why a sender cannot send an item now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoCredit {
    /// Not now: wait for more credit.
    Wait,
    /// Never: the item is larger than the receiver's whole byte window.
    TooLarge {
        /// The item's size.
        len: u64,
        /// The receiver's byte window.
        window: u64,
    },
}

/// The sending end's credit.
#[derive(Debug, Clone, Default)]
pub struct SendCredit {
    items: u64,
    bytes: u64,
    /// The largest byte credit ever held at once: the receiver's window, as
    /// far as this end can tell.
    window: u64,
}

impl SendCredit {
    /// Credit granted by the receiver.
    pub fn grant(&mut self, credit: Credit) {
        self.items = self.items.saturating_add(credit.items);
        self.bytes = self.bytes.saturating_add(credit.bytes);
        self.window = self.window.max(self.bytes);
    }

    /// Takes the credit for one item of `len` bytes.
    ///
    /// # Errors
    /// [`NoCredit::Wait`] without enough credit now, [`NoCredit::TooLarge`]
    /// for an item larger than the window (once there is one).
    pub fn take(&mut self, len: u64) -> Result<(), NoCredit> {
        if self.window > 0 && len > self.window {
            return Err(NoCredit::TooLarge { len, window: self.window });
        }
        if self.items == 0 || self.bytes < len {
            return Err(NoCredit::Wait);
        }
        self.items -= 1;
        self.bytes -= len;
        Ok(())
    }

    /// The credit left.
    pub fn left(&self) -> Credit {
        Credit { items: self.items, bytes: self.bytes }
    }
}

/// What became of an item that arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arrival {
    /// Buffered for the application.
    Kept,
    /// Buffered, and the buffer is past the window: the oldest items must go
    /// until it is not ([`RecvWindow::over`]; [`Overflow::DropOldest`]).
    DropOldest,
    /// The buffer is full: the stream ends ([`Overflow::End`]).
    Full,
    /// The sender went past its credit: a peer breaking the rules.
    OverCredit,
}

/// The receiving end's window.
#[derive(Debug, Clone)]
pub struct RecvWindow {
    window: Credit,
    policy: Overflow,
    /// Credit the sender holds (granted, not yet used).
    granted: Credit,
    /// Items and bytes buffered for the application.
    held: Credit,
    /// Taken by the application (or, past the Block policy, arrived) and
    /// not yet granted again.
    owed: Credit,
}

impl RecvWindow {
    /// A window of `window` items and bytes, with `policy`; returns it with
    /// the first grant, the whole window.
    pub fn new(window: Credit, policy: Overflow) -> (RecvWindow, Credit) {
        let window = Credit { items: window.items.max(1), bytes: window.bytes.max(1) };
        let state = RecvWindow { window, policy, granted: window, held: Credit::default(), owed: Credit::default() };
        (state, window)
    }

    /// The window.
    pub fn window(&self) -> Credit {
        self.window
    }

    /// An item of `len` bytes arrived.
    pub fn arrive(&mut self, len: u64) -> Arrival {
        if self.granted.items == 0 || self.granted.bytes < len {
            return Arrival::OverCredit;
        }
        self.granted.items -= 1;
        self.granted.bytes -= len;
        let full = self.held.items >= self.window.items || self.held.bytes.saturating_add(len) > self.window.bytes;
        match self.policy {
            Overflow::Block => {
                self.held.items += 1;
                self.held.bytes += len;
                Arrival::Kept
            }
            Overflow::DropOldest | Overflow::End => {
                // Past Block, credit comes back on arrival: the sender never
                // waits, and the buffer is what is bounded.
                self.owed.items += 1;
                self.owed.bytes += len;
                if full && self.policy == Overflow::End {
                    return Arrival::Full;
                }
                self.held.items += 1;
                self.held.bytes += len;
                if full {
                    Arrival::DropOldest
                } else {
                    Arrival::Kept
                }
            }
        }
    }

    /// Whether the buffer holds more than the window.
    pub fn over(&self) -> bool {
        self.held.items > self.window.items || self.held.bytes > self.window.bytes
    }

    /// The oldest buffered item (of `len` bytes) was dropped.
    pub fn dropped(&mut self, len: u64) {
        self.held.items = self.held.items.saturating_sub(1);
        self.held.bytes = self.held.bytes.saturating_sub(len);
    }

    /// The application took an item of `len` bytes.
    pub fn taken(&mut self, len: u64) {
        self.held.items = self.held.items.saturating_sub(1);
        self.held.bytes = self.held.bytes.saturating_sub(len);
        if self.policy == Overflow::Block {
            self.owed.items += 1;
            self.owed.bytes += len;
        }
    }

    /// Credit to grant now, if enough is owed: half a window of items or of
    /// bytes, or everything owed once the sender has nothing left (it would
    /// wait otherwise).
    pub fn grant(&mut self) -> Option<Credit> {
        let owed = self.owed;
        if owed.items == 0 {
            return None;
        }
        let half = |window: u64| window.div_ceil(2);
        let starved = self.granted.items == 0 || self.granted.bytes < self.window.bytes / 2;
        if owed.items >= half(self.window.items) || owed.bytes >= half(self.window.bytes) || starved {
            self.owed = Credit::default();
            self.granted.items += owed.items;
            self.granted.bytes += owed.bytes;
            return Some(owed);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn credit(items: u64, bytes: u64) -> Credit {
        Credit { items, bytes }
    }

    #[test]
    fn a_sender_spends_what_it_was_granted_and_no_more() {
        let mut send = SendCredit::default();
        assert_eq!(send.take(1), Err(NoCredit::Wait));
        send.grant(credit(2, 10));
        assert_eq!(send.take(4), Ok(()));
        assert_eq!(send.take(7), Err(NoCredit::Wait), "6 bytes left");
        assert_eq!(send.take(6), Ok(()));
        assert_eq!(send.take(0), Err(NoCredit::Wait), "no item left");
        assert_eq!(send.take(11), Err(NoCredit::TooLarge { len: 11, window: 10 }));
        send.grant(credit(1, 1));
        assert_eq!(send.left(), credit(1, 1));
    }

    /// moat-lib-cmd's flow control example: the receiver grants 2, then 1,
    /// then 1, then 5 items, and the sender sends only as granted.
    #[test]
    fn the_credits_2_1_1_5_of_the_seed() {
        let mut send = SendCredit::default();
        let mut sent = Vec::new();
        let mut next = 0;
        for grant in [2, 1, 1, 5] {
            send.grant(credit(grant, u64::MAX / 8));
            while send.take(1).is_ok() {
                sent.push(next);
                next += 1;
            }
            assert_eq!(send.take(1), Err(NoCredit::Wait));
        }
        assert_eq!(sent.len(), 9);
    }

    #[test]
    fn under_block_credit_returns_as_the_application_takes() {
        let (mut window, first) = RecvWindow::new(credit(4, 1000), Overflow::Block);
        assert_eq!(first, credit(4, 1000));
        for _ in 0..4 {
            assert_eq!(window.arrive(10), Arrival::Kept);
        }
        assert_eq!(window.arrive(10), Arrival::OverCredit, "a fifth item had no credit");
        assert_eq!(window.grant(), None, "nothing taken yet");
        window.taken(10);
        // The sender has no item credit left: even one owed item goes back.
        assert_eq!(window.grant(), Some(credit(1, 10)));
        assert_eq!(window.arrive(10), Arrival::Kept);
    }

    #[test]
    fn grants_come_in_halves_of_the_window_while_the_sender_has_credit() {
        let (mut window, _) = RecvWindow::new(credit(8, 8000), Overflow::Block);
        window.arrive(100);
        window.taken(100);
        assert_eq!(window.grant(), None, "one of eight owed, seven held by the sender");
        for _ in 0..3 {
            window.arrive(100);
            window.taken(100);
        }
        assert_eq!(window.grant(), Some(credit(4, 400)));
    }

    #[test]
    fn drop_oldest_keeps_the_buffer_at_a_window_and_never_stops_the_sender() {
        let (mut window, _) = RecvWindow::new(credit(2, 1000), Overflow::DropOldest);
        assert_eq!(window.arrive(1), Arrival::Kept);
        assert_eq!(window.arrive(1), Arrival::Kept);
        assert_eq!(window.grant(), Some(credit(2, 2)), "credit comes back on arrival");
        assert_eq!(window.arrive(1), Arrival::DropOldest);
        assert!(window.over());
        window.dropped(1);
        assert!(!window.over());
        assert_eq!(window.arrive(1), Arrival::DropOldest);
    }

    #[test]
    fn end_policy_ends_when_the_buffer_is_full() {
        let (mut window, _) = RecvWindow::new(credit(1, 1000), Overflow::End);
        assert_eq!(window.arrive(5), Arrival::Kept);
        window.grant();
        assert_eq!(window.arrive(5), Arrival::Full);
    }
}
