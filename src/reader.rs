//! Reading: packets from the stream, responses to their waiting callers,
//! requests to the handler pool or, when the pool is idle, to the handler on
//! the reading thread itself.
//!
//! Reading never waits for anything but the stream unless another thread
//! could read in its place. Two peers that flood each other fill both
//! streams; if either reader waited for its handlers or for its own writes,
//! which wait for the peer's reader, both would stop for good. So a handler
//! run on the reading thread, and a write call it makes, happen in a
//! *section* watched by an idle worker, which takes reading over if the
//! section does not end (see [`pool`](crate::pool)).

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use crate::codec::PacketReader;
use crate::connection::Shared;
use crate::error::{Error, ProtocolError};
use crate::packet::{Control, Packet};
use crate::pool;
use crate::stats::Counters;
use crate::transport::ReadHalf;

/// What the reading leaves behind.
pub(crate) struct ReaderEnd {
    pub reader: Box<dyn ReadHalf>,
    /// Bytes read past the last packet (there should be none after EOF).
    pub unread: Vec<u8>,
}

/// Everything reading needs, which moves to another thread on a takeover.
pub(crate) struct ReadState {
    packets: PacketReader<Box<dyn ReadHalf>>,
    /// After the peer's ERQ its requests are refused.
    peer_ended_requests: bool,
    /// Whether answers this thread ran are staged and not yet flushed.
    replies_staged: bool,
    /// How many requests have been answered on the reading thread.
    answered: u64,
    /// Whether so much was staged at the last answer that requests should
    /// go to the workers, which may wait for the stream.
    congested: bool,
    /// Requests decoded for the workers, not yet handed on: they move with
    /// reading on a takeover.
    batch: Batch,
}

/// The reader thread: reads until the stream ends, or until a worker takes
/// reading over, and then serves as a worker.
pub(crate) fn run(packets: PacketReader<Box<dyn ReadHalf>>, shared: Arc<Shared>) {
    let me = shared.pool.reader_number();
    let reading = ReadState {
        packets,
        peer_ended_requests: false,
        replies_staged: false,
        answered: 0,
        congested: false,
        batch: Batch::default(),
    };
    if !serve(reading, me, &shared) {
        pool::work(me, &shared);
    }
}

/// Reads on thread `me` until the stream ends (true) or reading is taken
/// over (false).
pub(crate) fn serve(mut reading: ReadState, me: usize, shared: &Arc<Shared>) -> bool {
    shared.pool.set_reading_thread(me);
    let outcome = loop {
        match read_one(reading, me, shared) {
            Step::Go(next) => reading = next,
            Step::TakenOver => return false,
            Step::End(last, outcome) => {
                reading = last;
                break outcome;
            }
        }
    };
    // Requests that arrived before the end are still served.
    let outcome = outcome.and(reading.batch.hand_on(shared));
    match &outcome {
        Ok(()) => log::debug!("{}: reading done: peer ended the stream", shared.name),
        Err(error) => log::debug!("{}: reading failed: {error}", shared.name),
    }
    let (reader, unread) = reading.packets.into_parts();
    shared.reading_ended(outcome, ReaderEnd { reader, unread });
    true
}

enum Step {
    Go(ReadState),
    TakenOver,
    End(ReadState, Result<(), Error>),
}

/// Requests decoded for the workers but not yet handed on. While more whole
/// frames sit in the read buffer the reader keeps decoding, then admits the
/// requests together: one wake-up of a worker serves many requests.
#[derive(Default)]
struct Batch {
    requests: Vec<Packet>,
}

/// A batch is handed on at this size even if more frames are buffered.
const BATCH_MAX: usize = 64;

impl Batch {
    fn len(&self) -> usize {
        self.requests.len()
    }

    fn hand_on(&mut self, shared: &Arc<Shared>) -> Result<(), Error> {
        if self.requests.is_empty() {
            return Ok(());
        }
        for (channel, tag, text) in shared.pool.admit(&mut self.requests, shared)? {
            shared.reject(channel, tag, text)?;
        }
        Ok(())
    }
}

