//! A whole connection whose peer writes arbitrary bytes.
//!
//! The connection serves requests (echo, failure, flags that may not fit a
//! response) on channels 0 and 5, and has six requests of its own in flight
//! (tags 2..=5 on channel 0, tags 0 and 1 on channel 5) before the peer's
//! bytes arrive, so that responses in the input can find them. The first
//! input byte sets the read size and the limits; the rest is what the peer
//! "sends". The target checks that nothing panics (a panic in any of the
//! connection's threads aborts under libFuzzer), that close returns well
//! within its deadline, that afterwards every request has an outcome, and
//! that no allocation is proportional to a claimed length.

#![no_main]

use std::io::{self, Read};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use packetstream::{Config, Failure, PacketConnection, Request, Response, Transport};

#[path = "alloc.rs"]
mod alloc;

#[global_allocator]
static ALLOCATOR: alloc::Tracking = alloc::Tracking;

const CLOSE_TIMEOUT: Duration = Duration::from_millis(300);
/// Close may take its timeout, plus a second after interrupting the
/// transport, plus slack for a loaded machine.
const CLOSE_BOUND: Duration = Duration::from_secs(5);

/// The peer's bytes, held back until `gate` opens (or its sender is gone),
/// then handed out at most `chunk` bytes per read call.
struct Peer {
    gate: Option<mpsc::Receiver<()>>,
    data: Vec<u8>,
    at: usize,
    chunk: usize,
}

impl Read for Peer {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if let Some(gate) = self.gate.take() {
            let _ = gate.recv();
        }
        let n = buf.len().min(self.chunk).min(self.data.len() - self.at);
        buf[..n].copy_from_slice(&self.data[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

fn handle(rq: Request) -> Result<Response, Failure> {
    match rq.rq_type {
        1 => Err(Failure::with_flags(rq.flags >> 3, rq.payload)),
        // Echo the request's flags: a request may carry flags too large for
        // a response, which must fail that request only.
        2 => Ok(Response { flags: rq.flags, payload: Vec::new() }),
        3 => Err(Failure::new("refused")),
        _ => Ok(Response { flags: rq.flags >> 3, payload: rq.payload }),
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&control, input)) = data.split_first() else {
        return;
    };
    alloc::reset();
    let chunk = [1, 3, 7, 64, 4096, 1 << 20][usize::from(control % 6)];
    let max_packet_size = if control & 0x40 != 0 { 64 } else { 1 << 16 };
    let (gate_tx, gate_rx) = mpsc::channel();
    let peer = Peer { gate: Some(gate_rx), data: input.to_vec(), at: 0, chunk };
    let config = Config::builder()
        .name("fz")
        .workers(2)
        .send_queue(if control & 0x80 != 0 { 1 } else { 4 })
        .max_incoming(8)
        .max_packet_size(max_packet_size)
        .serve_channel(5)
        .close_timeout(CLOSE_TIMEOUT);
    let conn =
        PacketConnection::with_handler(Transport::new(peer, io::sink()), config, handle).expect("start a connection");

    let mut pending = Vec::new();
    for i in 0..4u64 {
        pending.push(conn.submit(i, i, vec![i as u8; i as usize]).expect("submit"));
    }
    for i in 0..2u64 {
        pending.push(conn.submit_on(5, i, 0, Vec::new()).expect("submit on channel 5"));
    }
    drop(gate_tx);

    let start = Instant::now();
    // The outcome does not matter: any error is fine, a hang or panic is not.
    let _ = conn.close();
    let took = start.elapsed();
    assert!(took < CLOSE_BOUND, "close took {took:?}");
    for p in &pending {
        assert!(p.is_ready(), "request {} has no outcome after close", p.tag());
    }
    drop(pending);
    assert!(alloc::largest() <= alloc::allowed(data.len()), "allocated {} bytes", alloc::largest());
});
