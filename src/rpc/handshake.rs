//! One connection's registry handshake: the service that answers the peer's
//! registry on the control channel, the exchange this end starts, and the
//! outcome both share with the typed calls and the serving side.

use std::fmt;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use super::agreement::{compare, Mismatch, Numbering, Role};
use super::exchange;
use super::registry::Registry;
use crate::binary::DecodeError;
use crate::config::ConfigBuilder;
use crate::conn::error::{ConnectionError, SubmitError};
use crate::conn::pending::WaitTimeoutError;
use crate::conn::PacketConnection;
use crate::ext::negotiation::State;
use crate::ext::service::Service;
use crate::ext::{rq_type, Feature};

/// How long the serving side of an adapting end waits for the handshake's
/// outcome when a request of the peer arrives before it: the peer's
/// numbers mean nothing here until then.
pub const INCOMING_WAIT: Duration = Duration::from_secs(10);

/// One connection's registry handshake (packetmq's): the two ends compare
/// their [`Registry`]s by name, and the end that adapts maps its numbers to
/// the peer's. Off unless a connection is configured with one: without it,
/// or against a peer without one (a plain cs.packetstream peer), request
/// types travel under their own numbers.
///
/// It rides on the protocol extensions (feature `registry`): the
/// connection's configuration gets it from [`configure`](Self::configure),
/// and [`Session::start`](super::Session::start) runs it once the
/// connection is up. It is the state of one connection: make one for each.
///
/// ```
/// use std::time::Duration;
/// use packetstream::rpc::{CallTyped, Dispatcher, Handshake, Numbering, Registry, Role, Session};
/// use packetstream::{Config, PacketConnection, Transport};
///
/// packetstream::typed_request! {
///     pub struct Double(0, "math:double") -> u64 { pub n: packetstream::binary::BSUInt }
/// }
/// mod old {
///     // The same request type, numbered 5 by an older build of the client.
///     packetstream::typed_request! {
///         pub struct Double(5, "math:double") -> u64 { pub n: packetstream::binary::BSUInt }
///     }
/// }
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let (a, b) = Transport::memory_pair();
/// let server_side = Handshake::new(Registry::new().with::<Double>()?, Role::Keep);
/// let dispatcher = Dispatcher::new(()).on::<Double, _, String>(|_, rq| Ok(rq.n * 2));
/// let server = PacketConnection::with_handler(b, server_side.configure(Config::builder()), dispatcher)?;
///
/// let client_side = Handshake::new(Registry::new().with::<old::Double>()?, Role::Adapt);
/// let client = PacketConnection::new(a, client_side.configure(Config::builder()))?;
/// let client = Session::start(client, &client_side, Duration::from_secs(10))?;
/// assert!(matches!(client.numbering(), Numbering::Adapted(_)));
/// assert_eq!(client.call_typed(&old::Double { n: 21 })?, 42); // sent as type 0
/// # let closing = std::thread::spawn(move || server.close());
/// # client.close()?;
/// # closing.join().unwrap()?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Handshake(Arc<Shared>);

struct Shared {
    registry: Registry,
    role: Role,
    /// What this end sends and answers with.
    message: Vec<u8>,
    /// Set once; read without a lock by every request served.
    outcome: OnceLock<Result<Numbering, HandshakeError>>,
    /// Held to wait for the outcome, and to signal it.
    waiting: Mutex<()>,
    /// Signalled when the outcome is set.
    settled: Condvar,
}

/// Why a handshake did not give a numbering.
#[non_exhaustive]
#[derive(Debug, Clone)]
pub enum HandshakeError {
    /// The registries differ; the error names the request types.
    Mismatch(Mismatch),
    /// The peer refused this end's registry; its text.
    Refused(String),
    /// The peer's registry is not one (its answer, or its own request).
    BadMessage(DecodeError),
    /// The connection ended before the handshake did.
    Connection(ConnectionError),
    /// No outcome in time.
    Timeout,
    /// The connection has the protocol extensions off, so its configuration
    /// did not come from [`Handshake::configure`].
    NotConfigured,
}

impl fmt::Display for HandshakeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HandshakeError::Mismatch(mismatch) => fmt::Display::fmt(mismatch, f),
            HandshakeError::Refused(text) => write!(f, "the peer refused this end's request registry: {text}"),
            HandshakeError::BadMessage(error) => write!(f, "the peer's request registry is garbled: {error}"),
            HandshakeError::Connection(error) => write!(f, "registry handshake: {error}"),
            HandshakeError::Timeout => f.write_str("the registry handshake did not finish in time"),
            HandshakeError::NotConfigured => f.write_str(
                "the connection has the protocol extensions off: its configuration was not made with \
                 Handshake::configure",
            ),
        }
    }
}

impl std::error::Error for HandshakeError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            HandshakeError::Mismatch(mismatch) => Some(mismatch),
            HandshakeError::BadMessage(error) => Some(error),
            HandshakeError::Connection(error) => Some(error),
            _ => None,
        }
    }
}

impl Handshake {
    /// A handshake offering `registry`, in `role`.
    pub fn new(registry: Registry, role: Role) -> Handshake {
        let message = exchange::encode(role, &registry);
        Handshake(Arc::new(Shared {
            registry,
            role,
            message,
            outcome: OnceLock::new(),
            waiting: Mutex::new(()),
            settled: Condvar::new(),
        }))
    }

    /// The registry this end offers.
    pub fn registry(&self) -> &Registry {
        &self.0.registry
    }

    /// This end's role.
    pub fn role(&self) -> Role {
        self.0.role
    }

