//! The streaming examples, driven as other tools drive them: the built
//! `stream_cat` and `chat` binaries, each starting itself as a child.
//!
//! `stream_cat`'s copy is compared byte for byte with its input, its
//! summary line is checked against the file, its errors exit non-zero, and
//! its peak memory is shown not to grow with the stream: a large file to a
//! slow reader peaks, in both processes, within a few MiB of a small one.
//! `chat` is checked line by line in both directions.
//!
//! Every run is bounded: a program still running at its deadline is killed
//! (with its child: each runs in a process group of its own) and fails the
//! test.

mod util;

use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::PathBuf;
use std::process::{ChildStdout, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use util::process::example;

/// The bound for a run that streams a few MiB.
const RUN: Duration = Duration::from_secs(60);
/// The bound for the default memory test's runs, in a debug build on a
/// loaded machine.
const BIG_RUN: Duration = Duration::from_secs(120);
/// The bound for the 1 GiB run.
const HUGE_RUN: Duration = Duration::from_secs(600);

/// `stream_cat`'s default chunk.
const CHUNK: u64 = 64 << 10;
/// How far apart the peaks of a small and a large stream may be.
const FLAT_KIB: u64 = 4 << 10;

/// What a finished run of an example left.
struct Run<T> {
    status: ExitStatus,
    stdout: T,
    stderr: String,
}

/// A run that had not ended by its deadline, and was killed.
#[derive(Debug)]
struct Hung {
    what: &'static str,
    /// The process group's live members just before the kill: the example
    /// and its child.
    killed: Vec<u32>,
    /// The process group, which is the example's pid.
    pgid: u32,
    stderr: String,
}

/// The live (not zombie) processes of process group `pgid`, from `/proc`.
fn live_members(pgid: u32) -> Vec<u32> {
    let mut members = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|name| name.parse::<u32>().ok()) else { continue };
        // A process may end between listing and reading: skip it.
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else { continue };
        // `pid (comm) state ppid pgrp ...`, where comm may hold anything.
        let Some((_, rest)) = stat.rsplit_once(") ") else { continue };
        let fields: Vec<&str> = rest.split(' ').take(3).collect();
        if fields.len() == 3 && fields[0] != "Z" && fields[2].parse() == Ok(pgid) {
            members.push(pid);
        }
    }
    members.sort_unstable();
    members
}

/// Kills process group `pgid`: the example and the child it started.
fn kill_group(pgid: u32) {
    let pgid = libc::pid_t::try_from(pgid).expect("a pid fits a pid_t");
    // SAFETY: kill(2) takes any number and only sends a signal.
    unsafe { libc::kill(-pgid, libc::SIGKILL) };
}

/// Runs example `name` with `args` (stdin empty), handing its stdout to
/// `read_stdout` on a thread of its own, and collects its stderr. If it has
/// not ended and closed its output by `timeout`, kills it and its child
/// (it runs in a process group of its own) and says so.
fn try_run_example<T: Send + 'static>(
    name: &str,
    args: &[&OsStr],
    timeout: Duration,
    read_stdout: impl FnOnce(ChildStdout) -> T + Send + 'static,
) -> Result<Run<T>, Hung> {
    let mut command = Command::new(example(name));
    command.args(args).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).process_group(0);
    let mut child = command.spawn().unwrap_or_else(|e| panic!("start {name}: {e}"));
    // From the start, not before `example` may have had to build it.
    let deadline = Instant::now() + timeout;
    let pgid = child.id();
    let stdout = child.stdout.take().expect("piped stdout");
    let mut stderr = child.stderr.take().expect("piped stderr");

    let (stdout_tx, stdout_rx) = crossbeam_channel::bounded(1);
    thread::spawn(move || {
        let _ = stdout_tx.send(read_stdout(stdout));
    });
    // Shared as it grows, so that a run that hangs still shows what it said.
    let said = Arc::new(Mutex::new(Vec::new()));
    let (stderr_tx, stderr_rx) = crossbeam_channel::bounded(1);
    let collecting = Arc::clone(&said);
    thread::spawn(move || {
        let mut buf = [0; 4096];
        while let Ok(n @ 1..) = stderr.read(&mut buf) {
            collecting.lock().unwrap().extend_from_slice(&buf[..n]);
        }
        let _ = stderr_tx.send(());
    });
    let (status_tx, status_rx) = crossbeam_channel::bounded(1);
    thread::spawn(move || {
        let _ = status_tx.send(child.wait());
    });

    let stderr_so_far = || String::from_utf8_lossy(&said.lock().unwrap()).into_owned();
    let hung = |what: &'static str| {
        let killed = live_members(pgid);
        kill_group(pgid);
        Hung { what, killed, pgid, stderr: stderr_so_far() }
    };
    let status = match status_rx.recv_deadline(deadline) {
        Ok(status) => status.unwrap_or_else(|e| panic!("wait for {name}: {e}")),
        Err(_) => return Err(hung("still running")),
    };
    // Its child shares stderr, and may outlive it for a moment.
    let Ok(stdout) = stdout_rx.recv_deadline(deadline) else { return Err(hung("stdout still open")) };
    if stderr_rx.recv_deadline(deadline).is_err() {
        return Err(hung("stderr still open"));
    }
    Ok(Run { status, stdout, stderr: stderr_so_far() })
}

