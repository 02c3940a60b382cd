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
/// turns instead of working at once. Only where they can work at once (see
/// [`Holding::at_once`]).
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
    /// Enough for a write call of its own; by the packet count only where
    /// the two sides run `at_once`.
    pub fn worth_a_write(self, at_once: bool) -> bool {
        (at_once && self.packets >= CORK_PACKETS) || self.bytes >= CORK_BYTES
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

/// How a connection holds packets back, fixed when it starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Holding {
    /// The packet grace is zero: nothing is held back.
    pub no_grace: bool,
    /// Whether this side and the peer can run at once: false when the
    /// connection's threads may use one CPU only (as the peer's then may).
    /// On one CPU the peer runs only once this side blocks, so a write call
    /// every [`CORK_PACKETS`] packets, or for each of the few requests left
    /// in flight, just multiplies the calls, and the switches to the peer
    /// that each one brings: what is staged leaves when its sender waits.
    pub at_once: bool,
}

/// Whether a request leaves at once, alone: few requests are in flight.
/// Where both sides run at once, that is what the peer has to do
/// (`awaiting`: requests not yet answered), and sending now keeps it busy.
/// On one CPU it is what the callers juggle (`held`: the handles they hold,
/// answered or not, this request's included): a caller holding many is
/// pipelining, even the moment all their answers are in, and its next
/// requests are better gathered.
pub(crate) fn request_is_light(awaiting: usize, held: usize, holding: Holding) -> bool {
    if holding.at_once {
        is_light(awaiting)
    } else {
        is_light(awaiting.max(held))
    }
}

/// After staging with `backlog`: `light` when few requests are in flight.
pub(crate) fn after_staging(backlog: Backlog, light: bool, holding: Holding) -> AfterStaging {
    if backlog.over_limit() {
        AfterStaging::FlushWaiting
    } else if light || holding.no_grace || backlog.worth_a_write(holding.at_once) {
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
    fn a_pipelining_caller_counts_its_answered_handles_on_one_cpu_only() {
        let at_once = Holding { no_grace: false, at_once: true };
        let one_cpu = Holding { no_grace: false, at_once: false };
        // A window of 64 answered, its first request sent again.
        assert!(request_is_light(1, 64, at_once), "the peer is idle: keep it busy");
        assert!(!request_is_light(1, 64, one_cpu), "gathered until the caller waits");
        // A sequential caller.
        assert!(request_is_light(1, 1, one_cpu));
        assert!(!request_is_light(FEW_IN_FLIGHT + 1, 1, at_once), "the tag map counts too");
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
        let holds = Holding { no_grace: false, at_once: true };
        let no_grace = Holding { no_grace: true, at_once: true };
        let one = Backlog { packets: 1, bytes: 20 };
        assert_eq!(after_staging(one, true, holds), AfterStaging::Flush);
        assert_eq!(after_staging(one, false, no_grace), AfterStaging::Flush);
        assert_eq!(after_staging(one, false, holds), AfterStaging::Hold);
        let cork = Backlog { packets: CORK_PACKETS, bytes: 20 * CORK_PACKETS };
        assert_eq!(after_staging(cork, false, holds), AfterStaging::Flush);
        let bytes = Backlog { packets: 2, bytes: CORK_BYTES };
        assert_eq!(after_staging(bytes, false, holds), AfterStaging::Flush);
        let full = Backlog { packets: 2, bytes: STAGE_LIMIT };
        assert_eq!(after_staging(full, true, no_grace), AfterStaging::FlushWaiting);
    }

    #[test]
    fn on_one_cpu_packets_gather_until_their_sender_blocks_or_their_bytes_are_worth_a_write() {
        let one_cpu = Holding { no_grace: false, at_once: false };
        let cork = Backlog { packets: CORK_PACKETS, bytes: 20 * CORK_PACKETS };
        assert_eq!(after_staging(cork, false, one_cpu), AfterStaging::Hold);
        let many = Backlog { packets: 100 * CORK_PACKETS, bytes: CORK_BYTES - 1 };
        assert_eq!(after_staging(many, false, one_cpu), AfterStaging::Hold);
        let bytes = Backlog { packets: 2, bytes: CORK_BYTES };
        assert_eq!(after_staging(bytes, false, one_cpu), AfterStaging::Flush);
        assert_eq!(after_staging(cork, true, one_cpu), AfterStaging::Flush, "alone, a packet still leaves at once");
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
