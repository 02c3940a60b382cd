//! Drives a key-value server (`kv_server`) through the typed API over a
//! child process's stdin and stdout, and prints what it did.
//!
//!     kv_client [--registry] [OPERATION...] [-- COMMAND [ARGS...]]
//!
//! OPERATION is one of
//!
//!     put KEY VALUE     store VALUE (its UTF-8 bytes) under KEY
//!     get KEY           the value under KEY
//!     delete KEY        remove KEY
//!     list PREFIX       the keys that start with PREFIX ('' for all)
//!
//! and they run in the order given; without any, a demo runs. Each prints
//! one line, such as `put "a" = "1": replaced`, `get "b": failed: no such
//! key: b` or `list "": 2 keys: "a", "b"`; the last line counts them:
//! `kv_client: 5 operations, 1 failed`. A failed answer is an outcome, not
//! an error; a broken connection or an answer that does not decode exits 1.
//!
//! COMMAND is the server to start (by default this program itself, in
//! server mode). `--registry` runs the registry handshake, adapting this
//! end's numbers to the server's (for the server it starts itself too),
//! and prints the numbering it settled.

#[path = "common/kv.rs"]
mod kv;

use std::process::{Command, ExitCode};
use std::time::Duration;

use kv::{Delete, Get, List, Put};
use packetstream::rpc::{CallTyped, Handshake, Numbering, Role, Session, TypedCallTimeoutError};
use packetstream::{Config, PacketConnection, Transport};

/// Passed to ourselves to run as the server.
const SERVE_FLAG: &str = "--serve-kv";
/// A lost answer fails the run instead of hanging it.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(60);

/// One thing to do.
#[derive(Debug, Clone)]
enum Operation {
    Put(String, String),
    Get(String),
    Delete(String),
    List(String),
}

struct Options {
    registry: bool,
    operations: Vec<Operation>,
    command: Vec<String>,
}

fn parse_args(args: impl IntoIterator<Item = String>) -> Result<Options, String> {
    let mut options = Options { registry: false, operations: Vec::new(), command: Vec::new() };
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let mut operand = |what: &str| args.next().ok_or(format!("{arg} needs {what}"));
        let operation = match arg.as_str() {
            "--" => {
                options.command = args.by_ref().collect();
                break;
            }
            "--registry" => {
                options.registry = true;
                continue;
            }
            "put" => {
                let key = operand("a KEY and a VALUE")?;
                Operation::Put(key, operand("a VALUE")?)
            }
            "get" => Operation::Get(operand("a KEY")?),
            "delete" => Operation::Delete(operand("a KEY")?),
            "list" => Operation::List(operand("a PREFIX ('' for all)")?),
            other => return Err(format!("unknown operation or option {other:?}")),
        };
        options.operations.push(operation);
    }
    if options.operations.is_empty() {
        options.operations = demo();
    }
    Ok(options)
}

/// What runs without operations: every request type, a replaced value, a
/// missing key, the empty key, and keys that sort by their UTF-8 bytes.
fn demo() -> Vec<Operation> {
    let s = str::to_owned;
    vec![
        Operation::Put(s("apple"), s("red")),
        Operation::Put(s("banana"), s("yellow")),
        Operation::Put(s("apple"), s("green")),
        Operation::Put(s(""), s("the empty key")),
        Operation::Put(s("éclair"), s("chocolate")),
        Operation::Get(s("apple")),
        Operation::Get(s("cherry")),
        Operation::Get(s("")),
        Operation::List(s("")),
        Operation::Delete(s("banana")),
        Operation::Delete(s("banana")),
        Operation::List(s("a")),
    ]
}

