//! The writer thread: drains the send queue into the stream, many packets per
//! write call, and runs the grace timer that flushes staged bytes nobody
//! else flushed.
//!
//! The queue carries what a sender should not write itself: packets sent
//! with a deadline (a write call cannot give up), large payloads (written
//! from their own buffers), the reader's refusals (the reader never writes
//! while another thread could take its place), and the control packets of
//! shutdown. Small packets are staged instead (see [`outbox`](crate::outbox)).

use std::sync::atomic::Ordering::SeqCst;
use std::sync::Arc;
use std::time::Instant;

use crossbeam_channel::{Receiver, RecvTimeoutError, TryRecvError};

use crate::connection::Shared;
use crate::error::Error;
use crate::packet::Packet;
use crate::transport::WriteHalf;

/// What the send queue carries.
pub(crate) enum Outgoing {
    Packet(Packet),
    /// Bytes were left staged: flush them within the packet grace.
    Corked,
    /// Flush the staged bytes now (for the reader, which must not write
    /// when nobody could read in its place).
    Flush,
}

/// The writer thread. Runs until it has written the EOF packet (or the
/// queue's senders are all gone), then gives the stream back. On a write
/// error it fails every waiting request, since none of them can be relied on
/// to be answered.
pub(crate) fn run(queue: Receiver<Outgoing>, shared: Arc<Shared>) -> Result<Box<dyn WriteHalf>, Error> {
    let outcome = write_loop(&queue, &shared);
    shared.outbox.close();
    let mut sink = shared.outbox.lock_sink();
    match outcome {
        Ok(()) => {
            log::debug!("{}: writer done", shared.name);
            sink.take_stream().ok_or(Error::Closed)
        }
        Err(error) => {
            sink.take_stream();
            drop(sink);
            log::debug!("{}: writer failed: {error}", shared.name);
            shared.connection_failed(error.clone());
            Err(error)
        }
    }
}

fn write_loop(queue: &Receiver<Outgoing>, shared: &Shared) -> Result<(), Error> {
    let outbox = &shared.outbox;
    // When the grace timer next looks at the staging buffer.
    let mut timer: Option<Instant> = None;
    loop {
        let next = match timer {
            None => queue.recv().ok(),
            Some(at) => match queue.recv_deadline(at) {
                Ok(next) => Some(next),
                Err(RecvTimeoutError::Disconnected) => None,
                Err(RecvTimeoutError::Timeout) => {
                    timer = grace_expired(shared)?;
                    continue;
                }
            },
        };
        let first = match next {
            None => return Ok(()),
            Some(Outgoing::Corked) => {
                start_timer(&mut timer, shared);
                continue;
            }
            Some(Outgoing::Flush) => {
                outbox.flush_waiting(shared)?;
                continue;
            }
            Some(Outgoing::Packet(packet)) => packet,
        };
        let mut sink = outbox.lock_sink();
        if !sink.is_open() {
            // A write failed elsewhere; the connection is already failed.
            return Err(shared.ended_reason());
        }
        // Staged bytes went in before anything queued after them.
        if let Err(error) = outbox.write_staged(&mut sink, shared) {
            return Err(outbox.fail(&mut sink, error, shared));
        }
        let mut eof = is_eof(&first);
        let mut written = sink.push(&first, shared);
        while written.is_ok() && !eof {
            match queue.try_recv() {
                Ok(Outgoing::Packet(packet)) => {
                    eof = is_eof(&packet);
                    written = sink.push(&packet, shared);
                }
                // The staged bytes are written below in any case, but the
                // timer must run for those staged after.
                Ok(Outgoing::Corked) => start_timer(&mut timer, shared),
                Ok(Outgoing::Flush) => {}
                Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
            }
        }
        if let Err(error) = written.and_then(|()| sink.write_batch(shared)) {
            return Err(outbox.fail(&mut sink, error, shared));
        }
        if eof {
            // Nothing goes after EOF.
            outbox.close();
            return sink.flush_out().map_err(|error| outbox.fail(&mut sink, error, shared));
        }
        outbox.release(sink, shared)?;
    }
}

/// Starts the grace timer unless it runs already.
fn start_timer(timer: &mut Option<Instant>, shared: &Shared) {
    timer.get_or_insert_with(|| Instant::now() + shared.config.packet_grace);
}

/// The grace has passed: flush what is staged. The timer runs on while
/// senders keep leaving bytes staged; once a look finds nothing, it stops,
/// and the next sender that leaves bytes staged starts it again.
fn grace_expired(shared: &Shared) -> Result<Option<Instant>, Error> {
    let outbox = &shared.outbox;
    let rearm = Some(Instant::now() + shared.config.packet_grace);
    if outbox.has_staged() {
        outbox.flush_waiting(shared)?;
        return Ok(rearm);
    }
    outbox.timer_armed.store(false, SeqCst);
    // A sender that staged before seeing the timer stopped did not start it.
    if outbox.has_staged() {
        outbox.timer_armed.store(true, SeqCst);
        return Ok(rearm);
    }
    Ok(None)
}

fn is_eof(packet: &Packet) -> bool {
    packet.wire_type == Some(0) && packet.tag == 0 && packet.channel == 0
}
