//! Hostile input: what a peer can send to break the decoder or the
//! connection. Each case gets a clear error or the documented behaviour, never
//! a panic, never memory proportional to a claimed length.
//!
//! The decoder is tested as plain functions ([`wire::decode`],
//! [`PacketReader`]); the connection on pipes, Unix sockets, TCP and the
//! in-memory transport, with a raw peer writing the bytes. A counting global
//! allocator remembers the largest single allocation of this test binary: no
//! test here allocates more than a few MiB honestly, so a claimed length of
//! 4 GiB or 2^60 that the decoder believed would show.
//!
//! Inputs the fuzzers (`fuzz/`) found to crash become tests here, at the end.

mod util;

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::Cursor;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::time::{Duration, Instant};

use packetstream::wire::{self, decode_varint, PacketReader, ReadError};
use packetstream::{
    CloseProblem, Config, ConfigBuilder, ConnectionError, Failure, Handler, InvalidRequest, Packet, PacketConnection,
    Pending, ProtocolError, Request, Response, SubmitError, ValueTooLarge, WaitTimeoutError, MAX_REQUEST_FLAGS,
    MAX_RESPONSE_FLAGS, MAX_RQ_TYPE,
};
use util::raw::{frame, ok_response, raw_body, raw_frame, varint};
use util::{assert_no_threads, raw_pair, Feed, Kind, RawPeer, PROMPT};

// ---------------------------------------------------------------------------
// The largest single allocation of the process.

struct Counting;

static LARGEST: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call goes straight to the system allocator; only a counter
// is updated on the side.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LARGEST.fetch_max(layout.size(), Relaxed);
        // SAFETY: the caller's contract is passed on unchanged.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        LARGEST.fetch_max(layout.size(), Relaxed);
        // SAFETY: as above.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LARGEST.fetch_max(new_size, Relaxed);
        // SAFETY: as above.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// More than any honest allocation here (the reader's 64 KiB buffer, the
/// writer's 256 KiB batch, at most 1 MiB of payload ahead of what arrived),
/// far less than any claimed length tested.
const ALLOCATION_BOUND: usize = 8 << 20;

fn assert_allocations_bounded() {
    let largest = LARGEST.load(Relaxed);
    assert!(largest < ALLOCATION_BOUND, "an allocation of {largest} bytes");
}

// ---------------------------------------------------------------------------
// Helpers.

const DEFAULT_MAX: usize = wire::DEFAULT_MAX_PACKET_SIZE;

/// What the decoder makes of `bytes`, both ways: as a buffer and as a stream.
fn decode_both(bytes: &[u8], max: usize) -> (Result<Option<Packet>, ProtocolError>, Result<Option<Packet>, ReadError>) {
    let buffered = wire::decode(bytes, max).map(|found| found.map(|(packet, _)| packet));
    let streamed = PacketReader::new(Cursor::new(bytes.to_vec()), max).read_packet();
    (buffered, streamed)
}

/// The decoder refuses `bytes` with `expected`, both ways.
fn assert_refused(bytes: &[u8], max: usize, expected: &ProtocolError) {
    let (buffered, streamed) = decode_both(bytes, max);
    assert_eq!(buffered.as_ref().err(), Some(expected), "decode of {bytes:02x?}: {buffered:?}");
    match streamed {
        Err(ReadError::Protocol(error)) => assert_eq!(&error, expected, "reading {bytes:02x?}"),
        other => panic!("reading {bytes:02x?}: {other:?}"),
    }
}

/// The hostile tests' handler: type 0 echoes flags and payload, type 1
/// answers with flags that never fit, type 2 halves the flags.
fn echo(rq: Request) -> Result<Response, Failure> {
    match rq.rq_type {
        1 => Err(Failure::with_flags(u64::MAX, b"too big".to_vec())),
        2 => Ok(Response { flags: rq.flags >> 1, payload: rq.payload }),
        _ => Ok(Response { flags: rq.flags, payload: rq.payload }),
    }
}

/// A connection under test, its raw peer, and what the peer reads.
struct Rig {
    conn: PacketConnection,
    peer: RawPeer,
    feed: Feed,
    name: String,
}

