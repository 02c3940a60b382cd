//! The reader thread: reads packets, hands responses to their waiting callers
//! and requests to the handler pool.
//!
//! It never blocks on anything but the stream. Two peers that flood each
//! other fill both pipes; if either reader waited for its own handlers or its
//! own send queue, which wait for the peer's reader, both would stop for good.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use crate::codec::PacketReader;
use crate::connection::Shared;
use crate::error::{Error, ProtocolError};
use crate::handler::Response;
use crate::packet::{Control, Packet};
use crate::pending::Slot;
use crate::stats::Counters;
use crate::transport::ReadHalf;

/// What the reader thread leaves behind.
pub(crate) struct ReaderEnd {
    pub reader: Box<dyn ReadHalf>,
    /// Bytes read past the last packet (there should be none after EOF).
    pub unread: Vec<u8>,
}

pub(crate) fn run(mut reader: PacketReader<Box<dyn ReadHalf>>, shared: Arc<Shared>) -> ReaderEnd {
    let outcome = read_loop(&mut reader, &shared);
    match &outcome {
        Ok(()) => log::debug!("{}: reader done: peer ended the stream", shared.name),
        Err(error) => log::debug!("{}: reader failed: {error}", shared.name),
    }
    shared.reader_ended(outcome);
    let (reader, unread) = reader.into_parts();
    ReaderEnd { reader, unread }
}

/// What the reader has decoded but not yet handed on. While more whole
/// frames sit in the read buffer the reader keeps decoding, then completes the
/// answers and admits the requests together: one wake-up of a caller or a
/// worker serves many packets, instead of one each. A lone packet is handed on
/// at once, since nothing else is buffered behind it.
#[derive(Default)]
struct Batch {
    answers: Vec<(Arc<Slot>, Result<Response, Error>)>,
    requests: Vec<Packet>,
}

/// A batch is handed on at this size even if more frames are buffered.
const BATCH_MAX: usize = 64;

impl Batch {
    fn len(&self) -> usize {
        self.answers.len() + self.requests.len()
    }

    fn hand_on(&mut self, shared: &Arc<Shared>) -> Result<(), Error> {
        for (slot, outcome) in self.answers.drain(..) {
            slot.complete(outcome);
        }
        if self.requests.is_empty() {
            return Ok(());
        }
        for (channel, tag, text) in shared.pool.admit(&mut self.requests, shared)? {
            shared.reject(channel, tag, text)?;
        }
        Ok(())
    }
}

fn read_loop(reader: &mut PacketReader<Box<dyn ReadHalf>>, shared: &Arc<Shared>) -> Result<(), Error> {
    let mut batch = Batch::default();
    let outcome = decode_loop(reader, shared, &mut batch);
    // Answers that arrived before the end still reach their callers.
    let handed_on = batch.hand_on(shared);
    outcome.and(handed_on)
}

fn decode_loop(
    reader: &mut PacketReader<Box<dyn ReadHalf>>,
    shared: &Arc<Shared>,
    batch: &mut Batch,
) -> Result<(), Error> {
    let counters = &shared.counters.reader;
    // After the peer's ERQ its requests are refused.
    let mut peer_ended_requests = false;
    loop {
        if batch.len() >= BATCH_MAX || (batch.len() > 0 && !reader.has_buffered_packet()) {
            batch.hand_on(shared)?;
        }
        let packet = reader.read_packet();
        counters.bytes_in.store(reader.bytes_read(), Relaxed);
        let Some(packet) = packet? else {
            return Ok(());
        };
        log::trace!("{}: <- {packet:?}", shared.name);
        Counters::bump(&counters.packets_in, 1);
        if !packet.is_request() {
            batch.answers.extend(shared.resolve(packet));
            continue;
        }
        match packet.control() {
            None => {}
            Some(Ok(Control::Eof)) => return Ok(()),
            Some(Ok(Control::Erq)) => {
                log::debug!("{}: peer ended its requests", shared.name);
                peer_ended_requests = true;
                continue;
            }
            Some(Err(())) => {
                return Err(ProtocolError::BadControlPacket { channel: packet.channel, tag: packet.tag }.into());
            }
        }
        Counters::bump(&counters.requests_in, 1);
        let (channel, tag) = (packet.channel, packet.tag);
        let refusal = if peer_ended_requests {
            Some("requests no longer allowed".to_owned())
        } else if !shared.config.serves(channel) {
            Some(format!("unknown channel {channel}"))
        } else if !shared.pool.has_handler() {
            Some("no request handler".to_owned())
        } else {
            None
        };
        match refusal {
            Some(text) => shared.reject(channel, tag, text)?,
            None => batch.requests.push(packet),
        }
    }
}
