//! The send policy, in one place: when a packet leaves at once, when it is
//! held back to leave with others, which path it takes, and when a sender
//! must wait. Pure decisions over counts; the outbox and the writer carry
//! them out.
//!
//! The trade is latency against write calls. With few requests in flight a
//! packet is alone, and holding it back only delays the answer someone is
//! about to wait for. Under load many packets are on their way, and writing
//! each one costs a system call and a wake-up of the peer's reader; staged
//! packets leave together instead, with a bound on how long and how much.

/// "Few requests in flight": at most this many (this side's requests, or
/// the peer's requests in service, counting the one at hand). The one
/// threshold behind every latency-first decision: a sender flushes at once,
/// a worker's answer leaves at once, a waiting caller spins.
pub(crate) const FEW_IN_FLIGHT: usize = 4;

/// Whether `in_flight` requests (the one at hand included) are few enough
/// that latency is what matters.
pub(crate) fn is_light(in_flight: usize) -> bool {
    in_flight <= FEW_IN_FLIGHT
}

/// A payload at least this large is written from its own buffer by the
/// writer thread rather than copied into the staging buffer.
pub(crate) const DIRECT_PAYLOAD: usize = 32 << 10;

/// This many staged packets are flushed by the sender of the last one. A
/// pipelining caller that waits only when its window is full would otherwise
/// send its whole window in one write call, and the two sides would take
/// turns instead of working at once.
pub(crate) const CORK_PACKETS: usize = 16;

/// This many staged bytes are flushed at once, as for [`CORK_PACKETS`].
pub(crate) const CORK_BYTES: usize = 16 << 10;

/// Past this many staged bytes a sender that may block flushes and waits for
/// the stream: the staging buffer does not grow without bound when the peer
/// does not read.
pub(crate) const STAGE_LIMIT: usize = 256 << 10;

/// The writer thread writes its batch out at this size even if more packets
/// are queued.
pub(crate) const BATCH_LIMIT: usize = 256 << 10;

/// Which way a packet goes out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Path {
    /// Encoded into the staging buffer by the sending thread.
    Stage,
    /// Through the send queue to the writer thread.
    Queue,
}

/// The path of a packet with a payload of `payload_len` bytes.
///
/// A sender with a deadline goes through the queue, since a write call
/// cannot give up; so does a large payload, written from its own buffer
/// rather than copied; and so does every packet while the queue holds
/// some, since a staged one would overtake them.
pub(crate) fn path(payload_len: usize, has_deadline: bool, queue_empty: bool) -> Path {
    if !has_deadline && payload_len < DIRECT_PAYLOAD && queue_empty {
        Path::Stage
    } else {
        Path::Queue
    }
}

/// Whether a caller's own request (see `SendPath::send_own`) is written by
/// the caller rather than queued: a large payload, which the writer thread
/// would have written from its buffer anyway, with no deadline (a write
/// call cannot give up), and nothing queued that it would overtake.
pub(crate) fn writes_own(payload_len: usize, has_deadline: bool, queue_empty: bool) -> bool {
    payload_len >= DIRECT_PAYLOAD && !has_deadline && queue_empty
}

/// What is staged after a packet was added.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Backlog {
    pub packets: usize,
    pub bytes: usize,
}

impl Backlog {
    /// Enough for a write call of its own.
    pub fn worth_a_write(self) -> bool {
        self.packets >= CORK_PACKETS || self.bytes >= CORK_BYTES
    }

    /// So much that the sender must wait for the stream.
    pub fn over_limit(self) -> bool {
        self.bytes >= STAGE_LIMIT
    }
}

/// What a sender does after staging a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AfterStaging {
    /// Wait for the stream and write (backpressure).
    FlushWaiting,
    /// Write now, unless another thread is writing (it then takes these
    /// bytes too).
    Flush,
    /// Leave it staged; make sure the grace timer will look.
    Hold,
}

/// After staging with `backlog`: `light` when few requests are in flight,
/// `no_grace` when the packet grace is zero (nothing is ever held back).
pub(crate) fn after_staging(backlog: Backlog, light: bool, no_grace: bool) -> AfterStaging {
    if backlog.over_limit() {
        AfterStaging::FlushWaiting
    } else if light || no_grace || backlog.worth_a_write() {
        AfterStaging::Flush
    } else {
        AfterStaging::Hold
    }
}

/// What the reading thread does after staging an answer it ran itself: it
/// never holds the stream's lock waiting, and writes only what is worth a
/// write call; the rest leaves before it blocks on the stream again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct InlineReply {
    /// Write what is staged now.
    pub flush: bool,
    /// So much is staged that requests should go to the workers, which may
    /// wait for the stream, rather than run on the reading thread.
    pub congested: bool,
}

/// After the reading thread staged an answer, leaving `backlog`.
pub(crate) fn after_inline_reply(backlog: Backlog) -> InlineReply {
    InlineReply { flush: backlog.bytes >= CORK_BYTES, congested: backlog.over_limit() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_caller_writes_its_own_bulk_request_only_without_deadline_or_queue() {
        assert!(writes_own(DIRECT_PAYLOAD, false, true));
        assert!(!writes_own(DIRECT_PAYLOAD - 1, false, true), "small: staged");
        assert!(!writes_own(DIRECT_PAYLOAD, true, true), "a write cannot give up at a deadline");
        assert!(!writes_own(DIRECT_PAYLOAD, false, false), "it would overtake what is queued");
    }

    #[test]
    fn few_in_flight_includes_the_one_at_hand() {
        assert!(is_light(1));
        assert!(is_light(FEW_IN_FLIGHT));
        assert!(!is_light(FEW_IN_FLIGHT + 1));
    }

    #[test]
    fn small_packets_are_staged_unless_they_would_overtake_or_must_give_up() {
        assert_eq!(path(16, false, true), Path::Stage);
        assert_eq!(path(DIRECT_PAYLOAD - 1, false, true), Path::Stage);
        assert_eq!(path(DIRECT_PAYLOAD, false, true), Path::Queue);
        assert_eq!(path(16, true, true), Path::Queue);
        assert_eq!(path(16, false, false), Path::Queue);
    }

    #[test]
    fn a_staged_packet_leaves_at_once_when_alone_or_enough_have_gathered() {
        let one = Backlog { packets: 1, bytes: 20 };
        assert_eq!(after_staging(one, true, false), AfterStaging::Flush);
        assert_eq!(after_staging(one, false, true), AfterStaging::Flush);
        assert_eq!(after_staging(one, false, false), AfterStaging::Hold);
        let cork = Backlog { packets: CORK_PACKETS, bytes: 20 * CORK_PACKETS };
        assert_eq!(after_staging(cork, false, false), AfterStaging::Flush);
        let bytes = Backlog { packets: 2, bytes: CORK_BYTES };
        assert_eq!(after_staging(bytes, false, false), AfterStaging::Flush);
        let full = Backlog { packets: 2, bytes: STAGE_LIMIT };
        assert_eq!(after_staging(full, true, true), AfterStaging::FlushWaiting);
    }

    #[test]
    fn the_reader_writes_only_what_is_worth_it_and_yields_when_congested() {
        let small = after_inline_reply(Backlog { packets: 3, bytes: 60 });
        assert_eq!(small, InlineReply { flush: false, congested: false });
        let worth = after_inline_reply(Backlog { packets: 3, bytes: CORK_BYTES });
        assert_eq!(worth, InlineReply { flush: true, congested: false });
        let full = after_inline_reply(Backlog { packets: 3, bytes: STAGE_LIMIT });
        assert_eq!(full, InlineReply { flush: true, congested: true });
    }
}
