//! The blocking reader: packets from the stream, answers to their waiting
//! callers, requests routed by channel to the handler pool or, while the
//! pool is idle, to the handler on the reading thread itself.
//!
//! Reading never waits for anything but the stream unless another thread
//! could read in its place. Two peers that flood each other fill both
//! streams; if either reader waited for its handlers or for its own writes,
//! which wait for the peer's reader, both would stop for good. So a handler
//! run on the reading thread, and a write call it makes, happen in a
//! *section* watched by an idle worker, which takes reading over if the
//! section does not end (see [`leader`](super::leader)).

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::Sender;

use super::handler;
use super::lead::Lingered;
use super::reading::{ReadState, ReaderEnd, BATCH_MAX};
use super::responder::{refused, Answering, Incoming, Responder};
use super::route::Route;
use super::serving::{Serve, Serving};
use super::streams;
use crate::conn::error::ConnectionError;
use crate::conn::stats::Counters;
use crate::ext::notice::{Notice, NoticeError};
use crate::ext::{self, Feature};
use crate::transport;
use crate::wire::{self, Control, Packet, ProtocolError, ReadError};

/// A handler the reader ran for longer than this counts as slow.
pub(crate) const INLINE_SLOW: Duration = Duration::from_micros(200);
/// One in this many handlers the reader runs is timed: reading the clock
/// costs as much as a quick handler, and a run of slow handlers shows in a
/// sample as well.
const INLINE_TIMED: u64 = 8;

/// Reads on thread `me` until the stream ends (true) or reading is taken
/// over (false). Between bursts it may leave the stream to the callers for
/// a while ([`lead`](super::lead)), and take it back.
pub(crate) fn serve(mut reading: ReadState, me: usize, serving: &Arc<Serving>) -> bool {
    serving.pool.set_reading_thread(me);
    let outcome = loop {
        match read_one(reading, Role::Thread(me), serving) {
            Step::Go(next) | Step::Suspended(next) => reading = next,
            Step::TakenOver => return false,
            Step::Linger(left) => match serving.lead.linger(left) {
                Lingered::Back(back) => {
                    serving.pool.set_reading_thread(me);
                    reading = back;
                }
                // A caller's thread saw the stream end, and finished it.
                Lingered::Ended => return true,
            },
            Step::End(last, outcome) => {
                reading = last;
                break outcome;
            }
        }
    };
    finish(reading, outcome, serving);
    true
}

/// Reading is over, on whichever thread saw the end: requests that arrived
/// before it are still served, and whoever waits learns why.
pub(crate) fn finish(mut reading: ReadState, outcome: Result<(), ConnectionError>, serving: &Arc<Serving>) {
    let outcome = outcome.and(hand_on(&mut reading, serving));
    match &outcome {
        Ok(()) => log::debug!("{}: reading done: peer ended the stream", serving.name),
        Err(error) => log::debug!("{}: reading failed: {error}", serving.name),
    }
    let (reader, unread) = reading.packets.into_parts();
    serving.reading_ended(outcome, ReaderEnd { reader, unread });
}

/// Who reads: a thread of the connection (the reader, or a worker that took
/// reading over), numbered as the pool numbers them, or a caller waiting
/// for its answer, which runs no handler and never blocks but on the
/// stream, and only until its deadline.
#[derive(Clone, Copy)]
pub(crate) enum Role {
    Thread(usize),
    Caller,
}

pub(crate) enum Step {
    Go(ReadState),
    TakenOver,
    /// A caller's read reached its deadline; the frame it was in resumes at
    /// the next read.
    Suspended(ReadState),
    /// An answer was delivered and nothing more is buffered: the stream may
    /// be left to the callers.
    Linger(ReadState),
    End(ReadState, Result<(), ConnectionError>),
}

/// Requests decoded for the workers go on together: while more whole frames
/// sit in the read buffer the reader keeps decoding, then admits the batch
/// at once, so one wake-up of a worker serves many requests.
pub(crate) fn hand_on(reading: &mut ReadState, serving: &Arc<Serving>) -> Result<(), ConnectionError> {
    if reading.batch.is_empty() {
        return Ok(());
    }
    for refusal in serving.pool.admit(&mut reading.batch)? {
        serving.refuse(refusal.key, refusal.text)?;
    }
    Ok(())
}

/// Why reading failed: a broken format whose bytes look like text says so,
/// with their start.
fn read_error(error: ReadError, frame_start: &[u8]) -> ConnectionError {
    match error {
        ReadError::Io(error) => error.into(),
        ReadError::Protocol(error) => match wire::text_hint(frame_start) {
            Some(text) => ConnectionError::NotPackets { error, text },
            None => error.into(),
        },
    }
}

