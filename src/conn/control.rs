//! The connection's end of the extension mechanism: it sends the probe,
//! feeds the answer (or the peer's own probe) to the
//! [negotiation](crate::ext::negotiation), serves the control channel, and
//! keeps the peer's quit reason. The bytes and the state machine are in
//! [`ext`](crate::ext); this is where they meet the tag map and the send
//! path.

use std::sync::Arc;
use std::time::Instant;

use parking_lot::{Condvar, Mutex};

use super::calls::{Calls, Conversation, Delivered, Entry};
use super::error::ConnectionError;
use crate::ext::negotiation::{Negotiation, ProbeAnswer, State};
use crate::ext::notice::Notice;
use crate::ext::service::Services;
use crate::ext::{self, quit, rq_type, Feature, Features};
use crate::wire::Packet;

pub(crate) struct Control {
    name: Arc<str>,
    negotiation: Mutex<Negotiation>,
    /// The services of the layers above, by request type.
    services: Services,
    /// Signalled when the negotiation settles.
    settled: Condvar,
    /// What the peer said when it quit.
    peer_quit: Mutex<Option<Arc<str>>>,
}

/// The entry that waits for the probe's answer.
struct ProbeAnswered(Arc<Control>);

impl Conversation for ProbeAnswered {
    fn deliver(&self, packet: Packet, _replies: &mut Vec<Packet>) -> Delivered {
        let ok = packet.ok() == Some(true);
        self.0.settle(|negotiation| {
            negotiation.on_answer(ok, packet.payload());
        });
        Delivered::Last
    }

    fn fail(&self, _error: ConnectionError) {
        self.0.on_end();
    }
}

/// The entry of a control request whose answer nobody needs.
struct Discard;

impl Conversation for Discard {
    fn deliver(&self, _packet: Packet, _replies: &mut Vec<Packet>) -> Delivered {
        Delivered::Last
    }

    fn fail(&self, _error: ConnectionError) {}
}

impl Control {
    /// With extensions `on`, offering the basic features and those of
    /// `services`; off, offering nothing.
    pub fn new(name: Arc<str>, on: bool, services: Services) -> Self {
        let features = if on { Features::basic().union(services.features()) } else { Features::NONE };
        Control {
            name,
            negotiation: Mutex::new(Negotiation::new(features)),
            services,
            settled: Condvar::new(),
            peer_quit: Mutex::new(None),
        }
    }

    /// Whether extensions are on at this end.
    pub fn is_on(&self) -> bool {
        *self.negotiation.lock().state() != State::Off
    }

    /// Registers the probe on the control channel and returns it to send,
    /// unless extensions are off.
    pub fn probe(self: &Arc<Self>, calls: &Calls) -> Option<Packet> {
        let payload = self.negotiation.lock().probe()?;
        let entry = Entry::Conversation(Arc::new(ProbeAnswered(Arc::clone(self))));
        let (tag, _) = calls.register(ext::CONTROL_CHANNEL, entry).ok()?;
        log::debug!("{}: probing the peer for extensions", self.name);
        Some(Packet::request_unchecked(ext::CONTROL_CHANNEL, tag, rq_type::HELLO, 0, payload))
    }

