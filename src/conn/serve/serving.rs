//! What the serving side shares among the threads that read and the workers:
//! the handler and the routes, the pool, and the parts of the connection a
//! request's answer goes through.

use std::sync::Arc;

use crossbeam_channel::Sender;
use parking_lot::Mutex;

use super::handler::Handler;
use super::lead::Lead;
use super::notes::Notes;
use super::pool::Pool;
use super::reading::{ReadState, ReaderEnd};
use super::responder::{Answering, Incoming};
use super::route::Routes;
use crate::conn::answer::{Failure, Response};
use crate::conn::calls::{Calls, Key};
use crate::conn::control::Control;
use crate::conn::error::ConnectionError;
use crate::conn::send::SendPath;
use crate::conn::stats::ReaderCounters;
use crate::conn::streams::served::{ServedStream, ServedStreams};
use crate::stream::message::UP;
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
    /// Cancels, budgets and the peer's going, for handlers.
    pub notes: Arc<Notes>,
    /// The streams the peer opened.
    pub streams: ServedStreams,
    /// The stream left to waiting callers between bursts.
    pub lead: Lead,
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
        notes: Arc<Notes>,
        streams: ServedStreams,
        lead: Lead,
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
            notes,
            streams,
            lead,
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

    /// The handler of stream `tag` (or the application, for a pulled one)
    /// answered `outcome`: the final reply goes after the stream's items,
    /// and the stream is out of service.
    pub fn finish_stream(&self, tag: u64, stream: &ServedStream, outcome: Result<Response, Failure>) {
        self.streams.remove(tag);
        self.pool.finish_deferred((UP, tag));
        self.notes.answered((UP, tag));
        stream.reply(outcome);
        self.pool.answered();
    }

    /// What keeps the reading thread on the stream although it delivered a
    /// caller's answer: a wait that is not a caller's (a stream's, a
    /// conversation's), which no caller would read for.
    pub fn others_wait(&self) -> bool {
        !self.streams.is_empty() || self.calls.has_conversations()
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
        self.notes.answered(key);
        log::debug!("{}: refusing request {}:{}: {text}", self.name, key.0, key.1);
        self.send_now(Packet::response_unchecked(key.0, key.1, false, 0, text.into_bytes()))
    }

    /// The connection is given up from outside the stream: whoever waits
    /// learns `reason` at once, and so does whoever waits for reading to end,
    /// however it ends.
    pub fn abort(&self, reason: ConnectionError) {
        self.ending.aborted.lock().get_or_insert(reason.clone());
        self.peer_gone(&reason, true);
        self.calls.fail_all(reason);
    }

    /// Nothing more comes from the peer: streams cannot go on (no credit,
    /// no item can arrive), and handlers learn it; `lost`: nor can answers
    /// reach it.
    fn peer_gone(&self, reason: &ConnectionError, lost: bool) {
        self.notes.peer_went(lost);
        self.streams.end_all(reason);
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
                let closed = ConnectionError::PeerClosed { reason: self.control.peer_quit_reason() };
                self.peer_gone(&closed, false);
                self.calls.fail_all(closed);
                Ok(())
            }
            Err(error) => {
                let error = self.calls.fail_all(error);
                self.peer_gone(&error, true);
                Err(error)
            }
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

impl Answering for Serving {
    fn answer(&self, key: Key, outcome: Result<Response, Failure>) {
        let packet = super::handler::response_packet(key.0, key.1, outcome);
        // Out of service before the answer can reach the peer, as for a
        // handler's answer, and its notes after.
        let light = self.pool.finish_deferred(key);
        self.notes.answered(key);
        self.send.send_response(packet, light);
        self.pool.answered();
    }

    fn finish_stream(&self, tag: u64, stream: &ServedStream, outcome: Result<Response, Failure>) {
        Serving::finish_stream(self, tag, stream, outcome);
    }
}
