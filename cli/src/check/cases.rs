//! The checks: each opens its own connection and tests one promise of
//! docs/protocol.md against echo_server's contract.

use std::collections::HashMap;
use std::thread;
use std::time::Duration;

use packetstream::ext::negotiation::{PlainReason, State};
use packetstream::ext::{self, CONTROL_CHANNEL};
use packetstream::wire::{self, Packet, MAX_RESPONSE_FLAGS, MAX_RQ_TYPE};
use packetstream::{CloseOptions, CloseStep, Config, StepOutcome};

use super::raw::{Incoming, RawLink};
use super::{Check, Context, Outcome, Verdict};
use crate::answer::{seconds, wait};
use crate::payload::preview;

/// The suite, in the order it runs.
pub const CHECKS: &[Check] = &[
    Check {
        name: "request.echo",
        what: "a request on channel 0 is answered ok with its own channel, tag, flags and payload",
        run: request_echo,
    },
    Check {
        name: "tag.boundaries",
        what: "tags at every BSUInt length boundary up to 2^64-1 come back on their answers",
        run: tag_boundaries,
    },
    Check {
        name: "flags.boundaries",
        what: "flags at BSUInt boundaries up to 2^61-1, the most a 64-bit response carries, are echoed",
        run: flags_boundaries,
    },
    Check {
        name: "type.boundaries",
        what: "request types at BSUInt boundaries up to 2^64-2 (wire type 2^64-1) are served",
        run: type_boundaries,
    },
    Check {
        name: "type.failing",
        what: "request type 1 is answered ok = 0 with a UTF-8 text, on its own tag",
        run: type_failing,
    },
    Check {
        name: "channel.unserved",
        what:
            "requests on channels the peer does not serve are refused (unknown channel), on their own channel and tag",
        run: channel_unserved,
    },
    Check {
        name: "channel.reserved",
        what: "a request on a reserved extension channel is refused, and channel 0 carries on",
        run: channel_reserved,
    },
    Check {
        name: "payload.sizes",
        what: "payloads from 0 bytes across the length prefix's boundaries up to the largest frame allowed are echoed",
        run: payload_sizes,
    },
    Check { name: "framing.split", what: "a request written one byte at a time is read whole", run: framing_split },
    Check {
        name: "framing.padded_length",
        what: "a length prefix with leading 0x80 padding bytes is read as the same length",
        run: framing_padded,
    },
    Check {
        name: "pipelining",
        what: "1,000 requests in one write, before any answer is read, are all answered, each on its tag",
        run: pipelining,
    },
    Check {
        name: "response.unknown_tag",
        what: "a response to a request never made is dropped, and the connection carries on",
        run: response_unknown,
    },
    Check {
        name: "erq.after_request",
        what: "a request that comes before our ERQ is still answered",
        run: erq_after_request,
    },
    Check { name: "erq.then_request", what: "a request after our ERQ is refused with ok = 0", run: erq_then_request },
    Check {
        name: "eof.answers_first",
        what: "a request followed at once by our EOF is answered before the peer's EOF, and nothing follows that",
        run: eof_answers_first,
    },
    Check {
        name: "shutdown.orderly",
        what: "after our EOF the peer sends (ERQ and) EOF, ends its stream, and a child exits 0",
        run: shutdown_orderly,
    },
    Check {
        name: "shutdown.end_of_input",
        what: "when our stream ends without an EOF packet the peer ends its stream too, and a child exits 0",
        run: shutdown_end_of_input,
    },
    Check {
        name: "eof.mid_packet",
        what: "a stream that ends in the middle of a packet: the partial request is not answered and the peer ends",
        run: eof_mid_packet,
    },
    Check {
        name: "control.malformed",
        what: "a wire-type-0 request that is neither EOF nor ERQ is a protocol error: the peer reads no further",
        run: control_malformed,
    },
    Check {
        name: "frame.bad_header",
        what: "an empty frame, or a body that ends inside its header, is a protocol error: the peer reads no further",
        run: frame_bad_header,
    },
    Check {
        name: "extensions.probe",
        what: "the extension probe is refused (a plain peer) or answered with a hello, and requests carry on",
        run: extensions_probe,
    },
    Check {
        name: "extensions.ping",
        what: "a PING is answered: ok and empty by a peer with extensions, refused by a plain one",
        run: extensions_ping,
    },
    Check {
        name: "extensions.quit",
        what: "a close that gives a reason is answered (QUIT) and ends cleanly, when the peer offers quit",
        run: extensions_quit,
    },
    Check {
        name: "concurrency",
        what: "4 threads of the library with 16 requests in flight each are all answered, and close is clean",
        run: concurrency,
    },
];

