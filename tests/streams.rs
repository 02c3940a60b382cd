//! Streams inside a request: moat-lib-cmd's example conversations, credit
//! flow control as it travels, stop and cancel from either side (and for
//! plain requests), handler context, overflow policies, the peer dying, and
//! many streams at once.

mod util;

use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use packetstream::ext::negotiation::State;
use packetstream::ext::{self, Feature};
use packetstream::stream::message::{Message, Open, Reply, DOWN, UP};
use packetstream::stream::{Code, Credit, Overflow};
use packetstream::{
    Config, ConfigBuilder, Failure, Handler, PacketConnection, ReplyError, Request, Stream, StreamEnd, StreamOpenError,
    StreamOptions, StreamReceiver, StreamRecvTimeoutError, StreamSendError, StreamSender, StreamTrySendError,
};
use util::raw::hex;
use util::{assert_no_threads, close, close_both_ok, raw_pair, transport_pair, within, Kind, RawPeer, LONG};

fn on(name: &str) -> ConfigBuilder {
    Config::builder().name(name).extensions(true)
}

/// A client and a server answering with `handler`, both with extensions.
fn pair(kind: Kind, handler: impl Handler) -> (PacketConnection, PacketConnection) {
    pair_with(kind, on(&kind.name('c')), on(&kind.name('s')), handler)
}

fn pair_with(
    kind: Kind,
    client: impl Into<Config>,
    server: impl Into<Config>,
    handler: impl Handler,
) -> (PacketConnection, PacketConnection) {
    let (a, b) = transport_pair(kind);
    let server = PacketConnection::with_handler(b, server, handler).expect("start server");
    let client = PacketConnection::new(a, client).expect("start client");
    // Cancels and budgets go only once both ends agreed on them.
    client.wait_extensions(LONG);
    server.wait_extensions(LONG);
    (client, server)
}

fn agreed_on(state: &State, feature: Feature) -> bool {
    matches!(state, State::Agreed(features) if features.contains(feature))
}

/// The next item, waiting at most [`LONG`].
fn next(receiver: &StreamReceiver) -> Result<Vec<u8>, StreamRecvTimeoutError> {
    receiver.recv_timeout(LONG)
}

/// Every item until the items end; panics on an early end or a timeout.
fn all_items(receiver: &StreamReceiver) -> Vec<Vec<u8>> {
    let mut items = Vec::new();
    loop {
        match next(receiver) {
            Ok(item) => items.push(item),
            Err(StreamRecvTimeoutError::Finished) => return items,
            Err(other) => panic!("after {} items: {other}", items.len()),
        }
    }
}

fn texts(items: &[Vec<u8>]) -> Vec<&str> {
    items.iter().map(|item| std::str::from_utf8(item).expect("utf-8 item")).collect()
}

/// The parts of a stream, opened with `options`.
fn open(client: &PacketConnection, payload: &[u8], options: StreamOptions) -> Stream {
    client.stream(0, 0, payload.to_vec(), options).expect("open a stream")
}

/// What a handler tells the test, to wait on with a bound.
fn events<T>() -> (Sender<T>, Receiver<T>) {
    crossbeam_channel::unbounded()
}

fn event<T>(events: &Receiver<T>, what: &str) -> T {
    events.recv_timeout(LONG).unwrap_or_else(|error| panic!("{what}: {error}"))
}

// ---- moat-lib-cmd's example conversations ----

/// "Hello" / "You too", and "Hello again" / "Meh. you already said that":
/// plain requests on a connection that streams too.
#[test]
fn seed_a_plain_request_and_an_error() {
    let (client, server) = pair(Kind::Memory, |rq: Request| match rq.payload.as_slice() {
        b"Hello" => Ok("You too"),
        _ => Err(Failure::new("Meh. you already said that")),
    });
    assert_eq!(client.call_timeout(0, 0, b"Hello".to_vec(), LONG).expect("answer").payload, b"You too");
    let error = client.call_timeout(0, 0, b"Hello again".to_vec(), LONG).expect_err("a failure");
    assert_eq!(error.failure().expect("failed").text(), "Meh. you already said that");
    close_both_ok(client, server);
}

/// "gimme some data": ONE, TWO, a warning (missed some), FIVE, then the
/// caller stops; what was in flight is dropped and the handler, told at
/// once, replies "stopped".
#[test]
fn seed_streaming_out_with_a_warning_and_a_stop() {
    for kind in Kind::ALL {
        let (told, heard) = events();
        let (client, server) = pair(kind, move |rq: Request| {
            let out = rq.context().take_sender().ok_or("not a stream")?;
            for item in ["ONE", "TWO"] {
                out.send(item).map_err(|e| e.to_string())?;
            }
            out.warn(Code::DataLoss, "Missed some");
            out.send("FIVE").map_err(|e| e.to_string())?;
            // On until told to stop: SIX and more are in flight by then.
            let mut sent = 5;
            let end = loop {
                sent += 1;
                if let Err(StreamSendError::Ended(end)) = out.send(format!("item {sent}")) {
                    break end;
                }
            };
            told.send(end).unwrap();
            Ok::<_, String>("stopped")
        });
        let Stream { receiver, reply, .. } = open(&client, b"gimme some data", StreamOptions::receive());
        let receiver = receiver.expect("asked to receive");
        let first: Vec<Vec<u8>> = (0..3).map(|_| next(&receiver).expect("an item")).collect();
        assert_eq!(texts(&first), ["ONE", "TWO", "FIVE"], "{kind:?}");
        let warnings = receiver.warnings();
        assert_eq!(warnings.len(), 1, "{kind:?}: {warnings:?}");
        assert_eq!((warnings[0].code, warnings[0].text.as_str()), (Code::DataLoss, "Missed some"));
        receiver.stop();
        match event(&heard, "the handler's end") {
            StreamEnd::Stopped { code: Code::Stop, .. } => {}
            other => panic!("{kind:?}: the handler saw {other}"),
        }
        assert_eq!(reply.wait_timeout(LONG).expect("the reply").payload, b"stopped");
        assert_eq!(client.outstanding(), 0, "{kind:?}: the conversation is gone from the tag map");
        assert_eq!(server.in_service(), 0, "{kind:?}: and from the server");
        close_both_ok(client, server);
    }
}

