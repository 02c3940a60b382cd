//! Protocol extensions beyond cs.packetstream, and the one way both ends
//! agree on them: pure values and functions, no I/O, no threads.
//!
//! A connection with extensions on sends one *probe* (a request on the
//! reserved [`CONTROL_CHANNEL`]) listing the features it has. A plain
//! cs.packetstream peer serves only channel 0, so it refuses the probe with
//! `unknown channel ...` without calling its handler, and both ends carry on
//! in plain mode. A `packetstream` peer with extensions on answers with the
//! features it has; each end then uses only those both have. Extension
//! packets travel on reserved channels only, never on channel 0, so channel
//! 0 stays byte-identical to cs.packetstream's. `docs/protocol.md` in the
//! repository has the bytes.
//!
//! - [`hello`]: the probe's payload, which lists features.
//! - [`negotiation`]: the state machine of one connection's agreement.
//! - [`quit`]: the reason a closing end may give.
//! - [`notice`]: the control requests never answered (a cancel, a budget).
//! - [`service`]: how a layer above the connection serves a feature of its
//!   own on the control channel.

pub mod hello;
pub mod negotiation;
pub mod notice;
pub mod quit;
pub mod service;

use std::fmt;

/// The channel of the extension mechanism's own requests: the probe, and the
/// control requests of the features agreed. The first of the reserved block.
pub const CONTROL_CHANNEL: u64 = RESERVED_CHANNELS.0;

/// The block of channels reserved for extensions, inclusive. The largest
/// that still encodes in three bytes, so that extension packets stay small.
/// A `packetstream` connection never hands a request on these channels to
/// the application's handler.
pub const RESERVED_CHANNELS: (u64, u64) = (0x1f_ff00, 0x1f_ffff);

/// Whether `channel` belongs to the extensions.
pub fn is_reserved(channel: u64) -> bool {
    (RESERVED_CHANNELS.0..=RESERVED_CHANNELS.1).contains(&channel)
}

/// The request types of the control channel (application values, as
/// [`Packet::rq_type`](crate::wire::Packet::rq_type) reports them).
pub mod rq_type {
    /// The probe: its payload is a [`Hello`](super::hello::Hello); a peer
    /// with extensions answers ok with its own.
    pub const HELLO: u64 = 0;
    /// The sender is closing and says why: the payload is UTF-8 text (see
    /// [`quit`](super::quit)). Sent only when both ends agreed on
    /// [`Feature::Quit`](super::Feature::Quit).
    pub const QUIT: u64 = 1;
    /// Are you there? Answered ok with an empty payload. A keepalive sends
    /// it whether or not the peer has extensions: a plain peer refuses it,
    /// and a refusal is an answer too.
    pub const PING: u64 = 2;
    /// The request registry's handshake (see
    /// [`Feature::Registry`](super::Feature::Registry)); served by the layer
    /// that owns the registry.
    pub const REGISTRY: u64 = 3;
    /// A notice: the sender gave one of its requests up (see
    /// [`notice`](super::notice)). Never answered.
    pub const CANCEL: u64 = 4;
    /// A notice: the time budget of the sender's next request (see
    /// [`notice`](super::notice)). Never answered.
    pub const BUDGET: u64 = 5;
}

/// A feature one end may have. The name is what travels in a hello; a
/// name an end does not know is ignored there, so new features need no new
/// version of the mechanism.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Feature {
    /// Quit with a reason: a closing end tells the other why.
    Quit,
    /// The request registry's handshake: the two ends compare their
    /// registries of request types by name. Offered only by a connection
    /// whose configuration has a registry service.
    Registry,
    /// Streams inside a request: the stream messages on their reserved
    /// channels (see [`stream`](crate::stream)).
    Stream,
    /// Notices: a caller that gives up a request tells the serving end, and
    /// a request may carry its caller's time budget (see [`notice`]).
    Cancel,
}

impl Feature {
    /// Every feature this version of the crate has, in a fixed order.
    pub const ALL: [Feature; 4] = [Feature::Quit, Feature::Registry, Feature::Stream, Feature::Cancel];

