//! Addresses: where a server listens and a client connects ([`Addr`]), and
//! who is at the other end of an accepted connection ([`Peer`]).

use std::fmt;
use std::io;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::str::FromStr;

/// Where to listen or connect: `HOST:PORT` or `unix:PATH`.
///
/// The text form is what [`FromStr`] reads and [`Display`](fmt::Display)
/// writes, the same both ways: `127.0.0.1:8080`, `[::1]:8080` (an IPv6
/// address goes in brackets), `localhost:8080` (a name, resolved when it is
/// used), `unix:/run/app.sock`. Port 0 asks the system for a free port; a
/// server's [`local_addrs`](crate::net::ServerHandle::local_addrs) then
/// says which.
///
/// ```
/// use packetstream::net::Addr;
/// let addr: Addr = "[::1]:8080".parse().unwrap();
/// assert_eq!(addr.to_string(), "[::1]:8080");
/// let path: Addr = "unix:/tmp/app.sock".parse().unwrap();
/// assert!(matches!(path, Addr::Unix(_)));
/// ```
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Addr {
    /// An IP address and a port.
    Tcp(SocketAddr),
    /// A host name and a port, resolved when bound or connected to.
    Host {
        /// The name.
        host: String,
        /// The port.
        port: u16,
    },
    /// The path of a Unix socket.
    Unix(PathBuf),
}

impl Addr {
    /// The socket addresses a TCP address stands for (a name may resolve to
    /// several).
    ///
    /// # Errors
    /// For a name that does not resolve, and for a Unix path.
    pub fn resolve(&self) -> io::Result<Vec<SocketAddr>> {
        match self {
            Addr::Tcp(addr) => Ok(vec![*addr]),
            Addr::Host { host, port } => {
                let found: Vec<SocketAddr> = (host.as_str(), *port)
                    .to_socket_addrs()
                    .map_err(|error| io::Error::new(error.kind(), format!("cannot resolve {self}: {error}")))?
                    .collect();
                if found.is_empty() {
                    return Err(io::Error::new(io::ErrorKind::NotFound, format!("{self} resolves to no address")));
                }
                Ok(found)
            }
            Addr::Unix(_) => Err(io::Error::new(io::ErrorKind::InvalidInput, format!("{self} is not a TCP address"))),
        }
    }
}

impl From<SocketAddr> for Addr {
    fn from(addr: SocketAddr) -> Self {
        Addr::Tcp(addr)
    }
}

impl fmt::Display for Addr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            // std puts an IPv6 address in brackets.
            Addr::Tcp(addr) => write!(f, "{addr}"),
            Addr::Host { host, port } => write!(f, "{host}:{port}"),
            Addr::Unix(path) => write!(f, "unix:{}", path.display()),
        }
    }
}

/// Text that is not an [`Addr`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddrParseError {
    input: String,
    why: &'static str,
}

impl fmt::Display for AddrParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "not an address (HOST:PORT or unix:PATH): {:?}: {}", self.input, self.why)
    }
}

impl std::error::Error for AddrParseError {}

impl FromStr for Addr {
    type Err = AddrParseError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let error = |why| AddrParseError { input: text.to_owned(), why };
        if let Some(path) = text.strip_prefix("unix:") {
            if path.is_empty() {
                return Err(error("the path is empty"));
            }
            return Ok(Addr::Unix(PathBuf::from(path)));
        }
        if let Ok(addr) = text.parse::<SocketAddr>() {
            return Ok(Addr::Tcp(addr));
        }
        let Some((host, port)) = text.rsplit_once(':') else {
            return Err(error("no port"));
        };
        if host.contains(':') || host.starts_with('[') {
            return Err(error("an IPv6 address goes in brackets: [::1]:PORT"));
        }
        if host.is_empty() {
            return Err(error("no host"));
        }
        let port = port.parse().map_err(|_| error("the port is not a number from 0 to 65535"))?;
        Ok(Addr::Host { host: host.to_owned(), port })
    }
}

/// Who is at the other end of an accepted connection.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Peer {
    /// A TCP peer's address and port.
    Tcp(SocketAddr),
    /// A Unix-socket peer, with the path its socket is bound to (usually
    /// none).
    Unix(Option<PathBuf>),
    /// An in-process client of a [`MemoryListener`](crate::net::MemoryListener),
    /// by its serial number.
    Memory(u64),
}

impl Peer {
    /// The peer's IP address, for a TCP peer (an IPv4 address mapped into
    /// IPv6 is given as IPv4).
    pub fn ip(&self) -> Option<IpAddr> {
        match self {
            Peer::Tcp(addr) => Some(addr.ip().to_canonical()),
            Peer::Unix(_) | Peer::Memory(_) => None,
        }
    }
}

impl fmt::Display for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Peer::Tcp(addr) => write!(f, "{addr}"),
            Peer::Unix(Some(path)) => write!(f, "unix:{}", path.display()),
            Peer::Unix(None) => f.write_str("unix:(unnamed)"),
            Peer::Memory(serial) => write!(f, "memory:{serial}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_read_and_write_the_same_text() {
        for text in ["127.0.0.1:0", "[::1]:8080", "localhost:80", "unix:/tmp/a b.sock", "unix:relative.sock"] {
            let addr: Addr = text.parse().unwrap();
            assert_eq!(addr.to_string(), text);
        }
        assert!(matches!("[::1]:1".parse::<Addr>(), Ok(Addr::Tcp(a)) if a.is_ipv6()));
        assert!(matches!("example.org:1".parse::<Addr>(), Ok(Addr::Host { port: 1, .. })));
    }

    #[test]
    fn what_is_not_an_address_says_why() {
        for (text, why) in [
            ("::1:80", "brackets"),
            ("localhost", "no port"),
            (":80", "no host"),
            ("host:99999", "port"),
            ("unix:", "empty"),
        ] {
            let error = text.parse::<Addr>().unwrap_err().to_string();
            assert!(error.contains(why), "{text}: {error}");
        }
    }

    #[test]
    fn a_peer_mapped_into_ipv6_is_its_ipv4_address() {
        let peer = Peer::Tcp("[::ffff:10.1.2.3]:5".parse().unwrap());
        assert_eq!(peer.ip(), Some("10.1.2.3".parse().unwrap()));
    }
}
