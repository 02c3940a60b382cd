//! The extension mechanism's decoder on arbitrary bytes: the hello (the
//! probe's payload and its answer's), and the negotiation fed them as a
//! peer's probe and as a peer's answer.
//!
//! Checks, besides "no panic":
//! - a hello that decodes encodes to bytes that decode to the same hello;
//! - the negotiation always settles on an answer, and agrees only on
//!   features this end offered, and only when the bytes were a hello;
//! - a probe is answered with a hello (which decodes) or refused with a
//!   reason, and never changes a negotiation that had settled;
//! - no single allocation is proportional to a claimed length.

#![no_main]

use libfuzzer_sys::fuzz_target;
use packetstream::ext::hello::Hello;
use packetstream::ext::negotiation::{Negotiation, ProbeAnswer, State};
use packetstream::ext::Features;

#[path = "alloc.rs"]
mod alloc;

#[global_allocator]
static ALLOCATOR: alloc::Tracking = alloc::Tracking;

fuzz_target!(|data: &[u8]| {
    alloc::reset();
    let decoded = Hello::decode(data);
    if let Ok(hello) = &decoded {
        let again = Hello::decode(&hello.encode()).expect("an encoded hello decodes");
        assert_eq!(&again, hello);
    }

    // As the answer to our probe.
    let ours = Features::all();
    let mut answered = Negotiation::new(ours);
    let state = answered.on_answer(true, data).clone();
    match (&state, &decoded) {
        (State::Agreed(both), Ok(_)) => assert_eq!(both.intersection(ours), *both),
        (State::Plain(_), Err(_)) => {}
        other => panic!("an ok answer {data:02x?} settled as {other:?}"),
    }
    assert!(answered.is_settled());

    // As the peer's probe, first while ours is out, then once settled.
    let mut probing = Negotiation::new(ours);
    match probing.on_probe(data) {
        ProbeAnswer::Hello(answer) => {
            assert!(decoded.is_ok(), "answered a probe that is not a hello");
            Hello::decode(&answer).expect("our answer is a hello");
            assert!(matches!(probing.state(), State::Agreed(_)));
        }
        ProbeAnswer::Refuse(text) => {
            assert!(decoded.is_err() && !text.is_empty());
            assert_eq!(probing.state(), &State::Probing);
        }
    }
    let before = answered.state().clone();
    let _ = answered.on_probe(data);
    assert_eq!(answered.state(), &before, "a probe changed a settled negotiation");

    // An end with extensions off refuses whatever it gets.
    let mut off = Negotiation::new(Features::NONE);
    assert!(matches!(off.on_probe(data), ProbeAnswer::Refuse(_)));
    assert_eq!(off.state(), &State::Off);

    assert!(alloc::largest() <= alloc::allowed(data.len()), "allocated {} bytes", alloc::largest());
});
