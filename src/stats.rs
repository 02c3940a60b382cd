//! Counters of what crossed a connection.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// A snapshot of a connection's counters, from
/// [`PacketConnection::stats`](crate::PacketConnection::stats).
#[non_exhaustive]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Requests this side sent.
    pub requests_out: u64,
    /// Responses this side received to its requests.
    pub responses_in: u64,
    /// Requests received from the peer (control packets not counted).
    pub requests_in: u64,
    /// Responses this side sent, rejections included.
    pub responses_out: u64,
    /// Packets written, control packets included.
    pub packets_out: u64,
    /// Packets read, control packets included.
    pub packets_in: u64,
    /// Bytes written to the stream.
    pub bytes_out: u64,
    /// Bytes read from the stream.
    pub bytes_in: u64,
    /// Calls to the stream's `write`: with `packets_out`, how well packets
    /// were batched.
    pub write_calls: u64,
}

#[derive(Default)]
pub(crate) struct Counters {
    pub requests_out: AtomicU64,
    pub responses_in: AtomicU64,
    pub requests_in: AtomicU64,
    pub responses_out: AtomicU64,
    pub packets_out: AtomicU64,
    pub packets_in: AtomicU64,
    pub bytes_out: AtomicU64,
    pub bytes_in: AtomicU64,
    pub write_calls: AtomicU64,
}

impl Counters {
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Relaxed);
    }

    pub fn snapshot(&self) -> Stats {
        Stats {
            requests_out: self.requests_out.load(Relaxed),
            responses_in: self.responses_in.load(Relaxed),
            requests_in: self.requests_in.load(Relaxed),
            responses_out: self.responses_out.load(Relaxed),
            packets_out: self.packets_out.load(Relaxed),
            packets_in: self.packets_in.load(Relaxed),
            bytes_out: self.bytes_out.load(Relaxed),
            bytes_in: self.bytes_in.load(Relaxed),
            write_calls: self.write_calls.load(Relaxed),
        }
    }
}