/// "I want to send some data": FOO arrives; the handler does not want them
/// after all and stops the caller, whose next sends fail with its words.
#[test]
fn seed_streaming_in_and_the_receiver_stops() {
    for kind in Kind::ALL {
        let (client, server) = pair(kind, |rq: Request| {
            let items = rq.context().take_receiver().ok_or("not a stream")?;
            let first = items.recv_timeout(LONG).map_err(|e| e.to_string())?;
            items.stop_with(Code::Stop, "Nonono I don't want those after all");
            Ok::<_, String>(format!("had {}", String::from_utf8_lossy(&first)))
        });
        let Stream { sender, reply, .. } = open(&client, b"I want to send some data", StreamOptions::send());
        let sender = sender.expect("asked to send");
        sender.send("FOO").expect("FOO");
        let started = Instant::now();
        let end = loop {
            // BAR and more may be in flight before the stop arrives.
            match sender.send_timeout("BAR", LONG) {
                Ok(()) => assert!(started.elapsed() < LONG, "{kind:?}: sends never stopped"),
                Err(packetstream::StreamSendTimeoutError::Ended(end)) => break end,
                Err(other) => panic!("{kind:?}: {other}"),
            }
        };
        match end {
            StreamEnd::Stopped { code: Code::Stop, text } => assert_eq!(text, "Nonono I don't want those after all"),
            other => panic!("{kind:?}: {other}"),
        }
        sender.finish();
        assert_eq!(reply.wait_timeout(LONG).expect("the reply").payload, b"had FOO");
        close_both_ok(client, server);
    }
}

/// "gimme some more data": NINE, TEN, then the handler crashes; the caller
/// has both items and the failure.
#[test]
fn seed_an_error_mid_stream() {
    let (client, server) = pair(Kind::Pipe, |rq: Request| {
        let out = rq.context().take_sender().ok_or("not a stream")?;
        out.send("NINE").map_err(|e| e.to_string())?;
        out.send("TEN").map_err(|e| e.to_string())?;
        Err::<(), _>("oops I crashed".to_owned())
    });
    let Stream { receiver, reply, .. } = open(&client, b"gimme some more data", StreamOptions::receive());
    let items = all_items(&receiver.expect("asked to receive"));
    assert_eq!(texts(&items), ["NINE", "TEN"]);
    match reply.wait_timeout(LONG) {
        Err(packetstream::ReplyTimeoutError::Reply(ReplyError::Failed(failure))) => {
            assert_eq!(failure.text(), "oops I crashed")
        }
        other => panic!("{other:?}"),
    }
    close_both_ok(client, server);
}

/// "Let's talk": voice data both ways at once, then the caller hangs up.
#[test]
fn seed_both_ways_at_once() {
    for kind in Kind::ALL {
        let (client, server) = pair(kind, |rq: Request| {
            let (heard, said) = (rq.context().take_receiver().unwrap(), rq.context().take_sender().unwrap());
            let mut count = 0;
            for item in heard {
                let item = item.map_err(|e| e.to_string())?;
                said.send([b"echo ".as_slice(), &item].concat()).map_err(|e| e.to_string())?;
                count += 1;
            }
            Ok::<_, String>(format!("oh well, after {count}"))
        });
        let Stream { sender, receiver, reply, .. } =
            open(&client, b"Let's talk", StreamOptions::both().window(4, 1 << 16));
        let (sender, receiver) = (sender.unwrap(), receiver.unwrap());
        // More than the window each way: both ends must read while they send.
        let talking = std::thread::spawn(move || {
            for n in 0..200 {
                sender.send(format!("voice {n}")).expect("talk");
            }
            // Hanging up.
        });
        let items = all_items(&receiver);
        within(LONG, "the talking thread", move || talking.join()).expect("talking");
        assert_eq!(items.len(), 200, "{kind:?}");
        assert!(items.iter().enumerate().all(|(n, item)| item == format!("echo voice {n}").as_bytes()));
        assert_eq!(reply.wait_timeout(LONG).expect("the reply").payload, b"oh well, after 200");
        close_both_ok(client, server);
    }
}

// ---- flow control, on the wire ----

/// A raw peer that has agreed on extensions with `conn` (whose probe it
/// answers with every feature).
fn agreed_raw(kind: Kind, handler: impl Handler) -> (PacketConnection, RawPeer) {
    let (transport, mut raw) = raw_pair(kind);
    let conn = PacketConnection::with_handler(transport, on(&kind.name('s')), handler).unwrap();
    let probe = raw.recv();
    assert_eq!(probe.channel(), ext::CONTROL_CHANNEL);
    let hello = b"PSX\x01\x03\x04quit\x01\x06stream\x01\x06cancel\x01";
    raw.send_packet(&packetstream::Packet::response(probe.channel(), probe.tag(), true, 0, hello.to_vec()).unwrap());
    assert!(agreed_on(&conn.wait_extensions(LONG), Feature::Stream));
    (conn, raw)
}