fn pass(reason: impl Into<String>) -> Outcome {
    Ok(Verdict::Pass(reason.into()))
}

fn request(channel: u64, tag: u64, rq_type: u64, flags: u64, payload: impl Into<Vec<u8>>) -> Packet {
    Packet::request(channel, tag, rq_type, flags, payload).expect("the checks' requests fit the wire")
}

fn frame(packet: &Packet) -> Vec<u8> {
    let mut bytes = Vec::new();
    wire::encode(packet, &mut bytes);
    bytes
}

/// Bytes no two requests of a check share.
fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

/// Describes a packet briefly, for a failure's reason.
fn show(packet: &Packet) -> String {
    format!(
        "{} channel {} tag {}{} flags {} payload {}",
        crate::scan::kind(packet),
        packet.channel(),
        packet.tag(),
        packet.ok().map_or(String::new(), |ok| format!(" ok {ok}")),
        packet.flags(),
        preview(packet.payload(), 24)
    )
}

/// The next response from the peer. Requests the peer makes of its own
/// (a `packetstream` peer's extension probe) are refused, as a plain
/// cs.packetstream peer refuses them; its EOF or ERQ here is an error.
fn next_response(link: &mut RawLink, what: &str) -> Result<Packet, String> {
    loop {
        let packet = link.expect_packet(what)?;
        if packet.is_request() {
            if packet.control().is_some() {
                return Err(format!("the peer sent {} while {what} was awaited", crate::scan::kind(&packet)));
            }
            refuse(link, &packet);
            continue;
        }
        return Ok(packet);
    }
}

/// Refuses a request of the peer's. A peer that has gone since it sent it
/// cannot take the refusal: what is read next says so, so the write's
/// failure is not the check's.
fn refuse(link: &mut RawLink, request: &Packet) {
    let text = format!("unknown channel {}", request.channel());
    let refusal = Packet::response(request.channel(), request.tag(), false, 0, text.into_bytes()).expect("flags 0");
    let _ = link.send_packets(&[refusal]);
}

/// The next response, which must be the echo of `rq`.
fn expect_echo(link: &mut RawLink, rq: &Packet) -> Result<(), String> {
    let what = format!("the answer to tag {} on channel {}", rq.tag(), rq.channel());
    let answer = next_response(link, &what)?;
    check_echo(&answer, rq)
}

fn check_echo(answer: &Packet, rq: &Packet) -> Result<(), String> {
    let same = answer.channel() == rq.channel()
        && answer.tag() == rq.tag()
        && answer.ok() == Some(true)
        && answer.flags() == rq.flags()
        && answer.payload() == rq.payload();
    if same {
        return Ok(());
    }
    Err(format!("sent {}; got {}", show(rq), show(answer)))
}

/// Ends the connection as a well-behaved peer would (EOF, then the end of
/// the stream), without judging how the peer takes it.
fn close(mut link: RawLink) {
    let _ = link.send_packets(&[Packet::eof()]);
    let _ = link.finish();
}

fn request_echo(ctx: &Context) -> Outcome {
    let mut link = ctx.raw()?;
    let rq = request(0, 2, 0, 0, b"hi".to_vec());
    link.send_packets(std::slice::from_ref(&rq))?;
    expect_echo(&mut link, &rq)?;
    close(link);
    pass("channel 0, tag 2, type 0, payload \"hi\" came back as sent")
}

