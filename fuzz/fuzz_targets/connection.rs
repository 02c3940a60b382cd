//! A whole connection whose peer writes arbitrary bytes, with the protocol
//! extensions on: plain requests, streams inside a request and notices.
//!
//! The connection serves requests on channels 0 and 5 (echo, failures,
//! flags that may not fit a response, a wait for the caller's cancel, its
//! budget, a call back into the peer) and streams the peer opens (the
//! request type's bits say whether the handler sends items, reads them
//! with bounded waits, warns, stops, cancels, opens a stream back or
//! fails). Before the peer's bytes arrive it has six requests of its own in
//! flight (tags 2..=5 on channel 0, tags 0 and 1 on channel 5), so that
//! responses in the input can find them; once the extensions are agreed it
//! also has up to four streams of its own (tags 0..=3 on the up channel:
//! receiving, sending, both, and one it calls off at once), three more
//! requests that it drops at once (cancel notices, tags 6..=8 on channel 0)
//! and one with a budget (tag 9), so that the serving end's messages,
//! credits, replies and cancels in the input find conversations.
//!
//! The input is three header bytes and the peer's bytes:
//!
//! - byte 0 sets the read size and the limits, as it always has;
//! - byte 1 (`mode`): bit 0 prepends a valid answer to the connection's
//!   probe offering `stream` and `cancel` (bit 2: `quit` too); bit 1 turns
//!   the rest into well-formed frames (`structured`) instead of taking it
//!   as raw bytes; bits 3-4 pick the overflow policy of the streams served,
//!   bit 5 small stream windows, bit 6 a close with a reason, bit 7 one
//!   stream served at once;
//! - byte 2 (`script`): two bits per stream of the connection's own say
//!   what its application does once the bytes flow (hold it through close,
//!   finish politely, cancel, wait briefly for the reply and let go); bit 6
//!   ends the requests early, bit 7 skips the stream called off at once.
//!
//! The peer's bytes arrive in two parts, each held back until the
//! connection is ready for it: the answer to the probe, then the rest. In
//! raw mode a first frame that answers the probe is that first part too,
//! so that raw inputs reach the connection's own streams as well.
//!
//! Checks: nothing panics (a panic in any of the connection's threads
//! aborts under libFuzzer); a valid answer to the probe agrees on what it
//! offers, and any answer settles the negotiation; close returns well
//! within its deadline; afterwards every request has an outcome, every
//! stream the connection opened has its reply settled and both its ends
//! over, and every thread of the connection has ended; no allocation is
//! proportional to a claimed length.

#![no_main]

use std::collections::VecDeque;
use std::io::{self, Read};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use packetstream::ext::hello::{Hello, Offer};
use packetstream::ext::negotiation::State;
use packetstream::ext::notice::Notice;
use packetstream::ext::{rq_type, Feature, CONTROL_CHANNEL, RESERVED_CHANNELS};
use packetstream::stream::message::{Message, Open, Reply, Warning, DOWN, UP};
use packetstream::stream::{Code, Credit, Overflow};
use packetstream::wire::{self, encode_varint};
use packetstream::{
    CloseOptions, Config, Failure, Packet, PacketConnection, Pending, ReplyTimeoutError, Request, Response, Stream,
    StreamOptions, StreamReceiver, StreamRecvTimeoutError, StreamReply, StreamSendTimeoutError, StreamSender,
    StreamTryRecvError, StreamTrySendError, Transport, MAX_REQUEST_FLAGS, MAX_RESPONSE_FLAGS, MAX_RQ_TYPE,
};

#[path = "alloc.rs"]
mod alloc;

#[global_allocator]
static ALLOCATOR: alloc::Tracking = alloc::Tracking;