/// Runs one operation; its line, and whether the server failed it.
fn run_one(conn: &impl CallTyped, operation: Operation) -> Result<(String, bool), TypedCallTimeoutError> {
    let outcome = |line: String, result: Result<String, TypedCallTimeoutError>| match result {
        Ok(text) => Ok((format!("{line}: {text}"), false)),
        Err(TypedCallTimeoutError::Failed(failure)) => Ok((format!("{line}: failed: {}", failure.text()), true)),
        Err(other) => Err(other),
    };
    match operation {
        Operation::Put(key, value) => {
            let line = format!("put {key:?} = {value:?}");
            let request = Put { key, value: value.into_bytes() };
            let replaced = conn.call_typed_timeout(&request, ANSWER_TIMEOUT);
            outcome(line, replaced.map(|replaced| if replaced { "replaced" } else { "new" }.to_owned()))
        }
        Operation::Get(key) => {
            let line = format!("get {key:?}");
            let value = conn.call_typed_timeout(&Get { key }, ANSWER_TIMEOUT);
            outcome(line, value.map(|value| format!("\"{}\"", value.escape_ascii())))
        }
        Operation::Delete(key) => {
            let line = format!("delete {key:?}");
            let existed = conn.call_typed_timeout(&Delete { key }, ANSWER_TIMEOUT);
            outcome(line, existed.map(|existed| if existed { "existed" } else { "absent" }.to_owned()))
        }
        Operation::List(prefix) => {
            let line = format!("list {prefix:?}");
            let keys = conn.call_typed_timeout(&List { prefix }, ANSWER_TIMEOUT);
            outcome(
                line,
                keys.map(|keys| {
                    let shown: Vec<String> = keys.0.iter().map(|key| format!("{key:?}")).collect();
                    let noun = if keys.0.len() == 1 { "key" } else { "keys" };
                    format!("{} {noun}: {}", keys.0.len(), shown.join(", "))
                }),
            )
        }
    }
}

fn run(options: Options) -> Result<(), packetstream::Error> {
    let mut command = match options.command.split_first() {
        Some((program, args)) => {
            let mut command = Command::new(program);
            command.args(args);
            command
        }
        None => {
            let mut command = Command::new(std::env::current_exe()?);
            command.arg(SERVE_FLAG);
            if options.registry {
                command.arg("--registry");
            }
            command
        }
    };
    let transport = Transport::spawn(&mut command)?;
    let config = Config::builder().name("kv_client");
    let (mut failed, count) = (0, options.operations.len());
    let finished = if options.registry {
        let handshake = Handshake::new(kv::registry()?, Role::Adapt);
        let conn = PacketConnection::new(transport, handshake.configure(config))?;
        let session = Session::start(conn, &handshake, ANSWER_TIMEOUT)?;
        println!("registry: {}", describe(session.numbering()));
        for operation in options.operations {
            let (line, was_failed) = run_one(&session, operation)?;
            println!("{line}");
            failed += usize::from(was_failed);
        }
        session.close()?
    } else {
        let conn = PacketConnection::new(transport, config)?;
        for operation in options.operations {
            let (line, was_failed) = run_one(&conn, operation)?;
            println!("{line}");
            failed += usize::from(was_failed);
        }
        conn.close()?
    };
    let noun = if count == 1 { "operation" } else { "operations" };
    println!("kv_client: {count} {noun}, {failed} failed");
    match finished.exit_status() {
        Some(status) if !status.success() => {
            Err(std::io::Error::other(format!("the server exited with {status}")).into())
        }
        _ => Ok(()),
    }
}

fn describe(numbering: &Numbering) -> String {
    match numbering {
        Numbering::AsIs(why) => format!("numbers as they are ({why})"),
        Numbering::Same => "the server has the same numbers".to_owned(),
        Numbering::Adapted(mapping) => {
            let pairs: Vec<String> = mapping.iter().map(|(ours, theirs)| format!("{ours}->{theirs}")).collect();
            format!("adapted to the server's numbers: {}", pairs.join(" "))
        }
        Numbering::PeerAdapts => "the server adapts to ours".to_owned(),
    }
}

fn main() -> ExitCode {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some(SERVE_FLAG) {
        let registry = args.get(1).map(String::as_str) == Some("--registry");
        return kv::serve_stdio("kv_client-server", registry, registry);
    }
    let options = match parse_args(args.drain(..)) {
        Ok(options) => options,
        Err(error) => {
            eprintln!("kv_client: {error}");
            eprintln!("usage: kv_client [--registry] [put KEY VALUE | get KEY | delete KEY | list PREFIX]... [-- COMMAND [ARGS...]]");
            return ExitCode::from(2);
        }
    };
    match run(options) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("kv_client: {error}");
            ExitCode::FAILURE
        }
    }
}
