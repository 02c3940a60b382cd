//! `BSSFloat`: a float sent as the text Python prints for it.

use super::bytes::{decode_text, encode_prefixed};
use super::unicode::{decimal_digit, is_python_space};
use super::{DecodeError, EncodeError, Field, Reader};

/// cs.binary's `BSSFloat`: an `f64` sent as a [`BSString`](super::BSString)
/// of Python's `str(float)`.
///
/// Encoding writes exactly what Python writes (see [`float_repr`]), so the
/// bytes match a Python peer's. Decoding accepts exactly what Python's
/// `float()` accepts (see [`parse_float`]), so anything a Python peer might
/// send is read, and anything it would refuse is refused.
///
/// Python also lets an `int` through here (`3` is sent as `"3"`); this side
/// reads that as `3.0`, and always sends floats.
///
/// ```
/// use packetstream::binary::{BSSFloat, Field};
///
/// assert_eq!(BSSFloat::value_to_bytes(&0.5)?, b"\x030.5");
/// assert_eq!(BSSFloat::value_to_bytes(&1e16)?, b"\x051e+16");
/// assert_eq!(BSSFloat::value_from_bytes(b"\x013")?, 3.0);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct BSSFloat;

impl Field for BSSFloat {
    type Value = f64;

    fn encode_value(value: &f64, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        encode_prefixed(float_repr(*value).as_bytes(), out);
        Ok(())
    }

    fn decode_value(input: &mut Reader<'_>) -> Result<f64, DecodeError> {
        let offset = input.offset();
        let text = decode_text(input, "BSSFloat")?;
        parse_float(text).ok_or_else(|| DecodeError::BadFloat { offset, text: text.to_owned() })
    }
}

/// The text Python's `repr(x)` (and `str(x)`) gives for a float.
///
/// The shortest digits that read back as the same `f64`, laid out as Python
/// does: plain decimal when the decimal exponent is from -4 to 15, with `.0`
/// on a whole number; otherwise one digit, the rest after a point, and an
/// exponent with a sign and at least two digits. `inf`, `-inf`, `nan`, and
/// `-0.0` for negative zero.
///
/// ```
/// use packetstream::binary::float_repr;
///
/// assert_eq!(float_repr(1.0), "1.0");
/// assert_eq!(float_repr(1e15), "1000000000000000.0");
/// assert_eq!(float_repr(1e16), "1e+16");
/// assert_eq!(float_repr(0.0001), "0.0001");
/// assert_eq!(float_repr(0.00001), "1e-05");
/// assert_eq!(float_repr(1.0 / 3.0), "0.3333333333333333");
/// assert_eq!(float_repr(f64::NAN), "nan");
/// ```
pub fn float_repr(x: f64) -> String {
    if x.is_nan() {
        return "nan".to_owned();
    }
    let sign = if x.is_sign_negative() { "-" } else { "" };
    if x.is_infinite() {
        return format!("{sign}inf");
    }
    if x == 0.0 {
        return format!("{sign}0.0");
    }
    let (digits, exponent) = shortest_digits(x.abs());
    let mut text = String::with_capacity(digits.len() + 8);
    text.push_str(sign);
    if (-4..16).contains(&exponent) {
        if exponent >= 0 {
            // `exponent` is below 16, so the cast is exact.
            let whole = exponent as usize + 1;
            if digits.len() <= whole {
                text.push_str(&digits);
                text.extend(std::iter::repeat_n('0', whole - digits.len()));
                text.push_str(".0");
            } else {
                let (int_part, frac_part) = digits.split_at(whole);
                text.push_str(int_part);
                text.push('.');
                text.push_str(frac_part);
            }
        } else {
            text.push_str("0.");
            text.extend(std::iter::repeat_n('0', (-exponent - 1) as usize));
            text.push_str(&digits);
        }
    } else {
        let (first, others) = digits.split_at(digits.len().min(1));
        text.push_str(first);
        if !others.is_empty() {
            text.push('.');
            text.push_str(others);
        }
        let exponent_sign = if exponent < 0 { '-' } else { '+' };
        text.push_str(&format!("e{exponent_sign}{:02}", exponent.unsigned_abs()));
    }
    text
}

