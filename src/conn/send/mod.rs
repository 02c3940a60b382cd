//! The send path: every packet this side sends goes through [`SendPath`].
//!
//! Two ways out, chosen by the [send policy](policy):
//! - small packets are encoded into the staging buffer by the thread that
//!   sends them and written in groups by whoever flushes (the
//!   [outbox](outbox), a group commit);
//! - the rest go through a bounded crossbeam queue to the writer thread
//!   (the [writer](writer)), which also runs the packet-grace timer that
//!   flushes what nobody else flushed.

pub(crate) mod outbox;
pub(crate) mod policy;
pub(crate) mod spare;
pub(crate) mod writer;

use std::sync::Arc;
use std::time::Instant;

use crossbeam_channel::{SendTimeoutError, Sender, TrySendError};

use self::outbox::Outbox;
use self::policy::{AfterStaging, Holding, Path};
use self::writer::{GraceTimer, Outgoing};
use super::calls::Calls;
use super::error::ConnectionError;
use super::stats::{Counters, SenderCounters};
use crate::config::Config;
use crate::transport::WriteHalf;
use crate::wire::Packet;

/// Why a packet was not sent.
#[derive(Debug)]
pub(crate) enum NotSent {
    /// The queue had no room by the deadline; the packet is given back.
    Timeout(Packet),
    /// The stream is closed or failed.
    Ended(ConnectionError),
}

/// The staging buffer and stream, the queue to the writer thread, and the
/// grace timer.
pub(crate) struct SendPath {
    queue: Sender<Outgoing>,
    pub outbox: Outbox,
    pub timer: GraceTimer,
    holding: Holding,
    pub counters: SenderCounters,
}

impl SendPath {
    /// The send path over `stream`, and the receiving end of its queue for
    /// the writer thread. `one_cpu`: the connection's threads run on one CPU
    /// (see [`Holding::at_once`]); `into_pipe`: the stream is a pipe.
    pub fn new(
        name: Arc<str>,
        stream: Box<dyn WriteHalf>,
        calls: Arc<Calls>,
        config: &Config,
        one_cpu: bool,
        into_pipe: bool,
    ) -> (SendPath, crossbeam_channel::Receiver<Outgoing>) {
        let (queue, receiver) = crossbeam_channel::bounded(config.send_queue());
        let path = SendPath {
            queue,
            outbox: Outbox::new(name, stream, calls, into_pipe),
            timer: GraceTimer::new(config.packet_grace()),
            holding: Holding { no_grace: config.packet_grace().is_zero(), at_once: !one_cpu },
            counters: SenderCounters::default(),
        };
        (path, receiver)
    }

    /// Whether a request leaves at once (see [`policy::request_is_light`]):
    /// `awaiting` requests have no answer yet, callers hold `held` handles.
    pub fn request_is_light(&self, awaiting: usize, held: usize) -> bool {
        policy::request_is_light(awaiting, held, self.holding)
    }

    /// Sends a packet. `light`: few requests are in flight, so it leaves at
    /// once. With a `deadline` it waits for room in the queue until then.
    pub fn send(&self, packet: Packet, light: bool, deadline: Option<Instant>) -> Result<(), NotSent> {
        if policy::path(packet.payload.len(), deadline.is_some(), self.outbox.queue_is_clear()) == Path::Stage {
            let backlog = self.outbox.stage(&packet).map_err(NotSent::Ended)?;
            let flushed = match policy::after_staging(backlog, light, self.holding) {
                AfterStaging::FlushWaiting => self.outbox.flush_waiting(),
                AfterStaging::Flush => self.outbox.flush_staged(),
                AfterStaging::Hold => {
                    self.timer.arm(&self.queue);
                    Ok(())
                }
            };
            return flushed.map_err(NotSent::Ended);
        }
        self.enqueue(packet, deadline)
    }

    /// Sends the request of a caller that blocks until its answer anyway
    /// (an untimed call): as [`send`](Self::send), but a large payload is
    /// written by the caller itself when nothing is queued ahead of it,
    /// instead of by the writer thread: one thread wake-up less for each
    /// bulk request. Only a thread that reads nothing may: the reading
    /// thread must not block on a write, lest both peers wait for each
    /// other (a handler the reading thread runs may, as a worker takes
    /// reading over from it when it blocks).
    pub fn send_own(&self, packet: Packet, light: bool, deadline: Option<Instant>) -> Result<(), NotSent> {
        if policy::writes_own(packet.payload.len(), deadline.is_some(), self.outbox.queue_is_clear()) {
            return self.write_keeping(packet).map_err(NotSent::Ended);
        }
        self.send(packet, light, deadline)
    }

    /// Writes a bulk packet on this thread, then keeps its payload's buffer
    /// for the reader to read the next bulk payload into.
    fn write_keeping(&self, packet: Packet) -> Result<(), ConnectionError> {
        let written = self.outbox.write_now(&packet);
        self.outbox.spare.give(packet.into_payload());
        written
    }

