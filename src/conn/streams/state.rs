//! The state of one stream at one end: the items that arrived and wait for
//! the application (with the receiver's window), and the credit for the
//! items this end sends. The two ends of a conversation hold one each.
//!
//! Two kinds of thread touch it. The reading thread hands it what arrives
//! ([`StreamState::on_message`]) and must never block, so what an arrival
//! makes this end say (a credit, a warning, a stop) is handed back for the
//! reader to send without waiting. The application's threads take items,
//! send them and end the stream; they may wait, for credit, for items, for
//! room in the send queue.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::Arc;
use std::time::Instant;

use parking_lot::{Condvar, Mutex};

use crate::conn::error::ConnectionError;
use crate::conn::send::SendPath;
use crate::stream::credit::{Arrival, NoCredit, RecvWindow, SendCredit};
use crate::stream::message::{Message, Warning};
use crate::stream::{Code, Credit, Overflow};
use crate::wire::Packet;

/// Why a direction of a stream is over.
#[derive(Debug, Clone)]
pub(crate) enum Ended {
    /// The sender's items ended (END, or the serving end's reply).
    Finished,
    /// The serving end gave its final reply: it takes no more items.
    Replied,
    /// The receiver asked for no more (STOP), with its code and text.
    Stopped(Code, String),
    /// One end called the conversation off (CANCEL).
    Cancelled { by_peer: bool, code: Code, text: String },
    /// The connection ended.
    Connection(ConnectionError),
    /// The peer broke the stream's rules (items past its credit, a message
    /// out of place).
    Broken(String),
}

/// Items waiting for the application, and the window that grants credit.
struct Inbound {
    items: VecDeque<Vec<u8>>,
    /// `None` when this end takes no items.
    window: Option<RecvWindow>,
    end: Option<Ended>,
    warnings: Vec<Warning>,
    /// Whether the peer called the conversation off.
    cancelled: bool,
}

/// The credit for this end's items.
struct Outbound {
    credit: SendCredit,
    /// `Some` when this end may send no more.
    end: Option<Ended>,
    /// Whether this end sends items at all.
    sends: bool,
    /// Items that took their credit and are on their way to the send path:
    /// a final message waits for them, so that it never overtakes one.
    sending: usize,
}

pub(crate) struct StreamState {
    /// The conversation's tag (the caller's, on the up channel).
    pub tag: u64,
    /// The channel this end's messages go on.
    out_channel: u64,
    send: Arc<SendPath>,
    name: Arc<str>,
    inbound: Mutex<Inbound>,
    /// Items or the end arrived.
    arrived: Condvar,
    /// The peer called it off (apart from `arrived`, whose item wake-ups go
    /// to one waiter each).
    cancelled: Condvar,
    outbound: Mutex<Outbound>,
    /// Credit arrived, the outbound end came, or the last item in flight
    /// reached the send path.
    credited: Condvar,
    /// Set once this end has sent its final message (a cancel, or the
    /// serving end's reply): nothing follows it.
    final_sent: AtomicBool,
}

/// What an arriving message did to the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Effect {
    /// Nothing more to do.
    None,
    /// The peer called the conversation off.
    Cancelled,
}

/// What this end receives, if anything: its window and what it does when
/// the application falls behind.
pub(crate) type Receives = Option<(Credit, Overflow)>;

impl StreamState {
    /// A stream at one end of conversation `tag`, whose messages go out on
    /// `out_channel`: `receives` when this end takes items, `sends` when it
    /// sends them. Returns the state and the first grant for the other end,
    /// if this end takes items.
    pub fn new(
        tag: u64,
        out_channel: u64,
        send: Arc<SendPath>,
        name: Arc<str>,
        sends: bool,
        receives: Receives,
    ) -> (Arc<StreamState>, Option<Credit>) {
        let (window, grant) = match receives {
            Some((window, policy)) => {
                let (window, grant) = RecvWindow::new(window, policy);
                (Some(window), Some(grant))
            }
            None => (None, None),
        };
        let end = if window.is_some() { None } else { Some(Ended::Finished) };
        let state = StreamState {
            tag,
            out_channel,
            send,
            name,
            inbound: Mutex::new(Inbound {
                items: VecDeque::new(),
                window,
                end,
                warnings: Vec::new(),
                cancelled: false,
            }),
            arrived: Condvar::new(),
            cancelled: Condvar::new(),
            outbound: Mutex::new(Outbound {
                credit: SendCredit::default(),
                end: (!sends).then_some(Ended::Finished),
                sends,
                sending: 0,
            }),
            credited: Condvar::new(),
            final_sent: AtomicBool::new(false),
        };
        (Arc::new(state), grant)
    }