const NAME: &str = "fz";
const CLOSE_TIMEOUT: Duration = Duration::from_millis(300);
/// Close may take its timeout, plus a second after interrupting the
/// transport, plus slack for a loaded machine.
const CLOSE_BOUND: Duration = Duration::from_secs(5);
/// A handler's longest wait for one item, one credit or a cancel: the
/// peer's end (the input's) cuts every wait short, so this is paid only
/// while the input is still being read.
const HANDLER_WAIT: Duration = Duration::from_millis(5);
/// The same for the connection's own application.
const CALLER_WAIT: Duration = Duration::from_millis(2);
/// An answer to the probe is read from memory: it settles the negotiation
/// at once, unless something hangs.
const SETTLE_BOUND: Duration = Duration::from_secs(5);
/// A joined thread leaves `/proc` a moment after its joiner wakes.
const THREADS_BOUND: Duration = Duration::from_secs(2);
/// Structured inputs stop growing past this many bytes.
const MAX_EXPANDED: usize = 1 << 20;
/// The tag of the connection's probe: the first on the control channel.
const PROBE_TAG: u64 = 0;

mod mode {
    pub const AGREE: u8 = 0x01;
    pub const STRUCTURED: u8 = 0x02;
    pub const QUIT: u8 = 0x04;
    pub const POLICY: u8 = 0x18;
    pub const SMALL_WINDOWS: u8 = 0x20;
    pub const REASON: u8 = 0x40;
    pub const ONE_STREAM: u8 = 0x80;
}

mod script {
    pub const END_REQUESTS: u8 = 0x40;
    pub const NO_CALLED_OFF: u8 = 0x80;
}

/// The peer's bytes, in parts: each waits for its gate to open (or its
/// sender to go), then goes out at most `chunk` bytes per read call.
struct Peer {
    parts: VecDeque<Part>,
    chunk: usize,
}

struct Part {
    gate: Option<mpsc::Receiver<()>>,
    data: Vec<u8>,
    at: usize,
}

impl Read for Peer {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while let Some(part) = self.parts.front_mut() {
            if let Some(gate) = part.gate.take() {
                let _ = gate.recv();
            }
            if part.at < part.data.len() {
                let n = buf.len().min(self.chunk).min(part.data.len() - part.at);
                buf[..n].copy_from_slice(&part.data[part.at..part.at + n]);
                part.at += n;
                return Ok(n);
            }
            self.parts.pop_front();
        }
        Ok(0)
    }
}

/// The fuzz input, read a byte at a time; zeros once it runs out, so that
/// every structured item is well-formed however the input ends.
struct Input<'a> {
    data: &'a [u8],
    at: usize,
}

impl<'a> Input<'a> {
    fn is_empty(&self) -> bool {
        self.at >= self.data.len()
    }

    fn byte(&mut self) -> u8 {
        let byte = self.data.get(self.at).copied().unwrap_or(0);
        self.at += 1;
        byte
    }

    fn rest(&self) -> &'a [u8] {
        &self.data[self.at.min(self.data.len())..]
    }

    fn take(&mut self, n: usize) -> &'a [u8] {
        let rest = self.rest();
        let taken = &rest[..n.min(rest.len())];
        self.at += taken.len();
        taken
    }

    /// A byte as itself, or one of the edges of a u64, or eight raw bytes:
    /// small values are what credits and kinds need, the edges are where
    /// arithmetic breaks.
    fn number(&mut self) -> u64 {
        let byte = self.byte();
        self.wide(byte)
    }

    fn wide(&mut self, byte: u8) -> u64 {
        const EDGES: [u64; 8] =
            [0x100, 0x4000, 0x1_0000, 1 << 20, 1 << 32, MAX_RESPONSE_FLAGS, MAX_REQUEST_FLAGS, u64::MAX];
        match byte {
            0..=0xef => u64::from(byte),
            0xf0..=0xf7 => EDGES[usize::from(byte - 0xf0)],
            _ => {
                let mut raw = [0; 8];
                let taken = self.take(8);
                raw[..taken.len()].copy_from_slice(taken);
                u64::from_le_bytes(raw)
            }
        }
    }

    /// A tag: mostly one of the few that name conversations and requests
    /// in flight, sometimes any.
    fn tag(&mut self) -> u64 {
        match self.byte() {
            byte @ 0..=0xef => u64::from(byte % 16),
            byte => self.wide(byte),
        }
    }

    /// Bytes taken from the input, or a run of one byte from 256 bytes to
    /// 64 KiB (past the small windows, and past the small packet limit).
    fn bytes(&mut self) -> Vec<u8> {
        match self.byte() {
            len @ 0..=0xef => self.take(usize::from(len)).to_vec(),
            big => vec![self.byte(); 256 << ((big - 0xf0) % 9)],
        }
    }

    fn text(&mut self) -> String {
        String::from_utf8_lossy(&self.bytes()).into_owned()
    }

    fn code(&mut self) -> Code {
        Code::from_wire(self.number())
    }
}

