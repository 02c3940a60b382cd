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
//! When staged bytes leave is the [send policy](super::policy)'s decision.

use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;

use parking_lot::{Mutex, MutexGuard};

use super::policy::{Backlog, BATCH_LIMIT, DIRECT_PAYLOAD};
use super::spare::Spare;
use crate::conn::calls::Calls;
use crate::conn::error::ConnectionError;
use crate::conn::stats::{Counters, SinkCounters};
use crate::transport::WriteHalf;
use crate::wire::{self, Packet};

#[derive(Default)]
struct Staged {
    bytes: Vec<u8>,
    packets: usize,
}

/// The staging buffer and the stream, with what a failed write must tell.
pub(crate) struct Outbox {
    name: Arc<str>,
    staged: Mutex<Staged>,
    sink: Mutex<Sink>,
    /// Set once the stream is closed or failed: nothing more is staged.
    closed: AtomicBool,
    /// A failed write fails every request waiting here.
    calls: Arc<Calls>,
    /// Packets sent through the queue and not yet in the writer's batch.
    /// A packet is staged only while this is zero: one staged while the
    /// writer holds a packet it has taken from the queue but not yet
    /// written could reach the stream first, and a stream's items must
    /// arrive in the order they were sent.
    queued: AtomicUsize,
    pub counters: SinkCounters,
    /// Large payloads written, for the reader to read the next into.
    pub spare: Spare,
}

/// The stream and the writer thread's batch. Whoever holds the lock writes.
pub(crate) struct Sink {
    /// `None` once the EOF packet is written or a write failed.
    out: Option<Box<dyn WriteHalf>>,
    batch: Vec<u8>,
    /// The staging buffer's previous allocation, swapped back in on a flush.
    spare: Vec<u8>,
    /// Whether a bulk payload's header is written in a call of its own
    /// (see [`Sink::push`]): only into a pipe.
    header_apart: bool,
}

impl Outbox {
    /// `into_pipe`: the stream is a pipe (see [`Sink::push`]).
    pub fn new(name: Arc<str>, out: Box<dyn WriteHalf>, calls: Arc<Calls>, into_pipe: bool) -> Self {
        Outbox {
            name,
            staged: Mutex::new(Staged::default()),
            sink: Mutex::new(Sink { out: Some(out), batch: Vec::new(), spare: Vec::new(), header_apart: into_pipe }),
            closed: AtomicBool::new(false),
            calls,
            queued: AtomicUsize::new(0),
            counters: SinkCounters::default(),
            spare: Spare::default(),
        }
    }

    /// Whether no packet sent through the queue is still on its way to the
    /// writer's batch.
    pub fn queue_is_clear(&self) -> bool {
        self.queued.load(SeqCst) == 0
    }

    /// A packet goes into the queue (or, with `false`, did not after all).
    pub fn count_queued(&self, went: bool) {
        if went {
            self.queued.fetch_add(1, SeqCst);
        } else {
            self.queued.fetch_sub(1, SeqCst);
        }
    }

    /// Why nothing more can be sent.
    pub fn ended_reason(&self) -> ConnectionError {
        self.calls.ended_reason()
    }

    pub fn is_closed(&self) -> bool {
        self.closed.load(SeqCst)
    }

    /// Encodes `packet` into the staging buffer and says how much is staged;
    /// once the stream is closed, why it is.
    pub fn stage(&self, packet: &Packet) -> Result<Backlog, ConnectionError> {
        if self.is_closed() {
            return Err(self.calls.ended_reason());
        }
        log::trace!("{}: -> {packet:?}", self.name);
        let mut staged = self.staged.lock();
        wire::encode(packet, &mut staged.bytes);
        staged.packets += 1;
        Ok(Backlog { packets: staged.packets, bytes: staged.bytes.len() })
    }

    pub fn has_staged(&self) -> bool {
        self.staged.lock().packets > 0
    }

    /// Writes what is staged unless another thread is writing, which then
    /// writes it. Never waits for the stream's lock, but the write call it
    /// makes may block while the peer does not read.
    pub fn flush(&self) -> Result<(), ConnectionError> {
        if !self.has_staged() {
            return Ok(());
        }
        self.flush_staged()
    }

    /// [`flush`](Self::flush) for a sender that has just staged: something
    /// is staged (its own packet, or bytes a writer holding the stream will
    /// take), so the stream is tried at once.
    pub fn flush_staged(&self) -> Result<(), ConnectionError> {
        match self.sink.try_lock() {
            Some(sink) => self.release(sink),
            None => Ok(()),
        }
    }