fn start_rig(kind: Kind, config: ConfigBuilder, handler: impl Handler) -> Rig {
    let name = kind.name('h');
    let (transport, mut peer) = raw_pair(kind);
    let conn = PacketConnection::with_handler(
        transport,
        config.name(name.clone()).close_timeout(Duration::from_secs(1)),
        handler,
    )
    .expect("start");
    let feed = peer.start_reading();
    Rig { conn, peer, feed, name }
}

impl Rig {
    /// Submits `n` requests and lets the peer read them.
    fn in_flight(&self, n: u64) -> Vec<Pending> {
        let pending: Vec<_> = (0..n).map(|i| self.conn.submit(0, i, vec![i as u8]).expect("submit")).collect();
        for _ in 0..n {
            self.feed.next_ordinary();
        }
        pending
    }

    /// Closes cleanly: the peer ends its stream, close must succeed.
    fn close_cleanly(mut self) {
        self.peer.end_output();
        let start = Instant::now();
        let outcome = self.conn.close();
        assert!(start.elapsed() < PROMPT, "close took {:?}", start.elapsed());
        if let Err(error) = outcome {
            panic!("close: {error:?}");
        }
        assert_no_threads(&self.name);
    }

    /// Closes a connection that `expected` ended; close must report it.
    fn close_with(self, expected: &ConnectionError) {
        let start = Instant::now();
        let outcome = self.conn.close();
        assert!(start.elapsed() < PROMPT, "close took {:?}", start.elapsed());
        match outcome.as_ref().map_err(|e| e.problem()) {
            Err(CloseProblem::Connection(error)) => assert_same(error, expected, "close"),
            other => panic!("close: {other:?}"),
        }
        drop(self.peer);
        assert_no_threads(&self.name);
    }
}

/// `got` is the same connection error as `expected` (`ConnectionError` has
/// no `PartialEq`: it may hold an `io::Error`).
fn assert_same(got: &ConnectionError, expected: &ConnectionError, what: &str) {
    let same = match (got, expected) {
        (ConnectionError::Protocol(got), ConnectionError::Protocol(expected)) => got == expected,
        (ConnectionError::TooManyIncoming { limit: got }, ConnectionError::TooManyIncoming { limit: expected }) => {
            got == expected
        }
        (ConnectionError::Closed, ConnectionError::Closed) => true,
        (ConnectionError::PeerClosed { reason: got }, ConnectionError::PeerClosed { reason: expected }) => {
            got == expected
        }
        _ => false,
    };
    assert!(same, "{what}: got {got:?}, expected {expected:?}");
}

/// The connection fails its waiting callers with `expected` and stops.
fn assert_connection_refuses(bytes: &[u8], config: impl Fn() -> ConfigBuilder, expected: &ProtocolError) {
    let expected = ConnectionError::Protocol(expected.clone());
    for kind in Kind::ALL {
        let mut rig = start_rig(kind, config(), echo);
        let pending = rig.in_flight(3);
        rig.peer.send_bytes(bytes);
        let start = Instant::now();
        for p in pending {
            match p.wait_timeout(PROMPT) {
                Err(WaitTimeoutError::Connection(error)) => {
                    assert_same(&error, &expected, &format!("{kind:?}: a caller"))
                }
                other => panic!("{kind:?}: a caller got {other:?}, expected {expected:?}"),
            }
        }
        assert!(start.elapsed() < PROMPT);
        // No new requests are taken: a submit gets why.
        match rig.conn.submit(0, 0, Vec::new()) {
            Err(SubmitError::Connection(error)) => {
                assert_same(&error, &expected, &format!("{kind:?}: a submit after the failure"))
            }
            other => panic!("{kind:?}: a submit after the failure: {other:?}"),
        }
        rig.close_with(&expected);
    }
    assert_allocations_bounded();
}

fn response_frame(tag: u64, payload: &[u8]) -> Vec<u8> {
    frame(&ok_response(0, tag, 0, payload))
}

// ---------------------------------------------------------------------------
// Length prefixes far beyond what follows.

fn prefix_2_pow_60() -> Vec<u8> {
    let mut bytes = varint(1 << 60);
    bytes.extend([0x02, 0x04, b'x']);
    bytes
}

