//! Payloads as people and scripts see them: text when it is printable, hex
//! otherwise, and hex read back from the command line.

/// The payload as text, if it is printable UTF-8: valid UTF-8 with no
/// control character but tab, newline and carriage return (the rule of
/// `wire::text_hint`, without its minimum length).
pub fn printable(bytes: &[u8]) -> Option<&str> {
    let text = std::str::from_utf8(bytes).ok()?;
    text.chars().all(|c| !c.is_control() || matches!(c, '\t' | '\n' | '\r')).then_some(text)
}

/// Lowercase hex, two digits a byte, nothing between them.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for &byte in bytes {
        out.push(char::from(DIGITS[usize::from(byte >> 4)]));
        out.push(char::from(DIGITS[usize::from(byte & 0xf)]));
    }
    out
}

/// Bytes from hex as people write it: either case, with an optional `0x`
/// in front, and spaces, colons or underscores between bytes.
pub fn parse_hex(text: &str) -> Result<Vec<u8>, String> {
    let trimmed = text.trim();
    let body = trimmed.strip_prefix("0x").or_else(|| trimmed.strip_prefix("0X")).unwrap_or(trimmed);
    let digits: Vec<u8> = body.bytes().filter(|b| !matches!(b, b' ' | b'\t' | b'\n' | b'\r' | b':' | b'_')).collect();
    if let Some(bad) = digits.iter().find(|b| !b.is_ascii_hexdigit()) {
        return Err(format!("not hex: {:?} has {:?}", text, char::from(*bad)));
    }
    if digits.len() % 2 == 1 {
        return Err(format!("not hex: {text:?} has an odd number of digits"));
    }
    let value = |digit: u8| match digit {
        b'0'..=b'9' => digit - b'0',
        _ => (digit | 0x20) - b'a' + 10,
    };
    Ok(digits.chunks(2).map(|pair| value(pair[0]) << 4 | value(pair[1])).collect())
}

/// A short view of a payload for a log line: quoted text, or hex, cut
/// after `max` bytes with the rest counted.
pub fn preview(bytes: &[u8], max: usize) -> String {
    let shown = &bytes[..bytes.len().min(max)];
    let cut = bytes.len() - shown.len();
    let more = if cut > 0 { format!("...(+{cut} bytes)") } else { String::new() };
    // A multi-byte character cut at `max` must not turn text into hex.
    let text = match std::str::from_utf8(shown) {
        Ok(text) => Some(text),
        Err(error) if cut > 0 && error.error_len().is_none() => std::str::from_utf8(&shown[..error.valid_up_to()]).ok(),
        Err(_) => None,
    };
    match text.filter(|text| printable(text.as_bytes()).is_some() && printable(bytes).is_some()) {
        Some(text) => format!("{text:?}{more}"),
        None => format!("{}{more}", hex(shown)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_or_hex() {
        assert_eq!(printable(b"hello, world\n"), Some("hello, world\n"));
        assert_eq!(printable("tab\tcr\r é ✓".as_bytes()), Some("tab\tcr\r é ✓"));
        assert_eq!(printable(b""), Some(""));
        assert_eq!(printable(b"bell\x07"), None);
        assert_eq!(printable(b"nul\x00"), None);
        assert_eq!(printable(b"del\x7f"), None);
        assert_eq!(printable("c1 \u{85}".as_bytes()), None);
        assert_eq!(printable(b"\xff\xfe"), None);
        assert_eq!(hex(b"\x00\x7f\x80\xffhi"), "007f80ff6869");
    }

    #[test]
    fn hex_back() {
        assert_eq!(parse_hex("6869"), Ok(b"hi".to_vec()));
        assert_eq!(parse_hex(" 0xDE ad:BE_ef "), Ok(vec![0xde, 0xad, 0xbe, 0xef]));
        assert_eq!(parse_hex(""), Ok(Vec::new()));
        assert!(parse_hex("abc").unwrap_err().contains("odd"));
        assert!(parse_hex("zz").unwrap_err().contains("'z'"));
        for bytes in [b"".to_vec(), (0..=255).collect()] {
            assert_eq!(parse_hex(&hex(&bytes)), Ok(bytes));
        }
    }

    #[test]
    fn previews() {
        assert_eq!(preview(b"hi", 8), "\"hi\"");
        assert_eq!(preview(b"hello world", 5), "\"hello\"...(+6 bytes)");
        assert_eq!(preview(b"\x01\x02\x03", 2), "0102...(+1 bytes)");
        assert_eq!(preview("é".as_bytes(), 1), "\"\"...(+1 bytes)");
        assert_eq!(preview(b"ok\x00", 2), "6f6b...(+1 bytes)");
    }
}
