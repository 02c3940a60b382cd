//! One connection's agreement on extensions, as a state machine with no I/O:
//! the connection feeds it what arrives and sends what it returns.
//!
//! ```text
//!            start (extensions on)          answer ok, a hello
//!   Off      Probing ───────────────────────────────────────▶ Agreed(both)
//!             │   │  the peer's own probe, a hello ─────────▶ Agreed(both)
//!             │   └─ answer failed (a plain peer) ──────────▶ Plain(Refused)
//!             └───── answer not a hello ────────────────────▶ Plain(Garbled)
//!                    connection ended first ────────────────▶ Plain(Ended)
//! ```
//!
//! `Off` never leaves: a connection with extensions off neither probes nor
//! answers probes (it refuses them as cs.packetstream does), so it behaves
//! exactly as a plain peer.

use std::fmt;

use super::hello::{Hello, HelloError, Offer, VERSION};
use super::{Feature, Features};

/// Where a connection's negotiation stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    /// Extensions are off on this end.
    Off,
    /// The probe is out; no answer yet. Only plain packets are sent.
    Probing,
    /// Both ends have extensions; these are the features both have (maybe
    /// none).
    Agreed(Features),
    /// The peer has no extensions, or the agreement failed: plain mode for
    /// the rest of the connection.
    Plain(PlainReason),
}

/// Why a connection with extensions on runs in plain mode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlainReason {
    /// The peer refused the probe (a plain cs.packetstream peer, or a
    /// `packetstream` peer with extensions off); its text.
    Refused(String),
    /// The peer answered the probe ok, but not with a hello.
    Garbled(HelloError),
    /// The connection ended before an answer came.
    Ended,
}

impl fmt::Display for PlainReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PlainReason::Refused(text) => write!(f, "the peer refused the probe: {text}"),
            PlainReason::Garbled(error) => write!(f, "the peer's answer to the probe is not a hello: {error}"),
            PlainReason::Ended => write!(f, "the connection ended before the peer answered the probe"),
        }
    }
}

/// The negotiation of one connection.
#[derive(Debug, Clone)]
pub struct Negotiation {
    ours: Features,
    state: State,
}

/// What to answer a peer's probe with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProbeAnswer {
    /// Ok, with this payload (our hello).
    Hello(Vec<u8>),
    /// Failed, with this text.
    Refuse(String),
}

impl Negotiation {
    /// A negotiation offering `ours`; with no feature it is [`State::Off`].
    pub fn new(ours: Features) -> Negotiation {
        let state = if ours.is_empty() { State::Off } else { State::Probing };
        Negotiation { ours, state }
    }

    /// What this end offers.
    pub fn ours(&self) -> Features {
        self.ours
    }

    /// Where it stands.
    pub fn state(&self) -> &State {
        &self.state
    }

    /// Whether it will not change any more.
    pub fn is_settled(&self) -> bool {
        !matches!(self.state, State::Probing)
    }

    /// Whether both ends agreed on `feature`.
    pub fn agreed(&self, feature: Feature) -> bool {
        matches!(self.state, State::Agreed(both) if both.contains(feature))
    }

    /// The payload of the probe to send, unless extensions are off.
    pub fn probe(&self) -> Option<Vec<u8>> {
        (self.state != State::Off).then(|| hello_of(self.ours).encode())
    }

    /// The peer answered our probe: `ok` and its payload.
    pub fn on_answer(&mut self, ok: bool, payload: &[u8]) -> &State {
        if self.state == State::Probing {
            self.state = if ok {
                match Hello::decode(payload) {
                    Ok(hello) => State::Agreed(self.ours.intersection(offered(&hello))),
                    Err(error) => State::Plain(PlainReason::Garbled(error)),
                }
            } else {
                State::Plain(PlainReason::Refused(String::from_utf8_lossy(payload).into_owned()))
            };
        }
        &self.state
    }

    /// The peer probed us with `payload`: what to answer. A peer's probe also
    /// tells us what it has, so it settles a negotiation still probing.
    pub fn on_probe(&mut self, payload: &[u8]) -> ProbeAnswer {
        if self.state == State::Off {
            return ProbeAnswer::Refuse("extensions are off".to_owned());
        }
        match Hello::decode(payload) {
            Ok(hello) => {
                if self.state == State::Probing {
                    self.state = State::Agreed(self.ours.intersection(offered(&hello)));
                }
                ProbeAnswer::Hello(hello_of(self.ours).encode())
            }
            Err(error) => ProbeAnswer::Refuse(format!("bad hello: {error}")),
        }
    }

