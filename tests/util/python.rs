//! The interoperability tests' peer, the real Python `cs.packetstream`
//! 20240630: found, or made on first use.
//!
//! `PACKETSTREAM_PYTHON` names an interpreter to use as it is. Without it the
//! tests use a virtual environment in cargo's scratch directory for
//! integration tests (`target/tmp/cs-packetstream-venv`), made the first time
//! from `tests/python/requirements.txt` (10 to 30 s) and reused after that.
//!
//! Test binaries that start at once take turns through a lock file beside the
//! environment. The environment is built under a name of its own and a link
//! to it is renamed into place only once it imports the package, so an
//! install that was interrupted is never taken for a finished one. It is
//! linked rather than moved because a virtual environment records its own
//! path (in pip's launcher scripts, `activate`) and breaks when moved.
//!
//! Without a peer a test says SKIPPED and passes; under CI it fails. Every
//! child process has a bounded wait: pip on a dead network must not stall the
//! tests.

use std::env;
use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;
use packetstream::Transport;

/// The pins, relative to the repository.
const REQUIREMENTS: &str = "tests/python/requirements.txt";
/// The environment's name in the scratch directory; the lock file and the
/// builds are named after it.
const VENV: &str = "cs-packetstream-venv";
/// A copy of the requirements an environment was made from, inside it: an
/// environment made from other pins is made again.
const STAMP: &str = "packetstream-requirements.txt";

/// `import cs.packetstream` takes about a second; a loaded machine may need
/// much longer.
const PROBE_TIMEOUT: Duration = Duration::from_secs(60);
/// `python3 -m venv`, pip's own installation included.
const VENV_TIMEOUT: Duration = Duration::from_secs(120);
/// 10 to 30 s with the registry at hand; pip retries a dead network for long.
const PIP_TIMEOUT: Duration = Duration::from_secs(300);
/// Longer than the process holding the lock can take over its own bounded
/// steps, so that a timeout here means that process is stuck.
const LOCK_TIMEOUT: Duration = Duration::from_secs(600);

/// What to tell a developer whatever the cause: a peer made by hand.
const BY_HAND: &str = "set PACKETSTREAM_PYTHON to a python that can `import cs.packetstream` (one made by \
                       `bash ../shared/peers/install-cs-packetstream.sh .venv-cs` from the repository root is \
                       .venv-cs/bin/python)";

/// Whether this is a CI run, where a missing Python peer is a failure.
pub fn in_ci() -> bool {
    env::var("CI").is_ok_and(|v| !v.is_empty() && v != "0" && !v.eq_ignore_ascii_case("false"))
}

/// The Python interpreter that can `import cs.packetstream`, found or made
/// once per process. `None` means the test `test` is skipped, said in one
/// line on stderr; under CI this panics instead.
pub fn python(test: &str) -> Option<PathBuf> {
    static FOUND: OnceLock<Result<PathBuf, Missing>> = OnceLock::new();
    match FOUND.get_or_init(find) {
        Ok(python) => Some(python.clone()),
        Err(missing) if in_ci() => panic!(
            "CI is set, so the interoperability tests must run, but the real Python cs.packetstream is not \
             available: {}. To fix: {}.",
            missing.why, missing.fix
        ),
        Err(missing) => {
            say(&format!(
                "\n*** SKIPPED interop test {test}: the real Python cs.packetstream is not available: {}. To run it: {}.",
                missing.why, missing.fix
            ));
            None
        }
    }
}

/// Why there is no peer, and what would give one.
#[derive(Debug)]
struct Missing {
    why: String,
    fix: String,
}

impl Missing {
    fn new(why: impl Into<String>, fix: impl Into<String>) -> Missing {
        Missing { why: why.into(), fix: fix.into() }
    }
}

fn find() -> Result<PathBuf, Missing> {
    match env::var_os("PACKETSTREAM_PYTHON") {
        // Chosen by hand: never installed over.
        Some(python) if !python.is_empty() => {
            let python = PathBuf::from(python);
            probe(&python).map(|()| python).map_err(|why| {
                Missing::new(
                    format!("{why} (PACKETSTREAM_PYTHON)"),
                    format!(
                        "point PACKETSTREAM_PYTHON at a python that can `import cs.packetstream`, or unset it to \
                         let the tests make their own in {}",
                        scratch_dir().join(VENV).display()
                    ),
                )
            })
        }
        _ => own_venv(),
    }
}

