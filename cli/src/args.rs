//! The command line, as clap reads it: every subcommand, option and help text.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use packetstream::net::Addr;

/// Talk to, serve, watch, decode, check and benchmark cs.packetstream peers.
///
/// Every command speaks Python cs.packetstream's wire format, byte for byte,
/// to a server on a socket (--connect HOST:PORT or unix:PATH) or to a command
/// it starts and talks to over that command's stdin and stdout (-- COMMAND).
///
/// Exit status: 0 when all went well, 2 on bad arguments, an unreachable
/// peer, a timeout or any other error (the reason on stderr); `call` exits 1
/// when the peer failed the request, `decode` when the stream is malformed,
/// `check` when a check failed; `tap` exits as its child did.
#[derive(Debug, Parser)]
#[command(name = "packetstream", version, propagate_version = true, max_term_width = 100)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Send a request and print the answer.
    Call(CallArgs),
    /// Serve requests: echo them, or answer each by running a shell command.
    Serve(ServeArgs),
    /// Run a command between its parent and itself, logging every packet.
    Tap(TapArgs),
    /// Decode a captured one-direction stream, one line per packet.
    Decode(DecodeArgs),
    /// Check that a peer with echo_server's contract follows the protocol.
    Check(CheckArgs),
    /// Measure an echo peer: scenarios A-D of the transport benchmark.
    Bench(BenchArgs),
    /// Print a shell completion script.
    Completions(CompletionsArgs),
}

/// Who to talk to: a server's address, or a command to start.
#[derive(Debug, Clone, Args)]
#[group(required = true, multiple = false)]
pub struct PeerArgs {
    /// Connect to the server at ADDR: HOST:PORT ([::1]:PORT for IPv6) or unix:PATH.
    #[arg(long, value_name = "ADDR")]
    pub connect: Option<Addr>,
    /// Start COMMAND and talk to it over its stdin and stdout (after `--`).
    #[arg(last = true, value_name = "COMMAND", num_args = 1..)]
    pub command: Vec<String>,
}

/// `packetstream call`.
#[derive(Debug, Args)]
#[command(after_help = "\
Each ok answer's payload goes to stdout, one per line: as text when it is printable UTF-8 (no \
control characters but tab, newline and carriage return; a newline is added unless it ends \
with one), else as lowercase hex. With --json, one object per answer instead: \
{\"ok\":true,\"flags\":0,\"payload_hex\":\"6869\"}. A failed answer's text goes to stderr.

Exit status: 0 when every answer was ok, 1 when the peer failed a request, 2 on any other \
error (bad arguments, an unreachable peer, no answer in time).

Examples:
  packetstream call --text hello --connect 127.0.0.1:7000
  packetstream call --type 3 --hex 'de ad be ef' --json -- python3 server.py
  echo data | packetstream call --stdin --out answer.bin --connect unix:/run/app.sock")]
pub struct CallArgs {
    /// The request type (the application's value; the wire carries it plus one).
    #[arg(long = "type", value_name = "T", default_value = "0", value_parser = parse_u64)]
    pub rq_type: u64,
    /// The request's flags (decimal, or hex with 0x).
    #[arg(long, value_name = "F", default_value = "0", value_parser = parse_u64)]
    pub flags: u64,
    /// The channel to send on (cs.packetstream serves only channel 0).
    #[arg(long, value_name = "C", default_value = "0", value_parser = parse_u64)]
    pub channel: u64,
    /// The payload.
    #[command(flatten)]
    pub payload: PayloadArgs,
    /// Send the request N times (up to 64 in flight at once); answers print in order.
    #[arg(long, value_name = "N", default_value = "1", value_parser = clap::value_parser!(u64).range(1..))]
    pub repeat: u64,
    /// Print one JSON object per answer: ok, flags, payload_hex.
    #[arg(long)]
    pub json: bool,
    /// Write the ok answers' payloads, raw, to FILE (`-` for stdout) instead of printing them.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// How long to wait to connect, for each answer and for the close, in seconds.
    #[arg(long, value_name = "SECS", default_value = "30", value_parser = parse_seconds)]
    pub timeout: Duration,
    /// Turn the protocol extensions on (a plain cs.packetstream peer refuses them harmlessly).
    #[arg(long)]
    pub extensions: bool,
    /// The peer.
    #[command(flatten)]
    pub peer: PeerArgs,
}

/// Where a request's payload comes from: empty unless one is given.
#[derive(Debug, Clone, Args)]
#[group(multiple = false)]
pub struct PayloadArgs {
    /// The payload as UTF-8 text.
    #[arg(long, value_name = "S")]
    pub text: Option<String>,
    /// The payload in hex (spaces, colons and a 0x prefix are allowed).
    #[arg(long, value_name = "H")]
    pub hex: Option<String>,
    /// The payload is the contents of PATH.
    #[arg(long, value_name = "PATH")]
    pub file: Option<PathBuf>,
    /// The payload is everything on stdin.
    #[arg(long)]
    pub stdin: bool,
}