/// Reads and dispatches one packet.
fn read_one(mut reading: ReadState, me: usize, shared: &Arc<Shared>) -> Step {
    macro_rules! check {
        ($result:expr) => {
            match $result {
                Ok(value) => value,
                Err(error) => return Step::End(reading, Err(error)),
            }
        };
    }
    let about_to_block = !reading.packets.has_buffered_packet();
    if about_to_block || reading.batch.len() >= BATCH_MAX {
        check!(reading.batch.hand_on(shared));
    }
    if about_to_block {
        // Judged again at the next answer.
        reading.congested = false;
    }
    if about_to_block && reading.replies_staged {
        reading = match flush_section(reading, me, shared) {
            Some(reading) => reading,
            None => return Step::TakenOver,
        };
    }
    let counters = &shared.counters.reader;
    let packet = reading.packets.read_packet();
    counters.bytes_in.store(reading.packets.bytes_read(), Relaxed);
    let Some(packet) = check!(packet) else {
        return Step::End(reading, Ok(()));
    };
    log::trace!("{}: <- {packet:?}", shared.name);
    Counters::bump(&counters.packets_in, 1);
    if !packet.is_request() {
        // At once: the caller may be about to send more, and a pipelining
        // caller keeps the stream busy only if it hears back promptly.
        if let Some((slot, outcome)) = shared.resolve(packet) {
            slot.complete(outcome);
        }
        return Step::Go(reading);
    }
    match packet.control() {
        None => {}
        Some(Ok(Control::Eof)) => return Step::End(reading, Ok(())),
        Some(Ok(Control::Erq)) => {
            log::debug!("{}: peer ended its requests", shared.name);
            reading.peer_ended_requests = true;
            return Step::Go(reading);
        }
        Some(Err(())) => {
            let error = ProtocolError::BadControlPacket { channel: packet.channel, tag: packet.tag };
            return Step::End(reading, Err(error.into()));
        }
    }
    Counters::bump(&counters.requests_in, 1);
    let (channel, tag) = (packet.channel, packet.tag);
    let refusal = if reading.peer_ended_requests {
        Some("requests no longer allowed".to_owned())
    } else if !shared.config.serves(channel) {
        Some(format!("unknown channel {channel}"))
    } else if !shared.pool.has_handler() {
        Some("no request handler".to_owned())
    } else {
        None
    };
    if let Some(text) = refusal {
        check!(shared.reject(channel, tag, text));
        return Step::Go(reading);
    }
    if reading.congested {
        reading.batch.requests.push(packet);
        return Step::Go(reading);
    }
    match handler_section(reading, packet, me, shared) {
        Inline::Answered(reading) => Step::Go(reading),
        Inline::TakenOver => Step::TakenOver,
        Inline::Declined(mut reading, packet) => {
            reading.batch.requests.push(packet);
            Step::Go(reading)
        }
    }
}

enum Inline {
    Answered(ReadState),
    /// Reading was taken over while the handler ran.
    TakenOver,
    /// The pool wants this request for the workers.
    Declined(ReadState, Packet),
}

/// Runs the handler for `packet` on this thread, if the pool lets it, and
/// stages the answer.
fn handler_section(reading: ReadState, packet: Packet, me: usize, shared: &Arc<Shared>) -> Inline {
    let key = (packet.channel, packet.tag);
    let count = reading.answered;
    let number = match shared.pool.begin_section(me, Some(key), reading) {
        Ok(number) => number,
        Err(reading) => return Inline::Declined(reading, packet),
    };
    let (response, slow) = pool::answer_inline(shared, packet, count);
    let congested = shared.send_reply(response);
    match shared.pool.end_section(number, me, Some(key), slow) {
        Some(mut reading) => {
            reading.replies_staged = true;
            reading.congested = congested;
            reading.answered += 1;
            Inline::Answered(reading)
        }
        None => Inline::TakenOver,
    }
}

/// Writes the staged answers before the reader blocks on the stream: itself
/// when a worker watches, else through the writer thread.
fn flush_section(mut reading: ReadState, me: usize, shared: &Arc<Shared>) -> Option<ReadState> {
    reading.replies_staged = false;
    match shared.pool.begin_section(me, None, reading) {
        Ok(number) => {
            let _ = shared.outbox.flush(shared);
            shared.pool.end_section(number, me, None, false)
        }
        Err(reading) => {
            shared.request_flush();
            Some(reading)
        }
    }
}