    /// The packet of `message` from this end.
    pub fn packet(&self, message: Message) -> Option<Packet> {
        match message.into_packet(self.out_channel, self.tag) {
            Ok(packet) => Some(packet),
            Err(error) => {
                log::warn!("{}: stream {}: a message does not fit: {error}", self.name, self.tag);
                None
            }
        }
    }

    /// Sends `message` from an application thread (it may wait for room).
    /// A failed send has failed the connection, which every end learns.
    pub fn send_message(&self, message: Message, light: bool) -> bool {
        match self.packet(message) {
            Some(packet) => self.send.send(packet, light, None).is_ok(),
            None => false,
        }
    }

    /// Writes what this connection has staged: before a wait, so that the
    /// peer has what it needs to answer.
    pub fn flush(&self) {
        self.send.flush();
    }

    /// Credit granted before the stream's state existed (the caller's first
    /// grant, carried by its open).
    pub fn grant(&self, credit: Credit) {
        self.outbound.lock().credit.grant(credit);
        self.credited.notify_all();
    }

    /// A message from the peer (not its open or its final reply, which the
    /// two ends handle), on the reading thread. What this end must say in
    /// return goes into `replies`, for the reader to send without waiting.
    pub fn on_message(&self, message: Message, replies: &mut Vec<Message>) -> Effect {
        match message {
            Message::Item(item) => self.on_item(item, replies),
            Message::Credit(credit) => self.grant(credit),
            Message::Warn(warning) => {
                self.inbound.lock().warnings.push(warning);
                self.arrived.notify_all();
            }
            Message::End => self.end_inbound(Ended::Finished),
            Message::Stop(code, text) => self.end_outbound(Ended::Stopped(code, text)),
            Message::Cancel(code, text) => {
                self.on_cancel(code, text);
                return Effect::Cancelled;
            }
            Message::Open(_) | Message::Reply(_) => {
                let text = "a message out of place (a second open, or a reply sent to the serving end)";
                self.end_both(Ended::Broken(text.into()));
                replies.push(Message::Cancel(Code::Cancel, text.into()));
                self.final_sent.store(true, SeqCst);
                return Effect::Cancelled;
            }
        }
        Effect::None
    }

    /// The peer called the conversation off.
    pub fn on_cancel(&self, code: Code, text: String) {
        self.inbound.lock().cancelled = true;
        self.end_both(Ended::Cancelled { by_peer: true, code, text });
        self.cancelled.notify_all();
    }

    /// The connection ended: everything is over, and a handler waiting for
    /// a cancel learns it (nobody will read what it makes).
    pub fn on_connection_end(&self, error: ConnectionError) {
        self.inbound.lock().cancelled = true;
        self.end_both(Ended::Connection(error));
        self.cancelled.notify_all();
    }

    fn on_item(&self, item: Vec<u8>, replies: &mut Vec<Message>) {
        let len = item.len() as u64;
        let mut inbound = self.inbound.lock();
        if inbound.end.is_some() {
            // After a stop (or the end) the items in flight are dropped.
            return;
        }
        let Some(window) = inbound.window.as_mut() else {
            drop(inbound);
            let text = "an item for an end that takes none";
            self.end_both(Ended::Broken(text.into()));
            if self.claim_final() {
                replies.push(Message::Cancel(Code::CantReceive, text.into()));
            }
            return;
        };
        match window.arrive(len) {
            Arrival::Kept => inbound.items.push_back(item),
            Arrival::DropOldest => {
                inbound.items.push_back(item);
                let mut lost = 0u64;
                while inbound.window.as_ref().is_some_and(RecvWindow::over) {
                    let Some(oldest) = inbound.items.pop_front() else { break };
                    if let Some(window) = inbound.window.as_mut() {
                        window.dropped(oldest.len() as u64);
                    }
                    lost += 1;
                }
                let text = format!("{lost} item{} dropped: the receiver fell behind", if lost == 1 { "" } else { "s" });
                inbound.warnings.push(Warning { code: Code::DataLoss, text: text.clone() });
                replies.push(Message::Warn(Warning { code: Code::DataLoss, text }));
            }
            Arrival::Full => {
                let text = "the receiver fell behind: its buffer is full";
                inbound.end = Some(Ended::Stopped(Code::DataLoss, text.into()));
                drop(inbound);
                self.arrived.notify_all();
                replies.push(Message::Stop(Code::DataLoss, text.into()));
                return;
            }
            Arrival::OverCredit => {
                drop(inbound);
                let text = "items past the credit granted";
                self.end_both(Ended::Broken(text.into()));
                if self.claim_final() {
                    replies.push(Message::Cancel(Code::DataLoss, text.into()));
                }
                return;
            }
        }
        // Past the Block policy credit returns on arrival.
        let grant = inbound.window.as_mut().and_then(RecvWindow::grant);
        drop(inbound);
        self.arrived.notify_one();
        if let Some(grant) = grant {
            replies.push(Message::Credit(grant));
        }
    }