fn up(tag: u64, message: Message) -> packetstream::Packet {
    message.into_packet(UP, tag).expect("a valid message")
}

fn from_down(packet: packetstream::Packet, tag: u64) -> Message {
    assert_eq!((packet.channel(), packet.tag()), (DOWN, tag), "{packet:?}");
    Message::from_packet(packet).expect("a stream message")
}

#[derive(Debug, PartialEq, Eq)]
enum Sent {
    /// Item n found no credit.
    Waiting(usize),
    /// Item n went.
    Went(usize),
}

/// moat-lib-cmd's flow control example: the caller grants 2, then 1, then
/// 1, then 5 items; the handler sends only as granted, waits each time its
/// credit runs out, and is never more than the grant ahead.
#[test]
fn seed_flow_control_with_credits_2_1_1_5() {
    const ITEMS: [&str; 7] = ["A", "BB", "CCC", "DDDD", "EEEEE", "FFFFFF", "GGGGGGG"];
    for kind in Kind::ALL {
        let (told, heard) = events();
        let (conn, mut raw) = agreed_raw(kind, move |rq: Request| {
            let out = rq.context().take_sender().expect("the caller takes items");
            for (n, item) in ITEMS.iter().enumerate() {
                match out.try_send(*item) {
                    Ok(()) => {}
                    Err(StreamTrySendError::NoCredit(item)) => {
                        told.send(Sent::Waiting(n)).unwrap();
                        out.send(item).expect("send once credit comes");
                    }
                    Err(other) => panic!("{other}"),
                }
                told.send(Sent::Went(n)).unwrap();
            }
            "that's all"
        });
        let open = Open {
            rq_type: 9,
            flags: 0,
            caller_sends: false,
            caller_receives: true,
            credit: Credit { items: 2, bytes: 1 << 20 },
            budget: None,
            payload: b"gimme your database".to_vec(),
        };
        raw.send_packet(&up(0, Message::Open(open)));
        let mut received = Vec::new();
        let mut expect = |raw: &mut RawPeer, count: usize, then_waiting: Option<usize>| {
            for _ in 0..count {
                match from_down(raw.recv(), 0) {
                    Message::Item(item) => received.push(String::from_utf8(item).unwrap()),
                    other => panic!("{kind:?}: expected an item, got {other:?}"),
                }
            }
            if let Some(waiting) = then_waiting {
                // Everything before the wait went, and then it waited.
                let mut seen = Vec::new();
                loop {
                    let next = event(&heard, "the handler");
                    let done = next == Sent::Waiting(waiting);
                    seen.push(next);
                    if done {
                        break;
                    }
                }
                assert!(
                    seen.iter()
                        .all(|sent| matches!(sent, Sent::Went(n) if *n < waiting) || *sent == Sent::Waiting(waiting)),
                    "{kind:?}: {seen:?}"
                );
            }
        };
        expect(&mut raw, 2, Some(2));
        for (grant, count, waiting) in [(1, 1, Some(3)), (1, 1, Some(4)), (5, 3, None)] {
            raw.send_packet(&up(0, Message::Credit(Credit { items: grant, bytes: 1 << 20 })));
            expect(&mut raw, count, waiting);
        }
        assert_eq!(received, ITEMS, "{kind:?}");
        // Its items end, then its one final message; nothing follows.
        assert_eq!(from_down(raw.recv(), 0), Message::End);
        assert_eq!(
            from_down(raw.recv(), 0),
            Message::Reply(Reply { ok: true, flags: 0, payload: b"that's all".to_vec() })
        );
        let name = conn.name().to_owned();
        util::raw::close_after_peer_eof(conn, &mut raw);
        assert_no_threads(&name);
    }
}

/// A sender never has more bytes in flight than the receiver granted, and
/// an item larger than the whole window is refused at once, handed back.
#[test]
fn the_byte_window_bounds_the_sender() {
    let (told, heard) = events();
    let (conn, mut raw) = agreed_raw(Kind::Memory, move |rq: Request| {
        let out = rq.context().take_sender().unwrap();
        for n in 0..3 {
            match out.try_send(vec![n; 40]) {
                Ok(()) => told.send(Sent::Went(n as usize)).unwrap(),
                Err(StreamTrySendError::NoCredit(item)) => {
                    told.send(Sent::Waiting(n as usize)).unwrap();
                    out.send(item).unwrap();
                    told.send(Sent::Went(n as usize)).unwrap();
                }
                Err(other) => panic!("{other}"),
            }
        }
        match out.send(vec![0; 101]) {
            Err(StreamSendError::TooLarge(item)) => assert_eq!(item.len(), 101),
            other => panic!("{other:?}"),
        }
        "done"
    });
    let open = Open {
        rq_type: 0,
        flags: 0,
        caller_sends: false,
        caller_receives: true,
        credit: Credit { items: 100, bytes: 100 },
        budget: None,
        payload: Vec::new(),
    };
    raw.send_packet(&up(0, Message::Open(open)));
    assert_eq!(
        [event(&heard, "0"), event(&heard, "1"), event(&heard, "2")],
        [Sent::Went(0), Sent::Went(1), Sent::Waiting(2)]
    );
    for _ in 0..2 {
        assert!(matches!(from_down(raw.recv(), 0), Message::Item(item) if item.len() == 40));
    }
    raw.send_packet(&up(0, Message::Credit(Credit { items: 0, bytes: 40 })));
    assert_eq!(event(&heard, "2 went"), Sent::Went(2));
    assert!(matches!(from_down(raw.recv(), 0), Message::Item(item) if item.len() == 40));
    assert_eq!(from_down(raw.recv(), 0), Message::End);
    assert!(matches!(from_down(raw.recv(), 0), Message::Reply(Reply { ok: true, .. })));
    raw.send_packet(&packetstream::Packet::eof());
    close(conn).expect("clean close");
}

