//! Typed requests on arbitrary payloads: the decoders of request types with
//! every kind of cs.binary field, the dispatcher that serves them, the
//! decoders of typed answers, and the registry handshake's decoder.
//!
//! The whole input is the payload of every request type and every answer
//! type, and a registry message; for the dispatcher, the first byte picks
//! the request type and flags, the rest is the payload. Checks, besides
//! "no panic":
//!
//! - a request that decodes encodes without error, and that encoding is a
//!   fixed point (it decodes to a value that encodes to the same bytes);
//! - a decode error points inside the input;
//! - the dispatcher answers every request, ok or failed, and a failure's
//!   text says which step failed;
//! - an answer that decodes re-encodes to a response that decodes to the
//!   same bytes;
//! - a registry that decodes re-encodes to one that decodes to itself, and
//!   comparing it with another gives the same verdict from both ends;
//! - no single allocation is proportional to a claimed length.

#![no_main]

use libfuzzer_sys::fuzz_target;
use packetstream::binary::{
    BSData, BSSFloat, BSString, BSUInt, Binary, FixedBytes, Float64BE, Int16LE, Int32LE, Rest, UInt16BE, UInt32BE,
    UInt64BE, UInt8, Utf16LeNul, Utf8Nul,
};
use packetstream::rpc::{compare, exchange, Dispatcher, Flagged, Registry, Role, TypedRequest, TypedResponse};
use packetstream::{Handler, Request, Response};

#[path = "alloc.rs"]
mod alloc;

#[global_allocator]
static ALLOCATOR: alloc::Tracking = alloc::Tracking;

packetstream::binary_struct! {
    /// A struct nested in a request.
    #[derive(Debug, Clone, PartialEq)]
    pub struct Inner { pub a: BSUInt, pub b: (UInt8, Int16LE) }
}

packetstream::typed_request! {
    /// One field of every kind.
    #[derive(Debug, Clone)]
    pub struct Every(0, "fuzz:every") -> (u64, Inner) {
        pub n1: UInt8,
        pub n2: UInt16BE,
        pub i: Int32LE,
        pub u: UInt64BE,
        pub s: BSString,
        pub f: BSSFloat,
        pub d: BSData,
        pub x: Float64BE,
        pub fixed: FixedBytes<3>,
        pub nul: Utf8Nul,
        pub wide: Utf16LeNul,
        pub inner: Inner,
    }

    /// cs.packetstream's example request.
    #[derive(Debug, Clone)]
    pub struct Add(1, "fuzz:add") -> bool { pub hashenum: BSUInt, pub data: BSData }

    /// Answered with text; an empty one fails.
    #[derive(Debug, Clone)]
    pub struct Text(2, "fuzz:text") -> String { pub text: BSString }

    /// A fixed head and the raw rest.
    #[derive(Debug, Clone)]
    pub struct Tail(3, "fuzz:tail") -> Vec<u8> { pub head: UInt32BE, pub rest: Rest }

    /// No payload; answered with flags.
    #[derive(Debug, Clone)]
    pub struct Nothing(4, "fuzz:nothing") -> u64;
}

/// A request that decodes encodes, to a fixed point.
fn request_round_trip<R: TypedRequest>(flags: u64, data: &[u8]) {
    match R::from_request(flags, data) {
        Ok(request) => {
            let bytes = request.encode_payload().expect("a decoded request encodes");
            let again = R::from_request(flags, &bytes).expect("an encoded request decodes");
            assert_eq!(again.encode_payload().expect("encodes"), bytes, "{}: not a fixed point", R::NAME);
        }
        Err(error) => {
            assert!(error.offset() <= data.len(), "{}: error {error} past the input", R::NAME);
            assert!(!error.to_string().is_empty());
        }
    }
}

/// An answer that decodes re-encodes to one that decodes the same.
fn response_round_trip<T: TypedResponse>(flags: u64, data: &[u8]) {
    if let Ok(answer) = T::from_response(flags, data) {
        let response = answer.into_response().expect("a decoded answer encodes");
        let again = T::from_response(response.flags, &response.payload).expect("an encoded answer decodes");
        let response_again = again.into_response().expect("encodes");
        assert_eq!(response_again, response, "not a fixed point");
    }
}

fn dispatcher() -> Dispatcher<()> {
    Dispatcher::new(())
        .on::<Every, _, String>(|_, every| Ok((u64::from(every.n1), every.inner)))
        .on::<Flagged<Add>, _, String>(|_, add| Ok(add.flags & 1 == 1 || add.request.data.is_empty()))
        .on::<Text, _, String>(|_, text| if text.text.is_empty() { Err("empty".to_owned()) } else { Ok(text.text) })
        .on::<Tail, _, String>(|_, tail| Ok(tail.rest))
        .on::<Nothing, _, String>(|_, _| Ok(7))
}

fn kv_registry() -> Registry {
    let mut registry = Registry::new();
    for (name, number) in [("kv:put", 0), ("kv:get", 1), ("kv:delete", 2), ("kv:list", 3)] {
        registry.register(name, number).expect("a valid registry");
    }
    registry
}

fuzz_target!(|data: &[u8]| {
    alloc::reset();
    let flags = u64::from(data.first().copied().unwrap_or(0) >> 3);
    request_round_trip::<Every>(0, data);
    request_round_trip::<Add>(0, data);
    request_round_trip::<Flagged<Add>>(flags, data);
    request_round_trip::<Text>(0, data);
    request_round_trip::<Tail>(0, data);
    request_round_trip::<Nothing>(0, data);

    // The dispatcher: the first byte picks the type (one past those
    // served, to be unknown) and the flags.
    let (rq_type, payload) = match data.split_first() {
        Some((&first, rest)) => (u64::from(first % 6), rest),
        None => (0, data),
    };
    let request = Request::new(0, 2, rq_type, flags, payload.to_vec());
    if let Err(failure) = dispatcher().handle(request) {
        let text = failure.text();
        let known = ["cannot decode ", "unknown request type ", "cannot encode the answer to "];
        assert!(known.iter().any(|prefix| text.starts_with(prefix)) || text == "empty", "failure text {text:?}");
    }

    response_round_trip::<Response>(flags, data);
    response_round_trip::<bool>(flags, data);
    response_round_trip::<u64>(flags, data);
    response_round_trip::<String>(flags, data);
    response_round_trip::<Vec<u8>>(flags, data);
    response_round_trip::<(u64, Inner)>(flags, data);
    response_round_trip::<Inner>(flags, data);

    // The registry handshake's message, and the comparison of what it holds.
    match exchange::decode(data) {
        Ok((role, registry)) => {
            let again = exchange::decode(&exchange::encode(role, &registry)).expect("an encoded registry decodes");
            assert_eq!(again, (role, registry.clone()));
            let ours = kv_registry();
            for our_role in [Role::Keep, Role::Adapt] {
                let here = compare(&ours, our_role, &registry, role);
                let there = compare(&registry, role, &ours, our_role);
                assert_eq!(here.is_ok(), there.is_ok(), "the two ends disagree");
            }
        }
        Err(error) => assert!(error.offset() <= data.len(), "registry error {error} past the input"),
    }
    let _ = Inner::decode_all(data);

    assert!(alloc::largest() <= alloc::allowed(data.len()), "allocated {} bytes", alloc::largest());
});
