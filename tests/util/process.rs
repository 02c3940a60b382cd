//! What the test process holds, from `/proc/self`: its threads (by the
//! names connections give them), its file descriptors, its memory; and the
//! example programs the tests run as peers.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command};
use std::sync::{Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use super::{wait_for, LONG, PROMPT};

/// The names of this process's threads.
pub fn thread_names() -> Vec<String> {
    let mut found = Vec::new();
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return found;
    };
    for task in tasks.flatten() {
        // A thread may end between listing and reading: skip it.
        if let Ok(comm) = std::fs::read_to_string(task.path().join("comm")) {
            found.push(comm.trim_end().to_owned());
        }
    }
    found
}

/// The names of this process's threads that belong to connection `name`
/// (its threads are called `<name>-reader`, `<name>-writer`,
/// `<name>-worker-<i>`).
pub fn threads_of(name: &str) -> Vec<String> {
    let prefix = format!("{name}-");
    thread_names().into_iter().filter(|comm| comm.starts_with(&prefix)).collect()
}

/// Fails the test if a thread of connection `name` is still running after
/// [`PROMPT`].
///
/// A joined thread can stay listed in /proc for a moment after its join
/// returned (the kernel reaps it just after waking the joiner), and a thread
/// that close had to leave running ends once the peer goes away; no channel
/// announces "the kernel has reaped this thread", hence the polling.
pub fn assert_no_threads(name: &str) {
    let gone = wait_for(PROMPT, || threads_of(name).is_empty());
    assert!(gone, "threads of connection {name} still running: {:?}", threads_of(name));
}

/// Waits (for at most [`LONG`]) until connection `name` has a thread called
/// `<name>-<suffix>` for every one of `suffixes`: a new thread names itself
/// only once it runs, so a check right after start may not see it yet.
/// Shows that [`assert_no_threads`] looks at the right threads.
pub fn await_threads(name: &str, suffixes: &[&str]) {
    let deadline = Instant::now() + LONG;
    loop {
        let running = threads_of(name);
        if suffixes.iter().all(|suffix| running.contains(&format!("{name}-{suffix}"))) {
            return;
        }
        assert!(Instant::now() < deadline, "connection {name}: expected threads {suffixes:?}, found {running:?}");
        thread::yield_now();
    }
}

pub fn thread_count() -> usize {
    std::fs::read_dir("/proc/self/task").map(|d| d.count()).unwrap_or(0)
}

pub fn fd_count() -> usize {
    std::fs::read_dir("/proc/self/fd").map(|d| d.count()).unwrap_or(0)
}

/// A field of `/proc/self/status` in KiB (`VmRSS`, `VmHWM`).
pub fn status_kib(field: &str) -> u64 {
    status_field(&std::fs::read_to_string("/proc/self/status").unwrap_or_default(), field)
}

fn status_field(status: &str, field: &str) -> u64 {
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Resets the peak resident memory (`VmHWM`) to the current one, so that a
/// test measures its own peak (Linux 4.0 and later).
pub fn reset_peak_memory() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// Current and peak resident memory, in MiB.
pub fn memory_mib() -> (u64, u64) {
    (status_kib("VmRSS") / 1024, status_kib("VmHWM") / 1024)
}

/// The resident memory of this process's children (in KiB), by pid: for a
/// server started with `Transport::spawn`, whose pid the test does not see.
pub fn children_rss_kib() -> Vec<(u32, u64)> {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return Vec::new();
    };
    let mut children: Vec<u32> = tasks
        .filter_map(Result::ok)
        .filter_map(|task| std::fs::read_to_string(task.path().join("children")).ok())
        .flat_map(|list| list.split_whitespace().filter_map(|pid| pid.parse().ok()).collect::<Vec<u32>>())
        .collect();
    children.sort_unstable();
    children
        .into_iter()
        .map(|pid| {
            let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
            (pid, status_field(&status, "VmRSS"))
        })
        .collect()
}

/// Tests that count the process's threads and fds take this exclusively;
/// every other test of the binary takes it shared, so that counts are not
/// disturbed by tests running alongside.
pub static PROCESS: std::sync::RwLock<()> = std::sync::RwLock::new(());

/// For tests that do not count: runs alongside each other.
pub fn shared() -> std::sync::RwLockReadGuard<'static, ()> {
    PROCESS.read().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// For tests that count threads or fds: runs alone.
pub fn alone() -> std::sync::RwLockWriteGuard<'static, ()> {
    PROCESS.write().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The example program `name` next to this test binary
