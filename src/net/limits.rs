//! The server's limits: how many connections at once, in total and from
//! one peer address, and why a connection over them is refused.

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;

use super::addr::Peer;

/// Why a server refused a connection. A peer with the extensions reads
/// this text as the server's quit reason; any peer sees the socket closed
/// within a second.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The server had [`max_connections`](super::ServerConfigBuilder::max_connections).
    TooManyConnections {
        /// The limit.
        limit: usize,
    },
    /// The peer's address had [`max_per_peer`](super::ServerConfigBuilder::max_per_peer).
    TooManyFromPeer {
        /// The limit.
        limit: usize,
    },
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::TooManyConnections { limit } => {
                write!(f, "too many connections: the server takes {limit} at once")
            }
            Refusal::TooManyFromPeer { limit } => {
                write!(f, "too many connections from your address: the server takes {limit} at once from one")
            }
        }
    }
}

/// What the per-peer limit counts by: a TCP peer's IP address; every
/// Unix-socket or in-process peer of one listener is one peer.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum PeerKey {
    Ip(IpAddr),
    Local(usize),
}

impl PeerKey {
    pub fn of(peer: &Peer, listener: usize) -> PeerKey {
        match peer.ip() {
            Some(ip) => PeerKey::Ip(ip),
            None => PeerKey::Local(listener),
        }
    }
}

/// The connections counted against the limits.
#[derive(Debug, Default)]
pub(crate) struct Counts {
    total: usize,
    per_peer: HashMap<PeerKey, usize>,
}

impl Counts {
    /// Counts one more connection from `key`, unless that goes over a limit.
    pub fn admit(&mut self, key: &PeerKey, total: Option<usize>, per_peer: Option<usize>) -> Result<(), Refusal> {
        if let Some(limit) = total {
            if self.total >= limit {
                return Err(Refusal::TooManyConnections { limit });
            }
        }
        let from_peer = self.per_peer.get(key).copied().unwrap_or(0);
        if let Some(limit) = per_peer {
            if from_peer >= limit {
                return Err(Refusal::TooManyFromPeer { limit });
            }
        }
        self.total += 1;
        self.per_peer.insert(key.clone(), from_peer + 1);
        Ok(())
    }

    /// Counts one connection from `key` less.
    pub fn release(&mut self, key: &PeerKey) {
        self.total = self.total.saturating_sub(1);
        if let Some(count) = self.per_peer.get_mut(key) {
            *count -= 1;
            if *count == 0 {
                self.per_peer.remove(key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_limits_hold_and_a_release_makes_room() {
        let mut counts = Counts::default();
        let a = PeerKey::Ip("10.0.0.1".parse().unwrap());
        let b = PeerKey::Local(0);
        assert!(counts.admit(&a, Some(3), Some(2)).is_ok());
        assert!(counts.admit(&a, Some(3), Some(2)).is_ok());
        assert_eq!(counts.admit(&a, Some(3), Some(2)), Err(Refusal::TooManyFromPeer { limit: 2 }));
        assert!(counts.admit(&b, Some(3), Some(2)).is_ok());
        assert_eq!(counts.admit(&b, Some(3), Some(2)), Err(Refusal::TooManyConnections { limit: 3 }));
        counts.release(&a);
        assert!(counts.admit(&a, Some(3), Some(2)).is_ok());
        assert!(counts.per_peer.len() == 2 && counts.total == 3);
    }
}