    /// The answer to a request the peer made on the control channel.
    pub fn serve(&self, packet: &Packet) -> Packet {
        let (channel, tag) = (packet.channel(), packet.tag());
        let refuse = |text: String| Packet::response_unchecked(channel, tag, false, 0, text.into_bytes());
        match packet.rq_type() {
            Some(rq_type::HELLO) => {
                let mut answer = None;
                self.settle(|negotiation| answer = Some(negotiation.on_probe(packet.payload())));
                match answer.expect("settle runs its closure") {
                    ProbeAnswer::Hello(hello) => Packet::response_unchecked(channel, tag, true, 0, hello),
                    ProbeAnswer::Refuse(text) => refuse(text),
                }
            }
            Some(rq_type::QUIT) => {
                let reason: Arc<str> = quit::decode(packet.payload()).into();
                log::debug!("{}: the peer is quitting: {reason}", self.name);
                *self.peer_quit.lock() = Some(reason);
                Packet::response_unchecked(channel, tag, true, 0, Vec::new())
            }
            Some(rq_type::PING) => Packet::response_unchecked(channel, tag, true, 0, Vec::new()),
            Some(other) => match self.services.get(other) {
                Some(service) if self.agreed(service.feature()) => match service.serve(packet.payload()) {
                    Ok(answer) => Packet::response_unchecked(channel, tag, true, 0, answer),
                    Err(text) => refuse(text),
                },
                Some(service) => refuse(format!("feature {} was not agreed", service.feature())),
                None => refuse(format!("unknown control request {other}")),
            },
            None => refuse("unknown control request".to_owned()),
        }
    }

    /// The connection ended: a negotiation still probing ends in plain mode.
    pub fn on_end(&self) {
        self.settle(Negotiation::on_end);
    }

    fn settle(&self, change: impl FnOnce(&mut Negotiation)) {
        let mut negotiation = self.negotiation.lock();
        let was_settled = negotiation.is_settled();
        change(&mut negotiation);
        if !was_settled && negotiation.is_settled() {
            log::debug!("{}: extensions: {:?}", self.name, negotiation.state());
            self.settled.notify_all();
        }
    }

    /// Where the negotiation stands.
    pub fn state(&self) -> State {
        self.negotiation.lock().state().clone()
    }

    /// Waits until the negotiation settles or `deadline` passes (`None`:
    /// for as long as it takes); where it stands then.
    pub fn wait_settled(&self, deadline: Option<Instant>) -> State {
        let mut negotiation = self.negotiation.lock();
        while !negotiation.is_settled() {
            match deadline {
                Some(deadline) => {
                    if self.settled.wait_until(&mut negotiation, deadline).timed_out() {
                        break;
                    }
                }
                None => self.settled.wait(&mut negotiation),
            }
        }
        negotiation.state().clone()
    }

    /// Whether both ends agreed on `feature`.
    pub fn agreed(&self, feature: Feature) -> bool {
        self.negotiation.lock().agreed(feature)
    }

    /// What the peer said when it quit, if it did.
    pub fn peer_quit_reason(&self) -> Option<Arc<str>> {
        self.peer_quit.lock().clone()
    }

    /// A ping, registered so that its answer (whatever it is: a plain peer
    /// refuses it) is dropped quietly; only its arriving matters.
    pub fn ping(&self, calls: &Calls) -> Option<Packet> {
        let tag = calls.register_at_close(ext::CONTROL_CHANNEL, Entry::Conversation(Arc::new(Discard)))?;
        Some(Packet::request_unchecked(ext::CONTROL_CHANNEL, tag, rq_type::PING, 0, Vec::new()))
    }

    /// The packet of a notice (never answered: no entry waits on its tag).
    pub fn notice(&self, calls: &Calls, notice: &Notice) -> Option<Packet> {
        let tag = calls.allocate(ext::CONTROL_CHANNEL)?;
        Some(Packet::request_unchecked(ext::CONTROL_CHANNEL, tag, notice.rq_type(), 0, notice.encode()))
    }

    /// The quit request carrying `reason`, registered (although close
    /// refuses new requests by now) so that its answer is dropped quietly;
    /// `None` unless both ends agreed on quitting with a reason.
    pub fn quit(&self, calls: &Calls, reason: &str) -> Option<Packet> {
        if !self.agreed(Feature::Quit) {
            return None;
        }
        let tag = calls.register_at_close(ext::CONTROL_CHANNEL, Entry::Conversation(Arc::new(Discard)))?;
        Some(Packet::request_unchecked(ext::CONTROL_CHANNEL, tag, rq_type::QUIT, 0, quit::encode(reason)))
    }
}