/// [`try_run_example`], failing the test if the run hung.
fn run_example<T: Send + 'static>(
    name: &str,
    args: &[&OsStr],
    timeout: Duration,
    read_stdout: impl FnOnce(ChildStdout) -> T + Send + 'static,
) -> Run<T> {
    try_run_example(name, args, timeout, read_stdout).unwrap_or_else(|hung| {
        panic!(
            "{name} {args:?}: {} after {timeout:?}; killed {:?}. Its stderr:\n{}",
            hung.what, hung.killed, hung.stderr
        )
    })
}

/// Runs `stream_cat` with `args`, comparing its stdout with `expected`.
fn stream_cat(args: &[&OsStr], expected: PathBuf, timeout: Duration) -> Run<Compared> {
    run_example("stream_cat", args, timeout, move |stdout| compare(stdout, &expected))
}

/// How a program's output compared with a file.
#[derive(Debug, PartialEq, Eq)]
struct Compared {
    /// Bytes of output.
    bytes: u64,
    /// The offset of the first byte that differs from the file's, or where
    /// the file ended while output went on.
    first_difference: Option<u64>,
}

/// Reads `output` to its end alongside `expected`, a block at a time, so
/// that a stream of any size is checked in little memory.
fn compare(mut output: impl Read, expected: &PathBuf) -> Compared {
    let mut file = io::BufReader::with_capacity(1 << 20, File::open(expected).expect("the expected file"));
    let mut got = vec![0; 1 << 20];
    let mut want = vec![0; 1 << 20];
    let mut compared = Compared { bytes: 0, first_difference: None };
    loop {
        let n = match output.read(&mut got) {
            Ok(0) => return compared,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => panic!("reading the output: {e}"),
        };
        if compared.first_difference.is_none() {
            let mut have = 0;
            while have < n {
                match file.read(&mut want[have..n]).expect("reading the expected file") {
                    0 => break,
                    read => have += read,
                }
            }
            // Slices compare at memcmp speed; the byte loop only finds where.
            let same =
                if got[..have] == want[..have] { have } else { (0..have).find(|&i| got[i] != want[i]).unwrap_or(have) };
            if same < n {
                compared.first_difference = Some(compared.bytes + same as u64);
            }
        }
        compared.bytes += n as u64;
    }
}

/// splitmix64: every 8-byte word of a pattern file differs with its
/// offset, so a chunk lost, repeated, reordered or shifted shows.
fn splitmix(word: u64) -> u64 {
    let mut z = word.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A file of `len` bytes of the pattern under cargo's scratch directory,
/// made once and kept (another run of the tests may be using it; `cargo
/// clean` removes it).
fn pattern_file(len: u64) -> PathBuf {
    static MAKING: Mutex<()> = Mutex::new(());
    let _one_at_a_time = MAKING.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let path = pattern_file_path(len);
    let dir = path.parent().expect("the scratch directory");
    std::fs::create_dir_all(dir).expect("the scratch directory");
    if std::fs::metadata(&path).is_ok_and(|m| m.len() == len) {
        return path;
    }
    // Made aside and renamed into place, so that no run sees half a file.
    let partial = dir.join(format!("pattern-v1-{len}.bin.{}", std::process::id()));
    let mut out = BufWriter::with_capacity(1 << 20, File::create(&partial).expect("create the pattern file"));
    let mut block = Vec::with_capacity(1 << 20);
    let mut word = 0;
    let mut left = len;
    while left > 0 {
        block.clear();
        while block.len() < 1 << 20 && (block.len() as u64) < left {
            block.extend_from_slice(&splitmix(word).to_le_bytes());
            word += 1;
        }
        block.truncate(left.min(block.len() as u64) as usize);
        out.write_all(&block).expect("write the pattern file");
        left -= block.len() as u64;
    }
    out.into_inner().expect("flush the pattern file").sync_all().expect("sync the pattern file");
    std::fs::rename(&partial, &path).expect("rename the pattern file into place");
    path
}

fn scratch_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("stream_examples")
}