/// A peer that sends items past its credit broke the stream: it is called
/// off (a CANCEL with data loss), and the handler learns it.
#[test]
fn items_past_the_credit_break_the_stream() {
    let (told, heard) = events();
    let (open_gate, gate) = crossbeam_channel::bounded::<()>(1);
    let (conn, mut raw) = agreed_raw(Kind::Memory, move |rq: Request| {
        let items = rq.context().take_receiver().unwrap();
        // Taking none until the flood is in: no credit comes back meanwhile.
        gate.recv_timeout(LONG).expect("the gate");
        let mut got = 0;
        let end = loop {
            match items.recv_timeout(LONG) {
                Ok(_) => got += 1,
                Err(StreamRecvTimeoutError::Ended(end)) => break end,
                Err(other) => panic!("{other}"),
            }
        };
        told.send((got, end)).unwrap();
        "broken"
    });
    let config = Config::default();
    let window = config.stream_window();
    let open = Open {
        rq_type: 0,
        flags: 0,
        caller_sends: true,
        caller_receives: false,
        credit: Credit::default(),
        budget: None,
        payload: Vec::new(),
    };
    raw.send_packet(&up(5, Message::Open(open)));
    assert_eq!(from_down(raw.recv(), 5), Message::Credit(window), "the whole window at once");
    for _ in 0..=window.items {
        raw.send_packet(&up(5, Message::Item(b"x".to_vec())));
    }
    match from_down(raw.recv(), 5) {
        Message::Cancel(Code::DataLoss, text) => assert_eq!(text, "items past the credit granted"),
        other => panic!("{other:?}"),
    }
    open_gate.send(()).unwrap();
    let (got, end) = event(&heard, "the handler");
    assert_eq!(got, window.items, "what arrived within the credit is still taken");
    assert!(matches!(end, StreamEnd::Broken(_)), "{end}");
    // Its final message was the cancel: no reply follows.
    util::raw::close_after_peer_eof(conn, &mut raw);
}

// ---- stop, cancel and drops ----

/// The handler blocks for credit; the caller cancels; the handler's send
/// returns at once with the cancel, it sees it in its context, and both
/// ends let go of everything.
#[test]
fn the_caller_cancels_mid_stream() {
    for kind in Kind::ALL {
        let (told, heard) = events();
        let (client, server) = pair(kind, move |rq: Request| {
            let out = rq.context().take_sender().unwrap();
            let mut sent = 0;
            let end = loop {
                match out.send(vec![7; 100]) {
                    Ok(()) => sent += 1,
                    Err(StreamSendError::Ended(end)) => break end,
                    Err(other) => panic!("{other}"),
                }
            };
            told.send((sent, end, rq.context().is_cancelled())).unwrap();
            "cancelled"
        });
        let Stream { receiver, reply, .. } = open(&client, b"", StreamOptions::receive().window(8, 1 << 20));
        let receiver = receiver.unwrap();
        next(&receiver).expect("a first item");
        // The handler is now held by the window.
        reply.cancel_with(Code::Cancel, "no longer needed");
        let (sent, end, cancelled) = event(&heard, "the handler");
        assert!(sent <= 9, "{kind:?}: {sent} sent with a window of 8 and one taken");
        match end {
            StreamEnd::Cancelled { by_peer: true, code: Code::Cancel, text } => assert_eq!(text, "no longer needed"),
            other => panic!("{kind:?}: {other}"),
        }
        assert!(cancelled, "{kind:?}: the context says so");
        match next(&receiver) {
            Err(StreamRecvTimeoutError::Ended(StreamEnd::Cancelled { by_peer: false, .. })) => {}
            other => panic!("{kind:?}: {other:?}"),
        }
        assert_eq!(client.outstanding(), 0, "{kind:?}");
        assert!(util::wait_for(LONG, || server.in_service() == 0), "{kind:?}: the server let go");
        drop(receiver);
        close_both_ok(client, server);
    }
}

/// The handler cancels: the caller's iteration ends with it, and so does
/// its reply.
#[test]
fn the_handler_cancels_mid_stream() {
    let (client, server) = pair(Kind::Unix, |rq: Request| {
        let out = rq.context().take_sender().unwrap();
        out.send("one").unwrap();
        out.cancel(Code::Cancel, "the work is off");
        "never sent"
    });
    let Stream { receiver, reply, .. } = open(&client, b"", StreamOptions::receive());
    let mut receiver = receiver.unwrap();
    assert_eq!(receiver.next().unwrap().unwrap(), b"one");
    match receiver.next() {
        Some(Err(StreamEnd::Cancelled { by_peer: true, code: Code::Cancel, text })) => {
            assert_eq!(text, "the work is off")
        }
        other => panic!("{other:?}"),
    }
    match reply.wait_timeout(LONG) {
        Err(packetstream::ReplyTimeoutError::Reply(ReplyError::Cancelled { by_peer: true, .. })) => {}
        other => panic!("{other:?}"),
    }
    assert_eq!(client.outstanding(), 0);
    close_both_ok(client, server);
}

