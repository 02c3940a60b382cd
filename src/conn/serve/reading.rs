//! The reading state: everything the thread that reads needs, which moves to
//! another thread when a worker takes reading over.

use std::time::Instant;

use crate::transport::{ReadHalf, Readable};
use crate::wire::{Packet, PacketReader};

/// Everything reading needs, handed from thread to thread on a takeover,
/// and to a caller that reads for itself. Boxed: it changes hands on every
/// packet (from the reading thread to a handler section and back, through
/// each step of the reading loop), and a box moves as one pointer where the
/// state itself is a few hundred bytes.
pub(crate) type ReadState = Box<ReadStateFields>;

/// What a [`ReadState`] holds.
pub(crate) struct ReadStateFields {
    pub packets: PacketReader<Box<dyn ReadHalf>>,
    /// The stream's descriptor, when reads can wait on it with a deadline.
    pub readable: Option<Readable>,
    /// Reads give up at this deadline (a caller's; the reading thread's
    /// reads block).
    pub until: Option<Instant>,
    /// After the peer's ERQ its requests are refused.
    pub peer_ended_requests: bool,
    /// Whether answers this thread ran are staged and not yet flushed.
    pub replies_staged: bool,
    /// How many requests have been answered on the reading thread.
    pub answered: u64,
    /// Whether so much was staged at the last answer that requests should
    /// go to the workers, which may wait for the stream.
    pub congested: bool,
    /// Requests decoded for the workers, not yet handed on: they move with
    /// reading on a takeover.
    pub batch: Vec<Packet>,
    /// Whether an answer to this side's request was delivered since the
    /// last read that blocked: the reader may then leave the stream to the
    /// callers for a while (see [`lead`](super::lead)).
    pub answered_caller: bool,
}

/// A batch is handed on at this size even if more frames are buffered.
pub(crate) const BATCH_MAX: usize = 64;

impl ReadStateFields {
    pub fn boxed(packets: PacketReader<Box<dyn ReadHalf>>, readable: Option<Readable>) -> ReadState {
        Box::new(ReadStateFields {
            packets,
            readable,
            until: None,
            peer_ended_requests: false,
            replies_staged: false,
            answered: 0,
            congested: false,
            batch: Vec::new(),
            answered_caller: false,
        })
    }
}

/// What reading leaves behind when the stream ends.
pub(crate) struct ReaderEnd {
    pub reader: Box<dyn ReadHalf>,
    /// Bytes read past the last packet (there should be none after EOF).
    pub unread: Vec<u8>,
}
