//! Where outgoing packets gather before a write call: a staging buffer that
//! any thread encodes into, and the stream itself.
//!
//! A thread that sends a small packet encodes it into the staging buffer and
//! goes on; the bytes leave in one write call with whatever else was staged.
//! Whoever flushes takes the stream's lock, swaps the staging buffer out and
//! writes it; a thread that finds the stream busy leaves its bytes to the
//! holder, which looks at the staging buffer again after it lets go (a group
//! commit). So a burst of packets from several threads costs one write call,
//! and no thread waits for another's system call just to stage.
//!
//! Staged bytes are flushed by the first of: a sender that is alone (few
//! packets in flight, so latency is what matters), enough staged bytes to be
//! worth a write call ([`CORK_PACKETS`], [`CORK_BYTES`]), a thread about to
//! block for the peer (a caller waiting for an answer, a worker going idle,
//! the reader going back to the stream), or the writer thread's grace timer
//! (see [`Config::packet_grace`](crate::Config::packet_grace)).

use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};

use parking_lot::{Mutex, MutexGuard};

use crate::codec;
use crate::connection::Shared;
use crate::error::Error;
use crate::packet::Packet;
use crate::stats::Counters;
use crate::transport::WriteHalf;

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
const BATCH_LIMIT: usize = 256 << 10;

#[derive(Default)]
struct Staged {
    bytes: Vec<u8>,
    packets: usize,
}

/// What is staged after a packet was added: whether it is worth a flush.
#[derive(Clone, Copy)]
pub(crate) struct Backlog {
    pub packets: usize,
    pub bytes: usize,
}

impl Backlog {
    pub fn worth_a_write(self) -> bool {
        self.packets >= CORK_PACKETS || self.bytes >= CORK_BYTES
    }

    pub fn over_limit(self) -> bool {
        self.bytes >= STAGE_LIMIT
    }
}

pub(crate) struct Outbox {
    staged: Mutex<Staged>,
    sink: Mutex<Sink>,
    /// Whether the writer thread's grace timer will look at the staging
    /// buffer; when it is not, the next sender that leaves bytes staged
    /// starts it.
    pub timer_armed: AtomicBool,
    /// Set once the stream is closed or failed: nothing more is staged.
    closed: AtomicBool,
}

/// The stream and the writer thread's batch. Whoever holds the lock writes.
pub(crate) struct Sink {
    /// `None` once the EOF packet is written or a write failed.
    out: Option<Box<dyn WriteHalf>>,
    batch: Vec<u8>,
    /// The staging buffer's previous allocation, swapped back in on a flush.
    spare: Vec<u8>,
}

impl Outbox {
    pub fn new(out: Box<dyn WriteHalf>) -> Self {
        Outbox {
            staged: Mutex::new(Staged::default()),
            sink: Mutex::new(Sink { out: Some(out), batch: Vec::new(), spare: Vec::new() }),
            timer_armed: AtomicBool::new(false),
            closed: AtomicBool::new(false),
        }
    }

    pub fn is_closed(&self) -> bool {
        self.closed.load(SeqCst)
    }

    /// Encodes `packet` into the staging buffer and says how much is staged.
    /// `Err(Closed)` once the stream is closed.
    pub fn stage(&self, packet: &Packet, shared: &Shared) -> Result<Backlog, Error> {
        if self.is_closed() {
            return Err(shared.ended_reason());
        }
        log::trace!("{}: -> {packet:?}", shared.name);
        let mut staged = self.staged.lock();
        codec::encode(packet, &mut staged.bytes);
        staged.packets += 1;
        Ok(Backlog { packets: staged.packets, bytes: staged.bytes.len() })
    }

    pub fn has_staged(&self) -> bool {
        self.staged.lock().packets > 0
    }

