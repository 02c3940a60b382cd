//! Making requests: what a [`PacketConnection`](crate::PacketConnection)
//! does for its caller, and a handler does to call the peer back. A
//! [`Peer`] holds only the tag map and the send path, so it is cheap to
//! clone and can outlive a borrow of the connection.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::answer::Response;
use super::calls::{Entry, Slot};
use super::error::{CallError, CallTimeoutError, InvalidRequest, SubmitError, SubmitTimeoutError};
use super::link::Link;
use super::pending::{Pending, WaitTimeoutError};
use super::send::NotSent;
use super::stats::Counters;
use super::streams::calling::{self, Stream, StreamOpenError, StreamOptions};
use crate::ext::{self, notice::Notice, Feature};
use crate::wire::{check_request, Packet};

/// Makes requests on a connection: the calls of
/// [`PacketConnection`](crate::PacketConnection), in a handle that is cheap
/// to clone and to send to other threads. A handler gets one for calling
/// the peer back ([`Request::context`](crate::Request::context)).
#[derive(Clone)]
pub struct Peer {
    link: Arc<Link>,
}

/// How a request goes out.
#[derive(Clone, Copy)]
enum Way {
    /// Staged or queued, waiting for room until the deadline, if any.
    Until(Option<Instant>),
    /// Its caller blocks until the answer: it may write the request itself
    /// (see `SendPath::send_own`).
    Own,
}

/// Why [`Peer::submit_inner`] sent nothing.
enum NotSubmitted {
    Submit(SubmitError),
    Timeout(Vec<u8>),
}

impl NotSubmitted {
    /// Why a submit without a deadline sent nothing: it cannot time out.
    fn untimed(self) -> SubmitError {
        match self {
            NotSubmitted::Submit(error) => error,
            NotSubmitted::Timeout(_) => unreachable!("a submit without a deadline does not time out"),
        }
    }
}

impl Peer {
    pub(crate) fn new(link: Arc<Link>) -> Self {
        Peer { link }
    }

    pub(crate) fn link(&self) -> &Arc<Link> {
        &self.link
    }

    /// Sends a request of type `rq_type` on channel 0 and returns its handle.
    /// Blocks while the send queue is full.
    ///
    /// # Errors
    /// [`SubmitError::Invalid`] for values that do not fit on the wire;
    /// [`SubmitError::Connection`] once the connection has ended or after
    /// [`end_requests`](crate::PacketConnection::end_requests).
    pub fn submit(&self, rq_type: u64, flags: u64, payload: impl Into<Vec<u8>>) -> Result<Pending, SubmitError> {
        self.submit_on(0, rq_type, flags, payload)
    }

    /// [`submit`](Self::submit) on a chosen channel.
    ///
    /// # Errors
    /// As [`submit`](Self::submit), and [`InvalidRequest::ReservedChannel`]
    /// for a channel the protocol extensions keep.
    pub fn submit_on(
        &self,
        channel: u64,
        rq_type: u64,
        flags: u64,
        payload: impl Into<Vec<u8>>,
    ) -> Result<Pending, SubmitError> {
        self.submit_inner(channel, rq_type, flags, payload.into(), Way::Until(None), None)
            .map_err(NotSubmitted::untimed)
    }

    /// [`submit_on`](Self::submit_on), telling the serving end that this
    /// caller waits at most `budget` for the answer: its handler sees it
    /// ([`Context::budget`](crate::Context::budget)). The budget travels as
    /// a relative time, so the two ends' clocks need not agree; only a
    /// `packetstream` peer that agreed on it hears of it (a plain
    /// cs.packetstream peer gets the plain request).
    ///
    /// # Errors
    /// As [`submit_on`](Self::submit_on).
    pub fn submit_with_budget(
        &self,
        channel: u64,
        rq_type: u64,
        flags: u64,
        payload: impl Into<Vec<u8>>,
        budget: Duration,
    ) -> Result<Pending, SubmitError> {
        self.submit_inner(channel, rq_type, flags, payload.into(), Way::Until(None), Some(budget))
            .map_err(NotSubmitted::untimed)
    }

