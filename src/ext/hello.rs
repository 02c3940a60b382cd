//! The hello: the payload of the probe and of its answer, which lists the
//! features one end has.
//!
//! ```text
//! hello   = "PSX" BSUInt(version) BSUInt(count) offer{count} [later fields]
//! offer   = BSUInt(len(name)) name BSUInt(feature_version)
//! ```
//!
//! `name` is UTF-8, 1 to [`MAX_NAME_LEN`] bytes; at most [`MAX_OFFERS`]
//! offers, no name twice. This is version 1; a later version may append
//! fields after the offers, which a version 1 reader skips, so the decoder
//! accepts trailing bytes when the version is above 1 and refuses them at
//! version 1 (where they can only be garbage).

use std::fmt;

use crate::wire::{decode_varint, encode_varint, ProtocolError};

/// The first bytes of every hello: garbage in a peer's answer is told from a
/// hello at once.
pub const MAGIC: &[u8; 3] = b"PSX";

/// The version of the hello format this crate writes.
pub const VERSION: u64 = 1;

/// The most offers a hello may carry.
pub const MAX_OFFERS: usize = 64;

/// The longest feature name, in bytes.
pub const MAX_NAME_LEN: usize = 64;

/// One feature an end offers: its name and the newest version it speaks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Offer {
    /// The feature's name (see [`Feature::name`](super::Feature::name)).
    pub name: String,
    /// The newest version of it the sender speaks.
    pub version: u64,
}

/// What one end offers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hello {
    /// The hello format's version (the sender's).
    pub version: u64,
    /// The features offered, names this crate may not know included.
    pub offers: Vec<Offer>,
}

/// Why bytes are not a hello.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HelloError {
    /// The bytes do not start with [`MAGIC`].
    NoMagic,
    /// The bytes end inside a field starting at this offset.
    Truncated {
        /// Where the field starts.
        at: usize,
    },
    /// A bad integer at this offset.
    BadInteger {
        /// Where the integer starts.
        at: usize,
        /// What is wrong with it.
        error: ProtocolError,
    },
    /// Version 0 does not exist.
    BadVersion,
    /// More offers than [`MAX_OFFERS`].
    TooManyOffers(u64),
    /// A name that is empty or longer than [`MAX_NAME_LEN`] bytes.
    BadNameLength {
        /// Where the name's length starts.
        at: usize,
        /// The length claimed.
        len: u64,
    },
    /// A name that is not UTF-8.
    BadName {
        /// Where the name starts.
        at: usize,
    },
    /// The same name offered twice.
    Duplicate(String),
    /// Bytes after the offers of a version 1 hello.
    TrailingBytes {
        /// Where they start.
        at: usize,
    },
}

impl fmt::Display for HelloError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HelloError::NoMagic => write!(f, "not a hello: it does not start with \"PSX\""),
            HelloError::Truncated { at } => write!(f, "hello ends inside the field at byte {at}"),
            HelloError::BadInteger { at, error } => write!(f, "bad integer at byte {at} of the hello: {error}"),
            HelloError::BadVersion => write!(f, "hello version 0"),
            HelloError::TooManyOffers(n) => write!(f, "hello offers {n} features, more than {MAX_OFFERS}"),
            HelloError::BadNameLength { at, len } => {
                write!(f, "feature name of {len} bytes at byte {at} (1 to {MAX_NAME_LEN} allowed)")
            }
            HelloError::BadName { at } => write!(f, "feature name at byte {at} is not UTF-8"),
            HelloError::Duplicate(name) => write!(f, "feature {name:?} offered twice"),
            HelloError::TrailingBytes { at } => write!(f, "bytes after the end of a version 1 hello, at byte {at}"),
        }
    }
}

impl std::error::Error for HelloError {}

impl Hello {
    /// The bytes of this hello.
    ///
    /// # Panics
    /// Never for a hello that [`decode`](Self::decode) returned or that holds
    /// at most [`MAX_OFFERS`] names of 1 to [`MAX_NAME_LEN`] bytes; a longer
    /// one is a bug of the caller, which builds hellos from its own feature
    /// list.
    pub fn encode(&self) -> Vec<u8> {
        assert!(self.offers.len() <= MAX_OFFERS, "a hello holds at most {MAX_OFFERS} offers");
        let mut out = MAGIC.to_vec();
        encode_varint(self.version, &mut out);
        encode_varint(self.offers.len() as u64, &mut out);
        for offer in &self.offers {
            assert!((1..=MAX_NAME_LEN).contains(&offer.name.len()), "feature name {:?}", offer.name);
            encode_varint(offer.name.len() as u64, &mut out);
            out.extend_from_slice(offer.name.as_bytes());
            encode_varint(offer.version, &mut out);
        }
        out
    }