/// The shortest decimal digits that read back as `x` (positive, finite,
/// nonzero), and the exponent of the first digit, so that
/// `x = d1.d2d3... * 10^exponent`.
fn shortest_digits(x: f64) -> (String, i32) {
    // Rust's `{:e}` finds how many digits are needed, and usually the same
    // digits as Python. Python's repr picks, among the shortest strings that
    // read back as `x`, the one nearest to `x`, the even one on a tie; Rust's
    // rounds a tie up (2083853257461507.25 gives ...507.3, Python ...507.2).
    // Formatting with that many digits exactly gives the nearest, ties to
    // even, and is the answer whenever it reads back as `x`. It can fail to
    // only next to a power of two, where the values below `x` that read back
    // as `x` reach half as far as those above; then Rust's digits, the only
    // ones that read back, are Python's too.
    let (digits, exponent) = split_scientific(&format!("{x:e}"));
    let precision = digits.len().saturating_sub(1);
    let nearest = format!("{x:.precision$e}");
    if nearest.parse::<f64>() == Ok(x) {
        split_scientific(&nearest)
    } else {
        (digits, exponent)
    }
}

/// Splits Rust's `{:e}` text of a positive number into its digits, without
/// trailing zeros, and its exponent.
fn split_scientific(scientific: &str) -> (String, i32) {
    let mut digits = String::with_capacity(scientific.len());
    let mut exponent: i32 = 0;
    let mut negative_exponent = false;
    let mut in_exponent = false;
    for c in scientific.chars() {
        match c {
            'e' => in_exponent = true,
            '-' if in_exponent => negative_exponent = true,
            '0'..='9' if in_exponent => exponent = exponent * 10 + (c as i32 - '0' as i32),
            '0'..='9' => digits.push(c),
            _ => {}
        }
    }
    while digits.len() > 1 && digits.ends_with('0') {
        digits.pop();
    }
    if negative_exponent {
        exponent = -exponent;
    }
    (digits, exponent)
}

