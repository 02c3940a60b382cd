//! A cursor over the bytes being decoded.

use super::DecodeError;

/// The input of a decoder: a byte slice and how far into it decoding has got.
///
/// Decoders take bytes from the front with [`take`](Reader::take) and
/// friends, which fail with [`DecodeError::Short`] rather than panic when the
/// input runs out. The offset is kept so that every error can say where it
/// happened, counted from the start of the slice given to [`Reader::new`].
///
/// ```
/// use packetstream::binary::{DecodeError, Reader};
///
/// let mut input = Reader::new(b"abcde");
/// assert_eq!(input.take(2, "head")?, b"ab");
/// assert_eq!(input.offset(), 2);
/// assert_eq!(input.remaining(), b"cde");
/// assert_eq!(
///     input.take(4, "tail"),
///     Err(DecodeError::Short { what: "tail", offset: 2, needed: 4, available: 3 })
/// );
/// # Ok::<(), DecodeError>(())
/// ```
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    bytes: &'a [u8],
    offset: usize,
}

impl<'a> Reader<'a> {
    /// A reader at the start of `bytes`.
    pub fn new(bytes: &'a [u8]) -> Self {
        Reader { bytes, offset: 0 }
    }

    /// How many bytes have been taken so far.
    pub fn offset(&self) -> usize {
        self.offset
    }

    /// The bytes not yet taken.
    pub fn remaining(&self) -> &'a [u8] {
        // The offset only moves by lengths checked against the slice, so it
        // never passes the end; `get` keeps that from being a panic anyway.
        self.bytes.get(self.offset..).unwrap_or_default()
    }

    /// How many bytes are left.
    pub fn len(&self) -> usize {
        self.remaining().len()
    }

    /// Whether every byte has been taken.
    pub fn is_empty(&self) -> bool {
        self.remaining().is_empty()
    }

    /// Takes the next `n` bytes.
    ///
    /// # Errors
    /// [`DecodeError::Short`], naming `what`, when fewer than `n` are left;
    /// nothing is taken then.
    pub fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], DecodeError> {
        let rest = self.remaining();
        match rest.get(..n) {
            Some(taken) => {
                self.offset += n;
                Ok(taken)
            }
            None => Err(DecodeError::Short { what, offset: self.offset, needed: n as u64, available: rest.len() }),
        }
    }

    /// Takes as many bytes as a length prefix claims. The claim is checked
    /// against what is there before anything is done with it, so a huge
    /// claim costs nothing.
    pub(crate) fn take_claimed(&mut self, claimed: u64, what: &'static str) -> Result<&'a [u8], DecodeError> {
        match usize::try_from(claimed) {
            Ok(n) if n <= self.len() => self.take(n, what),
            _ => Err(DecodeError::Short { what, offset: self.offset, needed: claimed, available: self.len() }),
        }
    }

    /// Takes the next `N` bytes as an array.
    ///
    /// # Errors
    /// [`DecodeError::Short`], naming `what`, when fewer than `N` are left.
    pub fn take_array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], DecodeError> {
        let taken = self.take(N, what)?;
        let mut array = [0u8; N];
        array.copy_from_slice(taken);
        Ok(array)
    }

    /// Takes everything that is left (possibly nothing).
    pub fn take_rest(&mut self) -> &'a [u8] {
        let rest = self.remaining();
        self.offset += rest.len();
        rest
    }

    /// Checks that the whole input has been taken.
    ///
    /// # Errors
    /// [`DecodeError::Trailing`] when bytes are left.
    pub fn finish(&self) -> Result<(), DecodeError> {
        match self.len() {
            0 => Ok(()),
            len => Err(DecodeError::Trailing { offset: self.offset, len }),
        }
    }
}