/// `packetstream serve`.
#[derive(Debug, Args)]
#[command(after_help = "\
--echo answers every request ok with its own flags and payload, except request type 1, which \
fails with a short text: echo_server's contract, which `packetstream check` tests.

--exec runs `sh -c CMD` once per request, with the payload on its stdin and \
PACKETSTREAM_RQ_TYPE, PACKETSTREAM_FLAGS, PACKETSTREAM_CHANNEL and PACKETSTREAM_TAG in its \
environment. Exit 0 answers ok, flags 0, with its stdout; any other end fails the request \
with its stderr (or, when that is empty, how it ended). A command still running after \
--exec-timeout is killed with its process group and the request fails.

--stdio serves one connection on stdin and stdout until the peer ends it. --listen prints \
`listening on ADDR` for each address (the port chosen, for port 0), serves until SIGINT or \
SIGTERM, shuts down in order and prints `served connections=N requests=M`.

Examples:
  packetstream serve --echo --listen 127.0.0.1:7000 unix:/tmp/echo.sock
  packetstream serve --exec 'tr a-z A-Z' --listen 127.0.0.1:7001
  packetstream call --text hi -- packetstream serve --exec 'wc -c' --stdio")]
pub struct ServeArgs {
    /// What answers the requests.
    #[command(flatten)]
    pub mode: ServeMode,
    /// Where the requests come from.
    #[command(flatten)]
    pub place: ServePlace,
    /// How long one command of --exec may run, in seconds.
    #[arg(long, value_name = "SECS", default_value = "60", value_parser = parse_seconds)]
    pub exec_timeout: Duration,
    /// How many requests of one connection are served at once.
    #[arg(long, value_name = "N", default_value = "4", value_parser = clap::value_parser!(u64).range(1..=1024))]
    pub jobs: u64,
    /// Turn the protocol extensions on (a peer then learns why it is refused, and may quit with a reason).
    #[arg(long)]
    pub extensions: bool,
    /// Refuse connections over N at once (--listen).
    #[arg(long, value_name = "N", conflicts_with = "stdio")]
    pub max_connections: Option<usize>,
    /// Close a connection with no request for SECS seconds (--listen).
    #[arg(long, value_name = "SECS", value_parser = parse_seconds, conflicts_with = "stdio")]
    pub idle_timeout: Option<Duration>,
    /// How long the requests in service get when the server shuts down, in seconds.
    #[arg(long, value_name = "SECS", default_value = "5", value_parser = parse_seconds)]
    pub shutdown_timeout: Duration,
}

/// What answers the requests of `serve`.
#[derive(Debug, Clone, Args)]
#[group(required = true, multiple = false)]
pub struct ServeMode {
    /// Echo every request (request type 1 fails).
    #[arg(long)]
    pub echo: bool,
    /// Answer each request by running the shell command CMD.
    #[arg(long, value_name = "CMD")]
    pub exec: Option<String>,
}

/// Where `serve` takes its connections.
#[derive(Debug, Clone, Args)]
#[group(required = true, multiple = false)]
pub struct ServePlace {
    /// Serve one connection on this process's stdin and stdout.
    #[arg(long)]
    pub stdio: bool,
    /// Listen on each ADDR: HOST:PORT (port 0 picks one) or unix:PATH.
    #[arg(long, value_name = "ADDR", num_args = 1..)]
    pub listen: Vec<Addr>,
}

/// `packetstream tap`.
#[derive(Debug, Args)]
#[command(after_help = "\
The bytes are relayed unchanged both ways: our stdin to the child's stdin, the child's stdout \
to our stdout; the child's stderr is ours. Each packet is logged as it passes: to stderr as \
text, or with --log as JSON, one object per line with `dir` (to_child, from_child), `t` \
(seconds since the start) and the keys of `decode --json`. Bytes that break the format are \
logged once, with their offset (`kind` malformed), and still relayed; that direction is not \
decoded further.

Exit status: the child's (128 + the signal's number if a signal ended it); 2 when the child \
cannot be started or the log cannot be written.

Example, between a parent and the server it starts:
  parent-program -- packetstream tap --log conversation.jsonl -- my-server --stdio")]
pub struct TapArgs {
    /// Write the log to FILE, as JSON lines, instead of text on stderr.
    #[arg(long, value_name = "FILE")]
    pub log: Option<PathBuf>,
    /// The largest frame body decoded; a longer one is logged as malformed (still relayed).
    #[arg(long, value_name = "BYTES", default_value_t = packetstream::wire::DEFAULT_MAX_PACKET_SIZE)]
    pub max_packet_size: usize,
    /// The command to run, and its arguments (after `--`).
    #[arg(last = true, required = true, value_name = "COMMAND", num_args = 1..)]
    pub command: Vec<String>,
}

