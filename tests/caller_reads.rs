//! Callers that read the stream themselves while the reading thread leaves
//! it between bursts: they do, they keep their deadlines (in the middle of
//! a frame too), a close ends their read, and the peer's requests are
//! still served while the stream is left.

mod util;

use std::thread;
use std::time::{Duration, Instant};

use packetstream::{Config, ConfigBuilder, Packet, PacketConnection, Request, WaitTimeoutError};
use util::raw::{frame, ok_response};
use util::{raw_pair, transport_pair, within, Kind, RawPeer, LONG, PROMPT};

fn config(name: &str) -> ConfigBuilder {
    Config::builder().name(name)
}

/// Kinds whose streams have a descriptor to wait on.
const FD_KINDS: [Kind; 3] = [Kind::Pipe, Kind::Unix, Kind::Tcp];

fn echo(rq: Request) -> Vec<u8> {
    rq.payload
}

#[test]
fn sequential_callers_read_their_own_answers() {
    const CALLS: u64 = 2000;
    for kind in FD_KINDS {
        let (a, b) = transport_pair(kind);
        let server = PacketConnection::with_handler(b, config(&kind.name('s')), echo).unwrap();
        let client = PacketConnection::new(a, config(&kind.name('c'))).unwrap();
        for n in 0..CALLS {
            let payload = n.to_be_bytes().to_vec();
            assert_eq!(client.call_timeout(0, 0, payload.clone(), LONG).expect("answer").payload, payload);
        }
        let read = client.stats().caller_reads;
        eprintln!("{kind:?}: {read} of {CALLS} calls read by their caller");
        // Most of them: the reader leaves the stream after an answer, takes
        // it back when a linger finds it vacant, and leaves it again.
        assert!(read >= CALLS / 4, "{kind:?}: only {read} of {CALLS}");
        util::close_both_ok(client, server);
    }
}

#[test]
fn without_a_descriptor_or_when_turned_off_the_reader_reads() {
    let (a, b) = transport_pair(Kind::Memory);
    let server = PacketConnection::with_handler(b, config("nf-s"), echo).unwrap();
    let client = PacketConnection::new(a, config("nf-c")).unwrap();
    let (a2, b2) = transport_pair(Kind::Pipe);
    let server2 = PacketConnection::with_handler(b2, config("off-s"), echo).unwrap();
    let client2 = PacketConnection::new(a2, config("off-c").caller_reads(false)).unwrap();
    for n in 0..200u8 {
        assert_eq!(client.call_timeout(0, 0, vec![n], LONG).unwrap().payload, [n]);
        assert_eq!(client2.call_timeout(0, 0, vec![n], LONG).unwrap().payload, [n]);
    }
    assert_eq!(client.stats().caller_reads, 0);
    assert_eq!(client2.stats().caller_reads, 0);
    util::close_both_ok(client, server);
    util::close_both_ok(client2, server2);
}

/// A raw peer that answers request `n`, the reader thread delivering it,
/// so that the stream is left to the callers afterwards.
fn answered_once(kind: Kind) -> (PacketConnection, RawPeer) {
    let (transport, mut raw) = raw_pair(kind);
    let conn = PacketConnection::new(transport, config(&kind.name('l'))).unwrap();
    let pending = conn.submit(0, 0, b"first".to_vec()).unwrap();
    let request = raw.recv();
    raw.send_packet(&ok_response(0, request.tag(), 0, b"first"));
    assert_eq!(pending.wait_timeout(LONG).expect("the first answer").payload, b"first");
    (conn, raw)
}

#[test]
fn a_reading_caller_keeps_its_deadline_and_a_half_arrived_frame_resumes() {
    for kind in FD_KINDS {
        for payload_len in [10, 300_000] {
            keeps_its_deadline(kind, payload_len);
        }
    }
}

/// As above, on one CPU, where a caller reads what is there with reads
/// that cannot block, and gives way to the peer once before it waits.
#[cfg(target_os = "linux")]
#[test]
fn on_one_cpu_a_reading_caller_keeps_its_deadline_and_a_half_arrived_frame_resumes() {
    util::on_one_cpu(|| {
        for kind in FD_KINDS {
            for payload_len in [10, 300_000] {
                keeps_its_deadline(kind, payload_len);
            }
        }
    });
}

fn keeps_its_deadline(kind: Kind, payload_len: usize) {
    let (conn, raw) = answered_once(kind);
    let read_before = conn.stats().caller_reads;
    let pending = conn.submit(0, 1, b"second".to_vec()).unwrap();
    // The peer's half answer comes from another thread, so that this
    // one waits at once, while the reader has left the stream.
    let peer = thread::spawn(move || {
        let mut raw = raw;
        let request = raw.recv();
        let answer = frame(&ok_response(0, request.tag(), 1, &vec![7; payload_len]));
        let half = answer.len() / 2;
        raw.send_bytes(&answer[..half]);
        (raw, answer[half..].to_vec())
    });
    let started = Instant::now();
    let pending = match pending.wait_timeout(Duration::from_millis(100)) {
        Err(WaitTimeoutError::Timeout(pending)) => pending,
        other => panic!("{kind:?}: expected a timeout, got {:?}", other.map(|r| r.flags)),
    };
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(100) && took < PROMPT, "{kind:?} {payload_len}: {took:?}");
    let (mut raw, rest) = within(LONG, "the peer", move || peer.join()).expect("the peer");
    let led = conn.stats().caller_reads > read_before;
    eprintln!("{kind:?} {payload_len}: the timed-out wait read for itself: {led}");
    raw.send_bytes(&rest);
    let response = pending.wait_timeout(LONG).expect("the whole answer");
    assert_eq!((response.flags, response.payload.len()), (1, payload_len), "{kind:?}");
    util::raw::close_after_peer_eof(conn, &mut raw);
}