fn push(out: &mut Vec<u8>, packet: Result<Packet, packetstream::ValueTooLarge>) {
    if let Ok(packet) = packet {
        wire::encode(&packet, out);
    }
}

/// A hello offering the features of `bits` (bit n for `Feature::ALL[n]`),
/// at `version` each.
fn hello(bits: u8, version: u64) -> Vec<u8> {
    let offers = Feature::ALL
        .into_iter()
        .enumerate()
        .filter(|(n, _)| bits & (1 << n) != 0)
        .map(|(_, feature)| Offer { name: feature.name().to_owned(), version })
        .collect();
    Hello { version: 1, offers }.encode()
}

fn feature_bit(feature: Feature) -> u8 {
    let n = Feature::ALL.iter().position(|f| *f == feature).expect("a known feature");
    1 << n
}

/// The frame that answers the connection's probe, offering streams and
/// cancel notices (and quitting with a reason if `quit`).
fn probe_answer(quit: bool) -> Vec<u8> {
    let mut bits = feature_bit(Feature::Stream) | feature_bit(Feature::Cancel);
    if quit {
        bits |= feature_bit(Feature::Quit);
    }
    let mut out = Vec::new();
    push(&mut out, Packet::response(CONTROL_CHANNEL, PROBE_TAG, true, 0, hello(bits, 1)));
    out
}

/// The length of a first frame of `bytes` that answers the probe, if there
/// is one.
fn leading_answer(bytes: &[u8]) -> Option<usize> {
    match wire::decode(bytes, usize::MAX) {
        Ok(Some((packet, used)))
            if !packet.is_request() && packet.channel() == CONTROL_CHANNEL && packet.tag() == PROBE_TAG =>
        {
            Some(used)
        }
        _ => None,
    }
}

/// Channels a structured frame may name: those served, the reserved ones
/// and some refused.
const CHANNELS: [u64; 8] = [0, 5, CONTROL_CHANNEL, UP, DOWN, 1, RESERVED_CHANNELS.1, u64::MAX];