    /// No more items will arrive, for `why`.
    pub fn end_inbound(&self, why: Ended) {
        self.inbound.lock().end.get_or_insert(why);
        self.arrived.notify_all();
    }

    /// No more items may be sent, for `why`.
    pub fn end_outbound(&self, why: Ended) {
        self.outbound.lock().end.get_or_insert(why);
        self.credited.notify_all();
    }

    /// Both directions are over (a cancel, the connection's end). Items
    /// that arrived before are still taken.
    pub fn end_both(&self, why: Ended) {
        self.end_inbound(why.clone());
        self.end_outbound(why);
    }

    /// The next item, waiting until `deadline` (`None`: for as long as it
    /// takes). `Ok(None)` if none came in time.
    pub fn recv(&self, deadline: Option<Instant>) -> Result<Option<Vec<u8>>, Ended> {
        let mut flushed = false;
        let mut inbound = self.inbound.lock();
        loop {
            if let Some(item) = inbound.items.pop_front() {
                let open = inbound.end.is_none();
                let grant = inbound.window.as_mut().and_then(|window| {
                    window.taken(item.len() as u64);
                    // After the end, the sender needs no credit.
                    if open {
                        window.grant()
                    } else {
                        None
                    }
                });
                drop(inbound);
                if let Some(grant) = grant {
                    self.send_message(Message::Credit(grant), true);
                }
                return Ok(Some(item));
            }
            if let Some(end) = &inbound.end {
                return Err(end.clone());
            }
            if deadline.is_some_and(|deadline| deadline <= Instant::now()) {
                return Ok(None);
            }
            if !flushed {
                // What this end staged may be what the peer waits for.
                flushed = true;
                drop(inbound);
                self.flush();
                inbound = self.inbound.lock();
                continue;
            }
            match deadline {
                None => self.arrived.wait(&mut inbound),
                Some(deadline) => {
                    if self.arrived.wait_until(&mut inbound, deadline).timed_out() && inbound.items.is_empty() {
                        return match &inbound.end {
                            Some(end) => Err(end.clone()),
                            None => Ok(None),
                        };
                    }
                }
            }
        }
    }

    /// The warnings that arrived since the last look.
    pub fn take_warnings(&self) -> Vec<Warning> {
        std::mem::take(&mut self.inbound.lock().warnings)
    }

    /// Sends one item once there is credit for it, waiting until `deadline`
    /// (`None`: for as long as it takes). The item comes back if the time
    /// ran out.
    pub fn send_item(&self, item: Vec<u8>, deadline: Option<Instant>) -> Result<(), SendFailure> {
        let mut flushed = false;
        let mut outbound = self.outbound.lock();
        loop {
            if let Some(end) = &outbound.end {
                return Err(SendFailure::Ended(end.clone()));
            }
            match outbound.credit.take(item.len() as u64) {
                Ok(()) => {
                    outbound.sending += 1;
                    drop(outbound);
                    // Held back to leave with the items behind it: whoever
                    // waits next flushes, or the grace timer does.
                    let sent = self.send_message(Message::Item(item), false);
                    let mut outbound = self.outbound.lock();
                    outbound.sending -= 1;
                    if outbound.sending == 0 && outbound.end.is_some() {
                        self.credited.notify_all();
                    }
                    return if sent {
                        Ok(())
                    } else {
                        Err(SendFailure::Ended(Ended::Connection(self.send.ended_reason())))
                    };
                }
                Err(NoCredit::TooLarge { .. }) => return Err(SendFailure::TooLarge(item)),
                Err(NoCredit::Wait) => {}
            }
            if deadline.is_some_and(|deadline| deadline <= Instant::now()) {
                return Err(SendFailure::Timeout(item));
            }
            if !flushed {
                // The receiver grants credit for what it has taken: let it
                // have the items staged here.
                flushed = true;
                drop(outbound);
                self.flush();
                outbound = self.outbound.lock();
                continue;
            }
            match deadline {
                None => self.credited.wait(&mut outbound),
                Some(deadline) => {
                    // Looked at again at the top: credit may have come with
                    // the deadline.
                    let _ = self.credited.wait_until(&mut outbound, deadline);
                }
            }
        }
    }