    /// The connection ended: a negotiation still probing ends in plain mode.
    pub fn on_end(&mut self) {
        if self.state == State::Probing {
            self.state = State::Plain(PlainReason::Ended);
        }
    }
}

fn hello_of(features: Features) -> Hello {
    Hello {
        version: VERSION,
        offers: features.iter().map(|f| Offer { name: f.name().to_owned(), version: f.version() }).collect(),
    }
}

/// The features of a hello that this crate knows, at any version: a newer
/// peer speaks the older versions too, and an older one offers only what it
/// has.
fn offered(hello: &Hello) -> Features {
    hello.offers.iter().filter(|offer| offer.version >= 1).filter_map(|offer| Feature::from_name(&offer.name)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quit() -> Features {
        Features::NONE.with(Feature::Quit)
    }

    #[test]
    fn two_ends_with_extensions_agree_on_what_both_have() {
        let mut a = Negotiation::new(quit());
        let mut b = Negotiation::new(quit());
        let probe = a.probe().unwrap();
        let ProbeAnswer::Hello(answer) = b.on_probe(&probe) else { panic!("b refused") };
        assert_eq!(b.state(), &State::Agreed(quit()));
        assert_eq!(a.on_answer(true, &answer), &State::Agreed(quit()));
        assert!(a.agreed(Feature::Quit) && b.agreed(Feature::Quit));
    }

    #[test]
    fn an_end_with_extensions_off_refuses_and_the_other_goes_plain() {
        let mut off = Negotiation::new(Features::NONE);
        assert_eq!(off.state(), &State::Off);
        assert_eq!(off.probe(), None);
        let mut on = Negotiation::new(quit());
        let ProbeAnswer::Refuse(text) = off.on_probe(&on.probe().unwrap()) else { panic!("off answered") };
        assert_eq!(off.state(), &State::Off);
        assert_eq!(on.on_answer(false, text.as_bytes()), &State::Plain(PlainReason::Refused(text)));
        assert!(!on.agreed(Feature::Quit));
    }

    #[test]
    fn a_plain_peers_refusal_means_plain_mode() {
        let mut on = Negotiation::new(quit());
        let state = on.on_answer(false, b"unknown channel %d").clone();
        assert_eq!(state, State::Plain(PlainReason::Refused("unknown channel %d".into())));
        assert!(on.is_settled());
    }

    #[test]
    fn garbage_in_an_ok_answer_means_plain_mode_with_the_reason() {
        let mut on = Negotiation::new(quit());
        assert_eq!(on.on_answer(true, b"hi"), &State::Plain(PlainReason::Garbled(HelloError::NoMagic)));
    }

    #[test]
    fn unknown_and_versionless_offers_are_ignored() {
        let mut on = Negotiation::new(quit());
        let hello = Hello {
            version: 1,
            offers: vec![Offer { name: "teleport".into(), version: 9 }, Offer { name: "quit".into(), version: 0 }],
        };
        assert_eq!(on.on_answer(true, &hello.encode()), &State::Agreed(Features::NONE));
    }

    #[test]
    fn the_first_settlement_stands() {
        let mut on = Negotiation::new(quit());
        on.on_answer(false, b"no");
        let late = Negotiation::new(quit()).probe().unwrap();
        // A late probe from the peer is still answered, but changes nothing.
        assert!(matches!(on.on_probe(&late), ProbeAnswer::Hello(_)));
        assert!(matches!(on.state(), State::Plain(PlainReason::Refused(_))));
        on.on_end();
        assert!(matches!(on.state(), State::Plain(PlainReason::Refused(_))));
    }

    #[test]
    fn an_end_while_probing_is_plain_mode() {
        let mut on = Negotiation::new(quit());
        on.on_end();
        assert_eq!(on.state(), &State::Plain(PlainReason::Ended));
    }

    #[test]
    fn a_bad_probe_is_refused_with_the_reason() {
        let mut on = Negotiation::new(quit());
        assert_eq!(on.on_probe(b"PSX\x00"), ProbeAnswer::Refuse("bad hello: hello version 0".into()));
        assert_eq!(on.state(), &State::Probing);
    }
}
