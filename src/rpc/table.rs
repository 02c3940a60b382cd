//! The serving side's lookup, shared by the dispatcher and the pulled
//! requests' router: the entry of each request type by its number, the
//! peer's numbers translated when a handshake adapted them, and the text of
//! each refusal.

use std::collections::BTreeMap;

use super::handshake::Handshake;
use super::request::TypedRequest;
use crate::binary::{DecodeError, EncodeError};

/// Entries by this end's request type number.
pub(crate) struct Table<E> {
    entries: BTreeMap<u64, (&'static str, E)>,
    handshake: Option<Handshake>,
}

impl<E> Table<E> {
    pub fn new() -> Self {
        Table { entries: BTreeMap::new(), handshake: None }
    }

    /// Adds the entry of `R`.
    ///
    /// # Panics
    /// When a request type of the same number has an entry already: a
    /// program that lists one twice has a bug to fix, not an error to handle.
    pub fn insert<R: TypedRequest>(&mut self, entry: E) {
        if let Some((name, _)) = self.entries.get(&R::RQ_TYPE) {
            panic!("request type {} is served as {name} already, so not as {}", R::RQ_TYPE, R::NAME);
        }
        self.entries.insert(R::RQ_TYPE, (R::NAME, entry));
    }

    /// Translates the peer's numbers through `handshake`'s outcome.
    pub fn set_handshake(&mut self, handshake: &Handshake) {
        self.handshake = Some(handshake.clone());
    }

    /// The entry for a request the peer sent with type `theirs`, or the text
    /// to fail it with.
    pub fn find(&self, theirs: u64) -> Result<&E, String> {
        let ours = match &self.handshake {
            Some(handshake) => handshake.incoming(theirs)?,
            None => theirs,
        };
        self.entries.get(&ours).map(|(_, entry)| entry).ok_or_else(|| unknown(theirs))
    }

    /// The names and numbers served.
    pub fn served(&self) -> impl Iterator<Item = (u64, &'static str)> + '_ {
        self.entries.iter().map(|(&number, (name, _))| (number, *name))
    }
}

/// The text of a request of a type not served.
pub(crate) fn unknown(rq_type: u64) -> String {
    format!("unknown request type {rq_type}")
}

/// The text of a request whose payload does not decode.
pub(crate) fn undecodable<R: TypedRequest>(error: &DecodeError) -> String {
    format!("cannot decode {} (request type {}): {error}", R::NAME, R::RQ_TYPE)
}

/// The text of an answer that cannot be encoded.
pub(crate) fn unencodable<R: TypedRequest>(error: &EncodeError) -> String {
    format!("cannot encode the answer to {}: {error}", R::NAME)
}
