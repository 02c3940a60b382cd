//! The bytes of the registry handshake: what one end tells the other, in
//! its request and in its answer alike. Pure: no I/O.
//!
//! ```text
//! message = "PSR" BSUInt(version) BSUInt(role) BSUInt(count) entry{count} [later fields]
//! entry   = BSString(name) BSUInt(number)
//! ```
//!
//! - `"PSR"` (`50 53 52`) tells a registry from garbage at once.
//! - `version` is 1. A version 1 message ends after its entries; a later
//!   version may append fields, which a version 1 reader skips, so
//!   trailing bytes are refused only at version 1. Version 0 is refused.
//! - `role` is 0 for an end that keeps its numbers, 1 for one that adapts
//!   them to the peer's ([`Role`]); any other value is refused.
//! - At most [`MAX_ENTRIES`] entries; each name of the form
//!   `application:request` (printable ASCII, 1 to [`MAX_NAME_LEN`] bytes),
//!   each number at most [`MAX_RQ_TYPE`](crate::MAX_RQ_TYPE); no name and no
//!   number twice. The encoder writes them by number; the decoder takes any
//!   order.
//!
//! The registry `{0: "kv:put", 1: "kv:get"}` of an end that adapts:
//!
//! ```text
//! 50 53 52  01  01  02  06 6b 76 3a 70 75 74  00  06 6b 76 3a 67 65 74  01
//! P  S  R   ver role n  len k  v  :  p  u  t  num len k  v  :  g  e  t  num
//! ```
//!
//! ```
//! use packetstream::rpc::{exchange, Registry, Role};
//!
//! let mut registry = Registry::new();
//! registry.register("kv:put", 0)?;
//! registry.register("kv:get", 1)?;
//! let bytes = exchange::encode(Role::Adapt, &registry);
//! assert_eq!(bytes, b"PSR\x01\x01\x02\x06kv:put\x00\x06kv:get\x01");
//! assert_eq!(exchange::decode(&bytes)?, (Role::Adapt, registry));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use super::agreement::Role;
use super::registry::{Registry, RegistryError};
use crate::binary::{BSString, BSUInt, DecodeError, Field, Reader};

pub use super::registry::{MAX_ENTRIES, MAX_NAME_LEN};

/// The first bytes of every message.
pub const MAGIC: &[u8; 3] = b"PSR";

/// The version of the format this crate writes.
pub const VERSION: u64 = 1;

/// The message of an end with `role` and `registry`.
pub fn encode(role: Role, registry: &Registry) -> Vec<u8> {
    let mut out = MAGIC.to_vec();
    let uint = |value: u64, out: &mut Vec<u8>| {
        // A BSUInt cannot fail to encode.
        let _ = BSUInt::encode_value(&value, out);
    };
    uint(VERSION, &mut out);
    uint(role.code(), &mut out);
    uint(registry.len() as u64, &mut out);
    for (number, name) in registry.iter() {
        uint(name.len() as u64, &mut out);
        out.extend_from_slice(name.as_bytes());
        uint(number, &mut out);
    }
    out
}

/// The role and registry of a message, every limit above checked. Never
/// allocates more than the bytes given justify.
///
/// # Errors
/// A [`DecodeError`] that says what is wrong and where.
pub fn decode(bytes: &[u8]) -> Result<(Role, Registry), DecodeError> {
    let mut input = Reader::new(bytes);
    if input.take(MAGIC.len(), "registry magic")? != MAGIC {
        return Err(DecodeError::Invalid {
            offset: 0,
            reason: "not a registry: it does not start with \"PSR\"".into(),
        });
    }
    let at = input.offset();
    let version = BSUInt::decode_value(&mut input)?;
    if version == 0 {
        return Err(DecodeError::Invalid { offset: at, reason: "registry version 0".into() });
    }
    let at = input.offset();
    let role = BSUInt::decode_value(&mut input)?;
    let role = Role::from_code(role)
        .ok_or_else(|| DecodeError::Invalid { offset: at, reason: format!("role {role} (0 or 1 allowed)") })?;
    let at = input.offset();
    let count = BSUInt::decode_value(&mut input)?;
    if count > MAX_ENTRIES as u64 {
        let reason = format!("{count} request types, more than {MAX_ENTRIES}");
        return Err(DecodeError::Invalid { offset: at, reason });
    }
    let mut registry = Registry::new();
    for _ in 0..count {
        let at = input.offset();
        let name = BSString::decode_value(&mut input)?;
        let number = BSUInt::decode_value(&mut input)?;
        registry.register(&name, number).map_err(|error| refused(at, error))?;
    }
    if version == VERSION {
        input.finish()?;
    }
    Ok((role, registry))
}