/// The rest of the input as frames, one per op byte:
///
/// ```text
/// op        frame                                  then
/// 000xxkkk  stream message of kind k on UP         tag, fields of the kind
/// 001xxkkk  stream message of kind k on DOWN       tag, fields of the kind
/// 010ctttt  request type t on channel 0 (c: 5)     tag, flags, payload
/// 011oxccc  response (ok o) on CHANNELS[c]         tag, flags, payload
/// 100xgsss  control request s (below)              tag, its fields
/// 101xxxss  EOF, ERQ, a bad control packet, a frame cut short (s: 0..=3)
/// 110nnnnn  n+1 raw bytes
/// 111xxxxd  a packet on UP (d: DOWN) of any kind   tag, kind, flags, payload
/// ```
///
/// Fields are numbers (a byte as itself, 0xf0..=0xf7 an edge of u64,
/// 0xf8..=0xff eight raw bytes), byte strings (a length byte and as many
/// bytes, or 0xf0..=0xff and a byte to repeat 256 B to 64 KiB), texts (a
/// byte string, lossily UTF-8) and codes (a number). A stream message's
/// fields are those of its kind: OPEN rq_type flags mode(byte) credit.items
/// credit.bytes budget(byte: 0 none, else milliseconds) payload; ITEM
/// bytes; CREDIT items bytes; WARN, STOP, CANCEL code text; END none;
/// REPLY ok(byte) flags payload. Control requests: 0 a probe (a byte: the
/// features' bits, bit 4 version 2, bit 7 garbage instead), 1 quit text, 2
/// ping, 3 registry payload, 4 cancel notice CHANNELS[byte&7] tag, 5
/// budget notice CHANNELS[byte&7] tag micros, 6 any type and payload, 7 a
/// (second) answer to the probe: ok(byte) payload. With g set a notice
/// carries a byte string instead.
fn structured(input: &mut Input<'_>) -> Vec<u8> {
    let mut out = Vec::new();
    while !input.is_empty() && out.len() < MAX_EXPANDED {
        let op = input.byte();
        match op >> 5 {
            0 => stream_message(input, UP, op & 7, &mut out),
            1 => stream_message(input, DOWN, op & 7, &mut out),
            2 => {
                let channel = if op & 0x10 != 0 { 5 } else { 0 };
                let tag = input.tag();
                let flags = input.number() & MAX_REQUEST_FLAGS;
                push(&mut out, Packet::request(channel, tag, u64::from(op & 0x0f), flags, input.bytes()));
            }
            3 => {
                let channel = CHANNELS[usize::from(op & 7)];
                let tag = input.tag();
                let flags = input.number() & MAX_RESPONSE_FLAGS;
                push(&mut out, Packet::response(channel, tag, op & 0x10 != 0, flags, input.bytes()));
            }
            4 => control(input, op, &mut out),
            5 => match op & 3 {
                0 => push(&mut out, Ok(Packet::eof())),
                1 => push(&mut out, Ok(Packet::erq())),
                2 => {
                    // Wire type 0 is a control packet only with tags 0 and 1.
                    let tag = input.tag().max(2);
                    encode_varint(wire::varint_len(tag) as u64 + 2, &mut out);
                    encode_varint(tag, &mut out);
                    out.extend_from_slice(&[0x02, 0x00]);
                }
                _ => {
                    // A frame that claims more than the input has: its end
                    // arrives inside it.
                    encode_varint(input.number(), &mut out);
                    out.extend_from_slice(input.rest());
                    break;
                }
            },
            6 => out.extend_from_slice(input.take(usize::from(op & 0x1f) + 1)),
            _ => {
                let channel = if op & 1 != 0 { DOWN } else { UP };
                let tag = input.tag();
                let kind = input.number().min(MAX_RQ_TYPE);
                let flags = input.number() & MAX_REQUEST_FLAGS;
                push(&mut out, Packet::request(channel, tag, kind, flags, input.bytes()));
            }
        }
    }
    out
}

fn stream_message(input: &mut Input<'_>, channel: u64, kind: u8, out: &mut Vec<u8>) {
    let tag = input.tag();
    let message = match kind {
        0 => {
            let rq_type = input.number().min(MAX_RQ_TYPE);
            let flags = input.number() & MAX_REQUEST_FLAGS;
            let mode = input.byte();
            let credit = Credit { items: input.number(), bytes: input.number() };
            let budget = match input.byte() {
                0 => None,
                ms => Some(Duration::from_millis(u64::from(ms))),
            };
            Message::Open(Open {
                rq_type,
                flags,
                caller_sends: mode & 1 != 0,
                caller_receives: mode & 2 != 0,
                credit,
                budget,
                payload: input.bytes(),
            })
        }
        1 => Message::Item(input.bytes()),
        2 => Message::Credit(Credit { items: input.number(), bytes: input.number() }),
        3 => Message::Warn(Warning { code: input.code(), text: input.text() }),
        4 => Message::End,
        5 => Message::Stop(input.code(), input.text()),
        6 => Message::Cancel(input.code(), input.text()),
        _ => {
            let ok = input.byte() & 1 != 0;
            Message::Reply(Reply { ok, flags: input.number() & MAX_RESPONSE_FLAGS, payload: input.bytes() })
        }
    };
    push(out, message.into_packet(channel, tag));
}