    /// Puts a packet in the queue, waiting until `deadline` (`None`: for as
    /// long as it takes) for room, counted until the writer has it in its
    /// batch (see [`Outbox::queue_is_clear`]).
    fn enqueue(&self, packet: Packet, deadline: Option<Instant>) -> Result<(), NotSent> {
        self.outbox.count_queued(true);
        let packet = Outgoing::Packet(packet);
        let sent = match deadline {
            None => self.queue.send(packet).map_err(|_| NotSent::Ended(self.outbox.ended_reason())),
            Some(deadline) => self.queue.send_deadline(packet, deadline).map_err(|error| match error {
                SendTimeoutError::Timeout(Outgoing::Packet(packet)) => NotSent::Timeout(packet),
                _ => NotSent::Ended(self.outbox.ended_reason()),
            }),
        };
        if sent.is_err() {
            self.outbox.count_queued(false);
        }
        sent
    }

    /// Puts a packet in the queue if there is room now; it comes back if
    /// not. A closed queue takes it (the connection has ended, and the peer
    /// will not read it).
    fn try_enqueue(&self, packet: Packet) -> Result<(), Packet> {
        self.outbox.count_queued(true);
        match self.queue.try_send(Outgoing::Packet(packet)) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(Outgoing::Packet(packet))) => {
                self.outbox.count_queued(false);
                Err(packet)
            }
            Err(_) => {
                self.outbox.count_queued(false);
                Ok(())
            }
        }
    }

    /// Sends a handler's answer, waiting for room: a worker may wait for
    /// the peer, the reader may not. A failure means the connection has
    /// failed, which every caller learns from the tag map.
    pub fn send_response(&self, packet: Packet, light: bool) {
        if self.send(packet, light, None).is_ok() {
            Counters::add(&self.counters.responses_out, 1);
        }
    }

    /// [`send_response`](Self::send_response) from a thread that may block
    /// on a write (a worker, or the reading thread in a section, which a
    /// worker takes reading over from when it blocks): a large answer is
    /// written by it when nothing is queued ahead (see
    /// [`send_own`](Self::send_own)).
    pub fn send_response_own(&self, packet: Packet, light: bool) {
        if self.send_own(packet, light, None).is_ok() {
            Counters::add(&self.counters.responses_out, 1);
        }
    }

    /// Sends the answer to a request the reading thread ran itself, from
    /// inside its section: staged, to be written with the others before the
    /// reader blocks on the stream again (as an echo server flushes when its
    /// input runs dry), or, if it is large, written now (the section lets a
    /// worker take reading over if the write blocks) or through the queue.
    /// `last`: the reader has read no other request, so what is staged
    /// leaves now. Returns whether so much is staged that requests should
    /// go to the workers.
    pub fn send_inline_reply(&self, packet: Packet, last: bool) -> bool {
        if policy::writes_own(packet.payload.len(), false, self.outbox.queue_is_clear()) {
            if self.write_keeping(packet).is_ok() {
                Counters::add(&self.counters.responses_out, 1);
            }
            return false;
        }
        let packet = if policy::path(packet.payload.len(), false, true) == Path::Queue {
            match self.try_enqueue(packet) {
                Ok(()) => {
                    Counters::add(&self.counters.responses_out, 1);
                    return false;
                }
                Err(packet) => packet,
            }
        } else {
            packet
        };
        let Ok(backlog) = self.outbox.stage(&packet) else {
            return false;
        };
        Counters::add(&self.counters.responses_out, 1);
        let reply = policy::after_inline_reply(backlog);
        if reply.flush || last {
            let _ = self.outbox.flush_staged();
        }
        reply.congested
    }

    /// Queues a packet without ever blocking, for the reading thread: the
    /// packet comes back if the queue is full (a worker then sends it).
    pub fn try_send(&self, packet: Packet) -> Result<(), Packet> {
        self.try_enqueue(packet)?;
        Counters::add(&self.counters.responses_out, 1);
        Ok(())
    }

    /// Queues a control packet (ERQ, EOF) behind everything sent before it,
    /// waiting until `deadline` (`None`: for as long as it takes) for room.
    pub fn send_control(&self, packet: Packet, deadline: Option<Instant>) -> Result<(), NotSent> {
        self.enqueue(packet, deadline)
    }

    /// Writes what is staged unless another thread is writing it: for a
    /// thread about to block, whose bytes must not wait for a timer.
    pub fn flush(&self) {
        // A failed write has failed the connection; whoever waits learns it.
        let _ = self.outbox.flush();
    }

    /// Has the writer thread flush what is staged, for the reader, which
    /// must not write when no one could read in its place. A full queue
    /// means the writer is at work and will.
    pub fn request_flush(&self) {
        let _ = self.queue.try_send(Outgoing::Flush);
    }

    /// Why nothing more can be sent.
    pub fn ended_reason(&self) -> ConnectionError {
        self.outbox.ended_reason()
    }
}