/// Sends each request alone and expects its echo.
fn echo_each(ctx: &Context, requests: &[Packet]) -> Result<(), String> {
    let mut link = ctx.raw()?;
    for rq in requests {
        link.send_packets(std::slice::from_ref(rq))?;
        expect_echo(&mut link, rq)?;
    }
    close(link);
    Ok(())
}

fn tag_boundaries(ctx: &Context) -> Outcome {
    let tags = [2, 127, 128, 16_383, 16_384, (1 << 21) - 1, 1 << 21, 1 << 32, 1 << 63, u64::MAX];
    let requests: Vec<Packet> = tags.iter().map(|&tag| request(0, tag, 0, 0, tag.to_be_bytes())).collect();
    echo_each(ctx, &requests)?;
    pass(format!("tags {tags:?} each came back on its answer"))
}

fn flags_boundaries(ctx: &Context) -> Outcome {
    let flags = [0, 1, 2, 31, 32, 4095, 4096, 1 << 32, MAX_RESPONSE_FLAGS];
    let requests: Vec<Packet> = flags.iter().enumerate().map(|(i, &f)| request(0, 2 + i as u64, 0, f, [])).collect();
    echo_each(ctx, &requests)?;
    pass(format!("flags {flags:?} echoed"))
}

fn type_boundaries(ctx: &Context) -> Outcome {
    let types = [0, 2, 126, 127, 128, 16_382, 16_383, 1 << 32, MAX_RQ_TYPE];
    let requests: Vec<Packet> =
        types.iter().enumerate().map(|(i, &t)| request(0, 2 + i as u64, t, 3, t.to_be_bytes())).collect();
    echo_each(ctx, &requests)?;
    pass(format!("request types {types:?} served"))
}

fn type_failing(ctx: &Context) -> Outcome {
    let mut link = ctx.raw()?;
    let rq = request(0, 2, 1, 5, b"x".to_vec());
    link.send_packets(std::slice::from_ref(&rq))?;
    let answer = next_response(&mut link, "the answer to request type 1")?;
    if (answer.channel(), answer.tag(), answer.ok()) != (0, 2, Some(false)) {
        return Err(format!("expected a failed answer on channel 0 tag 2, got {}", show(&answer)));
    }
    let Ok(text) = std::str::from_utf8(answer.payload()) else {
        return Err(format!("the failure's payload is not UTF-8: {}", show(&answer)));
    };
    if text.is_empty() {
        return Err("the failure has an empty text".to_owned());
    }
    let after = request(0, 3, 0, 0, b"after".to_vec());
    link.send_packets(std::slice::from_ref(&after))?;
    expect_echo(&mut link, &after)?;
    close(link);
    pass(format!("failed with flags {} and {text:?}; the next request was echoed", answer.flags()))
}

/// Sends `rq` and expects a refusal on its channel and tag; its text.
fn expect_refusal(link: &mut RawLink, rq: &Packet) -> Result<String, String> {
    link.send_packets(std::slice::from_ref(rq))?;
    let what = format!("the answer to tag {} on channel {}", rq.tag(), rq.channel());
    let answer = next_response(link, &what)?;
    if (answer.channel(), answer.tag(), answer.ok()) != (rq.channel(), rq.tag(), Some(false)) {
        return Err(format!("sent {}; expected a refusal, got {}", show(rq), show(&answer)));
    }
    Ok(String::from_utf8_lossy(answer.payload()).into_owned())
}

fn channel_unserved(ctx: &Context) -> Outcome {
    let mut link = ctx.raw()?;
    let channels = [1, 5, 127, 128, 16_384, ext::RESERVED_CHANNELS.0 - 1, 1 << 32, u64::MAX];
    let mut texts = Vec::new();
    for &channel in &channels {
        let text = expect_refusal(&mut link, &request(channel, 2, 0, 0, b"?".to_vec()))?;
        if !text.starts_with("unknown channel") {
            return Err(format!("channel {channel} was refused with {text:?}, not `unknown channel ...`"));
        }
        texts.push(text);
    }
    let after = request(0, 2, 0, 0, b"after".to_vec());
    link.send_packets(std::slice::from_ref(&after))?;
    expect_echo(&mut link, &after)?;
    close(link);
    texts.dedup();
    pass(format!("channels {channels:?} refused ({:?}...); channel 0 carried on", texts[0]))
}