/// (`target/<profile>/deps/<test>-HASH` → `target/<profile>/examples/NAME`),
/// built first if it is missing or older than the crate's sources (`cargo
/// test --test X` builds no examples).
pub fn example(name: &str) -> PathBuf {
    static BUILT: Mutex<Vec<(String, PathBuf)>> = Mutex::new(Vec::new());
    let mut built = BUILT.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some((_, path)) = built.iter().find(|(known, _)| known == name) {
        return path.clone();
    }
    let exe = std::env::current_exe().expect("the test binary's path");
    let profile_dir = exe.parent().and_then(Path::parent).expect("target/<profile>");
    let path = profile_dir.join("examples").join(name);
    let made = std::fs::metadata(&path).and_then(|m| m.modified()).ok();
    let manifest_dir = super::repo();
    let sources = newest_mtime(&manifest_dir.join("src")).max(newest_mtime(&manifest_dir.join("examples")));
    if made.is_none_or(|made| sources.is_some_and(|sources| sources > made)) {
        let mut cargo = Command::new(env!("CARGO"));
        cargo.args(["build", "--quiet", "--example", name, "--manifest-path"]);
        cargo.arg(manifest_dir.join("Cargo.toml"));
        if profile_dir.file_name().is_some_and(|dir| dir == "release") {
            cargo.arg("--release");
        }
        let mut child = cargo.spawn().expect("run cargo build --example");
        let mut status = None;
        let done = wait_for(Duration::from_secs(600), || {
            status = child.try_wait().expect("cargo build");
            status.is_some()
        });
        if !done {
            let _ = child.kill();
            let _ = child.wait();
        }
        // A stale binary must not stand in for one that no longer builds.
        assert!(status.is_some_and(|s| s.success()), "cargo build --example {name} failed: {status:?}");
    }
    assert!(path.exists(), "{} is missing", path.display());
    built.push((name.to_owned(), path.clone()));
    path
}

/// The `echo_server` example.
pub fn echo_server() -> &'static Path {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| example("echo_server"))
}

/// The newest modification time of the files under `dir`.
fn newest_mtime(dir: &Path) -> Option<std::time::SystemTime> {
    let mut newest = None;
    for entry in std::fs::read_dir(dir).ok()?.filter_map(Result::ok) {
        let path = entry.path();
        let time = if path.is_dir() { newest_mtime(&path) } else { entry.metadata().and_then(|m| m.modified()).ok() };
        newest = newest.max(time);
    }
    newest
}

/// The process's threads and fd count, to compare with after a test (which
/// must hold [`alone`], so that no other test's threads or fds count).
#[derive(Debug, Clone)]
pub struct Baseline {
    pub threads: usize,
    pub fds: usize,
    names: Vec<String>,
}

/// Whether a thread is one the test harness runs a test on: those are
/// named after the test (no `-`), and the harness may start one for the
/// next test while this one runs (it then waits for [`alone`]). Every
/// thread of the library, and an unnamed thread (named after the binary),
/// has a `-`.
fn is_test_thread(name: &str) -> bool {
    !name.contains('-')
}

impl Baseline {
    pub fn take() -> Baseline {
        Baseline { threads: thread_count(), fds: fd_count(), names: thread_names() }
    }

    /// Threads now that were not there before, but for the test harness's.
    fn new_threads(&self) -> Vec<String> {
        let mut before = self.names.clone();
        let mut new = Vec::new();
        for name in thread_names() {
            match before.iter().position(|known| *known == name) {
                Some(at) => {
                    before.swap_remove(at);
                }
                None if is_test_thread(&name) => {}
                None => new.push(name),
            }
        }
        new
    }

    /// Fails the test unless the fd count and the threads come back to the
    /// baseline's within [`PROMPT`] (a joined thread can stay listed in
    /// /proc for a moment).
    pub fn assert_restored(&self, what: &str) {
        let back = wait_for(PROMPT, || fd_count() <= self.fds && self.new_threads().is_empty());
        assert!(
            back,
            "{what}: fds {} (were {}); threads that were not there: {:?}",
            fd_count(),
            self.fds,
            self.new_threads()
        );
    }
}

/// Holds the process [`alone`] for a test and, when dropped at its end
/// (declared first, it is dropped after everything else), fails the test
/// unless the thread and fd counts are back to where they were.
pub struct Clean {
    what: &'static str,
    before: Baseline,
    _alone: std::sync::RwLockWriteGuard<'static, ()>,
}

impl Clean {
    pub fn new(what: &'static str) -> Clean {
        let alone = alone();
        Clean { what, before: Baseline::take(), _alone: alone }
    }
}

impl Drop for Clean {
    fn drop(&mut self) {
        // A test that failed already says why.
        if !thread::panicking() {
            self.before.assert_restored(self.what);
        }
    }
}

/// Reads the `listening on ADDR` lines a server child prints first, `count`
/// of them, within [`LONG`]: a server that never says where it listens
/// fails the test (and is killed) instead of hanging it. Returns the
/// addresses and the rest of its stdout.
pub fn listening(child: &mut Child, count: usize) -> (Vec<String>, BufReader<ChildStdout>) {
    let stdout = child.stdout.take().expect("piped stdout");
    let (tx, rx) = crossbeam_channel::bounded(1);
    let reader = thread::Builder::new()
        .name("test-listening".into())
        .spawn(move || {
            let mut stdout = BufReader::new(stdout);
            let mut addrs = Vec::new();
            for _ in 0..count {
                let mut line = String::new();
                stdout.read_line(&mut line).expect("a listening line");
                let addr = line.trim_end().strip_prefix("listening on ").unwrap_or_else(|| panic!("{line:?}"));
                addrs.push(addr.to_owned());
            }
            let _ = tx.send((addrs, stdout));
        })
        .expect("a thread");
    let Ok(heard) = rx.recv_timeout(LONG) else {
        let _ = child.kill();
        let _ = child.wait();
        panic!("the server did not say where it listens within {LONG:?}");
    };
    reader.join().expect("the reader of the listening lines");
    heard
}