    /// The name that travels in a hello.
    pub fn name(self) -> &'static str {
        match self {
            Feature::Quit => "quit",
            Feature::Registry => "registry",
            Feature::Stream => "stream",
            Feature::Cancel => "cancel",
        }
    }

    /// The newest version of the feature this crate speaks.
    pub fn version(self) -> u64 {
        match self {
            Feature::Quit | Feature::Registry | Feature::Stream | Feature::Cancel => 1,
        }
    }

    /// The feature called `name`, if this crate has it.
    pub fn from_name(name: &str) -> Option<Feature> {
        Feature::ALL.into_iter().find(|feature| feature.name() == name)
    }

    fn bit(self) -> u32 {
        1 << (self as u32)
    }
}

impl fmt::Display for Feature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A set of [`Feature`]s.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Features(u32);

impl Features {
    /// No feature.
    pub const NONE: Features = Features(0);

    /// Every feature this crate has.
    pub fn all() -> Features {
        Feature::ALL.into_iter().collect()
    }

    /// The features every connection with extensions on offers; the others
    /// come with the services of its configuration.
    pub fn basic() -> Features {
        Features::NONE.with(Feature::Quit).with(Feature::Stream).with(Feature::Cancel)
    }

    /// Whether `feature` is in the set.
    pub fn contains(self, feature: Feature) -> bool {
        self.0 & feature.bit() != 0
    }

    /// The set with `feature` added.
    #[must_use]
    pub fn with(self, feature: Feature) -> Features {
        Features(self.0 | feature.bit())
    }

    /// The features in both sets.
    #[must_use]
    pub fn intersection(self, other: Features) -> Features {
        Features(self.0 & other.0)
    }

    /// The features in either set.
    #[must_use]
    pub fn union(self, other: Features) -> Features {
        Features(self.0 | other.0)
    }

    /// Whether the set is empty.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The features in the set, in [`Feature::ALL`]'s order.
    pub fn iter(self) -> impl Iterator<Item = Feature> {
        Feature::ALL.into_iter().filter(move |feature| self.contains(*feature))
    }
}

impl FromIterator<Feature> for Features {
    fn from_iter<I: IntoIterator<Item = Feature>>(iter: I) -> Self {
        iter.into_iter().fold(Features::NONE, Features::with)
    }
}

impl fmt::Debug for Features {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

impl fmt::Display for Features {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_empty() {
            return f.write_str("none");
        }
        for (i, feature) in self.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            f.write_str(feature.name())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reserved_block_is_three_varint_bytes_and_excludes_channel_0() {
        for channel in [RESERVED_CHANNELS.0, RESERVED_CHANNELS.1] {
            assert_eq!(crate::wire::varint_len(channel), 3);
        }
        assert!(is_reserved(CONTROL_CHANNEL));
        assert!(!is_reserved(0));
        assert!(!is_reserved(RESERVED_CHANNELS.0 - 1));
        assert!(!is_reserved(RESERVED_CHANNELS.1 + 1));
    }

    #[test]
    fn features_by_name_and_as_sets() {
        for feature in Feature::ALL {
            assert_eq!(Feature::from_name(feature.name()), Some(feature));
        }
        assert_eq!(Feature::from_name("no such feature"), None);
        let quit = Features::NONE.with(Feature::Quit);
        assert_eq!(quit.with(Feature::Stream).with(Feature::Cancel), Features::basic());
        assert!(!Features::basic().contains(Feature::Registry), "the registry comes with its service");
        assert!(quit.contains(Feature::Quit));
        assert!(!quit.contains(Feature::Registry));
        assert!(quit.intersection(Features::NONE).is_empty());
        assert_eq!(quit.intersection(Features::all()), quit);
        assert_eq!(quit.to_string(), "quit");
        assert_eq!(Features::basic().to_string(), "quit, stream, cancel");
        assert_eq!(Features::NONE.to_string(), "none");
    }
}
