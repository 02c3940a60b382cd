//! The server's hooks: when a connection opens, when it ends (with why),
//! when one is refused. Each is called once per connection; a hook that
//! panics is logged and counted, and the server carries on.

use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use super::addr::Peer;
use super::end::EndReason;
use super::info::ConnectionInfo;
use super::limits::Refusal;
use crate::threads::panic_message;

pub(crate) type OpenHook = Box<dyn Fn(&ConnectionInfo) + Send + Sync>;
pub(crate) type EndHook = Box<dyn Fn(&ConnectionInfo, &EndReason) + Send + Sync>;
pub(crate) type RefusedHook = Box<dyn Fn(&Peer, &Refusal) + Send + Sync>;

/// The hooks a server was built with.
#[derive(Default)]
pub(crate) struct Hooks {
    pub on_open: Option<OpenHook>,
    pub on_end: Option<EndHook>,
    pub on_refused: Option<RefusedHook>,
    /// How many calls panicked.
    pub panics: AtomicU64,
}

impl Hooks {
    pub fn opened(&self, info: &ConnectionInfo) {
        if let Some(hook) = &self.on_open {
            self.guard("open", &info.name, || hook(info));
        }
    }

    pub fn ended(&self, info: &ConnectionInfo, reason: &EndReason) {
        if let Some(hook) = &self.on_end {
            self.guard("end", &info.name, || hook(info, reason));
        }
    }

    pub fn refused(&self, server: &str, peer: &Peer, refusal: &Refusal) {
        if let Some(hook) = &self.on_refused {
            self.guard("refused", server, || hook(peer, refusal));
        }
    }

    fn guard(&self, which: &str, name: &str, call: impl FnOnce()) {
        if let Err(payload) = panic::catch_unwind(AssertUnwindSafe(call)) {
            self.panics.fetch_add(1, Relaxed);
            log::error!("{name}: the {which} hook panicked: {}", panic_message(&*payload));
        }
    }
}