/// 4 GiB claimed, a header and a few bytes behind it.
fn prefix_4_gib() -> Vec<u8> {
    let mut bytes = varint(4 << 30);
    bytes.extend([0x02, 0x04]);
    bytes.extend(b"only a few bytes");
    bytes
}

#[test]
fn codec_length_prefix_of_2_pow_60() {
    let bytes = prefix_2_pow_60();
    assert_refused(&bytes, DEFAULT_MAX, &ProtocolError::PacketTooLarge { len: 1 << 60, max: DEFAULT_MAX });
    // Without a limit it is only a frame that has not arrived yet, and costs
    // only what arrived.
    let (buffered, streamed) = decode_both(&bytes, usize::MAX);
    assert_eq!(buffered, Ok(None), "a partial frame asks for more bytes");
    assert!(matches!(streamed, Err(ReadError::Protocol(ProtocolError::UnexpectedEof))), "{streamed:?}");
    assert_allocations_bounded();
}

#[test]
fn conn_length_prefix_of_2_pow_60() {
    let expected = ProtocolError::PacketTooLarge { len: 1 << 60, max: DEFAULT_MAX };
    assert_connection_refuses(&prefix_2_pow_60(), Config::builder, &expected);
}

#[test]
fn codec_length_prefix_of_4_gib_with_a_few_bytes() {
    let bytes = prefix_4_gib();
    assert_refused(&bytes, DEFAULT_MAX, &ProtocolError::PacketTooLarge { len: 4 << 30, max: DEFAULT_MAX });
    let (buffered, streamed) = decode_both(&bytes, 8 << 30);
    assert_eq!(buffered, Ok(None));
    assert!(matches!(streamed, Err(ReadError::Protocol(ProtocolError::UnexpectedEof))), "{streamed:?}");
    assert_allocations_bounded();
}

/// Refused by default; with a limit high enough to allow it, the reader waits
/// for the rest, holding only what arrived, and fails when the stream ends.
#[test]
fn conn_length_prefix_of_4_gib_with_a_few_bytes() {
    let bytes = prefix_4_gib();
    let expected = ProtocolError::PacketTooLarge { len: 4 << 30, max: DEFAULT_MAX };
    assert_connection_refuses(&bytes, Config::builder, &expected);
    for kind in Kind::ALL {
        let mut rig = start_rig(kind, Config::builder().max_packet_size(8 << 30), echo);
        let mut pending = rig.in_flight(2);
        rig.peer.send_bytes(&bytes);
        // Still waiting for the rest of the frame.
        match pending.remove(0).wait_timeout(Duration::from_millis(100)) {
            Err(WaitTimeoutError::Timeout(back)) => pending.insert(0, back),
            other => panic!("{kind:?}: expected a timeout, got {other:?}"),
        }
        rig.peer.end_output();
        for p in pending {
            let outcome = p.wait_timeout(PROMPT);
            assert!(
                matches!(
                    outcome,
                    Err(WaitTimeoutError::Connection(ConnectionError::Protocol(ProtocolError::UnexpectedEof)))
                ),
                "{kind:?}: {outcome:?}"
            );
        }
        rig.close_with(&ConnectionError::Protocol(ProtocolError::UnexpectedEof));
    }
    assert_allocations_bounded();
}

/// A reader in the middle of a huge claimed frame does not hold close up.
#[test]
fn conn_close_finishes_while_the_peer_stalls_inside_a_huge_frame() {
    for kind in Kind::ALL {
        let mut rig = start_rig(kind, Config::builder().max_packet_size(usize::MAX), echo);
        let mut bytes = varint(1 << 40);
        bytes.extend([0x02, 0x04, 1, 2, 3]);
        rig.peer.send_bytes(&bytes);
        let start = Instant::now();
        let outcome = rig.conn.close();
        let took = start.elapsed();
        // close_timeout (1 s) and a second after interrupting the transport.
        assert!(took < Duration::from_secs(2) + PROMPT, "{kind:?}: close took {took:?}");
        match outcome.as_ref().map_err(|e| e.problem()) {
            Err(CloseProblem::TimedOut(_))
            | Err(CloseProblem::Connection(ConnectionError::Protocol(ProtocolError::UnexpectedEof))) => {}
            other => panic!("{kind:?}: close gave {other:?}"),
        }
        // A pipe (or a hand-made in-memory transport) cannot be interrupted:
        // its reader waits until the peer goes.
        rig.peer.hang_up();
        assert_no_threads(&rig.name);
        eprintln!("stalled huge frame ({kind:?}): close took {took:?}: {:?}", outcome.err());
    }
    assert_allocations_bounded();
}