fn control(input: &mut Input<'_>, op: u8, out: &mut Vec<u8>) {
    let tag = input.tag();
    let request = |rq_type: u64, payload: Vec<u8>| Packet::request(CONTROL_CHANNEL, tag, rq_type, 0, payload);
    let garbled = op & 0x08 != 0;
    let packet = match op & 7 {
        0 => {
            let bits = input.byte();
            let payload =
                if bits & 0x80 != 0 { input.bytes() } else { hello(bits & 0x0f, 1 + u64::from((bits >> 4) & 1)) };
            request(rq_type::HELLO, payload)
        }
        1 => request(rq_type::QUIT, input.bytes()),
        2 => request(rq_type::PING, Vec::new()),
        3 => request(rq_type::REGISTRY, input.bytes()),
        notice @ (4 | 5) => {
            let channel = CHANNELS[usize::from(input.byte() & 7)];
            let about = input.tag();
            let payload = if garbled {
                input.bytes()
            } else if notice == 4 {
                Notice::Cancel { channel, tag: about }.encode()
            } else {
                Notice::Budget { channel, tag: about, budget: Duration::from_micros(input.number()) }.encode()
            };
            request(u64::from(notice), payload)
        }
        6 => request(input.number().min(MAX_RQ_TYPE), input.bytes()),
        _ => {
            let ok = input.byte() & 1 != 0;
            Packet::response(CONTROL_CHANNEL, PROBE_TAG, ok, 0, input.bytes())
        }
    };
    push(out, packet);
}

fn handle(rq: Request) -> Result<Response, Failure> {
    if rq.is_stream() {
        return serve_stream(rq);
    }
    let context = rq.context();
    match rq.rq_type {
        1 => Err(Failure::with_flags(rq.flags >> 3, rq.payload)),
        // Echo the request's flags: a request may carry flags too large for
        // a response, which must fail that request only.
        2 => Ok(Response { flags: rq.flags, payload: Vec::new() }),
        3 => Err(Failure::new("refused")),
        // The peer's cancel notice, if it sends one, cuts the wait short.
        4 => Ok(Response { flags: u64::from(context.wait_cancelled(HANDLER_WAIT)), payload: rq.payload }),
        5 => {
            let remaining = context.remaining().map_or(0, |left| left.as_micros() as u64);
            Ok(Response { flags: u64::from(context.budget().is_some()), payload: remaining.to_le_bytes().to_vec() })
        }
        6 => {
            if let Some(peer) = context.peer() {
                // Dropped at once: a cancel notice follows the request.
                drop(peer.submit(0, rq.flags & 0xff, rq.payload.clone()));
            }
            Ok(Response { flags: 0, payload: rq.payload })
        }
        _ => Ok(Response { flags: rq.flags >> 3, payload: rq.payload }),
    }
}

mod serve {
    pub const SEND: u64 = 0x01;
    pub const RECEIVE: u64 = 0x02;
    pub const END_EARLY: u64 = 0x04;
    pub const WARN: u64 = 0x08;
    pub const WATCH: u64 = 0x10;
    pub const FINISH: u64 = 0x20;
    pub const CALL_BACK: u64 = 0x40;
    pub const FAIL: u64 = 0x80;
}

