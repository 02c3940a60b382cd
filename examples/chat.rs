//! Two processes talking at once, both ways, in one streaming request.
//!
//!     chat [--lines N] [--window ITEMS]
//!
//! Starts this program itself as a child, over the child's stdin and
//! stdout, and opens ONE stream to it with items both ways
//! (`StreamOptions::both()`). Each side sends N lines (default 1000) while
//! it reads the other's: the parent sends `parent line I of N`, the child
//! `child line I of N`, for I from 1 to N. Each side's receive window is
//! ITEMS items (default 8) and ITEMS KiB, so with N above ITEMS neither
//! side can send all its lines before reading: a chat that only sent first
//! and read after would deadlock.
//!
//! The parent writes every line it receives on stdout, the child every line
//! it receives on stderr (its stdout carries the packets); each checks that
//! the other's lines arrive complete and in order. The last line on stdout
//! is
//!
//!     chat lines=N window=ITEMS parent_sent=N parent_received=N child_sent=N child_received=N seconds=S
//!
//! (the child's counts come in the stream's final reply). Any error exits
//! non-zero with the reason on stderr: 2 for bad arguments, 1 for the rest.
//!
//!     cargo run --example chat -- --lines 20 --window 4

use std::io::{self, Write};
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use packetstream::stream::Code;
use packetstream::{
    CloseOptions, Config, PacketConnection, ReplyError, ReplyTimeoutError, Request, Stream, StreamOptions,
    StreamReceiver, StreamRecvTimeoutError, StreamSender, Transport,
};

/// Passed to ourselves, with the window, to run as the child.
const SERVE_FLAG: &str = "--serve-chat";
const CHAT_RQ_TYPE: u64 = 0;
const DEFAULT_LINES: u64 = 1000;
const DEFAULT_WINDOW: u64 = 8;
/// Far more than any line takes, so that only the item count binds.
const WINDOW_BYTES_PER_ITEM: u64 = 1024;
/// A side that goes quiet fails the run instead of hanging it.
const LINE_TIMEOUT: Duration = Duration::from_secs(60);
const CLOSE_TIMEOUT: Duration = Duration::from_secs(30);

const USAGE: &str = "usage: chat [--lines N] [--window ITEMS]";

fn line(who: &str, i: u64, lines: u64) -> String {
    format!("{who} line {i} of {lines}")
}

/// Sends `who`'s lines, then says they are over.
fn send_lines(sender: StreamSender, who: &str, lines: u64) -> Result<u64, String> {
    for i in 1..=lines {
        sender.send_timeout(line(who, i, lines), LINE_TIMEOUT).map_err(|e| format!("sending line {i}: {e}"))?;
    }
    sender.finish();
    Ok(lines)
}

/// Takes `from`'s lines until they end, checking each against what it must
/// be, and hands each to `show`.
fn receive_lines(
    receiver: &StreamReceiver,
    from: &str,
    lines: u64,
    mut show: impl FnMut(&str) -> io::Result<()>,
) -> Result<u64, String> {
    let mut count = 0;
    loop {
        match receiver.recv_timeout(LINE_TIMEOUT) {
            Ok(item) => {
                count += 1;
                let expected = line(from, count, lines);
                if count > lines || item != expected.as_bytes() {
                    let got = String::from_utf8_lossy(&item);
                    return Err(format!("line {count} from the {from} should be {expected:?}, not {got:?}"));
                }
                show(&expected).map_err(|e| format!("showing line {count}: {e}"))?;
            }
            Err(StreamRecvTimeoutError::Finished) => break,
            Err(StreamRecvTimeoutError::Timeout) => {
                return Err(format!("nothing from the {from} for {LINE_TIMEOUT:?}, after {count} lines"))
            }
            Err(error) => return Err(format!("the {from}'s lines ended after {count}: {error}")),
        }
    }
    if count != lines {
        return Err(format!("the {from} sent {count} lines, not {lines}"));
    }
    Ok(count)
}

/// The child's handler: its lines out while the parent's come in.
fn converse(rq: Request) -> Result<String, String> {
    if rq.rq_type != CHAT_RQ_TYPE {
        return Err(format!("unknown request type {}", rq.rq_type));
    }
    let lines: u64 = std::str::from_utf8(&rq.payload)
        .ok()
        .and_then(|text| text.parse().ok())
        .ok_or("the request's payload is not a line count")?;
    let context = rq.context();
    let both = "open the stream with StreamOptions::both()";
    let (sender, receiver) = (context.take_sender().ok_or(both)?, context.take_receiver().ok_or(both)?);
    let (sent, received) = std::thread::scope(|scope| {
        let sending = scope.spawn(|| send_lines(sender, "child", lines));
        let mut stderr = io::stderr();
        let received =
            receive_lines(&receiver, "parent", lines, |line| stderr.write_all(format!("{line}\n").as_bytes()));
        if let Err(error) = &received {
            // Else our own sends could wait for credit that never comes.
            receiver.cancel(Code::Cancel, error);
        }
        let sent = sending.join().unwrap_or_else(|_| Err("the sending thread panicked".into()));
        (sent, received)
    });
    let received = received?;
    Ok(format!("sent={} received={received}", sent?))
}

