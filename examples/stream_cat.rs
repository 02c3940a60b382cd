//! Streams a file from a child process, inside one streaming request, to a
//! reader that may be slow.
//!
//!     stream_cat [--window ITEMS] [--chunk BYTES] [--slow-us MICROS] FILE
//!
//! Starts this program itself as a child, over the child's stdin and
//! stdout, and opens ONE stream to it (`StreamOptions::receive()`). The
//! child reads FILE and sends it back in items of BYTES bytes (default
//! 64 KiB, at most 8 MiB, so that a frame stays under the connection's
//! 16 MiB limit; only the last item is shorter). The parent writes every
//! item to its stdout, in order, and sleeps MICROS microseconds after each
//! (default 0): a slow reader.
//!
//! The parent's receive window is ITEMS items (default 64) and ITEMS x
//! BYTES bytes, so that the item count is what binds: the child never has
//! more than ITEMS chunks sent and unread, 4 MiB with the defaults, however
//! large FILE is and however slow the reader. Memory stays flat in both
//! processes, which the summary shows.
//!
//! The last line on stderr is
//!
//!     streamed bytes=N items=K seconds=S parent_hwm_kib=P child_hwm_kib=C
//!
//! with the bytes and items written, the time from opening the stream to
//! its final reply, and each process's peak resident memory (`VmHWM` from
//! `/proc/self/status`; the child sends its own in the final reply). Any
//! error (bad arguments, a FILE that cannot be read, the stream ending
//! early, a failed reply, stdout refusing the bytes) exits non-zero with the
//! reason on stderr: 2 for bad arguments, 1 for the rest.
//!
//!     cargo run --release --example stream_cat -- --slow-us 100 big.file > copy

use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use packetstream::{
    CloseOptions, Config, PacketConnection, ReplyError, ReplyTimeoutError, Request, Stream, StreamOptions,
    StreamRecvTimeoutError, Transport,
};

/// Passed to ourselves to run as the child that reads the file.
const SERVE_FLAG: &str = "--serve-stream-cat";
/// The one request type the child serves: stream a file.
const CAT_RQ_TYPE: u64 = 0;
const DEFAULT_CHUNK: usize = 64 << 10;
/// Leaves room for the item's header under the default 16 MiB frame limit.
const MAX_CHUNK: usize = 8 << 20;
const DEFAULT_WINDOW: u64 = 64;
/// A child that stops sending fails the run instead of hanging it.
const ITEM_TIMEOUT: Duration = Duration::from_secs(60);
const REPLY_TIMEOUT: Duration = Duration::from_secs(60);
const CLOSE_TIMEOUT: Duration = Duration::from_secs(30);

const USAGE: &str = "usage: stream_cat [--window ITEMS] [--chunk BYTES] [--slow-us MICROS] FILE";

struct Options {
    window: u64,
    chunk: usize,
    slow: Duration,
    file: PathBuf,
}

fn parse_args() -> Result<Options, String> {
    let mut window = DEFAULT_WINDOW;
    let mut chunk = DEFAULT_CHUNK;
    let mut slow = Duration::ZERO;
    let mut file = None;
    let mut args = std::env::args_os().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| -> Result<u64, String> {
            let text = args.next().ok_or(format!("{name} needs a value"))?;
            let text = text.to_string_lossy();
            text.parse().map_err(|_| format!("{name}: not a number: {text}"))
        };
        match arg.to_str() {
            Some("--window") => {
                window = value("--window")?;
                if window == 0 {
                    return Err("--window: at least 1 item".into());
                }
            }
            Some("--chunk") => {
                let bytes = value("--chunk")?;
                if bytes == 0 || bytes > MAX_CHUNK as u64 {
                    return Err(format!("--chunk: from 1 to {MAX_CHUNK} bytes, not {bytes}"));
                }
                chunk = bytes as usize;
            }
            Some("--slow-us") => slow = Duration::from_micros(value("--slow-us")?),
            Some(other) if other.starts_with("--") => return Err(format!("unknown option {other}")),
            _ if file.is_some() => return Err(format!("one FILE only, not also {}", arg.to_string_lossy())),
            _ => file = Some(PathBuf::from(arg)),
        }
    }
    let file = file.ok_or("no FILE given")?;
    Ok(Options { window, chunk, slow, file })
}