/// The tests' own environment, made if it is missing, broken or made from
/// other pins.
fn own_venv() -> Result<PathBuf, Missing> {
    let requirements = super::repo().join(REQUIREMENTS);
    let wanted = fs::read(&requirements)
        .map_err(|e| Missing::new(format!("cannot read {}: {e}", requirements.display()), BY_HAND))?;
    let dir = scratch_dir();
    let venv = dir.join(VENV);
    if ready(&venv, &wanted) {
        return Ok(python_in(&venv));
    }
    make_venv(&dir, &venv, &requirements, &wanted)
}

/// Cargo's scratch directory for integration tests, `<target>/tmp`: it
/// follows `CARGO_TARGET_DIR`, `build.target-dir` and `--target`, and `cargo
/// clean` removes it.
fn scratch_dir() -> PathBuf {
    if let Some(dir) = option_env!("CARGO_TARGET_TMPDIR") {
        return PathBuf::from(dir);
    }
    // Built as something other than an integration test: the target
    // directory as cargo was told it, or the one this binary sits in
    // (`<target>/<profile>/deps/<binary>`).
    let target = env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .filter(|dir| dir.is_absolute())
        .or_else(|| {
            let exe = env::current_exe().ok()?;
            let deps = exe.parent().filter(|deps| deps.ends_with("deps"))?;
            Some(deps.parent()?.parent()?.to_path_buf())
        })
        .unwrap_or_else(|| super::repo().join("target"));
    target.join("tmp")
}

fn python_in(venv: &Path) -> PathBuf {
    venv.join("bin").join("python")
}

/// Whether `venv` was made from the requirements `wanted` and imports
/// `cs.packetstream`.
fn ready(venv: &Path, wanted: &[u8]) -> bool {
    fs::read(venv.join(STAMP)).is_ok_and(|made_from| made_from == wanted) && probe(&python_in(venv)).is_ok()
}

/// Checks that `python` can `import cs.packetstream`.
fn probe(python: &Path) -> Result<(), String> {
    let mut command = Command::new(python);
    command.args(["-c", "import cs.packetstream"]);
    match run_bounded(command, PROBE_TIMEOUT) {
        Ok(Run { status: Some(status), .. }) if status.success() => Ok(()),
        Ok(Run { status: None, .. }) => {
            Err(format!("`{} -c 'import cs.packetstream'` ran for over {PROBE_TIMEOUT:?}", python.display()))
        }
        Ok(run) => Err(format!("{} cannot `import cs.packetstream`: {}", python.display(), last_line(&run.stderr))),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Err(format!("{} does not exist", python.display())),
        Err(error) => Err(format!("cannot run {}: {error}", python.display())),
    }
}

#[cfg(not(unix))]
fn make_venv(_dir: &Path, venv: &Path, _requirements: &Path, _wanted: &[u8]) -> Result<PathBuf, Missing> {
    Err(Missing::new(format!("{} is missing, and the tests make it on Unix only", venv.display()), BY_HAND))
}