/// Reads a float the way Python's `float(text)` does, or `None` where Python
/// raises `ValueError`.
///
/// That is: an optional sign, then digits with an optional point and
/// exponent (`1`, `1.`, `.5`, `1e5`, `1.5E-3`), or `inf`, `infinity` or
/// `nan` in any case. Whitespace around it is ignored. A single underscore may
/// stand between two digits (`1_000.000_1`). Any Unicode decimal digit counts
/// as its ASCII digit (`"١٢"` is 12), and any Unicode whitespace as a space,
/// as in Python 3.11. Hexadecimal, two underscores in a row, an underscore
/// beside anything but digits, and empty text are refused.
///
/// ```
/// use packetstream::binary::parse_float;
///
/// assert_eq!(parse_float(" 1_0 "), Some(10.0));
/// assert_eq!(parse_float("-Infinity"), Some(f64::NEG_INFINITY));
/// assert_eq!(parse_float("1"), Some(1.0));
/// assert_eq!(parse_float("1__0"), None);
/// assert_eq!(parse_float("0x10"), None);
/// ```
pub fn parse_float(text: &str) -> Option<f64> {
    // Python first maps the text to ASCII: non-ASCII whitespace becomes a
    // space and non-ASCII decimal digits their ASCII digit; anything else
    // non-ASCII makes the text invalid.
    let mut ascii = Vec::with_capacity(text.len());
    for c in text.chars() {
        if (c as u32) < 127 {
            ascii.push(c as u8);
        } else if is_python_space(c) {
            ascii.push(b' ');
        } else {
            ascii.push(b'0' + decimal_digit(c)?);
        }
    }
    // Then it drops the underscores, each of which must sit between two
    // ASCII digits. This happens before the whitespace is trimmed, so an
    // underscore beside a space is refused too.
    let mut plain = Vec::with_capacity(ascii.len());
    for (i, &b) in ascii.iter().enumerate() {
        if b == b'_' {
            let after_digit = i > 0 && ascii[i - 1].is_ascii_digit();
            let before_digit = ascii.get(i + 1).is_some_and(u8::is_ascii_digit);
            if !(after_digit && before_digit) {
                return None;
            }
        } else {
            plain.push(b);
        }
    }
    // Python trims C whitespace, which includes the vertical tab that
    // `u8::is_ascii_whitespace` leaves out.
    let is_space = |b: &u8| matches!(b, b' ' | b'\t' | b'\n' | b'\x0b' | b'\x0c' | b'\r');
    let start = plain.iter().position(|b| !is_space(b))?;
    let end = plain.iter().rposition(|b| !is_space(b)).map_or(start, |i| i + 1);
    let trimmed = std::str::from_utf8(plain.get(start..end)?).ok()?;
    // What is left is Python's float syntax, which is exactly the syntax
    // Rust's parser documents: sign, digits, point, exponent, or inf,
    // infinity, nan in any case. Both round correctly, so they agree on the
    // value too.
    trimmed.parse::<f64>().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layouts() {
        assert_eq!(float_repr(123.0), "123.0");
        assert_eq!(float_repr(-123.25), "-123.25");
        assert_eq!(float_repr(0.001), "0.001");
        assert_eq!(float_repr(1.5e-5), "1.5e-05");
        assert_eq!(float_repr(1e-100), "1e-100");
        assert_eq!(float_repr(1.5e16), "1.5e+16");
        assert_eq!(float_repr(-1e300), "-1e+300");
        assert_eq!(float_repr(9999999999999998.0), "9999999999999998.0");
        assert_eq!(float_repr(f64::MAX), "1.7976931348623157e+308");
        assert_eq!(float_repr(f64::MIN_POSITIVE), "2.2250738585072014e-308");
        assert_eq!(float_repr(f64::NEG_INFINITY), "-inf");
        assert_eq!(float_repr(-f64::NAN), "nan");
    }

    #[test]
    fn ties_go_to_the_even_digit() {
        // Exactly halfway between two 17-digit decimals (the sums are exact).
        assert_eq!(float_repr(2_083_853_257_461_507.0 + 0.25), "2083853257461507.2");
        assert_eq!(float_repr(1_000_000_000_000_000.0 + 0.25), "1000000000000000.2");
        assert_eq!(format!("{:e}", 1_000_000_000_000_000.0 + 0.25), "1.0000000000000003e15");
    }

    #[test]
    fn next_to_a_power_of_two_the_nearest_digits_may_not_read_back() {
        // 2^89: the nearest 16-digit decimal is below it, outside the
        // narrower lower half of its rounding interval.
        let x = f64::from_bits(0x4580_0000_0000_0000);
        assert_eq!(format!("{x:.15e}").parse::<f64>().ok(), Some(f64::from_bits(0x457f_ffff_ffff_ffff)));
        assert_eq!(float_repr(x), "6.189700196426902e+26");
    }

    #[test]
    fn split_scientific_reads_rust_text() {
        assert_eq!(split_scientific("1.25e-7"), ("125".to_string(), -7));
        assert_eq!(split_scientific("5e-324"), ("5".to_string(), -324));
        assert_eq!(split_scientific("1.2000e3"), ("12".to_string(), 3));
        assert_eq!(split_scientific("0e0"), ("0".to_string(), 0));
    }

    #[test]
    fn odd_parse_inputs() {
        assert_eq!(parse_float("\x0b1\x0c"), Some(1.0));
        assert_eq!(parse_float("1\x7f"), None);
        assert_eq!(parse_float("\x1c1"), None);
        assert_eq!(parse_float("1\u{3000}"), Some(1.0));
        assert_eq!(parse_float("\u{0661}\u{0662}"), Some(12.0));
        assert_eq!(parse_float("1\u{00e9}"), None);
        assert_eq!(parse_float("1_\u{3000}"), None);
        assert_eq!(parse_float("+.5"), Some(0.5));
        assert_eq!(parse_float("1e999"), Some(f64::INFINITY));
        assert_eq!(parse_float("-1e-999").map(f64::to_bits), Some((-0.0f64).to_bits()));
    }
}