// ---------------------------------------------------------------------------
// Malformed integers.

/// Eleven bytes: ten continuation bytes of padding, then the value.
fn overlong() -> Vec<u8> {
    let mut overlong = vec![0x80; 10];
    overlong.push(0x05);
    overlong
}

/// 2^64: one more than fits.
const OVER_U64: [u8; 10] = [0x82, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00];

/// Frames with `OVER_U64` as the tag, the bits, the channel and the wire type.
fn over_u64_in_each_field() -> [Vec<u8>; 4] {
    [
        raw_frame(&[&OVER_U64[..], &[0x04]].concat()),
        raw_frame(&[&[0x02][..], &OVER_U64[..]].concat()),
        raw_frame(&[&[0x02, 0x07][..], &OVER_U64[..]].concat()),
        raw_frame(&[&[0x02, 0x02][..], &OVER_U64[..]].concat()),
    ]
}

#[test]
fn codec_overlong_varints_are_refused() {
    assert_eq!(decode_varint(&overlong()), Err(ProtocolError::VarintTooLong));
    // As the length prefix, and as the tag.
    assert_refused(&overlong(), DEFAULT_MAX, &ProtocolError::VarintTooLong);
    let as_tag = raw_frame(&[&overlong()[..], &[0x04]].concat());
    assert_refused(&as_tag, DEFAULT_MAX, &ProtocolError::VarintTooLong);
    // A never-ending run of continuation bytes is refused after ten, not read forever.
    assert_refused(&[0xff; 64], DEFAULT_MAX, &ProtocolError::VarintOverflow);
    assert_refused(&[0x80; 64], DEFAULT_MAX, &ProtocolError::VarintTooLong);
}

#[test]
fn conn_overlong_varints_are_refused() {
    assert_connection_refuses(&overlong(), Config::builder, &ProtocolError::VarintTooLong);
    let as_tag = raw_frame(&[&overlong()[..], &[0x04]].concat());
    assert_connection_refuses(&as_tag, Config::builder, &ProtocolError::VarintTooLong);
}

/// Leading `0x80` padding within ten bytes is accepted, as the Python decoder
/// accepts it.
#[test]
fn codec_padded_varints_within_ten_bytes_are_accepted() {
    let padded = [0x80, 0x80, 0x06, 0x80, 0x02, 0x02, 0x01, b'h', b'i'];
    let (packet, used) = wire::decode(&padded, DEFAULT_MAX).expect("valid").expect("whole");
    assert_eq!(used, padded.len());
    assert_eq!(packet, Packet::request(0, 2, 0, 0, b"hi".to_vec()).unwrap());
    let streamed = PacketReader::new(Cursor::new(padded.to_vec()), DEFAULT_MAX).read_packet();
    assert_eq!(streamed.expect("valid"), Some(packet));
}

#[test]
fn conn_padded_varints_within_ten_bytes_are_accepted() {
    for kind in Kind::ALL {
        let mut rig = start_rig(kind, Config::builder(), echo);
        let mut pending = rig.in_flight(1);
        let tag = pending[0].tag();
        // A response to it with a padded length and a padded tag.
        let mut body = vec![0x80];
        body.extend(varint(tag));
        body.extend([0x04, b'o', b'k']);
        let mut bytes = vec![0x80];
        bytes.extend(varint(body.len() as u64));
        bytes.extend(body);
        rig.peer.send_bytes(&bytes);
        assert_eq!(pending.remove(0).wait_timeout(PROMPT).expect("answer").payload, b"ok");
        rig.close_cleanly();
    }
}

