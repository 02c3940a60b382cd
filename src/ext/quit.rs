//! Quit with a reason: the payload of a [`QUIT`](super::rq_type::QUIT)
//! request is the reason's UTF-8 text, at most [`MAX_REASON_LEN`] bytes.

/// The longest reason sent, in bytes. A longer one is cut at the last
/// character boundary before this.
pub const MAX_REASON_LEN: usize = 1024;

/// The payload for `reason`, cut to [`MAX_REASON_LEN`] bytes without
/// splitting a character.
pub fn encode(reason: &str) -> Vec<u8> {
    let mut end = reason.len().min(MAX_REASON_LEN);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    reason.as_bytes()[..end].to_vec()
}

/// The reason in a payload. Invalid UTF-8 is replaced rather than refused,
/// and an overlong payload cut, since the reason is only ever shown.
pub fn decode(payload: &[u8]) -> String {
    let text = String::from_utf8_lossy(&payload[..payload.len().min(MAX_REASON_LEN)]);
    text.into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_round_trip_and_long_ones_are_cut_on_a_character() {
        assert_eq!(decode(&encode("maintenance")), "maintenance");
        assert_eq!(encode(""), b"");
        let long = "é".repeat(MAX_REASON_LEN);
        let cut = encode(&long);
        assert_eq!(cut.len(), MAX_REASON_LEN);
        assert_eq!(decode(&cut), "é".repeat(MAX_REASON_LEN / 2));
        let odd = format!("a{long}");
        assert_eq!(encode(&odd).len(), MAX_REASON_LEN - 1);
    }

    #[test]
    fn bad_text_is_shown_not_refused() {
        assert_eq!(decode(b"bye \xff"), "bye \u{fffd}");
        assert_eq!(decode(&vec![b'x'; 5000]).len(), MAX_REASON_LEN);
    }
}