/// Dropping every handle of a stream early calls it off politely: the
/// handler sees the cancel.
#[test]
fn dropping_a_streams_handles_cancels_it() {
    let (told, heard) = events();
    let (client, server) = pair(Kind::Tcp, move |rq: Request| {
        let context = rq.context();
        let _held = context.take_receiver();
        told.send(context.wait_cancelled(LONG)).unwrap();
        "let go"
    });
    let stream = open(&client, b"", StreamOptions::send());
    drop(stream);
    assert!(event(&heard, "the handler"), "the handler saw the cancel");
    assert!(util::wait_for(LONG, || server.in_service() == 0));
    close_both_ok(client, server);
}

/// Dropping the receiver early asks the handler to stop; dropping the
/// sender ends the handler's items; the reply still comes.
#[test]
fn dropping_an_end_stops_or_ends_that_direction() {
    let (client, server) = pair(Kind::Pipe, |rq: Request| {
        let (items, out) = (rq.context().take_receiver().unwrap(), rq.context().take_sender().unwrap());
        let count = all_items(&items).len();
        let end = loop {
            if let Err(StreamSendError::Ended(end)) = out.send("more") {
                break end;
            }
        };
        format!("{count} then {end}")
    });
    let Stream { sender, receiver, reply, .. } = open(&client, b"", StreamOptions::both());
    let (sender, receiver) = (sender.unwrap(), receiver.unwrap());
    sender.send("a").unwrap();
    sender.send("b").unwrap();
    drop(sender);
    next(&receiver).expect("one item");
    drop(receiver);
    let payload = reply.wait_timeout(LONG).expect("the reply").payload;
    assert_eq!(String::from_utf8(payload).unwrap(), "2 then the receiver stopped the stream (stop)");
    close_both_ok(client, server);
}

/// A plain request given up by its caller: the handler, waiting on its
/// context, sees it at once; a plain request made with a timeout carries
/// its budget.
#[test]
fn a_plain_requests_cancel_and_budget_reach_the_handler() {
    for kind in Kind::ALL {
        let (told, heard) = events();
        let (client, server) = pair(kind, move |rq: Request| {
            let context = rq.context();
            match rq.rq_type {
                0 => told.send(format!("cancelled: {}", context.wait_cancelled(LONG))).unwrap(),
                _ => told.send(format!("budget: {:?}", context.budget())).unwrap(),
            }
        });
        let pending = client.submit(0, 0, b"slow".to_vec()).unwrap();
        // The request is in service before it is given up.
        assert!(util::wait_for(LONG, || server.in_service() == 1), "{kind:?}");
        let started = Instant::now();
        pending.cancel();
        assert_eq!(event(&heard, "the handler"), "cancelled: true", "{kind:?}");
        assert!(started.elapsed() < LONG);
        assert_eq!(client.outstanding(), 0);
        client.call_timeout(1, 0, Vec::new(), Duration::from_secs(7)).expect("budget call");
        assert_eq!(event(&heard, "the handler"), "budget: Some(7s)", "{kind:?}");
        let budget = Duration::from_millis(1500);
        client.submit_with_budget(0, 1, 0, Vec::new(), budget).unwrap().wait_timeout(LONG).expect("answer");
        assert_eq!(event(&heard, "the handler"), "budget: Some(1.5s)", "{kind:?}");
        client.call_timeout(1, 0, Vec::new(), LONG).expect("call");
        assert_eq!(event(&heard, "the handler"), format!("budget: Some({LONG:?})"));
        client.call(1, 0, Vec::new()).expect("call without a budget");
        assert_eq!(event(&heard, "the handler"), "budget: None", "{kind:?}");
        close_both_ok(client, server);
    }
}

/// A stream's budget, the deadline it makes, and a handler calling the
/// caller back while it streams.
#[test]
fn a_handler_sees_the_streams_budget_and_calls_the_peer_back() {
    let (a, b) = transport_pair(Kind::Memory);
    let server = PacketConnection::with_handler(b, on("cb-s"), |rq: Request| {
        let context = rq.context();
        let budget = context.budget().ok_or("no budget")?;
        let remaining = context.remaining().ok_or("no deadline")?;
        if remaining > budget {
            return Err("more left than the budget".to_owned());
        }
        let peer = context.peer().ok_or("no peer")?;
        let back = peer.call_timeout(0, 0, b"who is there?".to_vec(), LONG).map_err(|e| e.to_string())?;
        let out = context.take_sender().ok_or("not a stream")?;
        out.send(back.payload).map_err(|e| e.to_string())?;
        Ok(format!("budget {budget:?}"))
    })
    .unwrap();
    let client = PacketConnection::with_handler(a, on("cb-c"), |rq: Request| {
        [b"the caller, asked: ".as_slice(), &rq.payload].concat()
    })
    .unwrap();
    let Stream { receiver, reply, .. } = open(&client, b"", StreamOptions::receive().budget(Duration::from_secs(9)));
    assert_eq!(all_items(&receiver.unwrap()), [b"the caller, asked: who is there?".to_vec()]);
    assert_eq!(reply.wait_timeout(LONG).expect("reply").payload, b"budget 9s");
    close_both_ok(client, server);
}

// ---- policies ----

