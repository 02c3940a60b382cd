//! The error codes of moat-lib-cmd, which say why a stream stopped, was
//! cancelled or warned.

use std::fmt;

/// Why a conversation, or one direction of it, ended early; also the kind
/// of a warning. moat-lib-cmd numbers them -1, -2, ...; on the wire they
/// travel as the positive BSUInt of that number's magnitude.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Code {
    /// The other end asked to stop (`stop()`): moat's -1.
    Stop,
    /// This end does not take the stream it was sent: -2.
    CantReceive,
    /// The work is no longer wanted or done: -3.
    Cancel,
    /// This end serves no commands: -4.
    NoCommands,
    /// Items were dropped for want of room: -5.
    DataLoss,
    /// The command must stream, and the request did not: -6.
    MustStream,
    /// The command is not known; `level` is the position in a hierarchical
    /// command that the receiver did not know (moat's -11 - level).
    UnknownCommand {
        /// How deep in the command the unknown part is (0 for its first).
        level: u64,
    },
    /// A code this crate does not know, by its wire value.
    Other(u64),
}

impl Code {
    /// The value on the wire: 1 for [`Code::Stop`], ..., 11 + level for
    /// [`Code::UnknownCommand`].
    pub fn wire(self) -> u64 {
        match self {
            Code::Stop => 1,
            Code::CantReceive => 2,
            Code::Cancel => 3,
            Code::NoCommands => 4,
            Code::DataLoss => 5,
            Code::MustStream => 6,
            Code::UnknownCommand { level } => level.saturating_add(11),
            Code::Other(value) => value,
        }
    }

    /// The code of a wire value.
    pub fn from_wire(value: u64) -> Code {
        match value {
            1 => Code::Stop,
            2 => Code::CantReceive,
            3 => Code::Cancel,
            4 => Code::NoCommands,
            5 => Code::DataLoss,
            6 => Code::MustStream,
            level if level >= 11 => Code::UnknownCommand { level: level - 11 },
            other => Code::Other(other),
        }
    }

    /// moat-lib-cmd's number for it: -1 for [`Code::Stop`], ...
    pub fn moat(self) -> i128 {
        -i128::from(self.wire())
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Code::Stop => f.write_str("stop"),
            Code::CantReceive => f.write_str("can't receive this stream"),
            Code::Cancel => f.write_str("cancel"),
            Code::NoCommands => f.write_str("no commands"),
            Code::DataLoss => f.write_str("data loss"),
            Code::MustStream => f.write_str("must stream"),
            Code::UnknownCommand { level } => write!(f, "unknown command (level {level})"),
            Code::Other(value) => write!(f, "code {value}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_have_moat_numbers_and_round_trip() {
        let codes = [
            (Code::Stop, -1),
            (Code::CantReceive, -2),
            (Code::Cancel, -3),
            (Code::NoCommands, -4),
            (Code::DataLoss, -5),
            (Code::MustStream, -6),
            (Code::UnknownCommand { level: 0 }, -11),
            (Code::UnknownCommand { level: 1 }, -12),
            (Code::Other(7), -7),
        ];
        for (code, moat) in codes {
            assert_eq!(code.moat(), moat);
            assert_eq!(Code::from_wire(code.wire()), code);
        }
        assert_eq!(Code::UnknownCommand { level: u64::MAX }.wire(), u64::MAX);
    }
}