    /// Waits for the stream and writes what is staged: the backpressure of
    /// a sender that found too much staged.
    pub fn flush_waiting(&self) -> Result<(), ConnectionError> {
        self.release(self.sink.lock())
    }

    /// Writes `packet` now, on this thread, after whatever was staged
    /// before it, waiting for the stream's lock (see
    /// [`SendPath::send_own`](super::SendPath::send_own)).
    pub fn write_now(&self, packet: &Packet) -> Result<(), ConnectionError> {
        let mut sink = self.sink.lock();
        if self.is_closed() || !sink.is_open() {
            return Err(self.calls.ended_reason());
        }
        log::trace!("{}: -> {packet:?}", self.name);
        let written = self.write_staged(&mut sink).and_then(|()| sink.push(packet, &self.counters));
        if let Err(error) = written {
            return Err(self.fail(sink, error));
        }
        self.release(sink)
    }

    /// The stream's lock, for the writer thread.
    pub fn lock_sink(&self) -> MutexGuard<'_, Sink> {
        self.sink.lock()
    }

    /// Writes what is staged, then lets go of the stream. Bytes staged by a
    /// thread that found the stream busy are written by this one.
    pub fn release<'a>(&'a self, mut sink: MutexGuard<'a, Sink>) -> Result<(), ConnectionError> {
        loop {
            let written = self.write_staged(&mut sink).and_then(|()| sink.flush_out());
            if let Err(error) = written {
                return Err(self.fail(sink, error));
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

    /// Writes what is staged, the stream's lock held. Bytes staged while
    /// it writes are left for [`release`](Self::release)'s look after the
    /// lock is let go (their senders are concurrent with this write, and no
    /// order is owed them), not looked for here again: one lock of the
    /// staging buffer less for each flush that finds none.
    pub fn write_staged(&self, sink: &mut Sink) -> io::Result<()> {
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
        Counters::bump(&self.counters.packets_out, packets as u64);
        let result = sink.write_all(&bytes, &self.counters);
        sink.spare = bytes;
        sink.spare.clear();
        result
    }

    /// A write failed: the stream is done for, and so is every request
    /// waiting on it. The stream is let go of first: failing the requests
    /// may wait a moment to tell how a child ended, and no sender should
    /// wait for the stream meanwhile.
    pub fn fail(&self, mut sink: MutexGuard<'_, Sink>, error: io::Error) -> ConnectionError {
        sink.out = None;
        self.closed.store(true, SeqCst);
        drop(sink);
        self.calls.fail_all(ConnectionError::from(error))
    }

    /// Adds one packet to the writer thread's batch (see [`Sink::push`]).
    /// It came from the queue: once it is in the batch, under the stream's
    /// lock, whatever is staged after it is written after it.
    pub fn push(&self, sink: &mut Sink, packet: &Packet) -> io::Result<()> {
        log::trace!("{}: -> {packet:?}", self.name);
        let pushed = sink.push(packet, &self.counters);
        self.queued.fetch_sub(1, SeqCst);
        pushed
    }

    /// Writes the writer thread's batch (see [`Sink::write_batch`]).
    pub fn write_batch(&self, sink: &mut Sink) -> io::Result<()> {
        sink.write_batch(&self.counters)
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
    fn push(&mut self, packet: &Packet, counters: &SinkCounters) -> io::Result<()> {
        Counters::bump(&counters.packets_out, 1);
        if packet.payload.len() >= DIRECT_PAYLOAD {
            wire::encode_header(packet, &mut self.batch);
            let batch = std::mem::take(&mut self.batch);
            // Into a pipe, the header in a call of its own, ahead of the
            // payload: the peer's reader, woken by it, is back for the
            // payload while it is copied, waiting on the pipe's lock on its
            // CPU, and has it as the copy ends. Written together, the reader
            // would sleep until the whole write had been copied and only
            // then be woken, a thread wake-up later (tens of microseconds on
            // a virtual machine whose other CPU went idle). Elsewhere, one
            // call for both: a TCP socket without TCP_NODELAY would hold the
            // payload's tail back until the peer acknowledged the header
            // (Nagle's algorithm against a delayed acknowledgement: 40 ms).
            let result = if self.header_apart {
                self.write_all(&batch, counters).and_then(|()| self.write_all(&packet.payload, counters))
            } else {
                self.write_all_vectored(&batch, &packet.payload, counters)
            };
            self.batch = batch;
            self.batch.clear();
            result?;
        } else {
            wire::encode(packet, &mut self.batch);
            if self.batch.len() >= BATCH_LIMIT {
                self.write_batch(counters)?;
            }
        }
        Ok(())
    }

    fn write_batch(&mut self, counters: &SinkCounters) -> io::Result<()> {
        let batch = std::mem::take(&mut self.batch);
        let result = self.write_all(&batch, counters);
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

    /// `first` then `second`, as few write calls as the stream allows,
    /// counted for [`Stats`](crate::Stats).
    fn write_all_vectored(&mut self, first: &[u8], second: &[u8], counters: &SinkCounters) -> io::Result<()> {
        if first.is_empty() && second.is_empty() {
            return Ok(());
        }
        let out = self.out.as_mut().ok_or(io::ErrorKind::BrokenPipe)?;
        let mut slices = [io::IoSlice::new(first), io::IoSlice::new(second)];
        let mut bufs = &mut slices[..if second.is_empty() { 1 } else { 2 }];
        // No empty slice leads: a write of it would return 0.
        io::IoSlice::advance_slices(&mut bufs, 0);
        while !bufs.is_empty() {
            // One slice left: a plain write, which costs the kernel less than
            // a vectored one.
            let written = match bufs {
                [only] => out.write(only),
                _ => out.write_vectored(bufs),
            };
            match written {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    Counters::bump(&counters.write_calls, 1);
                    Counters::bump(&counters.bytes_out, n as u64);
                    io::IoSlice::advance_slices(&mut bufs, n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// `write_all`, counting the write calls for [`Stats`](crate::Stats).
    fn write_all(&mut self, bytes: &[u8], counters: &SinkCounters) -> io::Result<()> {
        self.write_all_vectored(bytes, &[], counters)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex as StdMutex;
    use std::time::Duration;

    use super::*;

    /// Keeps each write call's bytes.
    struct Recorder(Arc<StdMutex<Vec<Vec<u8>>>>);

    impl Write for Recorder {
        fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().push(bytes.to_vec());
            Ok(bytes.len())
        }

        fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
            let bytes: Vec<u8> = bufs.iter().flat_map(|buf| buf.iter().copied()).collect();
            self.0.lock().unwrap().push(bytes.clone());
            Ok(bytes.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn outbox(into_pipe: bool) -> (Outbox, Arc<StdMutex<Vec<Vec<u8>>>>) {
        let calls = Arc::new(StdMutex::new(Vec::new()));
        let sink = Box::new(Recorder(Arc::clone(&calls)));
        let tags = Arc::new(Calls::new("t".into(), Duration::ZERO, false, None));
        (Outbox::new("t".into(), sink, tags, into_pipe), calls)
    }

    #[test]
    fn into_a_pipe_a_bulk_payload_follows_its_header_in_a_write_call_of_its_own() {
        let (outbox, calls) = outbox(true);
        let small = Packet::request(0, 2, 1, 0, b"before".to_vec()).unwrap();
        outbox.stage(&small).unwrap();
        let bulk = Packet::request(0, 3, 1, 0, vec![7; DIRECT_PAYLOAD]).unwrap();
        outbox.write_now(&bulk).unwrap();
        let mut staged = Vec::new();
        wire::encode(&small, &mut staged);
        let mut header = Vec::new();
        wire::encode_header(&bulk, &mut header);
        let calls = calls.lock().unwrap();
        // What was staged first, then the header alone (the peer's reader
        // wakes for it and is reading as the payload is copied), then the
        // payload.
        assert_eq!(*calls, [staged, header, bulk.payload().to_vec()]);
    }

    #[test]
    fn elsewhere_a_bulk_payload_leaves_with_its_header() {
        let (outbox, calls) = outbox(false);
        let bulk = Packet::request(0, 3, 1, 0, vec![7; DIRECT_PAYLOAD]).unwrap();
        outbox.write_now(&bulk).unwrap();
        let mut whole = Vec::new();
        wire::encode(&bulk, &mut whole);
        // One call for both: a small write of the header alone would hold
        // the payload back on a socket that delays small segments.
        assert_eq!(*calls.lock().unwrap(), [whole]);
    }
}
