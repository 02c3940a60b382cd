//! The write side: the writer thread drains the send queue into the stream,
//! many packets per write call; a caller or worker finding the writer idle
//! writes its packet itself.
//!
//! Handing a lone packet to the writer thread costs a thread wake-up on the
//! round trip's critical path, which on a sequential call is a large share of
//! the whole. Under load the queue is not empty and the stream is busy, so
//! packets go through the queue and leave in batches.

use std::io::{self, Write};
use std::sync::Arc;
use std::time::Instant;

use crossbeam_channel::{Receiver, RecvTimeoutError, TryRecvError};

use crate::codec;
use crate::connection::Shared;
use crate::error::Error;
use crate::packet::Packet;
use crate::stats::Counters;
use crate::transport::WriteHalf;

/// A payload at least this large is written from its own buffer rather than
/// copied into the batch.
pub(crate) const DIRECT_PAYLOAD: usize = 32 << 10;
/// A batch this large is written out even if more packets are waiting.
const BATCH_LIMIT: usize = 256 << 10;

/// The stream and the batch being built for it. Whoever holds the lock
/// writes; the writer thread holds it for a whole batch.
pub(crate) struct Sink {
    /// `None` once the EOF packet is written or a write failed.
    out: Option<Box<dyn WriteHalf>>,
    batch: Vec<u8>,
}

impl Sink {
    pub fn new(out: Box<dyn WriteHalf>) -> Self {
        Sink { out: Some(out), batch: Vec::new() }
    }
}

/// Writes `packet` from the calling thread if nothing is queued and no one
/// is writing; otherwise gives it back to be queued.
pub(crate) fn write_now(shared: &Shared, packet: Packet) -> Result<Result<(), Error>, Packet> {
    if !shared.out.is_empty() {
        return Err(packet);
    }
    let Some(mut sink) = shared.sink.try_lock() else {
        return Err(packet);
    };
    // Checked again under the lock: a packet queued meanwhile must not be
    // overtaken by one from the same thread.
    if !shared.out.is_empty() {
        return Err(packet);
    }
    if sink.out.is_none() {
        return Ok(Err(Error::Closed));
    }
    let written = sink.push(&packet, shared).and_then(|()| sink.finish_batch(shared));
    match written {
        Ok(()) => Ok(Ok(())),
        Err(error) => {
            sink.out = None;
            drop(sink);
            let error = Error::from(error);
            shared.connection_failed(error.clone());
            Ok(Err(error))
        }
    }
}

/// The writer thread. Runs until it has written the EOF packet (or the
/// queue's senders are all gone), then gives the stream back. On a write
/// error it fails every waiting request, since none of them can be relied on
/// to be answered.
pub(crate) fn run(queue: Receiver<Packet>, shared: Arc<Shared>) -> Result<Box<dyn WriteHalf>, Error> {
    let outcome = write_loop(&queue, &shared);
    let mut sink = shared.sink.lock();
    match outcome {
        Ok(()) => {
            log::debug!("{}: writer done", shared.name);
            sink.out.take().ok_or(Error::Closed)
        }
        Err(error) => {
            sink.out = None;
            drop(sink);
            log::debug!("{}: writer failed: {error}", shared.name);
            shared.connection_failed(error.clone());
            Err(error)
        }
    }
}

fn write_loop(queue: &Receiver<Packet>, shared: &Shared) -> Result<(), Error> {
    let grace = shared.config.packet_grace;
    while let Ok(first) = queue.recv() {
        let mut sink = shared.sink.lock();
        if sink.out.is_none() {
            // A direct write failed; the connection is already failed.
            return Err(shared.ended_reason());
        }
        let mut eof = is_eof(&first);
        sink.push(&first, shared)?;
        // Take whatever else is queued; with a grace, linger for more, but
        // never hold a batch longer than the grace in all.
        let mut linger_until: Option<Instant> = None;
        while !eof {
            let next = match queue.try_recv() {
                Ok(packet) => packet,
                Err(TryRecvError::Disconnected) => break,
                Err(TryRecvError::Empty) if grace.is_zero() => break,
                Err(TryRecvError::Empty) => {
                    let until = *linger_until.get_or_insert_with(|| Instant::now() + grace);
                    match queue.recv_deadline(until) {
                        Ok(packet) => packet,
                        Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => break,
                    }
                }
            };
            eof = is_eof(&next);
            sink.push(&next, shared)?;
        }
        sink.finish_batch(shared)?;
        if eof {
            return Ok(());
        }
    }
    Ok(())
}

fn is_eof(packet: &Packet) -> bool {
    packet.wire_type == Some(0) && packet.tag == 0 && packet.channel == 0
}

impl Sink {
    /// Adds one packet to the batch, writing out what a large payload or a
    /// full batch requires.
    fn push(&mut self, packet: &Packet, shared: &Shared) -> io::Result<()> {
        log::trace!("{}: -> {packet:?}", shared.name);
        Counters::bump(&shared.counters.sink.packets_out, 1);
        if packet.payload.len() >= DIRECT_PAYLOAD {
            codec::encode_header(packet, &mut self.batch);
            self.write_batch(shared)?;
            self.write_all(&packet.payload, shared)?;
        } else {
            codec::encode(packet, &mut self.batch);
            if self.batch.len() >= BATCH_LIMIT {
                self.write_batch(shared)?;
            }
        }
        Ok(())
    }

    fn finish_batch(&mut self, shared: &Shared) -> io::Result<()> {
        self.write_batch(shared)?;
        self.out.as_mut().ok_or(io::ErrorKind::BrokenPipe)?.flush()
    }

    fn write_batch(&mut self, shared: &Shared) -> io::Result<()> {
        let batch = std::mem::take(&mut self.batch);
        let result = self.write_all(&batch, shared);
        self.batch = batch;
        self.batch.clear();
        result
    }

    /// `write_all`, counting the write calls for [`Stats`](crate::Stats).
    fn write_all(&mut self, mut bytes: &[u8], shared: &Shared) -> io::Result<()> {
        let out = self.out.as_mut().ok_or(io::ErrorKind::BrokenPipe)?;
        let counters = &shared.counters.sink;
        while !bytes.is_empty() {
            match out.write(bytes) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    Counters::bump(&counters.write_calls, 1);
                    Counters::bump(&counters.bytes_out, n as u64);
                    bytes = &bytes[n..];
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}