    /// [`submit_on`](Self::submit_on), waiting at most `timeout` for room in
    /// the send queue. The request never goes out on the caller's thread, so
    /// the timeout holds against a peer that stopped reading.
    ///
    /// # Errors
    /// As [`submit_on`](Self::submit_on), plus [`SubmitTimeoutError::Timeout`]
    /// (with the payload back) when there was no room in time; then nothing
    /// was sent.
    pub fn submit_timeout(
        &self,
        channel: u64,
        rq_type: u64,
        flags: u64,
        payload: impl Into<Vec<u8>>,
        timeout: Duration,
    ) -> Result<Pending, SubmitTimeoutError> {
        let deadline = Instant::now().checked_add(timeout);
        self.submit_inner(channel, rq_type, flags, payload.into(), Way::Until(deadline), None).map_err(|error| {
            match error {
                NotSubmitted::Submit(error) => error.into(),
                NotSubmitted::Timeout(payload) => SubmitTimeoutError::Timeout(payload),
            }
        })
    }

    fn submit_inner(
        &self,
        channel: u64,
        rq_type: u64,
        flags: u64,
        payload: Vec<u8>,
        way: Way,
        budget: Option<Duration>,
    ) -> Result<Pending, NotSubmitted> {
        let deadline = match way {
            Way::Until(deadline) => deadline,
            Way::Own => None,
        };
        let invalid = |error: InvalidRequest| NotSubmitted::Submit(SubmitError::Invalid(error));
        if ext::is_reserved(channel) {
            return Err(invalid(InvalidRequest::ReservedChannel(channel)));
        }
        check_request(rq_type, flags).map_err(|error| invalid(error.into()))?;
        let Link { calls, send, control, .. } = &*self.link;
        let slot = Arc::new(Slot::new(channel));
        let (tag, in_flight) = calls
            .register(channel, Entry::Answer(Arc::clone(&slot)))
            .map_err(|error| NotSubmitted::Submit(SubmitError::Connection(error)))?;
        if let Some(budget) = budget.filter(|_| control.agreed(Feature::Cancel)) {
            // Ahead of its request, in the same write.
            let notice = Notice::Budget { channel, tag, budget };
            if let Some(packet) = control.notice(calls, &notice) {
                let _ = send.send(packet, false, deadline);
            }
        }
        let packet = Packet::request_unchecked(channel, tag, rq_type, flags, payload);
        // The handles held, and this one's.
        let light = send.request_is_light(in_flight, calls.wait.held() + 1);
        let sent = if matches!(way, Way::Own) {
            send.send_own(packet, light, deadline)
        } else {
            send.send(packet, light, deadline)
        };
        if let Err(not_sent) = sent {
            calls.forget((channel, tag));
            return Err(match not_sent {
                NotSent::Timeout(packet) => NotSubmitted::Timeout(packet.into_payload()),
                NotSent::Ended(error) => NotSubmitted::Submit(SubmitError::Connection(error)),
            });
        }
        Counters::add(&send.counters.requests_out, 1);
        Ok(Pending::new(slot, tag, Arc::clone(&self.link)))
    }

    /// Sends a request of type `rq_type` on the control channel, for the
    /// layers above the connection that serve a feature there (see
    /// [`ext::service`]). Requests of the application cannot go there.
    pub(crate) fn control_request(&self, rq_type: u64, payload: Vec<u8>) -> Result<Pending, SubmitError> {
        let Link { calls, send, .. } = &*self.link;
        let slot = Arc::new(Slot::new(ext::CONTROL_CHANNEL));
        let (tag, _) =
            calls.register(ext::CONTROL_CHANNEL, Entry::Answer(Arc::clone(&slot))).map_err(SubmitError::Connection)?;
        let packet = Packet::request_unchecked(ext::CONTROL_CHANNEL, tag, rq_type, 0, payload);
        if let Err(not_sent) = send.send(packet, true, None) {
            calls.forget((ext::CONTROL_CHANNEL, tag));
            return Err(SubmitError::Connection(match not_sent {
                NotSent::Ended(error) => error,
                NotSent::Timeout(_) => unreachable!("a send without a deadline does not time out"),
            }));
        }
        Ok(Pending::new(slot, tag, Arc::clone(&self.link)))
    }