/// On one CPU, sequential calls small and bulk (read in place, in the
/// middle of a payload, by reads that cannot block) come back whole, most
/// read by their callers.
#[cfg(target_os = "linux")]
#[test]
fn on_one_cpu_sequential_callers_read_their_own_answers_small_and_bulk() {
    const CALLS: u64 = 400;
    util::on_one_cpu(|| {
        for kind in FD_KINDS {
            let (a, b) = transport_pair(kind);
            let server = PacketConnection::with_handler(b, config(&kind.name('s')), echo).unwrap();
            let client = PacketConnection::new(a, config(&kind.name('c'))).unwrap();
            for n in 0..CALLS {
                let len = if n % 10 == 9 { 300_000 + n as usize } else { 8 };
                let payload: Vec<u8> = (0..len).map(|i| (i as u64 ^ n) as u8).collect();
                let answer = client.call_timeout(0, 0, payload.clone(), LONG).expect("answer").payload;
                assert!(answer == payload, "{kind:?}: call {n} came back changed");
            }
            let read = client.stats().caller_reads;
            eprintln!("{kind:?}: {read} of {CALLS} calls read by their caller");
            assert!(read >= CALLS / 4, "{kind:?}: only {read} of {CALLS}");
            util::close_both_ok(client, server);
        }
    });
}

#[test]
fn close_ends_the_wait_of_a_caller_reading_for_itself() {
    for kind in FD_KINDS {
        let (conn, mut raw) = answered_once(kind);
        let pending = conn.submit(0, 2, b"never answered".to_vec()).unwrap();
        raw.recv();
        let (done, waited) = crossbeam_channel::bounded(1);
        let waiter = thread::spawn(move || {
            let _ = done.send(pending.wait());
        });
        // The waiter reads for itself (the reader left the stream after the
        // first answer), or waits while the reader reads: either way only
        // the close can end its wait, as the peer neither answers nor ends.
        util::wait_for(PROMPT, || conn.stats().caller_reads > 0);
        eprintln!("{kind:?}: the waiter read for itself: {}", conn.stats().caller_reads > 0);
        let started = Instant::now();
        let closing =
            util::start_close_with(conn, packetstream::CloseOptions::new().timeout(Duration::from_millis(300)));
        match waited.recv_timeout(LONG) {
            // A socket interrupted at the deadline reads as the peer's end.
            Ok(Err(packetstream::RequestError::Connection(error))) => assert!(
                matches!(
                    error,
                    packetstream::ConnectionError::Closed | packetstream::ConnectionError::PeerClosed { .. }
                ),
                "{kind:?}: {error}"
            ),
            other => panic!("{kind:?}: {other:?}"),
        }
        assert!(started.elapsed() < PROMPT, "{kind:?}: {:?}", started.elapsed());
        let _ = closing.result();
        waiter.join().expect("the waiter");
        drop(raw);
    }
}

/// While the stream is left to the callers, a request from the peer is
/// still read and answered, within the linger.
#[test]
fn the_peers_requests_are_served_while_the_stream_is_left() {
    for kind in FD_KINDS {
        let (transport, mut raw) = raw_pair(kind);
        let conn =
            PacketConnection::with_handler(transport, config(&kind.name('v')), |rq: Request| rq.payload).unwrap();
        for round in 0..20u64 {
            let pending = conn.submit(0, 0, round.to_be_bytes().to_vec()).unwrap();
            let request = raw.recv();
            raw.send_packet(&ok_response(0, request.tag(), 0, request.payload()));
            assert_eq!(pending.wait_timeout(LONG).expect("an answer").payload, round.to_be_bytes());
            // Now the reader may have left the stream: the peer asks.
            let started = Instant::now();
            raw.send_packet(&Packet::request(0, 100 + round, 0, 0, b"yours?".to_vec()).unwrap());
            let answer = raw.recv();
            assert_eq!((answer.tag(), answer.payload()), (100 + round, b"yours?".as_slice()), "{kind:?}");
            assert!(started.elapsed() < PROMPT, "{kind:?}: {:?}", started.elapsed());
        }
        util::raw::close_after_peer_eof(conn, &mut raw);
    }
}

/// Several callers at once: one reads, and delivers the others' answers.
#[test]
fn callers_share_the_reading() {
    for kind in FD_KINDS {
        let (a, b) = transport_pair(kind);
        let server = PacketConnection::with_handler(b, config(&kind.name('S')), echo).unwrap();
        let client = std::sync::Arc::new(PacketConnection::new(a, config(&kind.name('C'))).unwrap());
        let callers: Vec<_> = (0..4u8)
            .map(|t| {
                let client = std::sync::Arc::clone(&client);
                thread::spawn(move || {
                    for n in 0..500u16 {
                        let payload = [vec![t], n.to_be_bytes().to_vec()].concat();
                        let answer = client.call_timeout(0, 0, payload.clone(), LONG).expect("answer");
                        assert_eq!(answer.payload, payload);
                    }
                })
            })
            .collect();
        for caller in callers {
            within(LONG, "a caller", move || caller.join()).expect("a caller");
        }
        eprintln!("{kind:?}: {} waits read by their caller", client.stats().caller_reads);
        let client = std::sync::Arc::try_unwrap(client).expect("the last handle");
        util::close_both_ok(client, server);
    }
}