/// Makes the environment, or waits for another process that is making it.
#[cfg(unix)]
fn make_venv(dir: &Path, venv: &Path, requirements: &Path, wanted: &[u8]) -> Result<PathBuf, Missing> {
    let cannot = |what: String, error: io::Error| Missing::new(format!("{what}: {error}"), BY_HAND);
    fs::create_dir_all(dir).map_err(|e| cannot(format!("cannot create {}", dir.display()), e))?;
    let lock_path = dir.join(format!("{VENV}.lock"));
    let asked = Instant::now();
    let mut waited = false;
    let lock = unix::lock_exclusive(&lock_path, LOCK_TIMEOUT, || {
        waited = true;
        say(&format!(
            "interop (pid {}): another test process is making the Python peer in {}: waiting for it",
            std::process::id(),
            venv.display()
        ));
    })
    .map_err(|e| cannot(format!("cannot lock {}", lock_path.display()), e))?;
    let Some(_lock) = lock else {
        return Err(Missing::new(
            format!("another process has been holding {} for over {LOCK_TIMEOUT:?}", lock_path.display()),
            format!("end that process (see `fuser {}`), or {BY_HAND}", lock_path.display()),
        ));
    };
    if ready(venv, wanted) {
        if waited {
            say(&format!(
                "interop (pid {}): the Python peer is ready in {} (made by another process; waited {:.1} s)",
                std::process::id(),
                venv.display(),
                asked.elapsed().as_secs_f64()
            ));
        }
        return Ok(python_in(venv));
    }

    // Holding the lock, so any build found is a leftover of an interrupted
    // one. The one the link names stays until the link is replaced.
    let linked = fs::read_link(venv).ok();
    remove_builds(dir, linked.as_deref());
    let build = dir.join(format!("{VENV}.build-{}", std::process::id()));
    let started = Instant::now();
    say(&format!(
        "interop (pid {}): making the Python peer (cs.packetstream 20240630) in {}: python3 -m venv, then pip \
         install; 10–30 s, once",
        std::process::id(),
        venv.display()
    ));
    let built = build_venv(&build, requirements, wanted).and_then(|()| {
        unix::link_into_place(&build, venv)
            .map_err(|e| cannot(format!("cannot link {} into place as {}", build.display(), venv.display()), e))
    });
    if let Err(missing) = built {
        let _ = fs::remove_dir_all(&build);
        return Err(missing);
    }
    remove_builds(dir, build.file_name().map(Path::new));
    say(&format!(
        "interop (pid {}): the Python peer is ready in {} ({:.1} s)",
        std::process::id(),
        venv.display(),
        started.elapsed().as_secs_f64()
    ));
    Ok(python_in(venv))
}

/// Removes the builds in `dir` except `keep` (a name in `dir`).
#[cfg(unix)]
fn remove_builds(dir: &Path, keep: Option<&Path>) {
    let prefix = format!("{VENV}.build-");
    let Ok(entries) = fs::read_dir(dir) else { return };
    for entry in entries.filter_map(Result::ok) {
        let name = entry.file_name();
        let is_build = name.to_str().is_some_and(|name| name.starts_with(&prefix));
        if is_build && keep.is_none_or(|keep| keep != Path::new(&name)) {
            let _ = fs::remove_dir_all(entry.path());
        }
    }
}

/// Makes a virtual environment in `build` and installs the pinned packages
/// into it; succeeds only if it then imports `cs.packetstream`.
#[cfg(unix)]
fn build_venv(build: &Path, requirements: &Path, wanted: &[u8]) -> Result<(), Missing> {
    let mut venv = Command::new("python3");
    venv.args(["-m", "venv"]).arg(build);
    match run_bounded(venv, VENV_TIMEOUT) {
        Ok(Run { status: Some(status), .. }) if status.success() => {}
        Ok(Run { status: None, .. }) => {
            return Err(Missing::new(format!("`python3 -m venv` ran for over {VENV_TIMEOUT:?}"), BY_HAND))
        }
        Ok(run) => {
            // Debian's python3 without python3-venv explains on stdout.
            let said = if run.stderr.iter().all(u8::is_ascii_whitespace) { &run.stdout } else { &run.stderr };
            return Err(Missing::new(
                format!("`python3 -m venv` does not work here: {}", last_line(said)),
                format!("install Python's venv module (on Debian: apt-get install python3-venv), or {BY_HAND}"),
            ));
        }
        Err(error) if error.kind() == io::ErrorKind::NotFound => {
            return Err(Missing::new(
                "there is no python3 on PATH to make a virtual environment with",
                format!("install python3 (with its venv module), or {BY_HAND}"),
            ))
        }
        Err(error) => return Err(Missing::new(format!("cannot run python3: {error}"), BY_HAND)),
    }

    let python = python_in(build);
    let mut pip = Command::new(&python);
    pip.args(["-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-deps", "-r"])
        .arg(requirements)
        // Its stdin is empty, but pip should fail rather than ask for a
        // password anyway.
        .env("PIP_NO_INPUT", "1");
    let registry = "check that pip reaches the package registry (network, proxy, PIP_INDEX_URL)";
    match run_bounded(pip, PIP_TIMEOUT) {
        Ok(Run { status: Some(status), .. }) if status.success() => {}
        Ok(Run { status: None, .. }) => {
            return Err(Missing::new(
                format!("pip install ran for over {PIP_TIMEOUT:?} and was killed (is the network dead?)"),
                format!("{registry}, or {BY_HAND}"),
            ))
        }
        Ok(run) => {
            let last = last_line(&run.stderr);
            return Err(match unreachable_registry(&String::from_utf8_lossy(&run.stderr)) {
                Some(cause) => Missing::new(
                    format!("pip cannot reach the package registry ({cause}): {last}"),
                    format!("{registry}, or {BY_HAND}"),
                ),
                None => Missing::new(format!("pip install failed: {last}"), BY_HAND),
            });
        }
        Err(error) => return Err(Missing::new(format!("cannot run {}: {error}", python.display()), BY_HAND)),
    }

    probe(&python).map_err(|why| {
        Missing::new(
            format!("after pip installed {}: {why}", requirements.display()),
            format!("the pins may not suit this python3; {BY_HAND}"),
        )
    })?;
    fs::write(build.join(STAMP), wanted)
        .map_err(|e| Missing::new(format!("cannot write {}: {e}", build.join(STAMP).display()), BY_HAND))
}