    /// Opens a streaming request of type `rq_type`: one conversation in
    /// which the peer's handler streams items to this caller, this caller
    /// streams items to it, or both at once (as `options` say), before the
    /// handler's final reply. Waits (at most a few seconds) for the
    /// negotiation of extensions to settle first.
    ///
    /// ```
    /// # use packetstream::*;
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let (a, b) = Transport::memory_pair();
    /// let on = || Config::builder().extensions(true);
    /// let server = PacketConnection::with_handler(b, on(), |rq: Request| {
    ///     let items = rq.context().take_sender().expect("the caller takes items");
    ///     for n in 0..3u8 {
    ///         items.send(vec![n])?;
    ///     }
    ///     Ok::<_, StreamSendError>(b"done".to_vec())
    /// })?;
    /// let client = PacketConnection::new(a, on())?;
    /// let Stream { receiver, reply, .. } = client.stream(1, 0, b"count", StreamOptions::receive())?;
    /// let items: Vec<Vec<u8>> = receiver.expect("asked to receive").collect::<Result<_, _>>()?;
    /// assert_eq!(items, [[0], [1], [2]]);
    /// assert_eq!(reply.wait()?.payload, b"done");
    /// # drop(client); drop(server);
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`StreamOpenError::Unsupported`] at once when the peer cannot stream
    /// (a plain cs.packetstream peer, or extensions off at either end);
    /// [`StreamOpenError::Invalid`] for values that do not fit;
    /// [`StreamOpenError::Connection`] once the connection has ended.
    pub fn stream(
        &self,
        rq_type: u64,
        flags: u64,
        payload: impl Into<Vec<u8>>,
        options: StreamOptions,
    ) -> Result<Stream, StreamOpenError> {
        calling::open(&self.link, rq_type, flags, payload.into(), options)
    }

    /// Sends a request and waits for its answer.
    ///
    /// # Errors
    /// [`CallError::Failed`] when the peer answers ok = 0; otherwise as
    /// [`submit`](Self::submit) and [`Pending::wait`].
    pub fn call(&self, rq_type: u64, flags: u64, payload: impl Into<Vec<u8>>) -> Result<Response, CallError> {
        self.call_on(0, rq_type, flags, payload)
    }

    /// [`call`](Self::call) on a chosen channel.
    ///
    /// # Errors
    /// As [`call`](Self::call).
    pub fn call_on(
        &self,
        channel: u64,
        rq_type: u64,
        flags: u64,
        payload: impl Into<Vec<u8>>,
    ) -> Result<Response, CallError> {
        // This caller blocks until the answer in any case: it may as well
        // write a bulk request itself (see `SendPath::send_own`).
        let pending = self
            .submit_inner(channel, rq_type, flags, payload.into(), Way::Own, None)
            .map_err(NotSubmitted::untimed)?;
        Ok(pending.wait()?)
    }

    /// [`call`](Self::call) with one `timeout` for queueing and answer
    /// together. On [`CallTimeoutError::Timeout`] the request is given up.
    ///
    /// # Errors
    /// As [`call`](Self::call), plus [`CallTimeoutError::Timeout`].
    pub fn call_timeout(
        &self,
        rq_type: u64,
        flags: u64,
        payload: impl Into<Vec<u8>>,
        timeout: Duration,
    ) -> Result<Response, CallTimeoutError> {
        let Some(deadline) = Instant::now().checked_add(timeout) else {
            return Ok(self.call(rq_type, flags, payload)?);
        };
        let pending =
            match self.submit_inner(0, rq_type, flags, payload.into(), Way::Until(Some(deadline)), Some(timeout)) {
                Ok(pending) => pending,
                Err(NotSubmitted::Timeout(_)) => return Err(CallTimeoutError::Timeout),
                Err(NotSubmitted::Submit(error)) => return Err(CallError::from(error).into()),
            };
        pending.wait_deadline(deadline).map_err(|error| match error {
            WaitTimeoutError::Timeout(_) => CallTimeoutError::Timeout,
            WaitTimeoutError::Failed(failure) => CallTimeoutError::Failed(failure),
            WaitTimeoutError::Connection(error) => CallTimeoutError::Connection(error),
        })
    }
}

impl std::fmt::Debug for Peer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Peer").field("outstanding", &self.link.calls.callers_waiting()).finish()
    }
}