#[test]
fn codec_varints_over_u64_are_refused() {
    assert_eq!(decode_varint(&OVER_U64), Err(ProtocolError::VarintOverflow));
    assert_refused(&OVER_U64, DEFAULT_MAX, &ProtocolError::VarintOverflow);
    for bytes in over_u64_in_each_field() {
        assert_refused(&bytes, DEFAULT_MAX, &ProtocolError::VarintOverflow);
    }
}

#[test]
fn conn_varints_over_u64_are_refused() {
    assert_connection_refuses(&OVER_U64, Config::builder, &ProtocolError::VarintOverflow);
    for bytes in &over_u64_in_each_field() {
        assert_connection_refuses(bytes, Config::builder, &ProtocolError::VarintOverflow);
    }
}

// ---------------------------------------------------------------------------
// Malformed frames.

#[test]
fn codec_an_empty_frame_is_a_truncated_header() {
    assert_refused(&[0x00], DEFAULT_MAX, &ProtocolError::TruncatedHeader);
}

#[test]
fn conn_an_empty_frame_is_a_truncated_header() {
    assert_connection_refuses(&[0x00], Config::builder, &ProtocolError::TruncatedHeader);
}

const CUT_HEADERS: [&[u8]; 4] = [
    &[0x01, 0x05],             // a tag, no bits
    &[0x02, 0x05, 0x03],       // bits promise a channel
    &[0x03, 0x05, 0x03, 0x07], // and a wire type
    &[0x02, 0x05, 0x81],       // bits cut inside their varint
];

#[test]
fn codec_frames_ending_inside_their_header_are_refused() {
    for bytes in CUT_HEADERS {
        assert_refused(bytes, DEFAULT_MAX, &ProtocolError::TruncatedHeader);
    }
}

#[test]
fn conn_frames_ending_inside_their_header_are_refused() {
    for bytes in CUT_HEADERS {
        assert_connection_refuses(bytes, Config::builder, &ProtocolError::TruncatedHeader);
    }
}

fn over_limit() -> (Vec<u8>, ProtocolError) {
    let frame = response_frame(2, &[0u8; 100]);
    let expected = ProtocolError::PacketTooLarge { len: frame.len() as u64 - 1, max: 64 };
    (frame, expected)
}

#[test]
fn codec_frames_over_the_configured_limit_are_refused() {
    let (frame, expected) = over_limit();
    assert_refused(&frame, 64, &expected);
}

#[test]
fn conn_frames_over_the_configured_limit_are_refused() {
    let (frame, expected) = over_limit();
    assert_connection_refuses(&frame, || Config::builder().max_packet_size(64), &expected);
}

/// Requests with wire type 0 that are not EOF or ERQ, with the channel and
/// tag they are reported with.
fn bad_controls() -> [(Vec<u8>, u64, u64); 5] {
    [
        (raw_frame(&raw_body(5, 0b10, None, Some(0), b"")), 0, 5), // another tag
        (raw_frame(&raw_body(0, 0b10, None, Some(0), b"x")), 0, 0), // EOF with a payload
        (raw_frame(&raw_body(1, 0b11, Some(3), Some(0), b"")), 3, 1), // ERQ on channel 3
        (raw_frame(&raw_body(0, (1 << 2) | 0b10, None, Some(0), b"")), 0, 0), // EOF with flags
        (raw_frame(&raw_body(u64::MAX, 0b10, None, Some(0), b"")), 0, u64::MAX),
    ]
}

#[test]
fn codec_wire_type_0_that_is_neither_eof_nor_erq() {
    for (i, (bytes, channel, tag)) in bad_controls().into_iter().enumerate() {
        let (buffered, _) = decode_both(&bytes, DEFAULT_MAX);
        let packet = buffered.expect("well-formed").expect("whole");
        assert_eq!(packet.control(), Some(Err(())), "case {i}");
        assert_eq!((packet.channel(), packet.tag()), (channel, tag));
    }
}

/// Wire type 0 is for EOF and ERQ only: anything else is malformed, and the
/// connection stops reading, as cs.packetstream does.
#[test]
fn conn_wire_type_0_that_is_neither_eof_nor_erq() {
    for (bytes, channel, tag) in bad_controls() {
        let expected = ProtocolError::BadControlPacket { channel, tag };
        assert_connection_refuses(&bytes, Config::builder, &expected);
    }
}