    /// Writes what is staged unless another thread is writing, which then
    /// writes it. Never waits for the stream's lock, but the write call it
    /// makes may block while the peer does not read.
    pub fn flush(&self, shared: &Shared) -> Result<(), Error> {
        if !self.has_staged() {
            return Ok(());
        }
        match self.sink.try_lock() {
            Some(sink) => self.release(sink, shared),
            None => Ok(()),
        }
    }

    /// Waits for the stream and writes what is staged: the backpressure of
    /// a sender that found too much staged.
    pub fn flush_waiting(&self, shared: &Shared) -> Result<(), Error> {
        self.release(self.sink.lock(), shared)
    }

    /// The stream's lock, for the writer thread.
    pub fn lock_sink(&self) -> MutexGuard<'_, Sink> {
        self.sink.lock()
    }

    /// Writes what is staged, then lets go of the stream. Bytes staged by a
    /// thread that found the stream busy are written by this one.
    pub fn release<'a>(&'a self, mut sink: MutexGuard<'a, Sink>, shared: &Shared) -> Result<(), Error> {
        loop {
            let written = self.write_staged(&mut sink, shared).and_then(|()| sink.flush_out());
            if let Err(error) = written {
                return Err(self.fail(&mut sink, error, shared));
            }
            drop(sink);
            // Bytes staged between the last swap and the unlock: their
            // sender's try_lock failed, so they are this thread's to write,
            // unless they have a new writer already.
            if !self.has_staged() {
                return Ok(());
            }
            match self.sink.try_lock() {
                Some(again) => sink = again,
                None => return Ok(()),
            }
        }
    }

    /// Writes what is staged, the stream's lock held.
    pub fn write_staged(&self, sink: &mut Sink, shared: &Shared) -> io::Result<()> {
        loop {
            let (bytes, packets) = {
                let mut staged = self.staged.lock();
                if staged.packets == 0 {
                    return Ok(());
                }
                if self.is_closed() {
                    // After EOF: a straggler raced with the close.
                    staged.bytes.clear();
                    staged.packets = 0;
                    return Ok(());
                }
                let spare = std::mem::take(&mut sink.spare);
                (std::mem::replace(&mut staged.bytes, spare), std::mem::take(&mut staged.packets))
            };
            Counters::bump(&shared.counters.sink.packets_out, packets as u64);
            let result = sink.write_all(&bytes, shared);
            sink.spare = bytes;
            sink.spare.clear();
            result?;
        }
    }

    /// A write failed: the stream is done for, and so is every request
    /// waiting on it.
    pub fn fail(&self, sink: &mut Sink, error: io::Error, shared: &Shared) -> Error {
        sink.out = None;
        self.closed.store(true, SeqCst);
        let error = Error::from(error);
        shared.connection_failed(error.clone());
        error
    }

    /// The stream is closing: nothing more is staged.
    pub fn close(&self) {
        self.closed.store(true, SeqCst);
    }
}

impl Sink {
    pub fn is_open(&self) -> bool {
        self.out.is_some()
    }

    pub fn take_stream(&mut self) -> Option<Box<dyn WriteHalf>> {
        self.out.take()
    }

    /// Adds one packet to the writer thread's batch, writing out what a
    /// large payload or a full batch requires.
    pub fn push(&mut self, packet: &Packet, shared: &Shared) -> io::Result<()> {
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

    pub fn write_batch(&mut self, shared: &Shared) -> io::Result<()> {
        let batch = std::mem::take(&mut self.batch);
        let result = self.write_all(&batch, shared);
        self.batch = batch;
        self.batch.clear();
        result
    }

    pub fn flush_out(&mut self) -> io::Result<()> {
        match self.out.as_mut() {
            Some(out) => out.flush(),
            None => Ok(()),
        }
    }

    /// `write_all`, counting the write calls for [`Stats`](crate::Stats).
    fn write_all(&mut self, mut bytes: &[u8], shared: &Shared) -> io::Result<()> {
        if bytes.is_empty() {
            return Ok(());
        }
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