/// Drop-oldest: the sender never waits; a caller that reads nothing until
/// the reply keeps the newest window of items, and both ends are warned.
#[test]
fn drop_oldest_keeps_the_newest_window_and_warns_both_ends() {
    let (told, heard) = events();
    let (client, server) = pair(Kind::Memory, move |rq: Request| {
        let out = rq.context().take_sender().unwrap();
        for n in 0..100u32 {
            out.send(n.to_be_bytes()).expect("never held up");
        }
        // Once the caller's warnings have arrived (they cross the reply).
        told.send(out).unwrap();
        "sent 100"
    });
    let options = StreamOptions::receive().window(4, 1 << 20).overflow(Overflow::DropOldest);
    let Stream { receiver, reply, .. } = open(&client, b"", options);
    let receiver = receiver.unwrap();
    assert_eq!(reply.wait_timeout(LONG).expect("reply").payload, b"sent 100");
    let kept: Vec<u32> =
        all_items(&receiver).iter().map(|item| u32::from_be_bytes(item[..].try_into().unwrap())).collect();
    assert_eq!(kept, [96, 97, 98, 99]);
    let warnings = receiver.warnings();
    assert!(!warnings.is_empty() && warnings.iter().all(|w| w.code == Code::DataLoss), "{warnings:?}");
    let lost: usize = warnings.iter().map(|w| w.text.split(' ').next().unwrap().parse::<usize>().unwrap()).sum();
    assert_eq!(lost, 96, "{warnings:?}");
    drop(event(&heard, "the handler's sender"));
    close_both_ok(client, server);
}

/// The end policy: a caller that falls a window behind stops the stream
/// with data loss; what it had is still read.
#[test]
fn the_end_policy_stops_a_stream_that_falls_behind() {
    let (told, heard) = events();
    let (client, server) = pair(Kind::Memory, move |rq: Request| {
        let out = rq.context().take_sender().unwrap();
        let mut n = 0u32;
        let end = loop {
            match out.send(n.to_be_bytes()) {
                Ok(()) => n += 1,
                Err(StreamSendError::Ended(end)) => break end,
                Err(other) => panic!("{other}"),
            }
        };
        told.send(end).unwrap();
        "ended"
    });
    let options = StreamOptions::receive().window(4, 1 << 20).overflow(Overflow::End);
    let Stream { receiver, reply, .. } = open(&client, b"", options);
    match event(&heard, "the handler") {
        StreamEnd::Stopped { code: Code::DataLoss, .. } => {}
        other => panic!("{other}"),
    }
    let receiver = receiver.unwrap();
    for n in 0..4u32 {
        assert_eq!(next(&receiver).unwrap(), n.to_be_bytes());
    }
    assert!(matches!(
        next(&receiver),
        Err(StreamRecvTimeoutError::Ended(StreamEnd::Stopped { code: Code::DataLoss, .. }))
    ));
    assert_eq!(reply.wait_timeout(LONG).expect("reply").payload, b"ended");
    close_both_ok(client, server);
}

// ---- refusals and the peer's end ----

/// A peer with extensions off cannot stream: the caller is told at once,
/// nothing is sent, and plain requests go on.
#[test]
fn a_peer_without_streams_is_refused_at_once() {
    let (client, server) = pair_with(Kind::Pipe, on("ns-c"), Config::builder().name("ns-s"), |rq: Request| rq.payload);
    let started = Instant::now();
    match client.stream(0, 0, Vec::new(), StreamOptions::receive()) {
        Err(error @ StreamOpenError::Unsupported(_)) => {
            assert!(error.to_string().contains("a plain cs.packetstream peer"), "{error}")
        }
        other => panic!("{other:?}"),
    }
    assert!(started.elapsed() < LONG);
    assert_eq!(client.call_timeout(0, 0, b"plain".to_vec(), LONG).unwrap().payload, b"plain");
    close_both_ok(client, server);
    // Off at this end: refused without asking.
    let (client, server) = pair_with(Kind::Memory, Config::default(), on("ns-s2"), |rq: Request| rq.payload);
    assert!(matches!(client.stream(0, 0, Vec::new(), StreamOptions::receive()), Err(StreamOpenError::Unsupported(_))));
    close_both_ok(client, server);
}

/// A connection that serves nothing fails a stream at once; a pulled
/// connection hands it to the application's loop with its ends.
#[test]
fn streams_without_a_handler_and_pulled_streams() {
    let (a, b) = transport_pair(Kind::Memory);
    let server = PacketConnection::new(b, on("nh-s")).unwrap();
    let client = PacketConnection::new(a, on("nh-c")).unwrap();
    let Stream { reply, .. } = open(&client, b"", StreamOptions::receive());
    match reply.wait_timeout(LONG) {
        Err(packetstream::ReplyTimeoutError::Reply(ReplyError::Failed(failure))) => {
            assert_eq!(failure.text(), "no request handler")
        }
        other => panic!("{other:?}"),
    }
    close_both_ok(client, server);

    let (a, b) = transport_pair(Kind::Unix);
    let (server, requests) = PacketConnection::with_incoming(b, on("pl-s")).unwrap();
    let client = PacketConnection::new(a, on("pl-c")).unwrap();
    let Stream { sender, reply, .. } = open(&client, b"pulled", StreamOptions::send());
    let sender = sender.unwrap();
    sender.send("x").unwrap();
    sender.send("y").unwrap();
    sender.finish();
    let incoming = requests.recv_timeout(LONG).expect("the stream, pulled");
    assert!(incoming.request.is_stream());
    let items = incoming.request.context().take_receiver().unwrap();
    let got = all_items(&items);
    incoming.respond(format!("{} items", got.len()));
    assert_eq!(reply.wait_timeout(LONG).unwrap().payload, b"2 items");
    close_both_ok(client, server);
}

