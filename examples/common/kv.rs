// The key-value protocol shared by `kv_server` and `kv_client`'s server
// mode: its request types, its store, and the serving loop.
//
// User request types, every field as in cs.binary (other tools drive this
// contract, so it does not change):
//
//   0 Put    key BSString, value BSData -> ok, flags 1 if it replaced a value else 0, empty payload
//   1 Get    key BSString               -> ok, flags 0, the value's bytes; a missing key fails
//                                          with the text "no such key: KEY"
//   2 Delete key BSString               -> ok, flags 1 if the key existed else 0, empty payload
//   3 List   prefix BSString            -> ok, BSUInt count then that many BSString keys,
//                                          sorted by their UTF-8 bytes
//
// The empty string is a valid key.

// Each program uses the part it needs.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::ops::Bound;
use std::process::ExitCode;
use std::sync::Mutex;

use packetstream::binary::{BSString, BSUInt, Binary, DecodeError, EncodeError, Field, Reader};
use packetstream::rpc::{Dispatcher, Handshake, Registry, RegistryError, Role};
use packetstream::{Config, Failure, PacketConnection, Transport};

packetstream::typed_request! {
    /// Stores `value` under `key`; the answer says whether it replaced one.
    #[derive(Debug, Clone, PartialEq)]
    pub struct Put(0, "kv:put") -> bool { pub key: BSString, pub value: packetstream::binary::BSData }

    /// The value under `key`.
    #[derive(Debug, Clone, PartialEq)]
    pub struct Get(1, "kv:get") -> Vec<u8> { pub key: BSString }

    /// Removes `key`; the answer says whether it was there.
    #[derive(Debug, Clone, PartialEq)]
    pub struct Delete(2, "kv:delete") -> bool { pub key: BSString }

    /// The keys that start with `prefix`.
    #[derive(Debug, Clone, PartialEq)]
    pub struct List(3, "kv:list") -> Keys { pub prefix: BSString }
}

/// The answer to List: a BSUInt count, then that many BSString keys.
#[derive(Debug, Clone, PartialEq)]
pub struct Keys(pub Vec<String>);

impl Binary for Keys {
    fn encode(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        BSUInt::encode_value(&(self.0.len() as u64), out)?;
        for key in &self.0 {
            BSString::encode_value(key, out)?;
        }
        Ok(())
    }

    fn decode(input: &mut Reader<'_>) -> Result<Keys, DecodeError> {
        let count = BSUInt::decode_value(input)?;
        // Every key takes at least its length byte, so the bytes left bound
        // what a claimed count can make us allocate.
        let mut keys = Vec::with_capacity(usize::try_from(count).unwrap_or(usize::MAX).min(input.len()));
        for _ in 0..count {
            keys.push(BSString::decode_value(input)?);
        }
        Ok(Keys(keys))
    }
}

/// The protocol's registry, for the optional handshake.
pub fn registry() -> Result<Registry, RegistryError> {
    Registry::new().with::<Put>()?.with::<Get>()?.with::<Delete>()?.with::<List>()
}

/// The store: keys in the order of their UTF-8 bytes, which is `String`'s.
#[derive(Debug, Default)]
pub struct Store(Mutex<BTreeMap<String, Vec<u8>>>);

impl Store {
    fn map(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Vec<u8>>> {
        // A panic elsewhere leaves the map itself whole.
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn put(&self, put: Put) -> bool {
        self.map().insert(put.key, put.value).is_some()
    }

    pub fn get(&self, get: Get) -> Result<Vec<u8>, Failure> {
        self.map().get(&get.key).cloned().ok_or_else(|| Failure::new(format!("no such key: {}", get.key)))
    }

    pub fn delete(&self, delete: Delete) -> bool {
        self.map().remove(&delete.key).is_some()
    }

    pub fn list(&self, list: List) -> Keys {
        let map = self.map();
        let from = (Bound::Included(list.prefix.as_str()), Bound::Unbounded);
        Keys(
            map.range::<str, _>(from)
                .map(|(key, _)| key)
                .take_while(|key| key.starts_with(&list.prefix))
                .cloned()
                .collect(),
        )
    }
}

/// The dispatcher of the four request types over a fresh store.
pub fn dispatcher() -> Dispatcher<Store> {
    Dispatcher::new(Store::default())
        .on::<Put, _, Failure>(|store, put| Ok(store.put(put)))
        .on::<Get, _, Failure>(|store, get| store.get(get))
        .on::<Delete, _, Failure>(|store, delete| Ok(store.delete(delete)))
        .on::<List, _, Failure>(|store, list| Ok(store.list(list)))
}

/// Serves one connection on stdin/stdout until the peer ends it, then shuts
/// down in order, as echo_server does. With `extensions` the protocol
/// extensions are on; with `registry` the registry handshake is offered too
/// (this end keeps its numbers). A peer that quits with a reason has it
/// printed on stderr as `peer quit: TEXT`. Exit status 0 for a clean end;
/// errors go to stderr.
pub fn serve_stdio(name: &str, extensions: bool, registry: bool) -> ExitCode {
    let run = || -> Result<(), packetstream::Error> {
        let mut config = Config::builder().name(name).extensions(extensions);
        let mut dispatcher = dispatcher();
        if registry {
            let handshake = Handshake::new(self::registry()?, Role::Keep);
            config = handshake.configure(config);
            dispatcher = dispatcher.handshake(&handshake);
        }
        let conn = PacketConnection::with_handler(Transport::stdio()?, config, dispatcher)?;
        let received = conn.join_recv();
        if let Some(reason) = conn.peer_quit_reason() {
            eprintln!("peer quit: {reason}");
        }
        let closed = conn.close();
        received?;
        closed?;
        Ok(())
    };
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("{name}: {error}");
            ExitCode::FAILURE
        }
    }
}