fn pattern_file_path(len: u64) -> PathBuf {
    scratch_dir().join(format!("pattern-v1-{len}.bin"))
}

/// `stream_cat`'s summary, from its last line on stderr.
#[derive(Debug)]
struct Summary {
    bytes: u64,
    items: u64,
    seconds: f64,
    parent_hwm_kib: u64,
    child_hwm_kib: u64,
}

/// Parses the last line of `stderr`, which must be exactly
/// `streamed bytes=N items=K seconds=S parent_hwm_kib=P child_hwm_kib=C`.
fn summary(stderr: &str) -> Summary {
    let last = stderr.lines().last().unwrap_or_else(|| panic!("no summary line on stderr:\n{stderr}"));
    let mut words = last.split(' ');
    assert_eq!(words.next(), Some("streamed"), "the summary line: {last:?}");
    let mut field = |name: &str| -> String {
        let word = words.next().unwrap_or_else(|| panic!("no {name} in {last:?}"));
        let value = word.strip_prefix(name).and_then(|rest| rest.strip_prefix('='));
        value.unwrap_or_else(|| panic!("{name} expected, {word:?} found, in {last:?}")).to_owned()
    };
    let number = |text: String| -> u64 { text.parse().unwrap_or_else(|_| panic!("not a count: {text:?} in {last:?}")) };
    let bytes = number(field("bytes"));
    let items = number(field("items"));
    let seconds_text = field("seconds");
    let seconds = seconds_text.parse().unwrap_or_else(|_| panic!("seconds: {seconds_text:?} in {last:?}"));
    let parent_hwm_kib = number(field("parent_hwm_kib"));
    let child_hwm_kib = number(field("child_hwm_kib"));
    assert_eq!(words.next(), None, "more than the summary in {last:?}");
    Summary { bytes, items, seconds, parent_hwm_kib, child_hwm_kib }
}

fn os<'a>(args: &[&'a str]) -> Vec<&'a OsStr> {
    args.iter().map(|&arg| OsStr::new(arg)).collect()
}

/// Streams a `len`-byte pattern file through `stream_cat OPTIONS FILE`,
/// checks the copy and the summary against the file, and returns the
/// summary.
fn cat_checked(len: u64, options: &[&str], timeout: Duration) -> Summary {
    let file = pattern_file(len);
    let mut args = os(options);
    args.push(file.as_os_str());
    let run = stream_cat(&args, file.clone(), timeout);
    assert!(run.status.success(), "stream_cat {options:?} on {len} bytes: {}\n{}", run.status, run.stderr);
    assert_eq!(run.stdout, Compared { bytes: len, first_difference: None }, "stream_cat {options:?}: the copy");
    let chunk = match options.iter().position(|&option| option == "--chunk") {
        Some(i) => options[i + 1].parse().expect("a chunk size"),
        None => CHUNK,
    };
    let summary = summary(&run.stderr);
    assert_eq!(summary.bytes, len, "{summary:?}");
    assert_eq!(summary.items, len.div_ceil(chunk), "{summary:?} for chunks of {chunk}");
    assert!(summary.parent_hwm_kib > 0 && summary.child_hwm_kib > 0, "{summary:?}");
    // Only the summary: the child, whose stderr is the same, said nothing.
    assert_eq!(run.stderr.lines().count(), 1, "{}", run.stderr);
    summary
}

#[test]
fn stream_cat_copies_files_exactly() {
    let cases: &[(u64, &[&str])] = &[
        (0, &[]),
        (1, &[]),
        (3 * CHUNK, &[]),
        (5 * CHUNK + 7, &["--window", "2"]),
        (1_000_003, &["--chunk", "4096", "--window", "3", "--slow-us", "10"]),
        // More items than the window many times over, one byte each.
        (20_000, &["--chunk", "1", "--window", "5"]),
        (3 << 20, &["--chunk", "1000000", "--window", "1"]),
    ];
    for &(len, options) in cases {
        let summary = cat_checked(len, options, RUN);
        println!("{len} bytes, {options:?}: {summary:?}");
    }
}