/// The serving end goes away mid-stream: the caller's iteration and its
/// reply end with the connection's end; and the other way round, a caller
/// that goes away ends the handler's stream.
#[test]
fn the_peer_dying_mid_stream() {
    for kind in Kind::ALL {
        // The serving end is a raw peer that sends one item and hangs up.
        let (transport, mut raw) = raw_pair(kind);
        let client = PacketConnection::new(transport, on(&kind.name('d'))).unwrap();
        let probe = raw.recv();
        let hello = b"PSX\x01\x01\x06stream\x01";
        raw.send_packet(
            &packetstream::Packet::response(probe.channel(), probe.tag(), true, 0, hello.to_vec()).unwrap(),
        );
        let Stream { receiver, reply, .. } = open(&client, b"", StreamOptions::receive());
        let opened = raw.recv();
        assert_eq!(opened.channel(), UP);
        raw.send_packet(&Message::Item(b"last words".to_vec()).into_packet(DOWN, opened.tag()).unwrap());
        let receiver = receiver.unwrap();
        assert_eq!(next(&receiver).unwrap(), b"last words");
        raw.hang_up();
        match next(&receiver) {
            Err(StreamRecvTimeoutError::Ended(StreamEnd::Connection(_))) => {}
            other => panic!("{kind:?}: {other:?}"),
        }
        assert!(matches!(
            reply.wait_timeout(LONG),
            Err(packetstream::ReplyTimeoutError::Reply(ReplyError::Connection(_)))
        ));
        let _ = close(client);

        // The caller is a raw peer that opens a stream and hangs up.
        let (told, heard) = events();
        let (conn, mut raw) = agreed_raw(kind, move |rq: Request| {
            let out = rq.context().take_sender().unwrap();
            let end = loop {
                if let Err(StreamSendError::Ended(end)) = out.send("into the void") {
                    break end;
                }
            };
            told.send((end, rq.context().is_peer_gone())).unwrap();
        });
        let open = Open {
            rq_type: 0,
            flags: 0,
            caller_sends: false,
            caller_receives: true,
            credit: Credit { items: 1, bytes: 100 },
            budget: None,
            payload: Vec::new(),
        };
        raw.send_packet(&up(0, Message::Open(open)));
        assert!(matches!(from_down(raw.recv(), 0), Message::Item(_)));
        raw.hang_up();
        let (end, gone) = event(&heard, "the handler");
        assert!(matches!(end, StreamEnd::Connection(_)), "{kind:?}: {end}");
        assert!(gone, "{kind:?}");
        let _ = close(conn);
    }
}

/// A thousand streams open on one connection at once, each with its own
/// handler waiting for its caller's item.
#[test]
fn a_thousand_concurrent_streams() {
    const STREAMS: usize = 1000;
    let (client, server) = pair(Kind::Unix, |rq: Request| {
        let (items, out) = (rq.context().take_receiver().unwrap(), rq.context().take_sender().unwrap());
        let item = items.recv_timeout(LONG).map_err(|e| e.to_string())?;
        for _ in 0..3 {
            out.send(item.clone()).map_err(|e| e.to_string())?;
        }
        Ok::<_, String>(item)
    });
    let streams: Vec<Stream> = (0..STREAMS).map(|_| open(&client, b"", StreamOptions::both())).collect();
    // Every handler is running and waiting for its item now.
    assert!(util::wait_for(LONG, || server.in_service() == STREAMS), "{} in service", server.in_service());
    let mut parts = Vec::new();
    for (n, Stream { sender, receiver, reply, .. }) in streams.into_iter().enumerate() {
        let sender: StreamSender = sender.unwrap();
        sender.send(n.to_string()).unwrap();
        parts.push((n, receiver.unwrap(), reply));
    }
    for (n, receiver, reply) in parts {
        let items = all_items(&receiver);
        assert_eq!(items, vec![n.to_string().into_bytes(); 3]);
        assert_eq!(reply.wait_timeout(LONG).unwrap().payload, n.to_string().as_bytes());
    }
    assert_eq!(client.stats().streams_out, STREAMS as u64);
    assert_eq!(server.stats().streams_in, STREAMS as u64);
    let name = server.name().to_owned();
    close_both_ok(client, server);
    assert_no_threads(&name);
}

/// Past the configured limit an open is refused with a failure that says
/// so, and the connection goes on.
#[test]
fn too_many_streams_are_refused() {
    let (release, gate) = crossbeam_channel::bounded::<()>(0);
    let gate = Arc::new(gate);
    let (client, server) = pair_with(Kind::Memory, on("tm-c"), on("tm-s").max_streams(2), move |_rq: Request| {
        let _ = gate.recv_timeout(LONG);
    });
    let held: Vec<Stream> = (0..2).map(|_| open(&client, b"", StreamOptions::receive())).collect();
    let Stream { reply, .. } = open(&client, b"", StreamOptions::receive());
    match reply.wait_timeout(LONG) {
        Err(packetstream::ReplyTimeoutError::Reply(ReplyError::Failed(failure))) => {
            assert_eq!(failure.text(), "too many streams at once (at most 2)")
        }
        other => panic!("{other:?}"),
    }
    for _ in 0..2 {
        release.send_timeout((), LONG).unwrap();
    }
    for Stream { reply, .. } in held {
        reply.wait_timeout(LONG).expect("the held streams end");
    }
    close_both_ok(client, server);
}