/// A stream the peer opened; its request type's bits say what to do.
fn serve_stream(rq: Request) -> Result<Response, Failure> {
    let context = rq.context();
    let bits = rq.rq_type;
    let sender = if bits & serve::SEND != 0 { context.take_sender() } else { None };
    let receiver = if bits & serve::RECEIVE != 0 { context.take_receiver() } else { None };
    if bits & serve::CALL_BACK != 0 {
        // First: the peer's end, when the input has one, may come soon.
        call_back(context);
    }
    let mut got = 0u64;
    if let Some(receiver) = &receiver {
        for _ in 0..4 {
            match receiver.recv_timeout(HANDLER_WAIT) {
                Ok(item) => got += item.len() as u64,
                Err(StreamRecvTimeoutError::Timeout) => {}
                Err(_) => break,
            }
        }
        got += receiver.warnings().len() as u64;
    }
    if let Some(sender) = &sender {
        if bits & serve::WARN != 0 {
            sender.warn(Code::DataLoss, "fuzz");
        }
        for n in 0..(rq.flags & 7) {
            let item = rq.payload.iter().copied().take(n as usize + 1).collect::<Vec<u8>>();
            match sender.send_timeout(item, HANDLER_WAIT) {
                Ok(()) | Err(StreamSendTimeoutError::Timeout(_)) => {}
                Err(_) => break,
            }
        }
        got += sender.warnings().len() as u64;
    }
    if bits & serve::WATCH != 0 {
        got += u64::from(context.wait_cancelled(HANDLER_WAIT));
        got += context.remaining().map_or(0, |left| left.as_millis() as u64);
    }
    if bits & serve::END_EARLY != 0 {
        match (receiver, sender) {
            (Some(receiver), _) => receiver.stop_with(Code::Stop, "enough"),
            (None, Some(sender)) => sender.cancel(Code::Cancel, "no more"),
            (None, None) => {}
        }
    } else if bits & serve::FINISH != 0 {
        if let Some(sender) = sender {
            sender.finish();
        }
    }
    if bits & serve::FAIL != 0 {
        return Err(Failure::with_flags(rq.flags >> 3, rq.payload));
    }
    Ok(Response { flags: rq.flags, payload: got.to_le_bytes().to_vec() })
}

/// A stream back to the peer from inside a handler; streams were agreed,
/// or the peer could not have opened one, so this does not wait for the
/// negotiation.
fn call_back(context: &packetstream::Context) {
    let Some(peer) = context.peer() else { return };
    if let Ok(Stream { receiver, reply, .. }) = peer.stream(1, 0, b"back".to_vec(), StreamOptions::receive()) {
        if let Some(receiver) = &receiver {
            let _ = receiver.try_recv();
        }
        let _ = reply.wait_timeout(Duration::ZERO);
    }
}

/// One of the connection's own streams, as its application holds it.
struct Held {
    sender: Option<StreamSender>,
    receiver: Option<StreamReceiver>,
    reply: Option<StreamReply>,
}

impl Held {
    fn new(stream: Stream) -> Self {
        let Stream { sender, receiver, reply, .. } = stream;
        Held { sender, receiver, reply: Some(reply) }
    }

    /// A few items each way, with short waits.
    fn traffic(&self) {
        if let Some(sender) = &self.sender {
            for n in 0..3u8 {
                match sender.send_timeout(vec![n; usize::from(n) * 20], CALLER_WAIT) {
                    Ok(()) | Err(StreamSendTimeoutError::Timeout(_)) => {}
                    Err(_) => break,
                }
            }
            let _ = sender.warnings();
        }
        if let Some(receiver) = &self.receiver {
            for _ in 0..3 {
                match receiver.recv_timeout(CALLER_WAIT) {
                    Ok(_) | Err(StreamRecvTimeoutError::Timeout) => {}
                    Err(_) => break,
                }
            }
            let _ = receiver.warnings();
        }
    }