fn channel_reserved(ctx: &Context) -> Outcome {
    let mut link = ctx.raw()?;
    let channel = ext::RESERVED_CHANNELS.1;
    let text = expect_refusal(&mut link, &request(channel, 2, 0, 0, b"?".to_vec()))?;
    let after = request(0, 2, 0, 0, b"after".to_vec());
    link.send_packets(std::slice::from_ref(&after))?;
    expect_echo(&mut link, &after)?;
    close(link);
    pass(format!("channel {channel:#x} refused with {text:?}; channel 0 carried on"))
}

fn payload_sizes(ctx: &Context) -> Outcome {
    // A request with tag 2 on channel 0 has a 3-byte header: a body of
    // 127 bytes has a 1-byte length, 128 a 2-byte one, 16,384 a 3-byte one.
    let largest = ctx.max_packet_size.saturating_sub(3);
    let mut sizes: Vec<usize> =
        [0, 1, 124, 125, 16_380, 16_381, 65_536, 1 << 20].into_iter().filter(|&size| size < largest).collect();
    sizes.push(largest);
    let mut link = ctx.raw()?;
    for (i, &size) in sizes.iter().enumerate() {
        let rq = request(0, 2 + i as u64, 0, 0, pattern(size, i as u64));
        link.send_packets(std::slice::from_ref(&rq))?;
        let answer = next_response(&mut link, &format!("the answer to a payload of {size} bytes"))?;
        if answer.tag() != rq.tag() || answer.ok() != Some(true) || answer.payload() != rq.payload() {
            return Err(format!(
                "a payload of {size} bytes came back as {} (ok {:?}, tag {}){}",
                answer.payload().len(),
                answer.ok(),
                answer.tag(),
                if answer.payload().len() == size { " with other contents" } else { "" }
            ));
        }
    }
    close(link);
    pass(format!("payloads of {sizes:?} bytes echoed (the last fills a frame of {} bytes)", ctx.max_packet_size))
}

fn framing_split(ctx: &Context) -> Outcome {
    let mut link = ctx.raw()?;
    let rq = request(0, 2, 0, 0, b"one byte at a time".to_vec());
    let bytes = frame(&rq);
    let len = bytes.len();
    link.trickle(bytes)?;
    expect_echo(&mut link, &rq)?;
    close(link);
    pass(format!("a {len}-byte frame written in {len} writes was answered"))
}

fn framing_padded(ctx: &Context) -> Outcome {
    let mut link = ctx.raw()?;
    let rq = request(0, 2, 0, 0, b"padded".to_vec());
    let mut bytes = vec![0x80, 0x80];
    bytes.extend_from_slice(&frame(&rq));
    link.send(bytes)?;
    expect_echo(&mut link, &rq)?;
    close(link);
    pass("80 80 0a ... read as a length of 10")
}

fn pipelining(ctx: &Context) -> Outcome {
    const COUNT: u64 = 1000;
    let mut link = ctx.raw()?;
    let requests: Vec<Packet> = (0..COUNT)
        .map(|i| request(0, 2 + i, if i % 7 == 1 { 2 } else { i % 7 }, i * 977, pattern((i % 97) as usize, i)))
        .collect();
    let mut waiting: HashMap<u64, &Packet> = requests.iter().map(|rq| (rq.tag(), rq)).collect();
    link.send_packets(&requests)?;
    let mut in_order = true;
    let mut next_tag = 2;
    while !waiting.is_empty() {
        let what = format!("the answers to {} more of the {COUNT} requests", waiting.len());
        let answer = next_response(&mut link, &what)?;
        let Some(rq) = waiting.remove(&answer.tag()) else {
            return Err(format!("an answer to no request in flight: {}", show(&answer)));
        };
        check_echo(&answer, rq)?;
        in_order &= answer.tag() == next_tag;
        next_tag += 1;
    }
    close(link);
    pass(format!("{COUNT} answered{}", if in_order { ", in order" } else { ", out of order" }))
}