/// What in pip's complaints says that it could not reach the package
/// registry, if anything does.
#[cfg(unix)]
fn unreachable_registry(said: &str) -> Option<String> {
    const SIGNS: [&str; 8] = [
        "Failed to establish a new connection",
        "Max retries exceeded",
        "Connection refused",
        "Temporary failure in name resolution",
        "Name or service not known",
        "Network is unreachable",
        "ProxyError",
        "timed out",
    ];
    let line = said.lines().rev().find(|line| SIGNS.iter().any(|sign| line.contains(sign)))?;
    // pip's retry warnings wrap the cause in Python reprs: keep its words.
    let cause = match line.find("Failed to establish a new connection: ") {
        Some(at) => line[at..].split('\'').next().unwrap_or(line),
        None => line.split_once("after connection broken by ").map_or(line, |(_, cause)| cause),
    };
    Some(cause.trim().chars().take(200).collect())
}

#[cfg(unix)]
mod unix {
    use std::fs::{self, File, OpenOptions};
    use std::io;
    use std::os::fd::AsRawFd;
    use std::path::Path;
    use std::thread;
    use std::time::{Duration, Instant};

    /// Takes an exclusive `flock` on `path`, held until the returned file is
    /// closed (or the process ends, however it ends). `Ok(None)` if another
    /// holder kept it for `timeout`; `on_wait` runs once, when it first turns
    /// out to be held.
    pub fn lock_exclusive(path: &Path, timeout: Duration, on_wait: impl FnOnce()) -> io::Result<Option<File>> {
        // std opens it close-on-exec, so pip and its children do not hold
        // the lock on after this process.
        let file = OpenOptions::new().create(true).truncate(false).write(true).open(path)?;
        let deadline = Instant::now() + timeout;
        let mut on_wait = Some(on_wait);
        loop {
            // SAFETY: flock on a descriptor that `file` keeps open.
            if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
                return Ok(Some(file));
            }
            let error = io::Error::last_os_error();
            match error.raw_os_error() {
                Some(libc::EWOULDBLOCK) => {}
                Some(libc::EINTR) => continue,
                _ => return Err(error),
            }
            if let Some(on_wait) = on_wait.take() {
                on_wait();
            }
            if Instant::now() >= deadline {
                return Ok(None);
            }
            // flock has no timed form: poll it, as a child's exit is polled.
            thread::sleep(Duration::from_millis(100));
        }
    }

    /// Makes `venv` a link to `build` (a directory beside it) in one rename,
    /// so that `venv` is either what it was or the new build.
    pub fn link_into_place(build: &Path, venv: &Path) -> io::Result<()> {
        let name = build.file_name().ok_or_else(|| io::Error::other("a build without a name"))?;
        let mut new_link = venv.as_os_str().to_owned();
        new_link.push(".link");
        let new_link = Path::new(&new_link);
        match fs::remove_file(new_link) {
            Err(error) if error.kind() != io::ErrorKind::NotFound => return Err(error),
            _ => {}
        }
        // Relative, so that it names the build beside it.
        std::os::unix::fs::symlink(name, new_link)?;
        // A rename cannot put a link over a directory, such as an
        // environment made there by hand; that one is broken anyway.
        if fs::symlink_metadata(venv).is_ok_and(|m| m.is_dir()) {
            fs::remove_dir_all(venv)?;
        }
        fs::rename(new_link, venv)
    }
}

/// One line to stderr at once, past the test harness, which would hold back
/// `eprintln!` until the test ends.
fn say(line: &str) {
    let _ = io::stderr().lock().write_all(format!("{line}\n").as_bytes());
}

