//! How two registries agree: each end's role, the numbering that results,
//! or the mismatch that prevents one. Pure: a function of the two
//! registries and the two roles, so both ends reach the same conclusion.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use super::registry::Registry;

/// What an end does when its numbers differ from the peer's (packetmq's
/// `adaptPacketIds`): usually a server keeps its numbers and a client adapts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// Keeps its numbers: the peer must have the same, or adapt.
    Keep,
    /// Maps its numbers to the peer's, by name.
    Adapt,
}

impl Role {
    /// The role's value in the handshake's bytes.
    pub(crate) fn code(self) -> u64 {
        match self {
            Role::Keep => 0,
            Role::Adapt => 1,
        }
    }

    pub(crate) fn from_code(code: u64) -> Option<Role> {
        match code {
            0 => Some(Role::Keep),
            1 => Some(Role::Adapt),
            _ => None,
        }
    }
}

/// Which numbers travel, once a connection knows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Numbering {
    /// No handshake happened (the peer has no registry, such as a plain
    /// cs.packetstream peer): every number travels as it is. Why.
    AsIs(String),
    /// Both registries have the same request types under the same numbers.
    Same,
    /// This end adapts: its numbers are mapped to the peer's by name.
    Adapted(Mapping),
    /// The peer adapts to this end's numbers, which travel as they are.
    PeerAdapts,
}

impl Numbering {
    /// The number to send for this end's request type `ours`: `None` when
    /// it is mapped and not in the registry.
    pub fn to_peer(&self, ours: u64) -> Option<u64> {
        match self {
            Numbering::Adapted(mapping) => mapping.to_peer(ours),
            _ => Some(ours),
        }
    }

    /// This end's request type for the peer's number `theirs`: `None` when
    /// it is mapped and not in the peer's registry.
    pub fn from_peer(&self, theirs: u64) -> Option<u64> {
        match self {
            Numbering::Adapted(mapping) => mapping.from_peer(theirs),
            _ => Some(theirs),
        }
    }
}

/// This end's numbers and the peer's, for the same names.
#[derive(Clone, PartialEq, Eq)]
pub struct Mapping(Arc<Maps>);

#[derive(PartialEq, Eq)]
struct Maps {
    to_peer: BTreeMap<u64, u64>,
    from_peer: BTreeMap<u64, u64>,
}

impl Mapping {
    /// The peer's number for this end's `ours`.
    pub fn to_peer(&self, ours: u64) -> Option<u64> {
        self.0.to_peer.get(&ours).copied()
    }

    /// This end's number for the peer's `theirs`.
    pub fn from_peer(&self, theirs: u64) -> Option<u64> {
        self.0.from_peer.get(&theirs).copied()
    }

    /// `(ours, theirs)` for every request type, by this end's number.
    pub fn iter(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.0.to_peer.iter().map(|(&ours, &theirs)| (ours, theirs))
    }
}

impl fmt::Debug for Mapping {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

/// Why two registries do not agree: request types one end has and the other
/// lacks, or numbers that differ when no end adapts (or both would).
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mismatch {
    /// Names only this end has.
    pub only_here: Vec<String>,
    /// Names only the peer has.
    pub only_there: Vec<String>,
    /// `(name, ours, theirs)` for the names numbered differently, when the
    /// roles do not allow adapting (empty when they do).
    pub renumbered: Vec<(String, u64, u64)>,
    /// This end's role and the peer's.
    pub roles: (Role, Role),
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the request registries differ:")?;
        let mut first = true;
        let mut part = |f: &mut fmt::Formatter<'_>, text: String| {
            let separator = if first { " " } else { "; " };
            first = false;
            write!(f, "{separator}{text}")
        };
        if !self.only_here.is_empty() {
            part(f, format!("only here: {}", self.only_here.join(", ")))?;
        }
        if !self.only_there.is_empty() {
            part(f, format!("only at the peer: {}", self.only_there.join(", ")))?;
        }
        if !self.renumbered.is_empty() {
            let roles = match self.roles {
                (Role::Adapt, Role::Adapt) => "both ends adapt",
                _ => "neither end adapts",
            };
            let list: Vec<String> = self
                .renumbered
                .iter()
                .map(|(name, ours, theirs)| format!("{name} is {ours} here and {theirs} at the peer"))
                .collect();
            part(f, format!("{} ({roles})", list.join(", ")))?;
        }
        Ok(())
    }
}

impl std::error::Error for Mismatch {}