/// The request's payload: the chunk size, then the path's bytes.
fn encode_request(chunk: usize, file: &Path) -> Vec<u8> {
    let mut payload = (chunk as u64).to_be_bytes().to_vec();
    payload.extend_from_slice(file.as_os_str().as_bytes());
    payload
}

fn decode_request(payload: &[u8]) -> Result<(usize, PathBuf), String> {
    let (chunk, path) = payload.split_first_chunk::<8>().ok_or("the request is shorter than its chunk size")?;
    let chunk = u64::from_be_bytes(*chunk);
    if chunk == 0 || chunk > MAX_CHUNK as u64 {
        return Err(format!("chunk size {chunk} out of range"));
    }
    Ok((chunk as usize, PathBuf::from(OsStr::from_bytes(path))))
}

/// This process's peak resident memory, in KiB (0 where `/proc` has none).
fn hwm_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Reads until `buf` is full or the file ends; how much it read. Items are
/// whole chunks, whatever sizes `read` returns.
fn fill(file: &mut File, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match file.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) => return Err(error),
        }
    }
    Ok(filled)
}

/// The child's handler: streams the file, then answers with what it sent
/// and its own peak memory.
fn cat(rq: Request) -> Result<String, String> {
    if rq.rq_type != CAT_RQ_TYPE {
        return Err(format!("unknown request type {}", rq.rq_type));
    }
    let items = rq.context().take_sender().ok_or("open the stream with StreamOptions::receive()")?;
    let (chunk, path) = decode_request(&rq.payload)?;
    let mut file = File::open(&path).map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    let (mut bytes, mut count) = (0u64, 0u64);
    loop {
        let mut buf = vec![0; chunk];
        let n = fill(&mut file, &mut buf)
            .map_err(|e| format!("cannot read {} after {bytes} bytes: {e}", path.display()))?;
        if n == 0 {
            break;
        }
        buf.truncate(n);
        items.send(buf).map_err(|e| format!("sending after {bytes} bytes: {e}"))?;
        bytes += n as u64;
        count += 1;
        if n < chunk {
            break;
        }
    }
    items.finish();
    Ok(format!("bytes={bytes} items={count} hwm_kib={}", hwm_kib()))
}

fn serve() -> ExitCode {
    let run = || -> Result<(), packetstream::Error> {
        let config = Config::builder().name("stream_cat-child").extensions(true);
        let conn = PacketConnection::with_handler(Transport::stdio()?, config, cat)?;
        let received = conn.join_recv();
        let closed = conn.close();
        received?;
        closed?;
        Ok(())
    };
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("stream_cat (child): {error}");
            ExitCode::FAILURE
        }
    }
}

/// What the parent measured.
struct Streamed {
    bytes: u64,
    items: u64,
    seconds: f64,
    child_hwm_kib: u64,
}

/// `name=value` from the child's reply.
fn reply_field(reply: &str, name: &str) -> Result<u64, String> {
    reply
        .split_whitespace()
        .find_map(|field| field.strip_prefix(name)?.strip_prefix('='))
        .and_then(|value| value.parse().ok())
        .ok_or_else(|| format!("the child's reply has no {name}: {reply:?}"))
}

