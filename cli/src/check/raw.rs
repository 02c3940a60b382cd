//! A raw connection to the peer under test: frames written by hand, and
//! what the peer writes decoded on a thread of its own, so that every wait
//! has a bound and a peer that stops reading or writing cannot hang a check.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::os::unix::net::UnixStream;
use std::process::{Child, ExitStatus, Stdio};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use packetstream::net::Addr;
use packetstream::wire::{self, Packet};

use crate::peer::Peer;
use crate::scan::{Event, Scanner};
use crate::sys::wait_until;

/// What the peer sent, as the reading thread saw it.
#[derive(Debug)]
pub enum Incoming {
    /// A packet.
    Packet(Packet),
    /// Bytes that break the format (nothing after them is decoded).
    Malformed(String),
    /// The end of the peer's stream.
    End,
    /// Nothing within the wait.
    Quiet,
}

/// What the writing thread is asked to do.
enum Order {
    Write(Vec<u8>),
    /// Write each byte on its own, flushed: the peer reads it in pieces.
    Trickle(Vec<u8>),
    /// End the peer's input.
    End,
}

/// The far end of a socket, kept to shut it down.
enum Far {
    Socket(Box<dyn Fn(Shutdown) + Send>),
    Child(Child),
}

/// A connection to the peer, worked by hand.
pub struct RawLink {
    orders: Option<Sender<Order>>,
    done: Receiver<io::Result<()>>,
    incoming: Receiver<Incoming>,
    threads: Vec<JoinHandle<()>>,
    far: Far,
    timeout: Duration,
    /// Set once the stream's end has been received.
    ended: bool,
}

impl RawLink {
    /// Connects to the peer, or starts it.
    pub fn open(peer: &Peer, timeout: Duration, quiet: bool, max_packet_size: usize) -> Result<RawLink, String> {
        let (reader, writer, far): (Box<dyn Read + Send>, Box<dyn Write + Send>, Far) = match peer {
            Peer::Connect(addr) => socket(addr, timeout)?,
            Peer::Command(_) => {
                let mut command = peer.command(quiet).expect("a command peer");
                command.stdin(Stdio::piped()).stdout(Stdio::piped());
                let mut child = command.spawn().map_err(|error| format!("cannot start {peer}: {error}"))?;
                let stdin = child.stdin.take().expect("piped stdin");
                let stdout = child.stdout.take().expect("piped stdout");
                (Box::new(stdout), Box::new(stdin), Far::Child(child))
            }
        };
        let (incoming_tx, incoming) = crossbeam_channel::unbounded();
        let (orders_tx, orders) = crossbeam_channel::unbounded();
        let (done_tx, done) = crossbeam_channel::unbounded();
        let spawned = thread::Builder::new()
            .name("check-reader".into())
            .spawn(move || read(reader, max_packet_size, &incoming_tx))
            .and_then(|reader| {
                thread::Builder::new()
                    .name("check-writer".into())
                    .spawn(move || write(writer, &orders, &done_tx))
                    .map(|writer| vec![reader, writer])
            });
        let mut link =
            RawLink { orders: Some(orders_tx), done, incoming, threads: Vec::new(), far, timeout, ended: false };
        match spawned {
            Ok(threads) => {
                link.threads = threads;
                Ok(link)
            }
            Err(error) => {
                link.interrupt();
                Err(format!("cannot start a thread: {error}"))
            }
        }
    }

    /// Writes `bytes`, within the bound.
    pub fn send(&mut self, bytes: Vec<u8>) -> Result<(), String> {
        self.order(Order::Write(bytes))
    }

    /// Writes `packets`' frames in one piece.
    pub fn send_packets(&mut self, packets: &[Packet]) -> Result<(), String> {
        let mut bytes = Vec::new();
        for packet in packets {
            wire::encode(packet, &mut bytes);
        }
        self.send(bytes)
    }