/// `packetstream decode`.
#[derive(Debug, Args)]
#[command(after_help = "\
Each line names the packet's byte offset in the stream, its kind (request, response, eof, \
erq) and its fields. With --json, one object per packet: `kind`; requests and responses add \
`tag`, `channel`, `flags`, `len` and `payload_hex` (never cut short), requests `rq_type` (the \
wire value minus one), responses `ok`. A malformed stream ends with a line giving the offset \
where the bad packet starts and what is wrong (`kind` malformed, `offset`, `error`).

Exit status: 0 for a well-formed stream, 1 for a malformed one, 2 when FILE cannot be read.")]
pub struct DecodeArgs {
    /// Print one JSON object per packet.
    #[arg(long)]
    pub json: bool,
    /// The largest frame body accepted; a longer one is malformed.
    #[arg(long, value_name = "BYTES", default_value_t = packetstream::wire::DEFAULT_MAX_PACKET_SIZE)]
    pub max_packet_size: usize,
    /// The captured stream (`-` for stdin).
    #[arg(value_name = "FILE|-")]
    pub input: PathBuf,
}

/// `packetstream check`.
#[derive(Debug, Args)]
#[command(after_help = "\
The peer must follow echo_server's contract: every request answered ok with its own flags and \
payload, except request type 1, which fails with a text; at the end of its input it answers \
what it has, sends its EOF and ends (a child exits 0). Each check runs on a connection of its \
own (a new child, or a new connection to ADDR) and prints one line: pass, fail or n/a (not \
applicable to this peer), its name and why. A summary line ends the run.

Exit status: 0 when no check failed, 1 when one did, 2 when the peer cannot be reached at all \
or the arguments are bad.")]
pub struct CheckArgs {
    /// How long any one wait of a check may take, in seconds.
    #[arg(long, value_name = "SECS", default_value = "10", value_parser = parse_seconds)]
    pub timeout: Duration,
    /// The largest frame body the peer accepts (16 MiB for cs.packetstream's peers and ours).
    #[arg(long, value_name = "BYTES", default_value_t = packetstream::wire::DEFAULT_MAX_PACKET_SIZE)]
    pub max_packet_size: usize,
    /// Run only these checks (names or their prefixes, comma-separated).
    #[arg(long, value_name = "NAMES", value_delimiter = ',')]
    pub only: Vec<String>,
    /// Print one JSON object per check (name, result, reason) instead of text.
    #[arg(long)]
    pub json: bool,
    /// Send the peer's stderr to /dev/null instead of ours.
    #[arg(long)]
    pub quiet_peer: bool,
    /// List the checks and what each tests, and exit.
    #[arg(long, exclusive = true)]
    pub list: bool,
    /// The peer (needed unless --list).
    #[command(flatten)]
    pub peer: CheckPeerArgs,
}

/// [`PeerArgs`], which `check --list` does without.
#[derive(Debug, Clone, Args)]
#[group(multiple = false)]
pub struct CheckPeerArgs {
    /// Connect to the server at ADDR: HOST:PORT ([::1]:PORT for IPv6) or unix:PATH.
    #[arg(long, value_name = "ADDR")]
    pub connect: Option<Addr>,
    /// Start COMMAND and talk to it over its stdin and stdout (after `--`).
    #[arg(last = true, value_name = "COMMAND", num_args = 1..)]
    pub command: Vec<String>,
}

impl CheckPeerArgs {
    /// The peer, if one was given.
    pub fn given(&self) -> Option<PeerArgs> {
        (self.connect.is_some() || !self.command.is_empty())
            .then(|| PeerArgs { connect: self.connect.clone(), command: self.command.clone() })
    }
}

/// `packetstream bench`.
#[derive(Debug, Args)]
#[command(after_help = "\
Scenarios, against any echo peer, each on a connection of its own:
  A  sequential: one caller, each call waits for its answer (calls/s)
  B  pipelined: one caller keeping --window requests outstanding (req/s)
  C  concurrent: --threads callers, each sequential (req/s)
  D  bulk: --bulk-size payloads echoed, sequential (MB/s of payload one way)