#[test]
fn conn_bytes_after_eof_are_left_unread() {
    for kind in Kind::ALL {
        let mut rig = start_rig(kind, Config::builder(), echo);
        let mut bytes = frame(&Packet::eof());
        bytes.extend([0xff; 12]);
        rig.peer.send_bytes(&bytes);
        rig.conn.join_recv_timeout(PROMPT).expect("a clean end at EOF");
        rig.close_cleanly();
    }
}

fn bits_over_u64() -> Vec<u8> {
    raw_frame(&[&[0x05][..], &[0x82, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x02]].concat())
}

#[test]
fn codec_bits_over_u64_are_refused() {
    assert_refused(&bits_over_u64(), DEFAULT_MAX, &ProtocolError::VarintOverflow);
}

#[test]
fn conn_bits_over_u64_are_refused() {
    assert_connection_refuses(&bits_over_u64(), Config::builder, &ProtocolError::VarintOverflow);
}

// ---------------------------------------------------------------------------
// Tags and channels.

#[test]
fn conn_responses_to_unknown_tags_are_ignored() {
    for kind in Kind::ALL {
        let mut rig = start_rig(kind, Config::builder(), echo);
        let mut pending = rig.in_flight(1);
        let live = pending[0].tag();
        for packet in [
            ok_response(0, 999, 0, b"never asked"),
            ok_response(0, 0, 0, b"tag of EOF"),
            ok_response(0, 1, 0, b"tag of ERQ"),
            ok_response(7, live, 0, b"wrong channel"),
            ok_response(u64::MAX, u64::MAX, 0, b"far away"),
            Packet::response(0, 12345, false, 3, b"failed, unknown".to_vec()).unwrap(),
        ] {
            rig.peer.send_packet(&packet);
        }
        rig.peer.send_packet(&ok_response(0, live, 4, b"right"));
        let answer = pending.remove(0).wait_timeout(PROMPT).expect("the live request's answer");
        assert_eq!((answer.flags, answer.payload), (4, b"right".to_vec()));
        assert_eq!(rig.conn.stats().responses_in, 1);
        assert_eq!(rig.conn.stats().packets_in, 7);
        // A second answer to a request already answered is ignored as well.
        rig.peer.send_packet(&ok_response(0, live, 5, b"again"));
        let p = rig.conn.submit(0, 0, b"next".to_vec()).expect("submit");
        let tag = rig.feed.next_ordinary().tag();
        rig.peer.send_packet(&ok_response(0, tag, 6, b"next"));
        assert_eq!(p.wait().expect("answer").flags, 6);
        rig.close_cleanly();
    }
}

#[test]
fn conn_duplicate_tags_in_flight_are_refused() {
    for kind in Kind::ALL {
        let (gate_tx, gate_rx) = crossbeam_channel::bounded::<()>(0);
        let (entered_tx, entered_rx) = crossbeam_channel::bounded::<()>(1);
        let handler = move |rq: Request| {
            if rq.rq_type == 5 {
                let _ = entered_tx.try_send(());
                let _ = gate_rx.recv_timeout(PROMPT);
            }
            rq.payload
        };
        let mut rig = start_rig(kind, Config::builder(), handler);
        let request = |rq_type: u64, payload: &[u8]| Packet::request(0, 7, rq_type, 0, payload.to_vec()).unwrap();
        rig.peer.send_packet(&request(5, b"first"));
        entered_rx.recv_timeout(PROMPT).expect("the first request is being served");
        rig.peer.send_packet(&request(0, b"second"));
        let refused = rig.feed.next_ordinary();
        assert_eq!((refused.tag(), refused.ok()), (7, Some(false)));
        assert_eq!(refused.payload(), b"channel 0: tag already in use: 7");
        gate_tx.send(()).expect("open the gate");
        let answered = rig.feed.next_ordinary();
        assert_eq!((answered.tag(), answered.ok(), answered.payload()), (7, Some(true), &b"first"[..]));
        // Once answered, the tag may be used again.
        rig.peer.send_packet(&request(0, b"third"));
        let again = rig.feed.next_ordinary();
        assert_eq!((again.tag(), again.ok(), again.payload()), (7, Some(true), &b"third"[..]));
        rig.close_cleanly();
    }
}