    /// `config` with this handshake's service on the control channel (and
    /// so with the protocol extensions on), for the one connection the
    /// handshake belongs to.
    pub fn configure(&self, config: ConfigBuilder) -> ConfigBuilder {
        config.service(Arc::new(self.clone()))
    }

    /// The outcome, once there is one: from this end's exchange or from the
    /// peer's, whichever came first (both give the same).
    pub fn outcome(&self) -> Option<Result<Numbering, HandshakeError>> {
        self.0.outcome.get().cloned()
    }

    /// Waits until `deadline` for the outcome.
    fn wait_outcome(&self, deadline: Instant) -> Option<&Result<Numbering, HandshakeError>> {
        let mut waiting = self.0.waiting.lock();
        while self.0.outcome.get().is_none() {
            if self.0.settled.wait_until(&mut waiting, deadline).timed_out() {
                break;
            }
        }
        self.0.outcome.get()
    }

    /// Sets the outcome unless it is set: the first stands.
    fn settle(&self, result: Result<Numbering, HandshakeError>) -> Result<Numbering, HandshakeError> {
        if self.0.outcome.set(result).is_ok() {
            // Under the lock, so that no waiter misses it between its look
            // and its wait.
            let _waiting = self.0.waiting.lock();
            self.0.settled.notify_all();
        }
        self.0.outcome.get().cloned().unwrap_or(Err(HandshakeError::Timeout))
    }

    /// Runs this end's side on `conn`, until `deadline`: waits for the
    /// extensions to settle and, when both ends have the registry feature,
    /// sends this end's registry and compares the answer with it.
    pub(crate) fn run(&self, conn: &PacketConnection, deadline: Instant) -> Result<Numbering, HandshakeError> {
        if let Some(outcome) = self.outcome() {
            // The peer's exchange came first.
            return outcome;
        }
        let state = conn.wait_extensions(deadline.saturating_duration_since(Instant::now()));
        let agreed = match state {
            State::Off => return self.settle(Err(HandshakeError::NotConfigured)),
            State::Probing => return self.settle(Err(HandshakeError::Timeout)),
            State::Plain(reason) => return self.settle(Ok(Numbering::AsIs(reason.to_string()))),
            State::Agreed(features) => features.contains(Feature::Registry),
        };
        if !agreed {
            let why = "the peer has no request registry (its extensions lack the registry feature)";
            return self.settle(Ok(Numbering::AsIs(why.to_owned())));
        }
        let pending = match conn.control_request(rq_type::REGISTRY, self.0.message.clone()) {
            Ok(pending) => pending,
            Err(SubmitError::Connection(error)) => return self.settle(Err(HandshakeError::Connection(error))),
            Err(other) => return self.settle(Err(HandshakeError::Refused(other.to_string()))),
        };
        let result = match pending.wait_deadline(deadline) {
            Ok(answer) => self.compare(&answer.payload),
            Err(WaitTimeoutError::Timeout(_)) => Err(HandshakeError::Timeout),
            Err(WaitTimeoutError::Failed(failure)) => Err(HandshakeError::Refused(failure.text().into_owned())),
            Err(WaitTimeoutError::Connection(error)) => Err(HandshakeError::Connection(error)),
        };
        self.settle(result)
    }

    /// The outcome of the peer's message.
    fn compare(&self, message: &[u8]) -> Result<Numbering, HandshakeError> {
        let (their_role, theirs) = exchange::decode(message).map_err(HandshakeError::BadMessage)?;
        compare(&self.0.registry, self.0.role, &theirs, their_role).map_err(HandshakeError::Mismatch)
    }

    /// This end's request type for the peer's number `theirs`, or why there
    /// is none, for the serving side. An end that keeps its numbers never
    /// waits; one that adapts waits at most [`INCOMING_WAIT`] for the
    /// outcome.
    pub(crate) fn incoming(&self, theirs: u64) -> Result<u64, String> {
        let outcome = match (self.0.outcome.get(), self.0.role) {
            (Some(outcome), _) => Some(outcome),
            (None, Role::Keep) => None,
            (None, Role::Adapt) => self.wait_outcome(Instant::now() + INCOMING_WAIT),
        };
        match outcome {
            Some(Ok(numbering)) => numbering
                .from_peer(theirs)
                .ok_or_else(|| format!("request type {theirs} is not in the peer's registry")),
            Some(Err(error)) => Err(format!("registry handshake failed: {error}")),
            None if self.0.role == Role::Keep => Ok(theirs),
            None => Err("the registry handshake has not finished".to_owned()),
        }
    }
}

impl Service for Handshake {
    fn feature(&self) -> Feature {
        Feature::Registry
    }

    fn rq_type(&self) -> u64 {
        rq_type::REGISTRY
    }

    /// The peer's registry settles this end's outcome too; the answer is
    /// this end's registry whatever the comparison says, so that the peer
    /// reaches the same conclusion itself.
    fn serve(&self, payload: &[u8]) -> Result<Vec<u8>, String> {
        let result = self.compare(payload);
        let refusal = match &result {
            Err(HandshakeError::BadMessage(error)) => Some(format!("bad registry: {error}")),
            _ => None,
        };
        // An outcome set earlier stands; the answer is the same either way.
        let _ = self.settle(result);
        match refusal {
            Some(text) => Err(text),
            None => Ok(self.0.message.clone()),
        }
    }
}

impl fmt::Debug for Handshake {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Handshake")
            .field("role", &self.0.role)
            .field("registry", &self.0.registry)
            .field("outcome", &self.0.outcome.get())
            .finish()
    }
}
