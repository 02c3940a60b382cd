//! Counters of what crossed a connection.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// A snapshot of a connection's counters, from
/// [`PacketConnection::stats`](crate::PacketConnection::stats).
#[non_exhaustive]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Requests this side sent (the extension mechanism's own not counted).
    pub requests_out: u64,
    /// Responses this side received to its requests.
    pub responses_in: u64,
    /// Requests received from the peer (control packets, and the extension
    /// mechanism's own requests on its reserved channels, not counted).
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
    /// Streams this side opened.
    pub streams_out: u64,
    /// Streams the peer opened here (refused ones included).
    pub streams_in: u64,
    /// Waits in which the caller read the stream itself (see
    /// [`ConfigBuilder::caller_reads`](crate::ConfigBuilder::caller_reads)).
    pub caller_reads: u64,
}

/// The counters are grouped by who writes them, each group on its own
/// cache line and held by the part that writes it, so that the reader, the
/// write side and the callers do not bounce a shared line between cores on
/// every packet.
///
/// Written by the thread that reads, one at a time.
#[derive(Default)]
#[repr(align(64))]
pub(crate) struct ReaderCounters {
    pub responses_in: AtomicU64,
    pub requests_in: AtomicU64,
    pub packets_in: AtomicU64,
    pub bytes_in: AtomicU64,
    pub streams_in: AtomicU64,
}

/// Written by whoever holds the stream's lock.
#[derive(Default)]
#[repr(align(64))]
pub(crate) struct SinkCounters {
    pub packets_out: AtomicU64,
    pub bytes_out: AtomicU64,
    pub write_calls: AtomicU64,
}

/// Written by callers and workers.
#[derive(Default)]
#[repr(align(64))]
pub(crate) struct SenderCounters {
    pub requests_out: AtomicU64,
    pub responses_out: AtomicU64,
    pub streams_out: AtomicU64,
    pub caller_reads: AtomicU64,
}

/// The two ways to count.
pub(crate) struct Counters;

impl Counters {
    /// For counters with many writers.
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Relaxed);
    }

    /// For counters with one writer at a time (the thread that reads, or the
    /// holder of the stream's lock): a plain load and store, no locked
    /// read-modify-write.
    pub fn bump(counter: &AtomicU64, n: u64) {
        counter.store(counter.load(Relaxed).wrapping_add(n), Relaxed);
    }
}

impl Stats {
    /// A snapshot of the three groups.
    pub(crate) fn collect(reader: &ReaderCounters, sink: &SinkCounters, senders: &SenderCounters) -> Stats {
        Stats {
            requests_out: senders.requests_out.load(Relaxed),
            responses_in: reader.responses_in.load(Relaxed),
            requests_in: reader.requests_in.load(Relaxed),
            responses_out: senders.responses_out.load(Relaxed),
            packets_out: sink.packets_out.load(Relaxed),
            packets_in: reader.packets_in.load(Relaxed),
            bytes_out: sink.bytes_out.load(Relaxed),
            bytes_in: reader.bytes_in.load(Relaxed),
            write_calls: sink.write_calls.load(Relaxed),
            streams_out: senders.streams_out.load(Relaxed),
            streams_in: reader.streams_in.load(Relaxed),
            caller_reads: senders.caller_reads.load(Relaxed),
        }
    }
}