/// What the two registries give: this end's numbering, or why none.
///
/// The names must be the same at both ends. Numbers that differ are mapped
/// by the end that adapts, when exactly one does.
///
/// # Errors
/// [`Mismatch`], naming the request types, when the names differ or the
/// numbers differ and the roles do not say who adapts.
pub fn compare(ours: &Registry, our_role: Role, theirs: &Registry, their_role: Role) -> Result<Numbering, Mismatch> {
    let only = |a: &Registry, b: &Registry| -> Vec<String> {
        let mut names: Vec<String> =
            a.iter().filter(|(_, name)| b.number(name).is_none()).map(|(_, n)| n.into()).collect();
        names.sort();
        names
    };
    let (only_here, only_there) = (only(ours, theirs), only(theirs, ours));
    let mut renumbered: Vec<(String, u64, u64)> = ours
        .iter()
        .filter_map(|(number, name)| {
            let theirs = theirs.number(name)?;
            (theirs != number).then(|| (name.to_owned(), number, theirs))
        })
        .collect();
    renumbered.sort();
    let roles = (our_role, their_role);
    let adapting = matches!(roles, (Role::Adapt, Role::Keep) | (Role::Keep, Role::Adapt));
    if !only_here.is_empty() || !only_there.is_empty() || (!renumbered.is_empty() && !adapting) {
        if adapting {
            renumbered.clear();
        }
        return Err(Mismatch { only_here, only_there, renumbered, roles });
    }
    Ok(match (renumbered.is_empty(), our_role) {
        (true, _) => Numbering::Same,
        (false, Role::Keep) => Numbering::PeerAdapts,
        (false, Role::Adapt) => {
            let to_peer: BTreeMap<u64, u64> =
                ours.iter().filter_map(|(number, name)| Some((number, theirs.number(name)?))).collect();
            let from_peer = to_peer.iter().map(|(&ours, &theirs)| (theirs, ours)).collect();
            Numbering::Adapted(Mapping(Arc::new(Maps { to_peer, from_peer })))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registry(entries: &[(&str, u64)]) -> Registry {
        let mut registry = Registry::new();
        for &(name, number) in entries {
            registry.register(name, number).unwrap();
        }
        registry
    }

    #[test]
    fn same_numbers_agree_whatever_the_roles() {
        let a = registry(&[("kv:put", 0), ("kv:get", 1)]);
        for roles in [(Role::Keep, Role::Keep), (Role::Adapt, Role::Adapt), (Role::Adapt, Role::Keep)] {
            assert_eq!(compare(&a, roles.0, &a.clone(), roles.1), Ok(Numbering::Same));
        }
    }

    #[test]
    fn the_adapting_end_maps_by_name_and_the_other_keeps() {
        let client = registry(&[("kv:put", 0), ("kv:get", 1), ("kv:list", 2)]);
        let server = registry(&[("kv:put", 10), ("kv:get", 0), ("kv:list", 2)]);
        let Ok(Numbering::Adapted(mapping)) = compare(&client, Role::Adapt, &server, Role::Keep) else {
            panic!("the client adapts")
        };
        assert_eq!(mapping.iter().collect::<Vec<_>>(), [(0, 10), (1, 0), (2, 2)]);
        assert_eq!(mapping.from_peer(10), Some(0));
        assert_eq!(mapping.from_peer(1), None);
        assert_eq!(compare(&server, Role::Keep, &client, Role::Adapt), Ok(Numbering::PeerAdapts));
        let numbering = Numbering::Adapted(mapping);
        assert_eq!((numbering.to_peer(1), numbering.to_peer(9)), (Some(0), None));
        assert_eq!(Numbering::PeerAdapts.to_peer(9), Some(9));
    }

    #[test]
    fn a_mismatch_names_the_types() {
        let a = registry(&[("kv:put", 0), ("kv:get", 1), ("kv:scan", 2)]);
        let b = registry(&[("kv:put", 1), ("kv:get", 0), ("kv:list", 2), ("kv:drop", 3)]);
        let mismatch = compare(&a, Role::Adapt, &b, Role::Keep).unwrap_err();
        assert_eq!(mismatch.only_here, ["kv:scan"]);
        assert_eq!(mismatch.only_there, ["kv:drop", "kv:list"]);
        assert!(mismatch.renumbered.is_empty(), "the client would adapt the numbers");
        assert_eq!(
            mismatch.to_string(),
            "the request registries differ: only here: kv:scan; only at the peer: kv:drop, kv:list"
        );
        let c = registry(&[("kv:put", 1), ("kv:get", 0)]);
        let d = registry(&[("kv:put", 0), ("kv:get", 1)]);
        let mismatch = compare(&c, Role::Keep, &d, Role::Keep).unwrap_err();
        assert_eq!(
            mismatch.to_string(),
            "the request registries differ: kv:get is 0 here and 1 at the peer, kv:put is 1 here and 0 at the \
             peer (neither end adapts)"
        );
        let both = compare(&c, Role::Adapt, &d, Role::Adapt).unwrap_err();
        assert!(both.to_string().ends_with("(both ends adapt)"), "{both}");
    }

    #[test]
    fn both_ends_reach_the_same_conclusion() {
        let a = registry(&[("x:a", 0), ("x:b", 1)]);
        let b = registry(&[("x:a", 1), ("x:b", 0)]);
        for ra in [Role::Keep, Role::Adapt] {
            for rb in [Role::Keep, Role::Adapt] {
                assert_eq!(compare(&a, ra, &b, rb).is_ok(), compare(&b, rb, &a, ra).is_ok(), "{ra:?} {rb:?}");
            }
        }
    }
}
