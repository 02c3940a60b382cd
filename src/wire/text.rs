//! Telling text from packets: when bytes break the format, they are most
//! often a peer writing log lines to the stream (a child printing to its
//! stdout), and saying so saves a debugging session.

/// If `bytes` look like text rather than packets, their start as a quoted,
/// escaped string; `None` for binary bytes.
///
/// Text here: at least four bytes, valid UTF-8 (a last character cut short
/// is fine), and no control character but tab, newline and carriage return.
/// Packets almost never pass: every frame starts with its length and tag,
/// and a header is mostly small numbers, control characters in ASCII.
pub fn text_hint(bytes: &[u8]) -> Option<String> {
    if bytes.len() < 4 {
        return None;
    }
    let text = match std::str::from_utf8(bytes) {
        Ok(text) => text,
        // Cut inside a character at the end: what comes before it counts.
        Err(error) if error.error_len().is_none() => std::str::from_utf8(&bytes[..error.valid_up_to()]).ok()?,
        Err(_) => return None,
    };
    let printable = |c: char| !c.is_control() || matches!(c, '\t' | '\n' | '\r');
    if text.chars().count() < 4 || !text.chars().all(printable) {
        return None;
    }
    Some(format!("{:?}", text))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{encode, Packet};

    #[test]
    fn log_lines_are_text() {
        assert_eq!(text_hint(b"hello world\n").as_deref(), Some("\"hello world\\n\""));
        assert_eq!(text_hint("héllo wörld".as_bytes()).as_deref(), Some("\"héllo wörld\""));
        // A character cut at the end of what was read.
        assert_eq!(text_hint(&"text é".as_bytes()[..6]).as_deref(), Some("\"text \""));
    }

    #[test]
    fn packets_and_binary_are_not() {
        for packet in [
            Packet::request(0, 2, 0, 0, b"hi".to_vec()).unwrap(),
            Packet::response(0, 2, true, 0, b"hello world".to_vec()).unwrap(),
            Packet::eof(),
            Packet::request(5, 300, 3, 7, Vec::new()).unwrap(),
        ] {
            let mut bytes = Vec::new();
            encode(&packet, &mut bytes);
            assert_eq!(text_hint(&bytes), None, "{packet:?}");
        }
        assert_eq!(text_hint(b"\xff\xfe\x00\x01"), None);
        assert_eq!(text_hint(b"abc"), None, "too short to tell");
    }
}
