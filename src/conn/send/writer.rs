//! The writer thread: drains the send queue into the stream, many packets per
//! write call, and runs the grace timer that flushes staged bytes nobody
//! else flushed.
//!
//! The queue carries what a sender should not write itself: packets sent
//! with a deadline (a write call cannot give up), large payloads (written
//! from their own buffers), the reader's refusals (the reader never writes
//! while another thread could take its place), and the control packets of
//! shutdown. Small packets are staged instead (see [`outbox`](super::outbox)).

use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TryRecvError};

use super::outbox::Outbox;
use crate::conn::error::ConnectionError;
use crate::transport::WriteHalf;
use crate::wire::Packet;

/// What the send queue carries.
pub(crate) enum Outgoing {
    Packet(Packet),
    /// Bytes were left staged: flush them within the packet grace.
    Corked,
    /// Flush the staged bytes now (for the reader, which must not write
    /// when nobody could read in its place).
    Flush,
}

/// The packet grace timer, owned by the sending side: staged bytes that no
/// one flushed within the grace are flushed by the writer thread.
pub(crate) struct GraceTimer {
    grace: Duration,
    /// Whether the writer thread's timer will look at the staging buffer;
    /// when it is not, the next sender that leaves bytes staged starts it.
    armed: AtomicBool,
}

impl GraceTimer {
    pub fn new(grace: Duration) -> Self {
        GraceTimer { grace, armed: AtomicBool::new(false) }
    }

    /// A sender left bytes staged: makes sure the writer thread's timer
    /// will flush them.
    pub fn arm(&self, queue: &Sender<Outgoing>) {
        let armed = &self.armed;
        if !armed.load(SeqCst) && !armed.swap(true, SeqCst) && queue.try_send(Outgoing::Corked).is_err() {
            // A full queue keeps the writer busy, and it writes what is
            // staged with every batch; a closed one has nothing to flush.
            armed.store(false, SeqCst);
        }
    }
}

/// The writer thread. Runs until it has written the EOF packet (or the
/// queue's senders are all gone), then gives the stream back. A write error
/// fails every waiting request (in the outbox), since none of them can be
/// relied on to be answered.
pub(crate) fn run(
    queue: Receiver<Outgoing>,
    outbox: &Outbox,
    timer: &GraceTimer,
    name: &str,
) -> Result<Box<dyn WriteHalf>, ConnectionError> {
    let outcome = write_loop(&queue, outbox, timer);
    outbox.close();
    let mut sink = outbox.lock_sink();
    let stream = sink.take_stream();
    match outcome {
        Ok(()) => {
            log::debug!("{name}: writer done");
            stream.ok_or(ConnectionError::Closed)
        }
        Err(error) => {
            log::debug!("{name}: writer failed: {error}");
            Err(error)
        }
    }
}

fn write_loop(queue: &Receiver<Outgoing>, outbox: &Outbox, grace: &GraceTimer) -> Result<(), ConnectionError> {
    // When the grace timer next looks at the staging buffer.
    let mut timer: Option<Instant> = None;
    loop {
        let next = match timer {
            None => queue.recv().ok(),
            Some(at) => match queue.recv_deadline(at) {
                Ok(next) => Some(next),
                Err(RecvTimeoutError::Disconnected) => None,
                Err(RecvTimeoutError::Timeout) => {
                    timer = grace_expired(outbox, grace)?;
                    continue;
                }
            },
        };
        let first = match next {
            None => return Ok(()),
            Some(Outgoing::Corked) => {
                start_timer(&mut timer, grace);
                continue;
            }
            Some(Outgoing::Flush) => {
                outbox.flush_waiting()?;
                continue;
            }
            Some(Outgoing::Packet(packet)) => packet,
        };
        let mut sink = outbox.lock_sink();
        if !sink.is_open() {
            // A write failed elsewhere; the connection is already failed.
            return Err(outbox.ended_reason());
        }
        // Staged bytes went in before anything queued after them.
        if let Err(error) = outbox.write_staged(&mut sink) {
            return Err(outbox.fail(sink, error));
        }
        let mut eof = first.is_eof();
        let mut written = outbox.push(&mut sink, &first);
        outbox.spare.give(first.into_payload());
        while written.is_ok() && !eof {
            match queue.try_recv() {
                Ok(Outgoing::Packet(packet)) => {
                    eof = packet.is_eof();
                    written = outbox.push(&mut sink, &packet);
                    outbox.spare.give(packet.into_payload());
                }
                // The staged bytes are written below in any case, but the
                // timer must run for those staged after.
                Ok(Outgoing::Corked) => start_timer(&mut timer, grace),
                Ok(Outgoing::Flush) => {}
                Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
            }
        }
        if let Err(error) = written.and_then(|()| outbox.write_batch(&mut sink)) {
            return Err(outbox.fail(sink, error));
        }
        if eof {
            // Nothing goes after EOF.
            outbox.close();
            return match sink.flush_out() {
                Ok(()) => Ok(()),
                Err(error) => Err(outbox.fail(sink, error)),
            };
        }
        outbox.release(sink)?;
    }
}

/// Starts the grace timer unless it runs already.
fn start_timer(timer: &mut Option<Instant>, grace: &GraceTimer) {
    timer.get_or_insert_with(|| Instant::now() + grace.grace);
}

/// The grace has passed: flush what is staged. The timer runs on while
/// senders keep leaving bytes staged; once a look finds nothing, it stops,
/// and the next sender that leaves bytes staged starts it again.
fn grace_expired(outbox: &Outbox, grace: &GraceTimer) -> Result<Option<Instant>, ConnectionError> {
    let rearm = Some(Instant::now() + grace.grace);
    if outbox.has_staged() {
        outbox.flush_waiting()?;
        return Ok(rearm);
    }
    grace.armed.store(false, SeqCst);
    // A sender that staged before seeing the timer stopped did not start it.
    if outbox.has_staged() {
        grace.armed.store(true, SeqCst);
        return Ok(rearm);
    }
    Ok(None)
}