fn stream(conn: &PacketConnection, options: &Options, stdout: &mut File) -> Result<Streamed, String> {
    let start = Instant::now();
    let window_bytes = options.window.saturating_mul(options.chunk as u64);
    let receive = StreamOptions::receive().window(options.window, window_bytes);
    let payload = encode_request(options.chunk, &options.file);
    let Stream { receiver, reply, .. } =
        conn.stream(CAT_RQ_TYPE, 0, payload, receive).map_err(|e| format!("cannot open the stream: {e}"))?;
    let receiver = receiver.ok_or("the stream came without a receiver")?;
    let (mut bytes, mut items) = (0u64, 0u64);
    loop {
        match receiver.recv_timeout(ITEM_TIMEOUT) {
            Ok(item) => {
                stdout.write_all(&item).map_err(|e| format!("writing to stdout after {bytes} bytes: {e}"))?;
                bytes += item.len() as u64;
                items += 1;
                if !options.slow.is_zero() {
                    std::thread::sleep(options.slow);
                }
            }
            Err(StreamRecvTimeoutError::Finished) => break,
            Err(StreamRecvTimeoutError::Timeout) => {
                return Err(format!("no item from the child for {ITEM_TIMEOUT:?}, after {bytes} bytes"))
            }
            Err(error) => return Err(format!("the stream ended after {bytes} bytes: {error}")),
        }
    }
    let answer = match reply.wait_timeout(REPLY_TIMEOUT) {
        Ok(answer) => answer,
        Err(ReplyTimeoutError::Reply(ReplyError::Failed(failure))) => {
            return Err(format!("the child could not stream {}: {}", options.file.display(), failure.text()))
        }
        Err(error) => return Err(format!("the stream's reply: {error}")),
    };
    let seconds = start.elapsed().as_secs_f64();
    let answer = String::from_utf8_lossy(&answer.payload);
    let (sent_bytes, sent_items) = (reply_field(&answer, "bytes")?, reply_field(&answer, "items")?);
    // Items lost on the way would otherwise go unnoticed.
    if (sent_bytes, sent_items) != (bytes, items) {
        return Err(format!("the child sent {sent_bytes} bytes in {sent_items} items, {bytes} in {items} arrived"));
    }
    Ok(Streamed { bytes, items, seconds, child_hwm_kib: reply_field(&answer, "hwm_kib")? })
}

fn run(options: &Options) -> Result<String, String> {
    // Unbuffered: each item reaches stdout before the reader's pause.
    let mut stdout =
        io::stdout().as_fd().try_clone_to_owned().map(File::from).map_err(|e| format!("cannot use stdout: {e}"))?;
    let me = std::env::current_exe().map_err(|e| format!("cannot find myself: {e}"))?;
    let mut command = Command::new(me);
    command.arg(SERVE_FLAG);
    let transport = Transport::spawn(&mut command).map_err(|e| format!("cannot start the child: {e}"))?;
    let config = Config::builder().name("stream_cat").extensions(true);
    let conn = PacketConnection::new(transport, config).map_err(|e| format!("cannot start the connection: {e}"))?;
    let streamed = stream(&conn, options, &mut stdout);
    // Closed whatever happened, so that the child is reaped, not orphaned.
    let closed = conn.close_with(CloseOptions::new().timeout(CLOSE_TIMEOUT));
    let streamed = streamed?;
    let finished = closed.map_err(|e| format!("close: {e}"))?;
    match finished.exit_status() {
        Some(status) if status.success() => {}
        other => return Err(format!("the child exited badly: {other:?}")),
    }
    Ok(format!(
        "streamed bytes={} items={} seconds={:.3} parent_hwm_kib={} child_hwm_kib={}",
        streamed.bytes,
        streamed.items,
        streamed.seconds,
        hwm_kib(),
        streamed.child_hwm_kib
    ))
}

fn main() -> ExitCode {
    if std::env::args_os().nth(1).is_some_and(|arg| arg == SERVE_FLAG) {
        return serve();
    }
    let options = match parse_args() {
        Ok(options) => options,
        Err(message) => {
            eprintln!("stream_cat: {message}");
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(&options) {
        Ok(summary) => {
            eprintln!("{summary}");
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("stream_cat: {message}");
            ExitCode::FAILURE
        }
    }
}