/// The slow reader: it sleeps after every item, so the run cannot be
/// quicker than the sleeps.
#[test]
fn stream_cat_reads_slowly_when_told() {
    let summary = cat_checked(64 * CHUNK, &["--slow-us", "5000"], RUN);
    assert!(summary.seconds >= 64.0 * 0.005, "{summary:?}: faster than its pauses");
}

/// Runs `stream_cat ARGS`, expecting it to fail with `code` and a message
/// containing `says`, and no summary.
fn cat_fails(args: &[&OsStr], code: i32, says: &str) {
    let run = stream_cat(args, pattern_file(0), RUN);
    assert_eq!(run.status.code(), Some(code), "stream_cat {args:?}: {}\n{}", run.status, run.stderr);
    assert!(run.stderr.contains(says), "stream_cat {args:?}: {says:?} expected in:\n{}", run.stderr);
    assert!(run.stderr.lines().any(|line| line.starts_with("stream_cat: ")), "{}", run.stderr);
    assert!(!run.stderr.contains("streamed "), "a summary after an error:\n{}", run.stderr);
    assert_eq!(run.stdout.bytes, 0, "stream_cat {args:?} wrote to stdout");
}

#[test]
fn stream_cat_fails_on_bad_arguments() {
    let file = pattern_file(1000);
    let file = file.to_str().expect("a UTF-8 path");
    let cases: &[(&[&str], &str)] = &[
        (&[], "no FILE given"),
        (&["--bogus", file], "unknown option --bogus"),
        (&["--window", "0", file], "--window: at least 1 item"),
        (&["--window", "many", file], "--window: not a number: many"),
        (&["--chunk", "0", file], "--chunk: from 1 to 8388608 bytes, not 0"),
        (&["--chunk", "9999999999", file], "--chunk: from 1 to 8388608 bytes, not 9999999999"),
        (&["--slow-us", "-1", file], "--slow-us: not a number: -1"),
        (&[file, "--chunk"], "--chunk needs a value"),
        (&[file, file], "one FILE only"),
    ];
    for &(args, says) in cases {
        cat_fails(&os(args), 2, says);
    }
}

#[test]
fn stream_cat_fails_on_files_it_cannot_read() {
    let dir = scratch_dir();
    std::fs::create_dir_all(&dir).expect("the scratch directory");
    let missing = dir.join("no such file");
    cat_fails(&[missing.as_os_str()], 1, &format!("cannot open {}", missing.display()));
    // It opens, and the first read fails: an error from inside the stream.
    cat_fails(&[dir.as_os_str()], 1, &format!("cannot read {}", dir.display()));
}

/// A reader that goes away: the next write fails, and so does the run.
#[test]
fn stream_cat_fails_when_stdout_goes_away() {
    let file = pattern_file(64 * CHUNK);
    let run = run_example("stream_cat", &[file.as_os_str()], RUN, |mut stdout| {
        let mut first = [0; 1];
        let read = stdout.read_exact(&mut first);
        drop(stdout);
        read.is_ok()
    });
    assert!(run.stdout, "some output came first");
    assert_eq!(run.status.code(), Some(1), "{} (signal {:?})\n{}", run.status, run.status.signal(), run.stderr);
    assert!(run.stderr.contains("stream_cat: writing to stdout after "), "{}", run.stderr);
    assert!(!run.stderr.contains("streamed "), "{}", run.stderr);
}

/// The harness itself: a run past its deadline is killed, and so is the
/// child it started, so that a hang fails the test instead of lingering.
#[test]
fn a_run_that_hangs_is_killed_with_its_child() {
    let file = pattern_file(3 * CHUNK);
    // The reader pauses for a minute after the first item.
    let args = os(&["--slow-us", "60000000"]).into_iter().chain([file.as_os_str()]).collect::<Vec<_>>();
    let started = Instant::now();
    let hung = match try_run_example("stream_cat", &args, Duration::from_secs(5), |mut stdout| {
        io::copy(&mut stdout, &mut io::sink()).expect("drain stdout")
    }) {
        Err(hung) => hung,
        Ok(run) => panic!("finished in spite of its pause: {}\n{}", run.status, run.stderr),
    };
    assert_eq!(hung.what, "still running");
    assert_eq!(hung.killed.len(), 2, "stream_cat and its child were running: {hung:?}");
    assert!(hung.killed.contains(&hung.pgid), "{hung:?}");
    let gone = util::wait_for(util::PROMPT, || live_members(hung.pgid).is_empty());
    assert!(gone, "still running after the kill: {:?}", live_members(hung.pgid));
    assert!(started.elapsed() < Duration::from_secs(30), "the hang took {:?} to fail", started.elapsed());
}