    /// Writes `bytes` one at a time, each flushed.
    pub fn trickle(&mut self, bytes: Vec<u8>) -> Result<(), String> {
        self.order(Order::Trickle(bytes))
    }

    /// Ends the peer's input (the end of its stream, not an EOF packet).
    pub fn end_output(&mut self) -> Result<(), String> {
        if self.orders.is_none() {
            return Ok(());
        }
        let result = self.order(Order::End);
        self.orders = None;
        // The reading clone of a socket keeps it open past the writer's
        // drop: its write side is shut down outright.
        if let Far::Socket(shutdown) = &self.far {
            shutdown(Shutdown::Write);
        }
        result
    }

    fn order(&mut self, order: Order) -> Result<(), String> {
        let what = match &order {
            Order::Write(bytes) | Order::Trickle(bytes) => format!("{} bytes", bytes.len()),
            Order::End => "the end of its input".to_owned(),
        };
        let orders = self.orders.as_ref().ok_or("the peer's input has ended already")?;
        orders.send(order).map_err(|_| "the writing thread has gone".to_owned())?;
        match self.done.recv_timeout(self.timeout) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(error)) => Err(format!("cannot write {what} to the peer: {error}")),
            Err(_) => {
                self.interrupt();
                Err(format!("the peer did not take {what} within {} s", self.timeout.as_secs_f64()))
            }
        }
    }

    /// The next thing from the peer, waiting at most `wait`.
    pub fn recv_within(&mut self, wait: Duration) -> Incoming {
        if self.ended {
            return Incoming::End;
        }
        match self.incoming.recv_timeout(wait) {
            Ok(Incoming::End) | Err(RecvTimeoutError::Disconnected) => {
                self.ended = true;
                Incoming::End
            }
            Ok(incoming) => incoming,
            Err(RecvTimeoutError::Timeout) => Incoming::Quiet,
        }
    }

    /// The next packet, within the bound; anything else is an error that
    /// names `what` was awaited.
    pub fn expect_packet(&mut self, what: &str) -> Result<Packet, String> {
        match self.recv_within(self.timeout) {
            Incoming::Packet(packet) => Ok(packet),
            Incoming::Malformed(error) => Err(format!("waiting for {what}, the peer sent malformed bytes: {error}")),
            Incoming::End => Err(format!("the peer ended its stream before {what}")),
            Incoming::Quiet => Err(format!("no {what} within {} s", self.timeout.as_secs_f64())),
        }
    }

    /// Everything the peer sends until its stream ends, within the bound.
    pub fn until_end(&mut self) -> Result<Vec<Packet>, String> {
        let deadline = Instant::now() + self.timeout;
        let mut packets = Vec::new();
        loop {
            match self.recv_within(deadline.saturating_duration_since(Instant::now())) {
                Incoming::Packet(packet) => packets.push(packet),
                Incoming::End => return Ok(packets),
                Incoming::Malformed(error) => return Err(format!("the peer sent malformed bytes: {error}")),
                Incoming::Quiet => {
                    return Err(format!(
                        "the peer's stream did not end within {} s (after {} more packets)",
                        self.timeout.as_secs_f64(),
                        packets.len()
                    ))
                }
            }
        }
    }

    /// Shuts the link down: ends the peer's input, gives it the bound to end
    /// its stream and (a child) to exit, then ends it by force. The child's
    /// exit status, if it exited in time by itself.
    pub fn finish(mut self) -> Finish {
        let _ = self.end_output();
        let deadline = Instant::now() + self.timeout;
        while !self.ended && Instant::now() < deadline {
            let _ = self.recv_within(deadline.saturating_duration_since(Instant::now()));
        }
        let ended = self.ended;
        let status = match &mut self.far {
            Far::Child(child) => wait_until(child, deadline),
            Far::Socket(_) => None,
        };
        let forced = !ended || (matches!(self.far, Far::Child(_)) && status.is_none());
        self.interrupt();
        Finish { status, forced }
    }

    /// Unblocks both threads: the socket shut down, the child killed (and
    /// reaped), so that they can be joined.
    fn interrupt(&mut self) {
        self.orders = None;
        match &mut self.far {
            Far::Socket(shutdown) => shutdown(Shutdown::Both),
            Far::Child(child) => {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

impl Drop for RawLink {
    fn drop(&mut self) {
        self.interrupt();
    }
}

/// How a link ended.
pub struct Finish {
    /// A child's exit status, if it exited by itself within the bound.
    pub status: Option<ExitStatus>,
    /// Whether the peer had to be cut off: its stream did not end, or the
    /// child did not exit, in time.
    pub forced: bool,
}

type Ends = (Box<dyn Read + Send>, Box<dyn Write + Send>, Far);

fn socket(addr: &Addr, timeout: Duration) -> Result<Ends, String> {
    let named = |error: io::Error| format!("cannot connect to {addr}: {error}");
    match addr {
        Addr::Unix(path) => {
            let stream = UnixStream::connect(path).map_err(named)?;
            let (reader, killer) = (stream.try_clone().map_err(named)?, stream.try_clone().map_err(named)?);
            Ok((Box::new(reader), Box::new(stream), Far::Socket(Box::new(move |how| drop(killer.shutdown(how))))))
        }
        _ => {
            let deadline = Instant::now() + timeout;
            let mut last = None;
            for candidate in addr.resolve().map_err(named)? {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    break;
                }
                match TcpStream::connect_timeout(&candidate, left) {
                    Ok(stream) => {
                        stream.set_nodelay(true).map_err(named)?;
                        let reader = stream.try_clone().map_err(named)?;
                        let killer = stream.try_clone().map_err(named)?;
                        let shutdown = Box::new(move |how| drop(killer.shutdown(how)));
                        return Ok((Box::new(reader), Box::new(stream), Far::Socket(shutdown)));
                    }
                    Err(error) => last = Some(error),
                }
            }
            Err(named(last.unwrap_or_else(|| io::ErrorKind::TimedOut.into())))
        }
    }
}

/// The reading thread: packets until the end of the stream. After bytes
/// that break the format it goes on reading (and dropping), so that a peer
/// still writing is not blocked by a full pipe.
fn read(mut from: Box<dyn Read + Send>, max_packet_size: usize, to: &Sender<Incoming>) {
    let mut scanner = Scanner::new(max_packet_size);
    let mut buf = vec![0; 64 << 10];
    let mut events = Vec::new();
    loop {
        match from.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => scanner.push(&buf[..n], &mut events),
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        }
        for event in events.drain(..) {
            let _ = to.send(incoming(event));
        }
    }
    if let Some(event) = scanner.finish() {
        let _ = to.send(incoming(event));
    }
    let _ = to.send(Incoming::End);
}

fn incoming(event: Event) -> Incoming {
    match event {
        Event::Packet { packet, .. } => Incoming::Packet(packet),
        Event::Malformed { offset, error } => Incoming::Malformed(format!("at byte {offset}: {error}")),
    }
}

/// The writing thread: each order done and acknowledged.
fn write(to: Box<dyn Write + Send>, orders: &Receiver<Order>, done: &Sender<io::Result<()>>) {
    let mut to = Some(to);
    for order in orders {
        let result = match (&mut to, order) {
            (Some(writer), Order::Write(bytes)) => writer.write_all(&bytes).and_then(|()| writer.flush()),
            (Some(writer), Order::Trickle(bytes)) => {
                bytes.iter().try_for_each(|byte| writer.write_all(&[*byte]).and_then(|()| writer.flush()))
            }
            (writer @ Some(_), Order::End) => {
                drop(writer.take());
                Ok(())
            }
            (None, _) => Err(io::Error::new(io::ErrorKind::BrokenPipe, "the input has ended")),
        };
        let _ = done.send(result);
    }
}
