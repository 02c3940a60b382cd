//! The serving side: the reader thread, routing of the peer's requests by
//! channel, the handler pool, and the reader hand-off between them.
//!
//! - [`reader`]: the blocking reader loop;
//! - [`route`]: which requests reach the handler;
//! - [`pool`]: the workers that run handlers;
//! - [`leader`]: the reading thread runs quick handlers itself while an idle
//!   worker watches (Leader/Followers);
//! - [`handler`]: what the application's handler receives and returns;
//! - [`lead`]: waiting callers read the stream themselves while the
//!   reading thread leaves it between bursts;
//! - [`responder`]: pulled requests, for a program that answers from its
//!   own loop instead of a handler;
//! - [`context`] and [`notes`]: what a handler learns beyond its request's
//!   bytes (a cancel, a budget, the peer's going);
//! - [`streams`]: stream messages as the reader meets them, and the
//!   handlers of the streams the peer opens.

pub(crate) mod context;
pub(crate) mod handler;
pub(crate) mod lead;
pub(crate) mod leader;
pub(crate) mod notes;
pub(crate) mod pool;
pub(crate) mod reader;
pub(crate) mod reading;
pub(crate) mod responder;
pub(crate) mod route;
pub(crate) mod serving;
pub(crate) mod streams;
pub(crate) mod waiting;

use std::io;
use std::sync::{Arc, Weak};

use self::pool::{Job, Spawner};
use self::reading::ReadState;
use self::serving::Serving;
use crate::threads;
use crate::wire::Packet;

/// The reader thread's body: reads until the stream ends, or until a worker
/// takes reading over, and then serves as a worker.
pub(crate) fn read_then_work(reading: ReadState, serving: Arc<Serving>) {
    let me = serving.pool.reader_number();
    if !reader::serve(reading, me, &serving) {
        work(me, &serving);
    }
}

/// A worker's body: runs jobs until the pool closes. `me` is its number; the
/// reader thread comes here too, numbered after the workers, once a worker
/// has taken reading over from it.
pub(crate) fn work(me: usize, serving: &Arc<Serving>) {
    let pool = &serving.pool;
    let flush = || serving.send.flush();
    while let Some(job) = pool.next_job(me, &flush) {
        match job {
            Job::Serve(packet) => {
                let key = (packet.channel, packet.tag);
                let response = match serving.handler() {
                    Some(handler) => handler::answer(handler, packet, &serving.notes, &serving.name),
                    None => Packet::response_unchecked(key.0, key.1, false, 0, b"no request handler".to_vec()),
                };
                // Out of service before the answer can reach the peer, so a
                // peer that reuses the tag after the answer is not refused;
                // its notes go after (see `Notes::cancel_if`).
                let light = pool.finish(me, key);
                serving.notes.answered(key);
                serving.send.send_response_own(response, light);
                pool.answered();
            }
            Job::Send(packet) => {
                serving.send.send_response_own(packet, false);
                pool.answered();
            }
            Job::Read(reading) => {
                reader::serve(reading, me, serving);
            }
        }
    }
}

/// How the pool starts worker `number`: through a weak reference, since the
/// pool lives inside what the workers share.
pub(crate) fn spawner(serving: Weak<Serving>, stack: Option<usize>) -> Spawner {
    Box::new(move |number| {
        // The pool starts workers from inside a call on it, so its owner is
        // alive.
        let serving = serving.upgrade().ok_or_else(|| io::Error::other("the connection is gone"))?;
        threads::spawn(serving.pool.thread_name(number), stack, move || work(number, &serving))
    })
}