    /// What the application does once the peer's bytes flow; `action` is
    /// two bits of the script.
    fn act(&mut self, action: u8) {
        match action & 3 {
            // Held through close.
            0 => {}
            1 => {
                self.traffic();
                if let Some(sender) = self.sender.take() {
                    sender.finish();
                }
                if let Some(receiver) = self.receiver.take() {
                    receiver.stop();
                }
            }
            2 => {
                self.traffic();
                match (self.receiver.take(), self.sender.take()) {
                    (Some(receiver), _) => receiver.cancel(Code::Cancel, "fuzz"),
                    (None, Some(sender)) => sender.cancel(Code::Cancel, "fuzz"),
                    (None, None) => {}
                }
                if let Some(reply) = &self.reply {
                    assert!(reply.is_ready(), "stream {}: cancelled, and its reply is not settled", reply.tag());
                }
            }
            _ => {
                self.traffic();
                if let Some(reply) = self.reply.take() {
                    match reply.wait_timeout(CALLER_WAIT) {
                        Ok(_) | Err(ReplyTimeoutError::Reply(_)) => {}
                        // Dropped with its ends below: called off.
                        Err(ReplyTimeoutError::Timeout(reply)) => drop(reply),
                        Err(_) => {}
                    }
                }
                self.sender = None;
                self.receiver = None;
            }
        }
    }

    /// After close nothing of the stream may be left open.
    fn check_over(&self) {
        if let Some(reply) = &self.reply {
            assert!(reply.is_ready(), "stream {} has no reply after close", reply.tag());
        }
        if let Some(receiver) = &self.receiver {
            // The items that arrived are still there to take, then the end.
            loop {
                match receiver.try_recv() {
                    Ok(_) => {}
                    Err(StreamTryRecvError::Empty) => panic!("a stream still expects items after close"),
                    Err(_) => break,
                }
            }
        }
        if let Some(sender) = &self.sender {
            match sender.try_send(b"late".to_vec()) {
                Err(StreamTrySendError::Ended(_)) => {}
                other => panic!("a stream still sends after close: {other:?}"),
            }
        }
    }
}

/// The connection's own streams, before the peer's bytes arrive, and the
/// requests it drops at once: each finds its reply, credits or cancel in
/// the input, or nothing.
fn open_streams(conn: &PacketConnection, mode: u8, script: u8, pending: &mut Vec<Pending>) -> Vec<Held> {
    let window = if mode & mode::SMALL_WINDOWS != 0 { (2, 64) } else { (8, 4096) };
    let options = [
        StreamOptions::receive().window(window.0, window.1).overflow(overflow(mode)).budget(Duration::from_millis(50)),
        StreamOptions::send(),
        StreamOptions::both().window(window.0, window.1),
    ];
    let mut held = Vec::new();
    for (n, options) in options.into_iter().enumerate() {
        let stream = conn.stream(n as u64, n as u64, vec![n as u8; n], options).expect("streams were agreed");
        held.push(Held::new(stream));
    }
    if script & script::NO_CALLED_OFF == 0 {
        // Every handle dropped unsettled: a cancel goes before the input.
        drop(conn.stream(3, 0, Vec::new(), StreamOptions::both()).expect("streams were agreed"));
    }
    for n in 0..3u64 {
        drop(conn.submit(4, n, vec![n as u8]).expect("submit"));
    }
    pending.push(conn.submit_with_budget(0, 5, 0, Vec::new(), Duration::from_millis(20)).expect("submit with budget"));
    held
}

fn overflow(mode: u8) -> Overflow {
    match (mode & mode::POLICY) >> 3 {
        1 => Overflow::DropOldest,
        2 => Overflow::End,
        _ => Overflow::Block,
    }
}

/// The connection's threads still in `/proc`.
fn conn_threads() -> Vec<String> {
    let prefix = format!("{NAME}-");
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else { return Vec::new() };
    tasks
        .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
        .map(|comm| comm.trim_end().to_owned())
        .filter(|comm| comm.starts_with(&prefix))
        .collect()
}

fn assert_threads_end() {
    let deadline = Instant::now() + THREADS_BOUND;
    loop {
        let left = conn_threads();
        if left.is_empty() {
            return;
        }
        assert!(Instant::now() < deadline, "threads still running after close: {left:?}");
        thread::yield_now();
    }
}

