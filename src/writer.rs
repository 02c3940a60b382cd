//! The writer thread: drains the send queue into the stream, many packets
//! per write call.

use std::io::{self, Write};
use std::sync::Arc;
use std::time::Instant;

use crossbeam_channel::{Receiver, RecvTimeoutError, TryRecvError};

use crate::codec;
use crate::connection::Shared;
use crate::error::Error;
use crate::packet::{Control, Packet};
use crate::stats::Counters;
use crate::transport::WriteHalf;

/// A payload at least this large is written from its own buffer rather than
/// copied into the batch.
const DIRECT_PAYLOAD: usize = 32 << 10;
/// A batch this large is written out even if more packets are waiting.
const BATCH_LIMIT: usize = 256 << 10;

struct Writer {
    out: Box<dyn WriteHalf>,
    batch: Vec<u8>,
    shared: Arc<Shared>,
}

/// Runs until it has written the EOF packet (or the queue's senders are all
/// gone), then gives the stream back. On a write error it fails every waiting
/// request, since none of them can be relied on to be answered.
pub(crate) fn run(
    queue: Receiver<Packet>,
    out: Box<dyn WriteHalf>,
    shared: Arc<Shared>,
) -> Result<Box<dyn WriteHalf>, Error> {
    let mut writer = Writer { out, batch: Vec::with_capacity(BATCH_LIMIT), shared };
    match writer.run(&queue) {
        Ok(()) => {
            log::debug!("{}: writer done", writer.shared.name);
            Ok(writer.out)
        }
        Err(error) => {
            let error = Error::from(error);
            log::debug!("{}: writer failed: {error}", writer.shared.name);
            writer.shared.connection_failed(error.clone());
            Err(error)
        }
    }
}

impl Writer {
    fn run(&mut self, queue: &Receiver<Packet>) -> io::Result<()> {
        let grace = self.shared.config.packet_grace;
        while let Ok(first) = queue.recv() {
            let mut eof = self.push(first)?;
            // Take whatever else is queued; with a grace, linger for more,
            // but never hold a batch longer than the grace in all.
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
                eof = self.push(next)?;
            }
            self.write_batch()?;
            self.out.flush()?;
            if eof {
                return Ok(());
            }
        }
        Ok(())
    }

    /// Adds one packet to the batch; true if it was the EOF packet.
    fn push(&mut self, packet: Packet) -> io::Result<bool> {
        log::trace!("{}: -> {packet:?}", self.shared.name);
        let counters = &self.shared.counters;
        Counters::add(&counters.packets_out, 1);
        if packet.payload.len() >= DIRECT_PAYLOAD {
            codec::encode_header(&packet, &mut self.batch);
            self.write_batch()?;
            self.write_all(&packet.payload)?;
        } else {
            codec::encode(&packet, &mut self.batch);
            if self.batch.len() >= BATCH_LIMIT {
                self.write_batch()?;
            }
        }
        Ok(packet.control() == Some(Ok(Control::Eof)))
    }

    fn write_batch(&mut self) -> io::Result<()> {
        let batch = std::mem::take(&mut self.batch);
        let result = self.write_all(&batch);
        self.batch = batch;
        self.batch.clear();
        result
    }

    /// `write_all`, counting the write calls for [`Stats`](crate::Stats).
    fn write_all(&mut self, mut bytes: &[u8]) -> io::Result<()> {
        let counters = &self.shared.counters;
        while !bytes.is_empty() {
            match self.out.write(bytes) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    Counters::add(&counters.write_calls, 1);
                    Counters::add(&counters.bytes_out, n as u64);
                    bytes = &bytes[n..];
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}
