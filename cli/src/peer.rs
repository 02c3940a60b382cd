//! The peer of `call`, `check` and `bench`: a server's address, or a command
//! started as a child and talked to over its stdin and stdout.

use std::fmt;
use std::process::{Command, Stdio};
use std::time::Duration;

use packetstream::net::{self, Addr};
use packetstream::Transport;

use crate::args::PeerArgs;

/// Who the packets go to.
#[derive(Debug, Clone)]
pub enum Peer {
    /// A server listening at an address.
    Connect(Addr),
    /// A program and its arguments, started for each connection.
    Command(Vec<String>),
}

impl From<PeerArgs> for Peer {
    fn from(args: PeerArgs) -> Peer {
        match args.connect {
            Some(addr) => Peer::Connect(addr),
            None => Peer::Command(args.command),
        }
    }
}

impl fmt::Display for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Peer::Connect(addr) => write!(f, "{addr}"),
            Peer::Command(words) => write!(f, "`{}`", words.join(" ")),
        }
    }
}

impl Peer {
    /// The command that starts the peer, its stderr ours or thrown away.
    pub fn command(&self, quiet: bool) -> Option<Command> {
        let Peer::Command(words) = self else { return None };
        let mut command = Command::new(&words[0]);
        command.args(&words[1..]);
        if quiet {
            command.stderr(Stdio::null());
        }
        Some(command)
    }

    /// A transport to the peer for a connection of the library: a socket
    /// connected within `timeout`, or a child just started.
    pub fn transport(&self, timeout: Duration, quiet: bool) -> Result<Transport, String> {
        match self {
            Peer::Connect(addr) => net::connect(addr, timeout).map_err(|error| error.to_string()),
            Peer::Command(_) => {
                let mut command = self.command(quiet).expect("a command peer has a command");
                Transport::spawn(&mut command).map_err(|error| error.to_string())
            }
        }
    }
}
