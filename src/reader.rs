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
use crate::packet::{Control, Packet};
use crate::pool::Admission;
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

fn read_loop(reader: &mut PacketReader<Box<dyn ReadHalf>>, shared: &Arc<Shared>) -> Result<(), Error> {
    let counters = &shared.counters.reader;
    // After the peer's ERQ its requests are refused.
    let mut peer_ended_requests = false;
    loop {
        let packet = reader.read_packet();
        counters.bytes_in.store(reader.bytes_read(), Relaxed);
        let Some(packet) = packet? else {
            return Ok(());
        };
        log::trace!("{}: <- {packet:?}", shared.name);
        Counters::bump(&counters.packets_in, 1);
        if !packet.is_request() {
            shared.deliver(packet);
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
        accept_request(packet, peer_ended_requests, shared)?;
    }
}

/// Hands a request to the pool, or answers it with a rejection as
/// cs.packetstream does.
fn accept_request(packet: Packet, peer_ended_requests: bool, shared: &Arc<Shared>) -> Result<(), Error> {
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
    if let Some(text) = refusal {
        return shared.reject(channel, tag, text);
    }
    match shared.pool.admit(packet, shared)? {
        Admission::Queued => Ok(()),
        Admission::Duplicate => shared.reject(channel, tag, format!("channel {channel}: tag already in use: {tag}")),
        Admission::Closed => shared.reject(channel, tag, "connection closing".to_owned()),
    }
}