fn response_unknown(ctx: &Context) -> Outcome {
    let mut link = ctx.raw()?;
    let stray = Packet::response(0, 5000, true, 0, b"stray".to_vec()).expect("flags 0");
    let rq = request(0, 2, 0, 0, b"after the stray".to_vec());
    link.send_packets(&[stray, rq.clone()])?;
    expect_echo(&mut link, &rq)?;
    close(link);
    pass("a response to tag 5000 was dropped; the next request was echoed")
}

fn erq_after_request(ctx: &Context) -> Outcome {
    let mut link = ctx.raw()?;
    let rq = request(0, 2, 0, 0, b"before ERQ".to_vec());
    link.send_packets(&[rq.clone(), Packet::erq()])?;
    expect_echo(&mut link, &rq)?;
    close(link);
    pass("answered after the ERQ that followed it")
}

fn erq_then_request(ctx: &Context) -> Outcome {
    let mut link = ctx.raw()?;
    link.send_packets(&[Packet::erq()])?;
    let text = expect_refusal(&mut link, &request(0, 2, 0, 0, b"after ERQ".to_vec()))?;
    close(link);
    pass(format!("refused with {text:?}"))
}

/// The packets of the peer's end, until its stream ends: what must be its
/// EOF (an ERQ may come before it), and nothing after it.
fn expect_orderly_end(link: &mut RawLink) -> Result<String, String> {
    let packets: Vec<Packet> =
        link.until_end()?.into_iter().filter(|p| !p.is_request() || p.control().is_some()).collect();
    let kinds: Vec<&str> = packets.iter().map(crate::scan::kind).collect();
    match kinds[..] {
        ["eof"] | ["erq", "eof"] => Ok(kinds.join(" then ")),
        [] => Err("the peer ended its stream without an EOF packet".to_owned()),
        _ => Err(format!("the peer ended with {kinds:?}, not (ERQ and) EOF")),
    }
}

fn exit_ok(link: RawLink, ctx: &Context) -> Result<String, String> {
    let finish = link.finish();
    match (&ctx.peer, finish.status) {
        (crate::peer::Peer::Connect(_), _) if !finish.forced => Ok(String::new()),
        (crate::peer::Peer::Connect(_), _) => Err("the connection had to be cut".to_owned()),
        (_, Some(status)) if status.success() => Ok("; the child exited 0".to_owned()),
        (_, Some(status)) => Err(format!("the child ended with {status}")),
        (_, None) => Err(format!("the child did not exit within {}", seconds(ctx.timeout))),
    }
}

fn eof_answers_first(ctx: &Context) -> Outcome {
    let mut link = ctx.raw()?;
    let rq = request(0, 2, 0, 0, b"just before EOF".to_vec());
    link.send_packets(&[rq.clone(), Packet::eof()])?;
    // The peer's close may send its ERQ before the answer (docs/protocol.md,
    // Closing): only the EOF must come after it.
    let packets: Vec<Packet> =
        link.until_end()?.into_iter().filter(|p| !p.is_request() || p.control().is_some()).collect();
    let kinds: Vec<String> = packets
        .iter()
        .map(|p| if p.is_request() { crate::scan::kind(p).to_owned() } else { format!("answer to tag {}", p.tag()) })
        .collect();
    let answer = packets.iter().position(|p| !p.is_request());
    let eof = packets.iter().position(Packet::is_eof);
    match (answer, eof) {
        (Some(a), Some(e)) if a < e && e + 1 == packets.len() => check_echo(&packets[a], &rq)?,
        _ => return Err(format!("the peer sent {kinds:?}: the answer, then EOF last, was expected")),
    }
    let exit = exit_ok(link, ctx)?;
    pass(format!("{}{exit}", kinds.join(", then ")))
}