/// Closing with a stream whose handler waits for credit that never comes
/// ends within the close timeout: the stream ends, its handler returns, and
/// no thread is left.
#[test]
fn close_ends_a_stuck_stream() {
    let (told, heard) = events();
    let config = on("cs-s").close_timeout(Duration::from_millis(300));
    let (client, server) = pair_with(Kind::Unix, on("cs-c"), config, move |rq: Request| {
        let out = rq.context().take_sender().unwrap();
        let end = loop {
            if let Err(StreamSendError::Ended(end)) = out.send("unread") {
                break end;
            }
        };
        told.send(end.to_string()).unwrap();
    });
    let stream = open(&client, b"", StreamOptions::receive().window(2, 100));
    // The handler has used its window.
    assert!(util::wait_for(LONG, || server.stats().packets_out >= 4));
    let name = server.name().to_owned();
    let closing = util::start_close(server);
    let end = event(&heard, "the handler");
    assert_eq!(end, "connection closed");
    drop(stream);
    let client_closing = util::start_close(client);
    // The drain timed out on the stream, so the close says so.
    let error = closing.result().expect_err("a drain that timed out");
    assert!(error.is_timeout(), "{error}");
    let _ = client_closing.result();
    assert_no_threads(&name);
}

// ---- the bytes docs/protocol.md shows ----

#[test]
fn the_documented_stream_frames() {
    let open = Open {
        rq_type: 0,
        flags: 0,
        caller_sends: false,
        caller_receives: true,
        credit: Credit { items: 2, bytes: 100 },
        budget: None,
        payload: b"gimme".to_vec(),
    };
    let frame = |message: Message, channel| util::raw::frame(&message.into_packet(channel, 9).unwrap());
    assert_eq!(frame(Message::Open(open), UP), hex("10 09 03 ff fe 01 01 00 02 02 64 00 67 69 6d 6d 65"));
    assert_eq!(frame(Message::Item(b"ONE".to_vec()), DOWN), hex("09 09 03 ff fe 02 02 4f 4e 45"));
    assert_eq!(frame(Message::Credit(Credit { items: 1, bytes: 100 }), UP), hex("08 09 03 ff fe 01 03 01 64"));
    assert_eq!(frame(Message::End, DOWN), hex("06 09 03 ff fe 02 05"));
    let reply = Message::Reply(Reply { ok: true, flags: 0, payload: b"done".to_vec() });
    assert_eq!(frame(reply, DOWN), hex("0a 09 07 ff fe 02 08 64 6f 6e 65"));
}

/// The probe, a budget notice and a cancel notice as a connection sends
/// them.
#[test]
fn the_documented_probe_and_notices() {
    let (transport, mut raw) = raw_pair(Kind::Memory);
    let conn = PacketConnection::new(transport, on("doc-c")).unwrap();
    let probe = raw.recv();
    let documented =
        "21 00 03 ff fe 00 01 50 53 58 01 03 04 71 75 69 74 01 06 73 74 72 65 61 6d 01 06 63 61 6e 63 65 6c 01";
    assert_eq!(util::raw::frame(&probe), hex(documented));
    let hello = b"PSX\x01\x01\x06cancel\x01";
    raw.send_packet(&packetstream::Packet::response(probe.channel(), probe.tag(), true, 0, hello.to_vec()).unwrap());
    assert!(agreed_on(&conn.wait_extensions(LONG), Feature::Cancel));
    let pending = conn.submit_with_budget(0, 0, 0, b"x".to_vec(), Duration::from_millis(250)).unwrap();
    assert_eq!(util::raw::frame(&raw.recv()), hex("0b 01 03 ff fe 00 06 00 02 8f a1 10"));
    assert_eq!((raw.recv().channel(), pending.tag()), (0, 2), "the request follows its budget");
    pending.cancel();
    assert_eq!(util::raw::frame(&raw.recv()), hex("08 02 03 ff fe 00 05 00 02"));
    util::raw::close_after_peer_eof(conn, &mut raw);
}

/// A peer that agreed on streams but answers an open as a request (a
/// refusal) ends the stream with its text; nothing is sent back.
#[test]
fn an_open_answered_as_a_request_ends_the_stream() {
    let (transport, mut raw) = raw_pair(Kind::Memory);
    let client = PacketConnection::new(transport, on("ref-c")).unwrap();
    let probe = raw.recv();
    let hello = b"PSX\x01\x01\x06stream\x01";
    raw.send_packet(&packetstream::Packet::response(probe.channel(), probe.tag(), true, 0, hello.to_vec()).unwrap());
    let Stream { receiver, reply, .. } = open(&client, b"", StreamOptions::receive());
    let opened = raw.recv();
    raw.send_packet(
        &packetstream::Packet::response(UP, opened.tag(), false, 0, b"unknown channel 2096897".to_vec()).unwrap(),
    );
    match reply.wait_timeout(LONG) {
        Err(packetstream::ReplyTimeoutError::Reply(ReplyError::Broken(text))) => {
            assert_eq!(text, "the peer refused the stream: unknown channel 2096897")
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(next(&receiver.unwrap()), Err(StreamRecvTimeoutError::Ended(StreamEnd::Broken(_)))));
    assert_eq!(client.outstanding(), 0);
    raw.send_packet(&packetstream::Packet::eof());
    let closing = util::start_close(client);
    assert_eq!(raw.recv(), packetstream::Packet::erq(), "no stream message after the refusal");
    assert_eq!(raw.recv(), packetstream::Packet::eof());
    closing.result().expect("clean close");
}