fuzz_target!(|data: &[u8]| {
    if data.is_empty() {
        return;
    }
    let mut input = Input { data, at: 0 };
    let (control, mode, script) = (input.byte(), input.byte(), input.byte());
    let mut first = if mode & mode::AGREE != 0 { probe_answer(mode & mode::QUIT != 0) } else { Vec::new() };
    let mut rest = if mode & mode::STRUCTURED != 0 { structured(&mut input) } else { input.rest().to_vec() };
    if first.is_empty() {
        if let Some(len) = leading_answer(&rest) {
            first = rest.drain(..len).collect();
        }
    }
    let answered = !first.is_empty();
    // What the peer sends is what allocations may be proportional to.
    let sent = first.len() + rest.len() + data.len();
    alloc::reset();

    let chunk = [1, 3, 7, 64, 4096, 1 << 20][usize::from(control % 6)];
    let max_packet_size = if control & 0x40 != 0 { 64 } else { 1 << 16 };
    let (first_tx, first_rx) = mpsc::channel();
    let (rest_tx, rest_rx) = mpsc::channel();
    let parts = [(first_rx, first), (rest_rx, rest)]
        .into_iter()
        .map(|(gate, data)| Part { gate: Some(gate), data, at: 0 })
        .collect();
    let peer = Peer { parts, chunk };
    let window = if mode & mode::SMALL_WINDOWS != 0 { (2, 64) } else { (8, 4096) };
    let config = Config::builder()
        .name(NAME)
        .workers(2)
        .send_queue(if control & 0x80 != 0 { 1 } else { 4 })
        .max_incoming(8)
        .max_packet_size(max_packet_size)
        .serve_channel(5)
        .close_timeout(CLOSE_TIMEOUT)
        .extensions(true)
        .max_streams(if mode & mode::ONE_STREAM != 0 { 1 } else { 4 })
        .stream_window(window.0, window.1)
        .stream_overflow(overflow(mode));
    let conn =
        PacketConnection::with_handler(Transport::new(peer, io::sink()), config, handle).expect("start a connection");

    let mut pending = Vec::new();
    for i in 0..4u64 {
        pending.push(conn.submit(i, i, vec![i as u8; i as usize]).expect("submit"));
    }
    for i in 0..2u64 {
        pending.push(conn.submit_on(5, i, 0, Vec::new()).expect("submit on channel 5"));
    }
    drop(first_tx);
    let mut held = Vec::new();
    if answered {
        let state = conn.wait_extensions(SETTLE_BOUND);
        assert!(!matches!(state, State::Probing), "an answer to the probe did not settle the negotiation");
        if mode & mode::AGREE != 0 {
            let State::Agreed(features) = &state else { panic!("a valid answer to the probe gave {state:?}") };
            let expected =
                [Feature::Stream, Feature::Cancel].into_iter().chain((mode & mode::QUIT != 0).then_some(Feature::Quit));
            assert_eq!(*features, expected.collect(), "agreed on the wrong features");
        }
        if matches!(&state, State::Agreed(features) if features.contains(Feature::Stream)) {
            held = open_streams(&conn, mode, script, &mut pending);
        }
    }
    drop(rest_tx);
    for (n, stream) in held.iter_mut().enumerate() {
        stream.act(script >> (2 * n));
    }
    if script & script::END_REQUESTS != 0 {
        let _ = conn.end_requests();
    }

    let start = Instant::now();
    // The outcome does not matter: any error is fine, a hang or panic is not.
    let _ = if mode & mode::REASON != 0 { conn.close_with(CloseOptions::new().reason("fuzz")) } else { conn.close() };
    let took = start.elapsed();
    assert!(took < CLOSE_BOUND, "close took {took:?}");
    for p in &pending {
        assert!(p.is_ready(), "request {}:{} has no outcome after close", p.channel(), p.tag());
    }
    for stream in &held {
        stream.check_over();
    }
    drop(pending);
    drop(held);
    assert_threads_end();
    assert!(alloc::largest() <= alloc::allowed(sent), "allocated {} bytes", alloc::largest());
});