fn shutdown_orderly(ctx: &Context) -> Outcome {
    let mut link = ctx.raw()?;
    let rq = request(0, 2, 0, 0, b"then goodbye".to_vec());
    link.send_packets(std::slice::from_ref(&rq))?;
    expect_echo(&mut link, &rq)?;
    link.send_packets(&[Packet::eof()])?;
    link.end_output()?;
    let end = expect_orderly_end(&mut link)?;
    let exit = exit_ok(link, ctx)?;
    pass(format!("{end}, then the end of its stream{exit}"))
}

fn shutdown_end_of_input(ctx: &Context) -> Outcome {
    let mut link = ctx.raw()?;
    let rq = request(0, 2, 0, 0, b"then silence".to_vec());
    link.send_packets(std::slice::from_ref(&rq))?;
    expect_echo(&mut link, &rq)?;
    link.end_output()?;
    // A probe of the peer's own that comes late cannot be answered now.
    let packets: Vec<Packet> =
        link.until_end()?.into_iter().filter(|p| !p.is_request() || p.control().is_some()).collect();
    let kinds: Vec<&str> = packets.iter().map(crate::scan::kind).collect();
    if kinds.iter().any(|kind| !matches!(*kind, "eof" | "erq")) {
        return Err(format!("after the end of its input the peer sent {kinds:?}"));
    }
    let exit = exit_ok(link, ctx)?;
    pass(format!("it sent {kinds:?} and ended its stream{exit}"))
}

/// How a peer that must have stopped reading ends: its stream's end, or
/// silence. An answer to `rq`, sent after the bad bytes, is a failure.
fn expect_no_answer(link: &mut RawLink, rq: &Packet, wait: Duration) -> Result<String, String> {
    loop {
        match link.recv_within(wait) {
            Incoming::Packet(packet) if !packet.is_request() && packet.tag() == rq.tag() => {
                return Err(format!("the peer read on past the bad bytes and answered: {}", show(&packet)))
            }
            Incoming::Packet(packet) if packet.is_request() && packet.control().is_none() => refuse(link, &packet),
            Incoming::Packet(_) => {}
            Incoming::Malformed(error) => return Err(format!("the peer sent malformed bytes: {error}")),
            Incoming::End => return Ok("ended its stream".to_owned()),
            Incoming::Quiet => return Ok(format!("stayed silent for {}", seconds(wait))),
        }
    }
}

/// A first request echoed, so that what follows is not taken for a peer
/// that was never there.
fn alive(link: &mut RawLink) -> Result<(), String> {
    let first = request(0, 1000, 0, 0, b"first".to_vec());
    link.send_packets(std::slice::from_ref(&first))?;
    expect_echo(link, &first)
}

/// How long to listen for an answer that must not come.
fn quiet_wait(ctx: &Context) -> Duration {
    ctx.timeout.min(Duration::from_secs(2))
}

fn eof_mid_packet(ctx: &Context) -> Outcome {
    let mut link = ctx.raw()?;
    alive(&mut link)?;
    let rq = request(0, 2, 0, 0, b"cut short".to_vec());
    let bytes = frame(&rq);
    link.send(bytes[..bytes.len() / 2].to_vec())?;
    link.end_output()?;
    let packets = link.until_end()?;
    if let Some(answer) = packets.iter().find(|p| !p.is_request()) {
        return Err(format!("the partial request was answered: {}", show(answer)));
    }
    let finish = link.finish();
    let how = match finish.status {
        Some(status) => format!("; the child ended with {status}"),
        None => String::new(),
    };
    pass(format!("no answer; the peer ended its stream{how}"))
}

fn control_malformed(ctx: &Context) -> Outcome {
    let mut link = ctx.raw()?;
    alive(&mut link)?;
    let rq = request(0, 2, 0, 0, b"after the bad control packet".to_vec());
    // Wire type 0, tag 5: neither EOF (tag 0) nor ERQ (tag 1).
    let mut bytes = vec![0x03, 0x05, 0x02, 0x00];
    bytes.extend_from_slice(&frame(&rq));
    link.send(bytes)?;
    let how = expect_no_answer(&mut link, &rq, quiet_wait(ctx))?;
    drop(link);
    pass(format!("the request after 03 05 02 00 was not answered: the peer {how}"))
}