Every answer is checked. A progress bar runs on stderr when it is a terminal; the table is \
printed on stdout at the end.")]
pub struct BenchArgs {
    /// How long each scenario is measured, in seconds.
    #[arg(long, value_name = "SECS", default_value = "3", value_parser = parse_seconds)]
    pub seconds: Duration,
    /// Run only these scenarios (letters, comma-separated: A,B,C,D).
    #[arg(long, value_name = "LETTERS", value_delimiter = ',', value_parser = parse_scenario)]
    pub only: Vec<char>,
    /// The payload of A, B and C, in bytes.
    #[arg(long, value_name = "BYTES", default_value = "16")]
    pub size: usize,
    /// The payload of D, in bytes.
    #[arg(long, value_name = "BYTES", default_value = "1048576")]
    pub bulk_size: usize,
    /// The requests B keeps outstanding.
    #[arg(long, value_name = "N", default_value = "64", value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub window: u64,
    /// The caller threads of C.
    #[arg(long, value_name = "N", default_value = "4", value_parser = clap::value_parser!(u64).range(1..=256))]
    pub threads: u64,
    /// How long to wait to connect and for any one answer, in seconds.
    #[arg(long, value_name = "SECS", default_value = "30", value_parser = parse_seconds)]
    pub timeout: Duration,
    /// Print one JSON object per scenario instead of the table.
    #[arg(long)]
    pub json: bool,
    /// No progress bar, even on a terminal.
    #[arg(long)]
    pub no_progress: bool,
    /// Send the peer's stderr to /dev/null instead of ours.
    #[arg(long)]
    pub quiet_peer: bool,
    /// The peer.
    #[command(flatten)]
    pub peer: PeerArgs,
}

/// `packetstream completions`.
#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  packetstream completions bash > /etc/bash_completion.d/packetstream
  packetstream completions zsh > \"${fpath[1]}/_packetstream\"
  packetstream completions fish > ~/.config/fish/completions/packetstream.fish")]
pub struct CompletionsArgs {
    /// The shell.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

/// A number in decimal, or in hex after `0x`.
fn parse_u64(text: &str) -> Result<u64, String> {
    let parsed = match text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(&hex.replace('_', ""), 16),
        None => text.replace('_', "").parse(),
    };
    parsed.map_err(|_| format!("not a number from 0 to {}: {text:?}", u64::MAX))
}

/// Seconds, fractions allowed.
fn parse_seconds(text: &str) -> Result<Duration, String> {
    let seconds: f64 = text.parse().map_err(|_| format!("not a number of seconds: {text:?}"))?;
    if seconds <= 0.0 {
        return Err(format!("must be more than 0 seconds: {text:?}"));
    }
    Duration::try_from_secs_f64(seconds).map_err(|_| format!("not a usable number of seconds: {text:?}"))
}

fn parse_scenario(text: &str) -> Result<char, String> {
    match text.trim().to_ascii_uppercase().as_str() {
        letter @ ("A" | "B" | "C" | "D") => Ok(letter.chars().next().expect("one letter")),
        _ => Err(format!("not a scenario (A, B, C or D): {text:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn numbers_and_seconds() {
        assert_eq!(parse_u64("0x1f"), Ok(31));
        assert_eq!(parse_u64("1_000"), Ok(1000));
        assert_eq!(parse_u64("18446744073709551615"), Ok(u64::MAX));
        assert!(parse_u64("18446744073709551616").is_err());
        assert!(parse_u64("-1").is_err());
        assert_eq!(parse_seconds("0.25"), Ok(Duration::from_millis(250)));
        assert!(parse_seconds("0").is_err());
        assert!(parse_seconds("inf").is_err());
        assert!(parse_seconds("soon").is_err());
        assert_eq!(parse_scenario("b"), Ok('B'));
        assert!(parse_scenario("E").is_err());
    }

    #[test]
    fn a_peer_is_an_address_or_a_command_never_both() {
        let parse = |args: &[&str]| Cli::try_parse_from(args.iter().copied());
        assert!(parse(&["packetstream", "call", "--connect", "127.0.0.1:1"]).is_ok());
        assert!(parse(&["packetstream", "call", "--", "cat"]).is_ok());
        assert!(parse(&["packetstream", "call"]).is_err());
        assert!(parse(&["packetstream", "call", "--connect", "127.0.0.1:1", "--", "cat"]).is_err());
        assert!(parse(&["packetstream", "call", "--connect", "nowhere"]).is_err());
        assert!(parse(&["packetstream", "call", "--text", "a", "--hex", "61", "--", "cat"]).is_err());
        assert!(parse(&["packetstream", "check", "--list"]).is_ok());
        assert!(parse(&["packetstream", "check", "--list", "--", "cat"]).is_err());
        assert!(parse(&["packetstream", "check", "--connect", "127.0.0.1:1", "--", "cat"]).is_err());
        assert!(parse(&["packetstream", "serve", "--echo"]).is_err());
        assert!(parse(&["packetstream", "serve", "--echo", "--stdio", "--listen", "127.0.0.1:0"]).is_err());
        assert!(parse(&["packetstream", "serve", "--exec", "cat", "--listen", "127.0.0.1:0", "unix:/tmp/x"]).is_ok());
        assert!(parse(&["packetstream", "serve", "--echo", "--stdio", "--max-connections", "3"]).is_err());
        assert!(parse(&["packetstream", "tap"]).is_err());
    }
}