#[test]
fn conn_channel_u64_max() {
    let far = u64::MAX;
    for kind in Kind::ALL {
        // Not served by default: refused, on that channel.
        let mut rig = start_rig(kind, Config::builder(), echo);
        rig.peer.send_packet(&Packet::request(far, 3, 0, 0, b"hello".to_vec()).unwrap());
        let refused = rig.feed.next_ordinary();
        assert_eq!((refused.channel(), refused.tag(), refused.ok()), (far, 3, Some(false)));
        assert_eq!(refused.payload(), format!("unknown channel {far}").as_bytes());
        // Our own requests on it: tags from 0, answered on it.
        let p = rig.conn.submit_on(far, 0, 9, b"out".to_vec()).expect("submit on channel u64::MAX");
        let sent = rig.feed.next_ordinary();
        assert_eq!((sent.channel(), sent.tag(), sent.flags()), (far, 0, 9));
        rig.peer.send_packet(&ok_response(far, 0, 1, b"back"));
        assert_eq!(p.wait().expect("answer").payload, b"back");
        rig.close_cleanly();

        // Served when all channels are.
        let mut served = start_rig(kind, Config::builder().serve_all_channels(), echo);
        served.peer.send_packet(&Packet::request(far, u64::MAX, 0, 2, b"hi".to_vec()).unwrap());
        let answer = served.feed.next_ordinary();
        assert_eq!(
            (answer.channel(), answer.tag(), answer.ok(), answer.payload()),
            (far, u64::MAX, Some(true), &b"hi"[..])
        );
        served.close_cleanly();
    }
}

// ---------------------------------------------------------------------------
// Flags and types at and past their limits.

#[test]
fn codec_flags_at_their_limits() {
    assert!(Packet::request(0, 2, 0, MAX_REQUEST_FLAGS + 1, Vec::new()).is_err());
    assert!(Packet::request(0, 2, MAX_RQ_TYPE + 1, 0, Vec::new()).is_err());
    assert!(Packet::response(0, 2, true, MAX_RESPONSE_FLAGS + 1, Vec::new()).is_err());
    for packet in [
        Packet::request(u64::MAX, u64::MAX, MAX_RQ_TYPE, MAX_REQUEST_FLAGS, b"x".to_vec()).unwrap(),
        Packet::response(u64::MAX, u64::MAX, true, MAX_RESPONSE_FLAGS, b"y".to_vec()).unwrap(),
        Packet::response(u64::MAX, u64::MAX, false, MAX_RESPONSE_FLAGS, Vec::new()).unwrap(),
    ] {
        let encoded = frame(&packet);
        assert_eq!(wire::decode(&encoded, DEFAULT_MAX), Ok(Some((packet, encoded.len()))));
    }
    // The largest bits a request can carry.
    let bytes = raw_frame(&raw_body(20, !1, None, Some(1), b""));
    let packet = decode_both(&bytes, DEFAULT_MAX).0.expect("valid").expect("whole");
    assert_eq!((packet.flags(), packet.rq_type()), (MAX_REQUEST_FLAGS, Some(0)));
}

