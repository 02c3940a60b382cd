//! The request registry: an application protocol's request types by name
//! and by number (packetmq's packet registry).

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use super::request::TypedRequest;
use crate::wire::MAX_RQ_TYPE;

/// The longest name a registry takes, in bytes.
pub const MAX_NAME_LEN: usize = 128;

/// The most request types a registry holds.
pub const MAX_ENTRIES: usize = 4096;

/// An application protocol's request types, by name (`"application:request"`)
/// and by number, each name and each number at most once.
///
/// Cheap to clone (the entries are shared); a registry is a value, so two
/// ends compare theirs in a [handshake](super::Handshake).
///
/// ```
/// use packetstream::rpc::{Registry, RegistryError};
///
/// packetstream::typed_request! {
///     pub struct Put(0, "kv:put") -> bool { pub key: packetstream::binary::BSString }
///     pub struct Get(1, "kv:get") -> Vec<u8> { pub key: packetstream::binary::BSString }
/// }
///
/// let mut registry = Registry::new().with::<Put>()?.with::<Get>()?;
/// assert_eq!(registry.number("kv:get"), Some(1));
/// assert_eq!(registry.name(0), Some("kv:put"));
/// assert_eq!(
///     registry.register("kv:delete", 1),
///     Err(RegistryError::DuplicateNumber { number: 1, registered: "kv:get".into(), refused: "kv:delete".into() })
/// );
/// # Ok::<(), RegistryError>(())
/// ```
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Registry {
    entries: Arc<Entries>,
}

/// The two ways to look a request type up.
#[derive(Clone, Default, PartialEq, Eq)]
struct Entries {
    by_number: BTreeMap<u64, String>,
    by_name: BTreeMap<String, u64>,
}

/// Why a request type was not registered.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegistryError {
    /// The name is registered already.
    DuplicateName {
        /// The name.
        name: String,
        /// The number it has.
        registered: u64,
        /// The number refused.
        refused: u64,
    },
    /// The number is registered already.
    DuplicateNumber {
        /// The number.
        number: u64,
        /// The name it has.
        registered: String,
        /// The name refused.
        refused: String,
    },
    /// The name is not of the form `application:request`: 1 to
    /// [`MAX_NAME_LEN`] bytes of printable ASCII without spaces, with a `:`
    /// that is neither first nor last.
    BadName(String),
    /// The number is past [`MAX_RQ_TYPE`].
    BadNumber(u64),
    /// The registry holds [`MAX_ENTRIES`] already.
    Full,
}

impl fmt::Display for RegistryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RegistryError::DuplicateName { name, registered, refused } => {
                write!(f, "{name} is registered as request type {registered} already, so not as {refused}")
            }
            RegistryError::DuplicateNumber { number, registered, refused } => {
                write!(f, "request type {number} is registered as {registered} already, so not as {refused}")
            }
            RegistryError::BadName(name) => {
                write!(f, "{name:?} is not a request type name of the form application:request")
            }
            RegistryError::BadNumber(number) => write!(f, "request type {number} is past the largest, {MAX_RQ_TYPE}"),
            RegistryError::Full => write!(f, "the registry holds {MAX_ENTRIES} request types already"),
        }
    }
}

impl std::error::Error for RegistryError {}

impl Registry {
    /// An empty registry.
    pub fn new() -> Registry {
        Registry::default()
    }

    /// The registry with request type `R` added, under its
    /// [`NAME`](TypedRequest::NAME) and [`RQ_TYPE`](TypedRequest::RQ_TYPE).
    ///
    /// # Errors
    /// As [`register`](Self::register).
    pub fn with<R: TypedRequest>(mut self) -> Result<Registry, RegistryError> {
        self.register(R::NAME, R::RQ_TYPE)?;
        Ok(self)
    }

