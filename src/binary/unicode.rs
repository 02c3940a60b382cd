//! The two Unicode tables Python's `float()` consults before it parses.
//!
//! Both were read from Python 3.11's own database (Unicode 14.0.0), not from
//! Rust's, which follows a newer Unicode and a different definition of
//! whitespace; `tests/data/float-parse-vectors.txt` checks every entry against
//! the real Python.

/// The zero of every run of ten Unicode decimal digits (general category Nd)
/// outside ASCII. Each run holds the digits 0 to 9 in order.
const DECIMAL_ZEROS: [u32; 65] = [
    0x0660, 0x06F0, 0x07C0, 0x0966, 0x09E6, 0x0A66, 0x0AE6, 0x0B66, 0x0BE6, 0x0C66, 0x0CE6, 0x0D66, 0x0DE6, 0x0E50,
    0x0ED0, 0x0F20, 0x1040, 0x1090, 0x17E0, 0x1810, 0x1946, 0x19D0, 0x1A80, 0x1A90, 0x1B50, 0x1BB0, 0x1C40, 0x1C50,
    0xA620, 0xA8D0, 0xA900, 0xA9D0, 0xA9F0, 0xAA50, 0xABF0, 0xFF10, 0x104A0, 0x10D30, 0x11066, 0x110F0, 0x11136,
    0x111D0, 0x112F0, 0x11450, 0x114D0, 0x11650, 0x116C0, 0x11730, 0x118E0, 0x11950, 0x11C50, 0x11D50, 0x11DA0,
    0x16A60, 0x16AC0, 0x16B50, 0x1D7CE, 0x1D7D8, 0x1D7E2, 0x1D7EC, 0x1D7F6, 0x1E140, 0x1E2F0, 0x1E950, 0x1FBF0,
];

/// The characters outside ASCII for which Python's `str.isspace()` is true.
const SPACES: [u32; 19] = [
    0x0085, 0x00A0, 0x1680, 0x2000, 0x2001, 0x2002, 0x2003, 0x2004, 0x2005, 0x2006, 0x2007, 0x2008, 0x2009, 0x200A,
    0x2028, 0x2029, 0x202F, 0x205F, 0x3000,
];

/// The value of a non-ASCII decimal digit, as Python's `unicodedata.decimal`.
pub(crate) fn decimal_digit(c: char) -> Option<u8> {
    let c = c as u32;
    let run = DECIMAL_ZEROS.partition_point(|&zero| zero <= c).checked_sub(1)?;
    let value = c - DECIMAL_ZEROS[run];
    (value < 10).then_some(value as u8)
}

/// Whether Python counts a non-ASCII character as whitespace.
pub(crate) fn is_python_space(c: char) -> bool {
    SPACES.binary_search(&(c as u32)).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_are_sorted_and_runs_do_not_overlap() {
        assert!(DECIMAL_ZEROS.windows(2).all(|w| w[0] + 10 <= w[1]));
        assert!(SPACES.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn digits_and_spaces() {
        assert_eq!(decimal_digit('\u{0660}'), Some(0));
        assert_eq!(decimal_digit('\u{0669}'), Some(9));
        assert_eq!(decimal_digit('\u{066A}'), None);
        assert_eq!(decimal_digit('\u{FF15}'), Some(5));
        assert_eq!(decimal_digit('\u{1FBF9}'), Some(9));
        assert_eq!(decimal_digit('\u{00B2}'), None);
        assert_eq!(decimal_digit('\u{007F}'), None);
        assert!(is_python_space('\u{3000}'));
        assert!(!is_python_space('\u{200B}'));
    }
}
