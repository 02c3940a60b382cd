//! Stream messages as the reader meets them: those of the streams the peer
//! opened (on the up channel), to their [`ServedStream`]s, and those of the
//! streams this end opened (on the down channel), to their conversations in
//! the tag map. A stream the peer opens gets its handler on a thread of its
//! own (it may run as long as the stream does), or goes to the
//! application's loop as a pulled request.
//!
//! Everything here runs on the reading thread, so nothing here waits: what
//! must be sent goes out through [`Serving::send_now`].

use std::sync::Arc;
use std::time::Instant;

use super::context::Context;
use super::handler::{self, Request};
use super::responder::{Answering, Incoming, Responder};
use super::serving::{Serve, Serving};
use crate::conn::error::ConnectionError;
use crate::conn::stats::Counters;
use crate::conn::streams::handles::{StreamReceiver, StreamSender};
use crate::conn::streams::served::{NotServed, ServedStream};
use crate::conn::streams::state::{Ended, StreamState};
use crate::stream::message::{Message, Open, Reply, DOWN, UP};
use crate::stream::Code;
use crate::threads;
use crate::wire::Packet;

/// A message from the serving end of a stream this end opened.
pub(crate) fn from_serving_end(packet: Packet, serving: &Arc<Serving>) -> Result<(), ConnectionError> {
    let mut replies = Vec::new();
    serving.calls.deliver_to((UP, packet.tag), packet, &mut replies, || {});
    send_all(serving, replies)
}

/// A message from the caller of a stream the peer opened. `refusing`: the
/// peer has ended its requests (ERQ), so it may open no more.
pub(crate) fn from_caller(packet: Packet, serving: &Arc<Serving>, refusing: bool) -> Result<(), ConnectionError> {
    let tag = packet.tag;
    let message = match Message::from_packet(packet) {
        Ok(message) => message,
        Err(error) => {
            log::warn!("{}: stream {tag}: {error}", serving.name);
            let Some(stream) = serving.streams.get(tag) else { return Ok(()) };
            stream.state.end_both(Ended::Broken(error.to_string()));
            return match stream.state.claim_final() {
                true => send_all(serving, stream.state.packet(Message::Cancel(Code::Cancel, error.to_string()))),
                false => Ok(()),
            };
        }
    };
    match message {
        Message::Open(open) => {
            Counters::bump(&serving.counters.streams_in, 1);
            open_stream(tag, open, serving, refusing)
        }
        message => match serving.streams.get(tag) {
            Some(stream) => {
                let mut messages = Vec::new();
                stream.state.on_message(message, &mut messages);
                send_all(serving, messages.into_iter().filter_map(|message| stream.state.packet(message)))
            }
            None => {
                // Its end crossed the message on the wire.
                log::debug!("{}: dropping a message for stream {tag}, which is over", serving.name);
                Ok(())
            }
        },
    }
}

fn send_all(serving: &Serving, packets: impl IntoIterator<Item = Packet>) -> Result<(), ConnectionError> {
    packets.into_iter().try_for_each(|packet| serving.send_now(packet))
}

/// The peer opens stream `tag`: it is refused at once, or gets its ends,
/// its first credit and its handler.
fn open_stream(tag: u64, open: Open, serving: &Arc<Serving>, refusing: bool) -> Result<(), ConnectionError> {
    let refuse = |text: String| {
        log::debug!("{}: refusing stream {tag}: {text}", serving.name);
        send_all(serving, failed(tag, text))
    };
    if refusing {
        return refuse("requests no longer allowed".to_owned());
    }
    if matches!(serving.serve, Serve::Nothing) {
        return refuse("no request handler".to_owned());
    }
    let key = (UP, tag);
    let streams = &serving.streams;
    let receives = open.caller_sends.then_some((streams.window, streams.overflow));
    let (state, first_grant) = StreamState::new(
        tag,
        DOWN,
        Arc::clone(&serving.send),
        Arc::clone(&serving.name),
        open.caller_receives,
        receives,
    );
    if open.caller_receives {
        state.grant(open.credit);
    }
    let served = Arc::new(ServedStream { state: Arc::clone(&state), budget: open.budget, opened: Instant::now() });
    match streams.insert(tag, Arc::clone(&served)) {
        Ok(()) => {}
        Err(NotServed::TooMany(limit)) => return refuse(format!("too many streams at once (at most {limit})")),
        Err(NotServed::TagInUse) => return refuse(format!("stream tag already in use: {tag}")),
    }
    match serving.pool.admit_deferred(key) {
        Ok(None) => {}
        Ok(Some(refusal)) => {
            streams.remove(tag);
            return refuse(refusal.text);
        }
        Err(error) => {
            streams.remove(tag);
            return Err(error);
        }
    }
    if let Some(grant) = first_grant {
        send_all(serving, state.packet(Message::Credit(grant)))?;
    }
    let sender = open.caller_receives.then(|| StreamSender::new(Arc::clone(&state), None));
    let receiver = open.caller_sends.then(|| StreamReceiver::new(Arc::clone(&state), None));
    let context = Context::stream(key, &serving.notes, Arc::clone(&served), sender, receiver);
    let request = Request::from_parts(UP, tag, open.rq_type, open.flags, open.payload, context);
    match &serving.serve {
        Serve::Handler(handler) => {
            let (handler, on_thread) = (Arc::clone(handler), Arc::clone(serving));
            let stream = Arc::clone(&served);
            let name = format!("{}-stream-{tag}", serving.name);
            let started = threads::spawn(name, streams.stack, move || {
                let outcome = handler::run(&*handler, request, &on_thread.name);
                on_thread.finish_stream(tag, &stream, outcome);
            });
            match started {
                Ok(thread) => streams.adopt(thread),
                Err(error) => {
                    let text = format!("could not start a thread for the stream: {error}");
                    return given_up(serving, tag, &served, text);
                }
            }
        }
        Serve::Queue(queue) => {
            let responder = Responder::for_stream(key, Arc::clone(serving) as Arc<dyn Answering>, Arc::clone(&served));
            if let Err(unsent) = queue.send(Incoming { request, responder }) {
                // The application dropped its receiver.
                unsent.into_inner().responder.withdraw();
                return given_up(serving, tag, &served, "requests are no longer taken".to_owned());
            }
        }
        Serve::Nothing => unreachable!("refused above"),
    }
    Ok(())
}

/// The failed reply of stream `tag`.
fn failed(tag: u64, text: String) -> Option<Packet> {
    let reply = Message::Reply(Reply { ok: false, flags: 0, payload: text.into_bytes() });
    reply.into_packet(DOWN, tag).ok()
}

/// A stream admitted but given no handler after all: failed from the
/// reader, without waiting.
fn given_up(serving: &Serving, tag: u64, served: &ServedStream, text: String) -> Result<(), ConnectionError> {
    log::warn!("{}: stream {tag}: {text}", serving.name);
    serving.streams.remove(tag);
    serving.pool.finish_deferred((UP, tag));
    let sent = if served.state.close_for_reply() { send_all(serving, failed(tag, text)) } else { Ok(()) };
    serving.pool.answered();
    sent
}