fn frame_bad_header(ctx: &Context) -> Outcome {
    let mut seen = Vec::new();
    // An empty frame; a body whose bits promise a channel and a wire type.
    for bad in [&[0x00][..], &[0x02, 0x02, 0x03]] {
        let mut link = ctx.raw()?;
        alive(&mut link)?;
        let rq = request(0, 2, 0, 0, b"after the bad frame".to_vec());
        let mut bytes = bad.to_vec();
        bytes.extend_from_slice(&frame(&rq));
        link.send(bytes)?;
        let how = expect_no_answer(&mut link, &rq, quiet_wait(ctx))
            .map_err(|error| format!("after {}: {error}", crate::payload::hex(bad)))?;
        seen.push(format!("after {} it {how}", crate::payload::hex(bad)));
        drop(link);
    }
    pass(format!("no request read past a bad header: {}", seen.join("; ")))
}

/// The features the peer offers (`None`: a plain peer), from one probe made
/// through the library, once.
fn features(ctx: &Context) -> Result<Option<Vec<String>>, String> {
    ctx.features.get_or_init(|| probe(ctx).map(|(features, _)| features)).clone()
}

/// Probes the peer: what it offers, and how it answered.
fn probe(ctx: &Context) -> Result<(Option<Vec<String>>, String), String> {
    let conn = ctx.connection(Config::builder().name("check").extensions(true))?;
    let state = conn.wait_extensions(ctx.timeout);
    let answered = wait(conn.submit(0, 7, b"after the probe".to_vec()).map_err(|e| e.to_string())?, ctx.timeout);
    let _ = conn.close();
    let echoed = match answered? {
        Ok(response) if response.flags == 7 && response.payload == b"after the probe" => true,
        Ok(response) => return Err(format!("after the probe, an echo came back as {response:?}")),
        Err(failure) => return Err(format!("after the probe, a request failed: {}", failure.text())),
    };
    debug_assert!(echoed);
    match state {
        State::Agreed(agreed) => {
            let names: Vec<String> = agreed.iter().map(|feature| feature.name().to_owned()).collect();
            let said = if names.is_empty() { "none".to_owned() } else { names.join(", ") };
            Ok((Some(names), format!("a peer with extensions: features in common {said}")))
        }
        State::Plain(PlainReason::Refused(text)) => {
            Ok((None, format!("a plain peer: it refused the probe ({text:?})")))
        }
        State::Plain(reason) => Err(format!("the probe went wrong: {reason}")),
        State::Probing => Err(format!("no answer to the probe within {}", seconds(ctx.timeout))),
        State::Off => Err("extensions were off on this side".to_owned()),
    }
}

fn extensions_probe(ctx: &Context) -> Outcome {
    let (features, said) = probe(ctx)?;
    let _ = ctx.features.set(Ok(features));
    pass(format!("{said}; a request after it was echoed"))
}

fn extensions_ping(ctx: &Context) -> Outcome {
    let features = features(ctx)?;
    let mut link = ctx.raw()?;
    let ping = request(CONTROL_CHANNEL, 0, ext::rq_type::PING, 0, Vec::new());
    link.send_packets(std::slice::from_ref(&ping))?;
    let answer = next_response(&mut link, "the answer to PING")?;
    close(link);
    if (answer.channel(), answer.tag()) != (CONTROL_CHANNEL, 0) {
        return Err(format!("PING on the control channel, tag 0, was answered with {}", show(&answer)));
    }
    match (&features, answer.ok()) {
        (Some(_), Some(true)) if answer.payload().is_empty() => pass("answered ok and empty"),
        (None, Some(false)) => {
            pass(format!("refused ({:?}), as a plain peer does", String::from_utf8_lossy(answer.payload())))
        }
        (Some(_), _) => Err(format!("a peer with extensions answered PING with {}", show(&answer))),
        (None, _) => Err(format!("a plain peer answered PING with {}", show(&answer))),
    }
}