/// Reads and dispatches one packet.
pub(crate) fn read_one(mut reading: ReadState, role: Role, serving: &Arc<Serving>) -> Step {
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
        check!(hand_on(&mut reading, serving));
    }
    if about_to_block {
        // Judged again at the next answer.
        reading.congested = false;
    }
    if about_to_block && reading.replies_staged {
        reading = match role {
            Role::Thread(me) => match flush_section(reading, me, serving) {
                Some(reading) => reading,
                None => return Step::TakenOver,
            },
            Role::Caller => {
                // A caller reading for itself must not wait for the peer to
                // read: the writer thread writes them.
                reading.replies_staged = false;
                serving.send.request_flush();
                reading
            }
        };
    }
    if about_to_block
        && matches!(role, Role::Thread(_))
        && std::mem::take(&mut reading.answered_caller)
        && !serving.others_wait()
    {
        return Step::Linger(reading);
    }
    if !reading.packets.has_spare() {
        if let Some(spare) = serving.send.outbox.spare.take() {
            reading.packets.give_spare(spare);
        }
    }
    let counters = &serving.counters;
    let fields = &mut *reading;
    let read = match (fields.until, fields.readable.as_mut()) {
        (Some(until), Some(readable)) => {
            let cpu = serving.calls.wait.cpu();
            fields.packets.read_packet_gated(&mut |buf, exact| transport::gate(readable, until, buf, exact, cpu))
        }
        _ => fields.packets.read_packet(),
    };
    let packet = match read {
        Err(ReadError::Io(error)) if error.kind() == std::io::ErrorKind::WouldBlock => {
            return Step::Suspended(reading);
        }
        other => other,
    };
    let packet = packet.map_err(|error| read_error(error, reading.packets.frame_start()));
    counters.bytes_in.store(reading.packets.bytes_read(), Relaxed);
    let Some(packet) = check!(packet) else {
        return Step::End(reading, Ok(()));
    };
    log::trace!("{}: <- {packet:?}", serving.name);
    Counters::bump(&counters.packets_in, 1);
    if !packet.is_request() {
        // At once: the caller may be about to send more, and a pipelining
        // caller keeps the stream busy only if it hears back promptly.
        // The extension mechanism's own answers are not the application's.
        let counted = !ext::is_reserved(packet.channel);
        reading.answered_caller |= counted;
        let mut replies = Vec::new();
        let released = serving.calls.deliver(packet, &mut replies, || {
            if counted {
                Counters::bump(&counters.responses_in, 1);
            }
        });
        if released {
            serving.lead.released();
        }
        for reply in replies {
            check!(serving.send_now(reply));
        }
        return Step::Go(reading);
    }
    match packet.control() {
        None => {}
        Some(Ok(Control::Eof)) => return Step::End(reading, Ok(())),
        Some(Ok(Control::Erq)) => {
            log::debug!("{}: peer ended its requests", serving.name);
            reading.peer_ended_requests = true;
            return Step::Go(reading);
        }
        Some(Err(())) => {
            let error = ProtocolError::BadControlPacket { channel: packet.channel, tag: packet.tag };
            return Step::End(reading, Err(error.into()));
        }
    }
    let key = (packet.channel, packet.tag);
    let mut route = serving.routes.route(key.0);
    if matches!(route, Route::StreamUp | Route::StreamDown) && !serving.control.agreed(Feature::Stream) {
        // A peer that did not agree on streams gets what a peer without
        // them would answer.
        route = Route::Refuse;
    }
    // The extension mechanism's own requests are not the application's,
    // whether this end serves them or refuses them.
    if !ext::is_reserved(key.0) {
        Counters::bump(&counters.requests_in, 1);
    }
    match route {
        Route::StreamDown => {
            check!(streams::from_serving_end(packet, serving));
            return Step::Go(reading);
        }
        Route::StreamUp => {
            check!(streams::from_caller(packet, serving, reading.peer_ended_requests));
            return Step::Go(reading);
        }
        Route::Control => {
            if let Some(notice) = notice(&packet, serving) {
                // The request it is about may be in the batch still.
                check!(hand_on(&mut reading, serving));
                on_notice(notice, serving);
                return Step::Go(reading);
            }
        }
        Route::User | Route::Refuse => {}
    }
    // The control channel's requests are the extension mechanism's, not
    // the application's: the peer's ERQ does not end them (a quit with a
    // reason may follow an ERQ the application sent earlier).
    let refusal = if reading.peer_ended_requests && route != Route::Control {
        Some("requests no longer allowed".to_owned())
    } else {
        match (route, &serving.serve) {
            (Route::Refuse, _) => Some(format!("unknown channel {}", key.0)),
            (Route::User, Serve::Nothing) => Some("no request handler".to_owned()),
            (Route::User, Serve::Handler(_)) => None,
            (Route::User, Serve::Queue(queue)) => {
                check!(pull(packet, queue, serving));
                return Step::Go(reading);
            }
            (Route::Control, _) => {
                let answer = serving.control.serve(&packet);
                check!(serving.send_now(answer));
                return Step::Go(reading);
            }
            (Route::StreamUp | Route::StreamDown, _) => unreachable!("stream messages went above"),
        }
    };
    if let Some(text) = refusal {
        check!(serving.refuse(key, text));
        return Step::Go(reading);
    }
    let me = match role {
        Role::Thread(me) if !reading.congested => me,
        // A caller runs no handler: its requests go to the workers.
        _ => {
            reading.batch.push(packet);
            return Step::Go(reading);
        }
    };
    match handler_section(reading, packet, me, serving) {
        Inline::Answered(reading) => Step::Go(reading),
        Inline::TakenOver => Step::TakenOver,
        Inline::Declined(mut reading, packet) => {
            reading.batch.push(packet);
            Step::Go(reading)
        }
    }
}

