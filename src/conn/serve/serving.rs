//! What the serving side shares among the threads that read and the workers:
//! the handler and the routes, the pool, and the parts of the connection a
//! request's answer goes through.

use std::sync::Arc;

use crossbeam_channel::Sender;
use parking_lot::Mutex;

use super::handler::Handler;
use super::pool::Pool;
use super::reading::{ReadState, ReaderEnd};
use super::responder::Incoming;
use super::route::Routes;
use crate::conn::calls::{Calls, Key};
use crate::conn::control::Control;
use crate::conn::error::ConnectionError;
use crate::conn::send::SendPath;
use crate::conn::stats::ReaderCounters;
use crate::wire::Packet;

/// Who answers the peer's requests.
pub(crate) enum Serve {
    /// Nobody: they are refused with `no request handler`.
    Nothing,
    /// The application's handler, on the workers or the reading thread.
    Handler(Arc<dyn Handler>),
    /// The application's own loop, through a channel of pulled requests.
    Queue(Sender<Incoming>),
}

pub(crate) struct Serving {
    pub name: Arc<str>,
    pub serve: Serve,
    pub routes: Routes,
    pub pool: Pool<ReadState>,
    /// Where answers to this side's requests go.
    pub calls: Arc<Calls>,
    /// Where this side's answers go.
    pub send: Arc<SendPath>,
    pub control: Arc<Control>,
    pub counters: ReaderCounters,
    ending: Ending,
}

/// How reading ended, kept for close and for `join_recv`.
struct Ending {
    /// Why the connection was given up from outside the stream (the
    /// keepalive), if it was: it stands for how reading ended.
    aborted: Mutex<Option<ConnectionError>>,
    /// `Ok` for the peer's EOF or end of stream.
    outcome: Mutex<Option<Result<(), ConnectionError>>>,
    /// What reading left.
    end: Mutex<Option<ReaderEnd>>,
    /// Dropped when reading ends, which wakes whoever waits for it.
    done: Mutex<Option<Sender<()>>>,
}

impl Serving {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        name: Arc<str>,
        serve: Serve,
        routes: Routes,
        pool: Pool<ReadState>,
        calls: Arc<Calls>,
        send: Arc<SendPath>,
        control: Arc<Control>,
        done: Sender<()>,
    ) -> Self {
        Serving {
            name,
            serve,
            routes,
            pool,
            calls,
            send,
            control,
            counters: ReaderCounters::default(),
            ending: Ending {
                aborted: Mutex::new(None),
                outcome: Mutex::new(None),
                end: Mutex::new(None),
                done: Mutex::new(Some(done)),
            },
        }
    }

    /// Sends an answer from the reading thread without ever blocking: if the
    /// queue is full, a worker sends it.
    pub fn send_now(&self, packet: Packet) -> Result<(), ConnectionError> {
        match self.send.try_send(packet) {
            Ok(()) => Ok(()),
            Err(packet) => self.pool.send_later(packet),
        }
    }

    /// The handler, if requests go to one.
    pub fn handler(&self) -> Option<&dyn Handler> {
        match &self.serve {
            Serve::Handler(handler) => Some(&**handler),
            Serve::Nothing | Serve::Queue(_) => None,
        }
    }

    /// Refuses a request (ok = 0 with `text`), from the reading thread.
    pub fn refuse(&self, key: Key, text: String) -> Result<(), ConnectionError> {
        log::debug!("{}: refusing request {}:{}: {text}", self.name, key.0, key.1);
        self.send_now(Packet::response_unchecked(key.0, key.1, false, 0, text.into_bytes()))
    }

    /// The connection is given up from outside the stream: whoever waits
    /// learns `reason` at once, and so does whoever waits for reading to end,
    /// however it ends.
    pub fn abort(&self, reason: ConnectionError) {
        self.ending.aborted.lock().get_or_insert(reason.clone());
        self.calls.fail_all(reason);
    }

    /// Reading is over: no more answers can arrive, so whoever still waits
    /// learns why.
    pub fn reading_ended(&self, outcome: Result<(), ConnectionError>, end: ReaderEnd) {
        let outcome = match self.ending.aborted.lock().clone() {
            Some(reason) => Err(reason),
            None => outcome,
        };
        self.control.on_end();
        // The reason callers get is explained (how a child ended); so is
        // the one close and join_recv report.
        let outcome = match outcome {
            Ok(()) => {
                self.calls.fail_all(ConnectionError::PeerClosed { reason: self.control.peer_quit_reason() });
                Ok(())
            }
            Err(error) => Err(self.calls.fail_all(error)),
        };
        *self.ending.outcome.lock() = Some(outcome);
        *self.ending.end.lock() = Some(end);
        self.ending.done.lock().take();
    }

    /// Why the connection was given up from outside the stream, if it was.
    pub fn aborted(&self) -> Option<ConnectionError> {
        self.ending.aborted.lock().clone()
    }

    /// How reading ended, once it has.
    pub fn reading_outcome(&self) -> Option<Result<(), ConnectionError>> {
        self.ending.outcome.lock().clone()
    }

    /// What reading left, once it has ended.
    pub fn take_reader_end(&self) -> Option<ReaderEnd> {
        self.ending.end.lock().take()
    }
}