    /// Decodes a hello, checking every limit above. Never panics and never
    /// allocates more than the bytes given justify.
    ///
    /// # Errors
    /// A [`HelloError`] saying what is wrong and where.
    pub fn decode(bytes: &[u8]) -> Result<Hello, HelloError> {
        let rest = bytes.strip_prefix(MAGIC.as_slice()).ok_or(HelloError::NoMagic)?;
        let mut cursor = Cursor { bytes: rest, at: 0, base: MAGIC.len() };
        let version = cursor.integer()?;
        if version == 0 {
            return Err(HelloError::BadVersion);
        }
        let count = cursor.integer()?;
        if count > MAX_OFFERS as u64 {
            return Err(HelloError::TooManyOffers(count));
        }
        let mut offers: Vec<Offer> = Vec::with_capacity(count as usize);
        for _ in 0..count {
            let len_at = cursor.offset();
            let len = cursor.integer()?;
            if len == 0 || len > MAX_NAME_LEN as u64 {
                return Err(HelloError::BadNameLength { at: len_at, len });
            }
            let name_at = cursor.offset();
            let name = cursor.take(len as usize)?;
            let name = std::str::from_utf8(name).map_err(|_| HelloError::BadName { at: name_at })?;
            if offers.iter().any(|offer| offer.name == name) {
                return Err(HelloError::Duplicate(name.to_owned()));
            }
            let version = cursor.integer()?;
            offers.push(Offer { name: name.to_owned(), version });
        }
        if version == 1 && !cursor.is_empty() {
            return Err(HelloError::TrailingBytes { at: cursor.offset() });
        }
        Ok(Hello { version, offers })
    }
}

/// The bytes after the magic, with the offset of each read for errors.
struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
    base: usize,
}

impl<'a> Cursor<'a> {
    fn offset(&self) -> usize {
        self.base + self.at
    }

    fn is_empty(&self) -> bool {
        self.at == self.bytes.len()
    }

    fn integer(&mut self) -> Result<u64, HelloError> {
        let at = self.offset();
        match decode_varint(&self.bytes[self.at..]) {
            Ok(Some((value, used))) => {
                self.at += used;
                Ok(value)
            }
            Ok(None) => Err(HelloError::Truncated { at }),
            Err(error) => Err(HelloError::BadInteger { at, error }),
        }
    }

    fn take(&mut self, len: usize) -> Result<&'a [u8], HelloError> {
        let at = self.offset();
        let end =
            self.at.checked_add(len).filter(|&end| end <= self.bytes.len()).ok_or(HelloError::Truncated { at })?;
        let taken = &self.bytes[self.at..end];
        self.at = end;
        Ok(taken)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hello(offers: &[(&str, u64)]) -> Hello {
        Hello {
            version: VERSION,
            offers: offers.iter().map(|&(name, version)| Offer { name: name.to_owned(), version }).collect(),
        }
    }

    #[test]
    fn the_bytes_of_a_hello_offering_quit() {
        let bytes = hello(&[("quit", 1)]).encode();
        assert_eq!(bytes, b"PSX\x01\x01\x04quit\x01");
        assert_eq!(Hello::decode(&bytes), Ok(hello(&[("quit", 1)])));
    }

    #[test]
    fn an_empty_offer_is_a_hello() {
        assert_eq!(hello(&[]).encode(), b"PSX\x01\x00");
        assert_eq!(Hello::decode(b"PSX\x01\x00"), Ok(hello(&[])));
    }

    #[test]
    fn every_cut_of_a_hello_is_truncated_or_not_a_hello() {
        let bytes = hello(&[("quit", 1), ("later", 300)]).encode();
        for cut in 0..bytes.len() {
            let error = Hello::decode(&bytes[..cut]).unwrap_err();
            assert!(matches!(error, HelloError::NoMagic | HelloError::Truncated { .. }), "cut {cut}: {error:?}");
        }
    }

    #[test]
    fn limits_and_garbage_are_refused_with_where() {
        assert_eq!(Hello::decode(b"HTTP/1.1 200"), Err(HelloError::NoMagic));
        assert_eq!(Hello::decode(b"PSX\x00\x00"), Err(HelloError::BadVersion));
        assert_eq!(Hello::decode(b"PSX\x01\x41"), Err(HelloError::TooManyOffers(65)));
        assert_eq!(Hello::decode(b"PSX\x01\x01\x00"), Err(HelloError::BadNameLength { at: 5, len: 0 }));
        assert_eq!(Hello::decode(b"PSX\x01\x01\x41"), Err(HelloError::BadNameLength { at: 5, len: 65 }));
        assert_eq!(Hello::decode(b"PSX\x01\x01\x01\xff\x01"), Err(HelloError::BadName { at: 6 }));
        assert_eq!(Hello::decode(b"PSX\x01\x02\x01a\x01\x01a\x02"), Err(HelloError::Duplicate("a".into())));
        assert_eq!(Hello::decode(b"PSX\x01\x00\x00"), Err(HelloError::TrailingBytes { at: 5 }));
        let overlong = b"PSX\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x7f";
        assert!(matches!(Hello::decode(overlong), Err(HelloError::BadInteger { at: 3, .. })));
    }

    #[test]
    fn a_later_version_may_append_fields() {
        let mut bytes = Hello { version: 2, offers: hello(&[("quit", 1)]).offers }.encode();
        bytes.extend_from_slice(b"\x07more");
        let decoded = Hello::decode(&bytes).unwrap();
        assert_eq!(decoded.version, 2);
        assert_eq!(decoded.offers, hello(&[("quit", 1)]).offers);
    }
}