/// The notice a control request is, if it is one and both ends agreed on
/// notices (else it is served, or refused, as any control request).
fn notice(packet: &Packet, serving: &Serving) -> Option<Result<Notice, NoticeError>> {
    let notice = Notice::decode(packet.rq_type()?, packet.payload())?;
    serving.control.agreed(Feature::Cancel).then_some(notice)
}

/// A notice is never answered, even one that cannot be read.
fn on_notice(notice: Result<Notice, NoticeError>, serving: &Serving) {
    match notice {
        Err(error) => log::warn!("{}: ignoring a notice that cannot be read: {error}", serving.name),
        Ok(Notice::Cancel { channel, tag }) => {
            // Only a request still in service has anyone to tell.
            log::debug!("{}: the caller gave up request {channel}:{tag}", serving.name);
            serving.notes.cancel_if((channel, tag), || serving.pool.is_in_service((channel, tag)));
        }
        Ok(Notice::Budget { channel, tag, budget }) => serving.notes.budget((channel, tag), budget),
    }
}

/// Hands a request to the application's loop, with a responder, once the
/// pool has admitted it (the pool counts it as in service until answered).
fn pull(packet: Packet, queue: &Sender<Incoming>, serving: &Arc<Serving>) -> Result<(), ConnectionError> {
    let key = (packet.channel, packet.tag);
    if let Some(refusal) = serving.pool.admit_deferred(key)? {
        return serving.refuse(refusal.key, refusal.text);
    }
    let request = handler::request(packet, &serving.notes);
    let incoming = Incoming { request, responder: Responder::new(key, Arc::clone(serving) as Arc<dyn Answering>) };
    if let Err(unsent) = queue.send(incoming) {
        // The application dropped its receiver: the responder dropped here
        // would wait for the send path; refuse the way the reader must,
        // without blocking.
        let Incoming { responder, .. } = unsent.into_inner();
        responder.withdraw();
        serving.pool.finish_deferred(key);
        serving.pool.answered();
        return serving.send_now(refused(key));
    }
    Ok(())
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
fn handler_section(reading: ReadState, packet: Packet, me: usize, serving: &Arc<Serving>) -> Inline {
    let key = (packet.channel, packet.tag);
    let timed = reading.answered.is_multiple_of(INLINE_TIMED);
    // The last request read: its answer, and those staged before it, leave
    // in this section, not in one of their own (`flush_section`) before the
    // reader blocks on the stream.
    let last = reading.batch.is_empty() && !reading.packets.has_buffered_packet();
    let number = match serving.pool.begin_section(me, Some(key), reading) {
        Ok(number) => number,
        Err(reading) => return Inline::Declined(reading, packet),
    };
    let handler = serving.handler().expect("requests are routed to the handler only when there is one");
    let started = timed.then(Instant::now);
    let response = handler::answer(handler, packet, &serving.notes, &serving.name);
    let slow = started.is_some_and(|started| started.elapsed() >= INLINE_SLOW);
    let congested = serving.send.send_inline_reply(response, last);
    let ended = serving.pool.end_section(number, me, Some(key), slow);
    // Out of service now: its notes go (see `Notes::cancel_if`).
    serving.notes.answered(key);
    match ended {
        Some(mut reading) => {
            reading.replies_staged = !last;
            reading.congested = congested;
            reading.answered += 1;
            Inline::Answered(reading)
        }
        None => Inline::TakenOver,
    }
}

/// Writes the staged answers before the reader blocks on the stream: itself
/// when a worker watches, else through the writer thread.
fn flush_section(mut reading: ReadState, me: usize, serving: &Arc<Serving>) -> Option<ReadState> {
    reading.replies_staged = false;
    match serving.pool.begin_section(me, None, reading) {
        Ok(number) => {
            serving.send.flush();
            serving.pool.end_section(number, me, None, false)
        }
        Err(reading) => {
            serving.send.request_flush();
            Some(reading)
        }
    }
}