/// The last line of a child's output that says something.
fn last_line(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    text.lines().rev().map(str::trim).find(|line| !line.is_empty()).unwrap_or("(no message)").to_owned()
}

// ---------------------------------------------------------------------------
// Child processes with bounded waits

/// How a bounded run ended: `status` is `None` if it had to be killed.
pub struct Run {
    pub status: Option<ExitStatus>,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

/// Reads a stream to its end on a thread of its own.
pub fn drain(mut stream: impl Read + Send + 'static) -> Receiver<Vec<u8>> {
    let (tx, rx) = crossbeam_channel::bounded(1);
    thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = stream.read_to_end(&mut buf);
        let _ = tx.send(buf);
    });
    rx
}

/// Runs `command` (stdin empty, stdout and stderr collected), killing it if
/// it is still running after `timeout`.
pub fn run_bounded(mut command: Command, timeout: Duration) -> io::Result<Run> {
    let mut child = command.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn()?;
    let stdout = drain(child.stdout.take().expect("piped stdout"));
    let stderr = drain(child.stderr.take().expect("piped stderr"));
    let deadline = Instant::now() + timeout;
    // std has no timed wait on a child: poll it, with a short pause.
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break Some(status);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            child.wait()?;
            break None;
        }
        thread::sleep(Duration::from_millis(10));
    };
    // A grandchild could still hold the pipes: do not wait for it for long.
    let collect = |rx: Receiver<Vec<u8>>| rx.recv_timeout(Duration::from_secs(10)).unwrap_or_default();
    Ok(Run { status, stdout: collect(stdout), stderr: collect(stderr) })
}

// ---------------------------------------------------------------------------
// Python scripts as peers, with bounded waits

/// Passed to the Python scripts: their own watchdog, shorter than the tests'
/// bounds so that their message is what a hang shows.
pub const PYTHON_WATCHDOG_SECONDS: &str = "150";

/// A script of `tests/python`.
pub fn script(name: &str) -> PathBuf {
    super::repo().join("tests/python").join(name)
}

/// The last `max` bytes of `bytes` as text: Python's tracebacks can be huge.
pub fn tail(bytes: &[u8], max: usize) -> String {
    let text = String::from_utf8_lossy(bytes);
    let start = text.len().saturating_sub(max);
    let start = (start..text.len()).find(|&i| text.is_char_boundary(i)).unwrap_or(text.len());
    let cut = if start > 0 { format!("[... {start} bytes cut ...]\n") } else { String::new() };
    format!("{cut}{}", &text[start..])
}

/// The stderr of a child that talks over its stdio, collected on a thread:
/// all of it, once the child has exited.
pub struct ChildStderr(pub Receiver<Vec<u8>>);

impl ChildStderr {
    /// The end of what the child wrote, once it has exited (bounded wait).
    pub fn tail(&self) -> String {
        match self.0.recv_timeout(Duration::from_secs(10)) {
            Ok(bytes) => tail(&bytes, 16 * 1024),
            Err(_) => "(the child's stderr did not end)".to_owned(),
        }
    }
}

/// Starts `python script` as a packet peer over its stdin and stdout. Its
/// stderr (import chatter, logs, tracebacks) is collected, not mixed into
/// the test's output.
pub fn spawn_python(python: &Path, name: &str) -> (Transport, ChildStderr) {
    let (reader, writer) = io::pipe().expect("a pipe for the child's stderr");
    let mut command = Command::new(python);
    command.arg(script(name)).env("PACKETSTREAM_TEST_WATCHDOG", PYTHON_WATCHDOG_SECONDS).stderr(writer);
    let transport = Transport::spawn(&mut command).unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
    // `command` and with it our copy of the pipe's write end go here, so the
    // drain sees the end of input when the child exits.
    drop(command);
    (transport, ChildStderr(drain(reader)))
}

/// Runs `body`; if it panics, shows the child's stderr before failing.
pub fn showing_stderr_on_failure<T>(name: &str, stderr: ChildStderr, body: impl FnOnce() -> T) -> T {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(body)) {
        Ok(value) => value,
        Err(panic) => {
            // The connection was dropped while unwinding, so the child has
            // been told to end (or killed).
            eprintln!("---- stderr of {name} (its end) ----\n{}\n---- end of stderr of {name} ----", stderr.tail());
            std::panic::resume_unwind(panic)
        }
    }
}