fn extensions_quit(ctx: &Context) -> Outcome {
    let offered = features(ctx)?;
    match &offered {
        None => return Ok(Verdict::NotApplicable("a plain peer: no extensions".to_owned())),
        Some(names) if !names.iter().any(|name| name == ext::Feature::Quit.name()) => {
            return Ok(Verdict::NotApplicable(format!("the peer does not offer quit ({names:?})")))
        }
        Some(_) => {}
    }
    let conn = ctx.connection(Config::builder().name("check").extensions(true))?;
    conn.wait_extensions(ctx.timeout);
    let answered = wait(conn.submit(0, 0, b"before quitting".to_vec()).map_err(|e| e.to_string())?, ctx.timeout)?;
    answered.map_err(|failure| format!("a request failed: {}", failure.text()))?;
    let reason = "packetstream check: done";
    let finished = conn.close_with(CloseOptions::new().reason(reason)).map_err(|error| format!("close: {error}"))?;
    let report = finished.report();
    if report.step(CloseStep::Quit).outcome != StepOutcome::Done || !report.is_clean() {
        return Err(format!("the close with a reason did not go cleanly: {report}"));
    }
    if let Some(status) = finished.exit_status().filter(|status| !status.success()) {
        return Err(format!("the child ended with {status}"));
    }
    pass(format!("quit with {reason:?} answered; close: {report}"))
}

fn concurrency(ctx: &Context) -> Outcome {
    const THREADS: u64 = 4;
    const PER_THREAD: u64 = 250;
    const WINDOW: usize = 16;
    let conn = ctx.connection(Config::builder().name("check"))?;
    let results: Vec<Result<(), String>> = thread::scope(|scope| {
        let callers: Vec<_> = (0..THREADS)
            .map(|t| {
                let conn = &conn;
                thread::Builder::new().name(format!("check-caller-{t}")).spawn_scoped(
                    scope,
                    move || -> Result<(), String> {
                        let mut in_flight = std::collections::VecDeque::new();
                        for i in 0..PER_THREAD {
                            let seed = t << 32 | i;
                            let payload = pattern((seed % 2048) as usize, seed);
                            let pending = conn.submit(0, seed, payload.clone()).map_err(|e| e.to_string())?;
                            in_flight.push_back((pending, seed, payload));
                            while in_flight.len() >= WINDOW || (i + 1 == PER_THREAD && !in_flight.is_empty()) {
                                let (pending, seed, payload) = in_flight.pop_front().expect("one in flight");
                                match wait(pending, ctx.timeout)? {
                                    Ok(response) if response.flags == seed && response.payload == payload => {}
                                    Ok(response) => {
                                        return Err(format!(
                                            "flags {seed} and {} bytes came back as flags {} and {} bytes",
                                            payload.len(),
                                            response.flags,
                                            response.payload.len()
                                        ))
                                    }
                                    Err(failure) => return Err(format!("a request failed: {}", failure.text())),
                                }
                            }
                        }
                        Ok(())
                    },
                )
            })
            .collect();
        callers
            .into_iter()
            .map(|caller| match caller {
                Ok(caller) => caller.join().unwrap_or_else(|_| Err("a caller thread panicked".to_owned())),
                Err(error) => Err(format!("cannot start a thread: {error}")),
            })
            .collect()
    });
    let closed = conn.close();
    for result in results {
        result?;
    }
    let finished = closed.map_err(|error| format!("close: {error}"))?;
    if !finished.report().is_clean() {
        return Err(format!("close was not clean: {}", finished.report()));
    }
    if let Some(status) = finished.exit_status().filter(|status| !status.success()) {
        return Err(format!("the child ended with {status}"));
    }
    pass(format!("{} requests from {THREADS} threads answered; close: {}", THREADS * PER_THREAD, finished.report()))
}