    /// Adds `name` as request type `number`.
    ///
    /// # Errors
    /// [`RegistryError::DuplicateName`] or [`RegistryError::DuplicateNumber`]
    /// when either is taken (the registry is then unchanged), and the other
    /// variants for a name or number that cannot be registered at all.
    pub fn register(&mut self, name: &str, number: u64) -> Result<(), RegistryError> {
        check_name(name)?;
        if number > MAX_RQ_TYPE {
            return Err(RegistryError::BadNumber(number));
        }
        if let Some(registered) = self.number(name) {
            return Err(RegistryError::DuplicateName { name: name.to_owned(), registered, refused: number });
        }
        if let Some(registered) = self.entries.by_number.get(&number) {
            let registered = registered.clone();
            return Err(RegistryError::DuplicateNumber { number, registered, refused: name.to_owned() });
        }
        if self.len() >= MAX_ENTRIES {
            return Err(RegistryError::Full);
        }
        let entries = Arc::make_mut(&mut self.entries);
        entries.by_number.insert(number, name.to_owned());
        entries.by_name.insert(name.to_owned(), number);
        Ok(())
    }

    /// The number of request type `name`.
    pub fn number(&self, name: &str) -> Option<u64> {
        self.entries.by_name.get(name).copied()
    }

    /// The name of request type `number`.
    pub fn name(&self, number: u64) -> Option<&str> {
        self.entries.by_number.get(&number).map(String::as_str)
    }

    /// Whether `R` is registered, under its own name and number.
    pub fn has<R: TypedRequest>(&self) -> bool {
        self.name(R::RQ_TYPE) == Some(R::NAME)
    }

    /// The request types as `(number, name)`, by number.
    pub fn iter(&self) -> impl Iterator<Item = (u64, &str)> + '_ {
        self.entries.by_number.iter().map(|(&number, name)| (number, name.as_str()))
    }

    /// How many request types there are.
    pub fn len(&self) -> usize {
        self.entries.by_number.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.entries.by_number.is_empty()
    }
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

/// Checks the form `application:request`.
pub(crate) fn check_name(name: &str) -> Result<(), RegistryError> {
    let printable = name.bytes().all(|b| b.is_ascii_graphic());
    let colon = name.find(':').is_some_and(|at| at > 0) && !name.ends_with(':');
    if (1..=MAX_NAME_LEN).contains(&name.len()) && printable && colon {
        Ok(())
    } else {
        Err(RegistryError::BadName(name.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicates_are_refused_by_name_and_by_number_and_change_nothing() {
        let mut registry = Registry::new();
        registry.register("app:a", 0).unwrap();
        registry.register("app:b", 7).unwrap();
        assert_eq!(
            registry.register("app:a", 3),
            Err(RegistryError::DuplicateName { name: "app:a".into(), registered: 0, refused: 3 })
        );
        assert_eq!(
            registry.register("app:c", 7),
            Err(RegistryError::DuplicateNumber { number: 7, registered: "app:b".into(), refused: "app:c".into() })
        );
        assert_eq!(registry.iter().collect::<Vec<_>>(), [(0, "app:a"), (7, "app:b")]);
        assert_eq!(
            RegistryError::DuplicateNumber { number: 7, registered: "app:b".into(), refused: "app:c".into() }
                .to_string(),
            "request type 7 is registered as app:b already, so not as app:c"
        );
    }

    #[test]
    fn names_have_the_form_application_request() {
        for good in ["a:b", "kv:put", "my-app:get.v2", "a:b:c"] {
            assert_eq!(check_name(good), Ok(()), "{good}");
        }
        let long = format!("a:{}", "x".repeat(MAX_NAME_LEN - 1));
        for bad in ["", "put", ":put", "kv:", "kv: put", "kv:pût", "kv:\u{7f}", long.as_str()] {
            assert_eq!(check_name(bad), Err(RegistryError::BadName(bad.into())), "{bad:?}");
        }
        assert_eq!(check_name(&long[..MAX_NAME_LEN]), Ok(()));
        assert_eq!(Registry::new().register("a:b", u64::MAX), Err(RegistryError::BadNumber(u64::MAX)));
    }

    #[test]
    fn a_full_registry_refuses_more() {
        let mut registry = Registry::new();
        for number in 0..MAX_ENTRIES as u64 {
            registry.register(&format!("app:{number}"), number).unwrap();
        }
        assert_eq!(registry.register("app:one-more", 1 << 40), Err(RegistryError::Full));
        assert_eq!(registry.len(), MAX_ENTRIES);
    }

    #[test]
    fn clones_share_until_changed() {
        let mut a = Registry::new();
        a.register("app:a", 1).unwrap();
        let b = a.clone();
        a.register("app:b", 2).unwrap();
        assert_eq!((a.len(), b.len()), (2, 1));
        assert_ne!(a, b);
    }
}