/// A registry entry refused, as a decode error at the entry.
fn refused(offset: usize, error: RegistryError) -> DecodeError {
    DecodeError::Invalid { offset, reason: error.to_string() }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(text: &str) -> Vec<u8> {
        text.split_whitespace().map(|pair| u8::from_str_radix(pair, 16).unwrap()).collect()
    }

    fn kv() -> Registry {
        let mut registry = Registry::new();
        registry.register("kv:get", 1).unwrap();
        registry.register("kv:put", 0).unwrap();
        registry
    }

    #[test]
    fn the_documented_bytes() {
        let bytes = hex("50 53 52 01 01 02 06 6b 76 3a 70 75 74 00 06 6b 76 3a 67 65 74 01");
        assert_eq!(encode(Role::Adapt, &kv()), bytes);
        assert_eq!(decode(&bytes), Ok((Role::Adapt, kv())));
        assert_eq!(encode(Role::Keep, &Registry::new()), hex("50 53 52 01 00 00"));
        assert_eq!(decode(&hex("50 53 52 01 00 00")), Ok((Role::Keep, Registry::new())));
    }

    #[test]
    fn entries_in_any_order_and_large_numbers() {
        // kv:get first, then kv:put; then a number of ten bytes.
        let bytes = hex("50 53 52 01 00 03 06 6b 76 3a 67 65 74 01 06 6b 76 3a 70 75 74 00 03 61 3a 62 81 ff ff ff ff ff ff ff ff 7e");
        let mut expected = kv();
        expected.register("a:b", u64::MAX - 1).unwrap();
        assert_eq!(decode(&bytes), Ok((Role::Keep, expected.clone())));
        assert_eq!(decode(&encode(Role::Keep, &expected)), Ok((Role::Keep, expected)));
    }

    #[test]
    fn later_versions_may_append_fields() {
        assert_eq!(decode(&hex("50 53 52 02 01 00 ff ee")), Ok((Role::Adapt, Registry::new())));
        assert_eq!(decode(&hex("50 53 52 01 01 00 ff")), Err(DecodeError::Trailing { offset: 6, len: 1 }));
    }

    #[test]
    fn what_is_refused_and_where() {
        let invalid = |bytes: &str| match decode(&hex(bytes)) {
            Err(DecodeError::Invalid { offset, reason }) => (offset, reason),
            other => panic!("{bytes}: {other:?}"),
        };
        assert_eq!(invalid("50 53 58 01 00 00").0, 0);
        assert_eq!(invalid("50 53 52 00 00 00"), (3, "registry version 0".to_owned()));
        assert_eq!(invalid("50 53 52 01 02 00"), (4, "role 2 (0 or 1 allowed)".to_owned()));
        assert_eq!(invalid("50 53 52 01 00 a0 01"), (5, "4097 request types, more than 4096".to_owned()));
        // The same name twice, then the same number twice.
        let (at, reason) = invalid("50 53 52 01 00 02 03 61 3a 62 00 03 61 3a 62 01");
        assert_eq!((at, reason.as_str()), (11, "a:b is registered as request type 0 already, so not as 1"));
        let (at, reason) = invalid("50 53 52 01 00 02 03 61 3a 62 00 03 61 3a 63 00");
        assert_eq!((at, reason.as_str()), (11, "request type 0 is registered as a:b already, so not as a:c"));
        assert_eq!(invalid("50 53 52 01 00 01 01 61 00").0, 6);
        // A number past the largest request type.
        assert_eq!(invalid("50 53 52 01 00 01 03 61 3a 62 81 ff ff ff ff ff ff ff ff 7f").0, 6);
    }

    #[test]
    fn short_input_says_so() {
        let bytes = encode(Role::Adapt, &kv());
        for cut in 0..bytes.len() {
            match decode(&bytes[..cut]) {
                Err(DecodeError::Short { .. }) => {}
                other => panic!("cut at {cut}: {other:?}"),
            }
        }
        // A claimed length far past the input costs nothing.
        assert!(matches!(
            decode(&hex("50 53 52 01 00 01 8f ff ff ff 7f")),
            Err(DecodeError::Short { what: "BSString", .. })
        ));
        assert!(matches!(
            decode(&hex("50 53 52 01 00 81 00")),
            Err(DecodeError::Short { what: "BSString length", .. })
        ));
    }
}