fn serve(window: u64) -> ExitCode {
    let run = || -> Result<(), packetstream::Error> {
        let config = Config::builder()
            .name("chat-child")
            .extensions(true)
            .stream_window(window, window.saturating_mul(WINDOW_BYTES_PER_ITEM));
        let conn = PacketConnection::with_handler(Transport::stdio()?, config, converse)?;
        let received = conn.join_recv();
        let closed = conn.close();
        received?;
        closed?;
        Ok(())
    };
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("chat (child): {error}");
            ExitCode::FAILURE
        }
    }
}

struct Options {
    lines: u64,
    window: u64,
}

fn parse_args() -> Result<Options, String> {
    let mut options = Options { lines: DEFAULT_LINES, window: DEFAULT_WINDOW };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| -> Result<u64, String> {
            let text = args.next().ok_or(format!("{name} needs a value"))?;
            text.parse().map_err(|_| format!("{name}: not a number: {text}"))
        };
        match arg.as_str() {
            "--lines" => options.lines = value("--lines")?,
            "--window" => {
                options.window = value("--window")?;
                if options.window == 0 {
                    return Err("--window: at least 1 item".into());
                }
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(options)
}

/// `name=value` from the child's reply.
fn reply_field(reply: &str, name: &str) -> Result<u64, String> {
    reply
        .split_whitespace()
        .find_map(|field| field.strip_prefix(name)?.strip_prefix('='))
        .and_then(|value| value.parse().ok())
        .ok_or_else(|| format!("the child's reply has no {name}: {reply:?}"))
}

fn chat(conn: &PacketConnection, options: &Options) -> Result<String, String> {
    let Options { lines, window } = *options;
    let start = Instant::now();
    let both = StreamOptions::both().window(window, window.saturating_mul(WINDOW_BYTES_PER_ITEM));
    let Stream { sender, receiver, reply, .. } =
        conn.stream(CHAT_RQ_TYPE, 0, lines.to_string(), both).map_err(|e| format!("cannot open the stream: {e}"))?;
    let (sender, receiver) = sender.zip(receiver).ok_or("the stream came without both ends")?;
    let (sent, received, reply) = std::thread::scope(|scope| {
        let sending = scope.spawn(move || send_lines(sender, "parent", lines));
        let mut stdout = io::stdout().lock();
        let received = receive_lines(&receiver, "child", lines, |line| writeln!(stdout, "{line}"));
        drop(receiver);
        let reply = match &received {
            Ok(_) => Some(reply),
            Err(error) => {
                // Else our own sends could wait for credit that never comes.
                reply.cancel_with(Code::Cancel, error);
                None
            }
        };
        let sent = sending.join().unwrap_or_else(|_| Err("the sending thread panicked".into()));
        (sent, received, reply)
    });
    let received = received?;
    let sent = sent?;
    let answer = match reply.map(|reply| reply.wait_timeout(LINE_TIMEOUT)) {
        Some(Ok(answer)) => answer,
        Some(Err(ReplyTimeoutError::Reply(ReplyError::Failed(failure)))) => {
            return Err(format!("the child failed: {}", failure.text()))
        }
        Some(Err(error)) => return Err(format!("the stream's reply: {error}")),
        None => unreachable!("the reply is cancelled only when receiving failed"),
    };
    let seconds = start.elapsed().as_secs_f64();
    let answer = String::from_utf8_lossy(&answer.payload);
    let (child_sent, child_received) = (reply_field(&answer, "sent")?, reply_field(&answer, "received")?);
    Ok(format!(
        "chat lines={lines} window={window} parent_sent={sent} parent_received={received} \
         child_sent={child_sent} child_received={child_received} seconds={seconds:.3}"
    ))
}

fn run(options: &Options) -> Result<String, String> {
    let me = std::env::current_exe().map_err(|e| format!("cannot find myself: {e}"))?;
    let mut command = Command::new(me);
    command.arg(SERVE_FLAG).arg(options.window.to_string());
    let transport = Transport::spawn(&mut command).map_err(|e| format!("cannot start the child: {e}"))?;
    let config = Config::builder().name("chat").extensions(true);
    let conn = PacketConnection::new(transport, config).map_err(|e| format!("cannot start the connection: {e}"))?;
    let chatted = chat(&conn, options);
    // Closed whatever happened, so that the child is reaped, not orphaned.
    let closed = conn.close_with(CloseOptions::new().timeout(CLOSE_TIMEOUT));
    let summary = chatted?;
    let finished = closed.map_err(|e| format!("close: {e}"))?;
    match finished.exit_status() {
        Some(status) if status.success() => Ok(summary),
        other => Err(format!("the child exited badly: {other:?}")),
    }
}

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    if args.next().as_deref() == Some(SERVE_FLAG) {
        let Some(window) = args.next().and_then(|text| text.parse().ok()) else {
            eprintln!("chat (child): {SERVE_FLAG} needs the window");
            return ExitCode::from(2);
        };
        return serve(window);
    }
    let options = match parse_args() {
        Ok(options) => options,
        Err(message) => {
            eprintln!("chat: {message}");
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(&options) {
        Ok(summary) => {
            println!("{summary}");
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("chat: {message}");
            ExitCode::FAILURE
        }
    }
}