/// Streams a small file and a large one with the same options to a slow
/// reader; both processes' peaks must be within [`FLAT_KIB`] of each other.
/// The small file is still four windows long (4 MiB with the defaults), so
/// both runs fill the window.
fn memory_stays_flat(large: u64, slow_us: &str, timeout: Duration) {
    let options = ["--slow-us", slow_us];
    let small = cat_checked(16 << 20, &options, timeout);
    let big = cat_checked(large, &options, timeout);
    println!("small: {small:?}");
    println!("large: {big:?}");
    let slow = big.items as f64 * slow_us.parse::<f64>().expect("micros") / 1e6;
    assert!(big.seconds >= slow, "{big:?}: faster than its pauses ({slow} s)");
    for (what, small, big) in
        [("parent", small.parent_hwm_kib, big.parent_hwm_kib), ("child", small.child_hwm_kib, big.child_hwm_kib)]
    {
        assert!(
            big.abs_diff(small) <= FLAT_KIB,
            "the {what}'s peak grew with the stream: {small} KiB for 16 MiB, {big} KiB for {} MiB",
            large >> 20
        );
    }
}

#[test]
fn stream_cat_memory_does_not_grow_with_the_stream() {
    memory_stays_flat(256 << 20, "250", BIG_RUN);
}

/// The full-size run: `cargo test --release --test stream_examples -- --ignored`.
#[test]
#[ignore = "streams 1 GiB; run in release"]
fn stream_cat_memory_flat_over_1_gib() {
    memory_stays_flat(1 << 30, "250", HUGE_RUN);
    // Too big to keep around between runs.
    let _ = std::fs::remove_file(pattern_file_path(1 << 30));
}

/// Runs `chat ARGS`, with stdout collected.
fn chat(args: &[&str]) -> Run<Vec<u8>> {
    run_example("chat", &os(args), RUN, |mut stdout| {
        let mut all = Vec::new();
        stdout.read_to_end(&mut all).expect("chat's stdout");
        all
    })
}

/// Checks a chat of `lines` lines with a window of `window`: every line of
/// each side arrived, in order, and the summary counts them.
fn chat_checked(args: &[&str], lines: u64, window: u64) {
    let run = chat(args);
    let stdout = String::from_utf8(run.stdout).expect("UTF-8 on stdout");
    assert!(run.status.success(), "chat {args:?}: {}\n{}\n{stdout}", run.status, run.stderr);
    let mut printed: Vec<&str> = stdout.lines().collect();
    let last = printed.pop().expect("a summary line");
    let child_lines: Vec<String> = (1..=lines).map(|i| format!("child line {i} of {lines}")).collect();
    let parent_lines: Vec<String> = (1..=lines).map(|i| format!("parent line {i} of {lines}")).collect();
    assert_eq!(printed, child_lines, "the child's lines, on the parent's stdout");
    assert_eq!(run.stderr.lines().collect::<Vec<_>>(), parent_lines, "the parent's lines, on the child's stderr");
    let expected = format!(
        "chat lines={lines} window={window} parent_sent={lines} parent_received={lines} \
         child_sent={lines} child_received={lines} seconds="
    );
    let seconds = last.strip_prefix(&expected).unwrap_or_else(|| panic!("{last:?} is not {expected:?}S"));
    seconds.parse::<f64>().unwrap_or_else(|_| panic!("seconds: {seconds:?}"));
}

/// Many more lines than the window both ways: neither side can send all
/// its lines before the other reads, so only a chat whose two directions
/// flow at once gets through.
#[test]
fn chat_talks_both_ways_at_once() {
    chat_checked(&["--lines", "3000", "--window", "4"], 3000, 4);
    chat_checked(&["--window", "1", "--lines", "200"], 200, 1);
    chat_checked(&[], 1000, 8);
    chat_checked(&["--lines", "0"], 0, 8);
}

#[test]
fn chat_fails_on_bad_arguments() {
    for (args, says) in [
        (&["--lines", "x"][..], "--lines: not a number: x"),
        (&["--window", "0"], "--window: at least 1 item"),
        (&["--lines"], "--lines needs a value"),
        (&["--talk"], "unknown argument --talk"),
    ] {
        let run = chat(args);
        assert_eq!(run.status.code(), Some(2), "chat {args:?}: {}\n{}", run.status, run.stderr);
        assert!(run.stderr.contains(says), "chat {args:?}: {says:?} expected in:\n{}", run.stderr);
        assert!(run.stdout.is_empty(), "chat {args:?} wrote to stdout");
    }
}
