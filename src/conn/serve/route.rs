//! Where an incoming request goes, by its channel: to the application's
//! handler, to the connection's own extension handling, or back refused.

use crate::ext;
use crate::stream::message::{DOWN, UP};

/// The destination of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Route {
    /// The application's handler.
    User,
    /// The extension mechanism's control channel.
    Control,
    /// A message from the caller of a stream the peer opened.
    StreamUp,
    /// A message from the serving end of a stream this end opened.
    StreamDown,
    /// Refused with `unknown channel N`, as cs.packetstream refuses every
    /// channel but 0.
    Refuse,
}

/// The route of every channel, fixed when the connection starts.
#[derive(Debug, Clone)]
pub(crate) struct Routes {
    /// Channels besides 0 served by the handler.
    user: Vec<u64>,
    /// Whether every channel outside the reserved block is.
    all_user: bool,
    /// Whether extensions are on (else the reserved block is refused).
    control: bool,
}

impl Routes {
    pub fn new(user: Vec<u64>, all_user: bool, control: bool) -> Routes {
        Routes { user, all_user, control }
    }

    /// The route of a request on `channel`.
    pub fn route(&self, channel: u64) -> Route {
        if channel == 0 {
            Route::User
        } else if ext::is_reserved(channel) {
            match channel {
                ext::CONTROL_CHANNEL if self.control => Route::Control,
                UP if self.control => Route::StreamUp,
                DOWN if self.control => Route::StreamDown,
                _ => Route::Refuse,
            }
        } else if self.all_user || self.user.contains(&channel) {
            Route::User
        } else {
            Route::Refuse
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_0_is_the_handlers_and_others_are_refused_unless_served() {
        let routes = Routes::new(vec![5], false, false);
        assert_eq!(routes.route(0), Route::User);
        assert_eq!(routes.route(5), Route::User);
        assert_eq!(routes.route(6), Route::Refuse);
        assert_eq!(routes.route(u64::MAX), Route::Refuse);
    }

    #[test]
    fn the_reserved_block_never_reaches_the_handler() {
        let all = Routes::new(Vec::new(), true, false);
        assert_eq!(all.route(7), Route::User);
        assert_eq!(all.route(ext::CONTROL_CHANNEL), Route::Refuse);
        assert_eq!(all.route(ext::RESERVED_CHANNELS.1), Route::Refuse);
        assert_eq!(all.route(ext::RESERVED_CHANNELS.1 + 1), Route::User);
        let on = Routes::new(Vec::new(), true, true);
        assert_eq!(on.route(ext::CONTROL_CHANNEL), Route::Control);
        assert_eq!(on.route(UP), Route::StreamUp);
        assert_eq!(on.route(DOWN), Route::StreamDown);
        assert_eq!(on.route(DOWN + 1), Route::Refuse);
        assert_eq!(all.route(UP), Route::Refuse, "no streams without extensions");
    }
}
