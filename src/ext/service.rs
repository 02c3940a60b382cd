//! A service on the control channel, provided by a layer above the
//! connection (the typed-request registry, for one): the connection offers
//! the service's feature in its hello and hands the service the control
//! requests of its type, so that the lower layer never looks up to the
//! higher one.

use std::fmt;
use std::sync::Arc;

use super::Feature;

/// What a control-channel service does with a request of its type.
pub trait Service: Send + Sync + 'static {
    /// The feature it provides, offered in the hello.
    fn feature(&self) -> Feature;

    /// The control request type it serves (see [`rq_type`](super::rq_type)).
    fn rq_type(&self) -> u64;

    /// The answer to one request from the peer: ok with a payload, or
    /// failed with a reason. Runs on the reading thread: it must not block.
    fn serve(&self, payload: &[u8]) -> Result<Vec<u8>, String>;
}

/// The services of a connection's configuration.
#[derive(Clone, Default)]
pub struct Services(Vec<Arc<dyn Service>>);

impl Services {
    /// Adds `service`; one of the same request type is replaced.
    pub fn add(&mut self, service: Arc<dyn Service>) {
        self.0.retain(|other| other.rq_type() != service.rq_type());
        self.0.push(service);
    }

    /// The service of `rq_type`, if there is one.
    pub fn get(&self, rq_type: u64) -> Option<&Arc<dyn Service>> {
        self.0.iter().find(|service| service.rq_type() == rq_type)
    }

    /// The features the services provide.
    pub fn features(&self) -> super::Features {
        self.0.iter().map(|service| service.feature()).collect()
    }

    /// Whether there is none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Services {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.0.iter().map(|service| service.feature())).finish()
    }
}