    /// Ends the outbound direction for `why` and waits until no item that
    /// took its credit is still on its way: what this end sends next (its
    /// end, its reply, its cancel) goes after every item.
    fn close_outbound(&self, why: Ended) {
        let mut outbound = self.outbound.lock();
        outbound.end.get_or_insert(why);
        self.credited.notify_all();
        while outbound.sending > 0 {
            self.credited.wait(&mut outbound);
        }
    }

    /// This end's items are over: tells the peer, once.
    pub fn finish_sending(&self) {
        let mut outbound = self.outbound.lock();
        if outbound.end.is_some() || !outbound.sends {
            return;
        }
        drop(outbound);
        self.close_outbound(Ended::Finished);
        outbound = self.outbound.lock();
        // Still Finished: nothing ended it meanwhile.
        let ours = matches!(outbound.end, Some(Ended::Finished)) && !self.final_sent.load(SeqCst);
        outbound.sends = false;
        drop(outbound);
        if ours {
            self.send_message(Message::End, true);
        }
    }

    /// This end wants no more items: tells the peer, once.
    pub fn stop_receiving(&self, code: Code, text: &str) {
        let mut inbound = self.inbound.lock();
        if inbound.end.is_some() {
            return;
        }
        inbound.end = Some(Ended::Stopped(code, text.to_owned()));
        inbound.items.clear();
        drop(inbound);
        self.arrived.notify_all();
        if !self.final_sent.load(SeqCst) {
            self.send_message(Message::Stop(code, text.to_owned()), true);
        }
    }

    /// This end calls the conversation off: tells the peer, once, unless
    /// this end's final message has gone already. Returns whether it went.
    pub fn cancel(&self, code: Code, text: &str) -> bool {
        let why = Ended::Cancelled { by_peer: false, code, text: text.to_owned() };
        self.close_outbound(why.clone());
        self.end_both(why);
        // This end wants none of them now.
        self.inbound.lock().items.clear();
        if self.claim_final() {
            self.send_message(Message::Cancel(code, text.to_owned()), true);
            return true;
        }
        false
    }

    /// Ends both directions for the serving end's final reply, once every
    /// item on its way has reached the send path; whether the reply may go
    /// (this end has not cancelled).
    pub fn close_for_reply(&self) -> bool {
        self.close_outbound(Ended::Replied);
        self.end_both(Ended::Replied);
        self.claim_final()
    }

    /// The serving end's final reply: after every item it sent, and only if
    /// it has not cancelled. Returns whether it went.
    pub fn reply(&self, reply: Message) -> bool {
        self.close_for_reply() && self.send_message(reply, true)
    }

    /// Claims the right to send this end's final message: true the first
    /// time only.
    pub fn claim_final(&self) -> bool {
        !self.final_sent.swap(true, SeqCst)
    }

    /// Whether the peer called it off (or the connection ended).
    pub fn is_cancelled_by_peer(&self) -> bool {
        self.inbound.lock().cancelled
    }

    /// Waits until the peer calls it off (or the connection ends) or
    /// `deadline` passes (`None`: for
    /// as long as it takes); whether it did.
    pub fn wait_cancelled(&self, deadline: Option<Instant>) -> bool {
        let mut inbound = self.inbound.lock();
        while !inbound.cancelled {
            match deadline {
                None => self.cancelled.wait(&mut inbound),
                Some(deadline) => {
                    if self.cancelled.wait_until(&mut inbound, deadline).timed_out() {
                        break;
                    }
                }
            }
        }
        inbound.cancelled
    }
}

/// Why an item was not sent.
#[derive(Debug)]
pub(crate) enum SendFailure {
    /// This end may send no more.
    Ended(Ended),
    /// No credit in time; the item back.
    Timeout(Vec<u8>),
    /// Larger than the receiver's whole window; the item back.
    TooLarge(Vec<u8>),
}
