//! Hangs and crashes the fuzz targets (`fuzz/`) found, each as the
//! smallest scenario on the public API that shows it.

mod util;

use std::io::{self, Write};
use std::thread;
use std::time::Instant;

use crossbeam_channel::Receiver;
use packetstream::{memory_pipe, Config, MemoryWriter, Packet, PacketConnection, Request, Transport};
use util::raw::{feed, frame};
use util::{start_close, unique_name, LONG, PROMPT};

/// Writes nothing until its gate opens (its sender sends or goes), so
/// that the connection's send queue fills up behind it.
struct GatedWriter {
    gate: Option<Receiver<()>>,
    inner: MemoryWriter,
}

impl Write for GatedWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if let Some(gate) = self.gate.take() {
            let _ = gate.recv_timeout(LONG);
        }
        self.inner.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Found by `connection`: answers the reader could not queue (the send
/// queue was full) wait for a worker, and a worker that sent the last of
/// them did not wake close, which then waited out its whole timeout before
/// it would send EOF. Here the only worker is busy in a handler while six
/// refusals pile up, and is let go once close is draining.
#[test]
fn close_wakes_when_the_last_answer_left_to_a_worker_goes() {
    let name = unique_name('f', 'q');
    let (our_read, mut to_conn) = memory_pipe();
    let (from_conn, our_write) = memory_pipe();
    let (open_writer, writer_gate) = crossbeam_channel::bounded::<()>(1);
    let (entered_tx, entered) = crossbeam_channel::bounded::<()>(1);
    let (release, released) = crossbeam_channel::bounded::<()>(1);
    let handler = move |_: Request| {
        let _ = entered_tx.send(());
        let _ = released.recv_timeout(LONG);
        "held"
    };
    let config = Config::builder().name(&name).workers(1).send_queue(1).max_incoming(16).close_timeout(LONG);
    let transport = Transport::new(our_read, GatedWriter { gate: Some(writer_gate), inner: our_write });
    let conn = PacketConnection::with_handler(transport, config, handler).expect("start");
    let packets = feed(Box::new(from_conn));
    let mut send = |packet: Packet| to_conn.write_all(&frame(&packet)).expect("write to the connection");

    send(Packet::request(0, 0, 0, 0, Vec::new()).unwrap());
    entered.recv_timeout(LONG).expect("the handler holds a thread");
    // Refused by the reader at once (channel 7 is not served): one refusal
    // in the blocked writer, one in the queue, the rest for a worker.
    for tag in 1..=6 {
        send(Packet::request(7, tag, 0, 0, Vec::new()).unwrap());
    }
    let deadline = Instant::now() + LONG;
    while conn.stats().requests_in < 7 {
        assert!(Instant::now() < deadline, "the reader did not read the requests");
        thread::yield_now();
    }
    open_writer.send(()).unwrap();
    let closing = start_close(conn);
    // Close sends ERQ before it drains.
    let mut before_eof = Vec::new();
    loop {
        let packet = packets.next();
        if packet.control().is_some() {
            assert_eq!(packet, Packet::erq(), "ERQ first");
            break;
        }
        before_eof.push(packet);
    }
    release.send(()).unwrap();
    let released_at = Instant::now();
    loop {
        let packet = packets.next();
        if packet.is_eof() {
            break;
        }
        before_eof.push(packet);
    }
    send(Packet::eof());
    closing.result().expect("a clean close");
    let took = released_at.elapsed();
    assert!(took < PROMPT, "close took {took:?} once the answers could go");
    let mut answered: Vec<(u64, u64)> = before_eof.iter().map(|packet| (packet.channel(), packet.tag())).collect();
    answered.sort_unstable();
    assert_eq!(answered, [(0, 0), (7, 1), (7, 2), (7, 3), (7, 4), (7, 5), (7, 6)], "every answer before EOF");
}