#[test]
fn conn_flags_that_overflow() {
    // Local requests and responses that cannot be encoded are refused.
    for kind in Kind::ALL {
        let mut rig = start_rig(kind, Config::builder(), echo);
        let too_large = |outcome: Result<Pending, SubmitError>| match outcome {
            Err(SubmitError::Invalid(InvalidRequest::TooLarge(error))) => error,
            other => panic!("{kind:?}: expected a request too large to send, got {other:?}"),
        };
        assert_eq!(
            too_large(rig.conn.submit(0, MAX_REQUEST_FLAGS + 1, Vec::new())),
            ValueTooLarge::Flags { flags: MAX_REQUEST_FLAGS + 1, max: MAX_REQUEST_FLAGS }
        );
        assert_eq!(too_large(rig.conn.submit(MAX_RQ_TYPE + 1, 0, Vec::new())), ValueTooLarge::RqType(MAX_RQ_TYPE + 1));
        assert_eq!(rig.conn.outstanding(), 0, "a refused submit left a request behind");

        // The largest flags a request can carry: bits = u64::MAX minus the
        // channel bit. Echoing them cannot fit a response (one bit fewer):
        // that request fails, the connection goes on.
        let bits: u64 = !1;
        rig.peer.send_bytes(&raw_frame(&raw_body(20, bits, None, Some(1), b"big")));
        let refused = rig.feed.next_ordinary();
        assert_eq!((refused.tag(), refused.ok()), (20, Some(false)));
        assert!(String::from_utf8_lossy(refused.payload()).contains("does not fit"), "{refused:?}");
        // Halved, they fit.
        rig.peer.send_bytes(&raw_frame(&raw_body(21, bits, None, Some(3), b"half")));
        let answered = rig.feed.next_ordinary();
        assert_eq!((answered.tag(), answered.ok(), answered.flags()), (21, Some(true), MAX_REQUEST_FLAGS >> 1));
        // A handler failing with flags that cannot fit.
        rig.peer.send_packet(&Packet::request(0, 22, 1, 0, Vec::new()).unwrap());
        let failed = rig.feed.next_ordinary();
        assert_eq!((failed.tag(), failed.ok(), failed.flags()), (22, Some(false), 0));

        // The largest response flags arrive whole.
        let mut pending = rig.in_flight(1);
        let tag = pending[0].tag();
        rig.peer.send_bytes(&raw_frame(&raw_body(tag, !0b11, None, None, b"")));
        let answer = pending.remove(0).wait_timeout(PROMPT).expect("answer");
        assert_eq!(answer.flags, MAX_RESPONSE_FLAGS);

        // The largest wire type and tag.
        rig.peer.send_bytes(&raw_frame(&raw_body(u64::MAX, 0b10, None, Some(u64::MAX), b"top")));
        let top = rig.feed.next_ordinary();
        assert_eq!((top.tag(), top.ok(), top.payload()), (u64::MAX, Some(true), &b"top"[..]));
        rig.close_cleanly();
    }
}

// ---------------------------------------------------------------------------
// A peer that sends more requests than may be in service.

#[test]
fn conn_too_many_requests_in_service() {
    for kind in Kind::ALL {
        let (gate_tx, gate_rx) = crossbeam_channel::bounded::<()>(0);
        let handler = move |rq: Request| {
            let _ = gate_rx.recv_timeout(PROMPT);
            rq.payload
        };
        let mut rig = start_rig(kind, Config::builder().max_incoming(4).workers(2), handler);
        let mine = rig.conn.submit(0, 0, Vec::new()).expect("submit");
        rig.feed.next_ordinary();
        for tag in 100..110 {
            rig.peer.send_packet(&Packet::request(0, tag, 0, 0, Vec::new()).unwrap());
        }
        let expected = ConnectionError::TooManyIncoming { limit: 4 };
        match mine.wait_timeout(PROMPT) {
            Err(WaitTimeoutError::Connection(error)) => assert_same(&error, &expected, &format!("{kind:?}")),
            other => panic!("{kind:?}: {other:?}"),
        }
        drop(gate_tx);
        rig.close_with(&expected);
    }
}

// ---------------------------------------------------------------------------
// Regressions: inputs that once crashed.

/// A length prefix near 2^64 with no limit on the packet size: the end of
/// the frame (`prefix + len`) overflowed in `codec::decode` (now
/// `wire::decode`), a panic in
/// debug builds (fixed in 817f382).
#[test]
fn codec_decode_with_no_limit_and_a_length_near_u64_max() {
    let mut bytes = vec![0x81, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f];
    bytes.extend([0x02, 0x04]);
    let outcome = std::panic::catch_unwind(|| wire::decode(&bytes, usize::MAX));
    match outcome {
        Ok(Ok(None)) | Ok(Err(ProtocolError::PacketTooLarge { .. })) => {}
        Ok(other) => panic!("decode gave {other:?}"),
        Err(_) => panic!("decode panicked"),
    }
    let streamed = PacketReader::new(Cursor::new(bytes), usize::MAX).read_packet();
    assert!(matches!(streamed, Err(ReadError::Protocol(ProtocolError::UnexpectedEof))), "{streamed:?}");
    assert_allocations_bounded();
}
