//! A packet as one log line: the JSON object of the output contract that
//! scripts read, or text for people.

use packetstream::wire::Packet;

use crate::json::Object;
use crate::payload::{hex, preview};
use crate::scan::kind;

/// How much of a payload a text line shows.
const PREVIEW_BYTES: usize = 48;

/// Adds a packet's keys to `object`: `kind`; for requests and responses
/// `tag`, `channel`, `flags`, `len` and `payload_hex`, and `rq_type`
/// (requests) or `ok` (responses).
pub fn packet_json(object: Object, packet: &Packet) -> Object {
    let kind = kind(packet);
    let object = object.string("kind", kind);
    if matches!(kind, "eof" | "erq") {
        return object;
    }
    let object = object.uint("tag", packet.tag()).uint("channel", packet.channel()).uint("flags", packet.flags());
    let object = match (packet.rq_type(), packet.ok()) {
        (Some(rq_type), _) => object.uint("rq_type", rq_type),
        (None, Some(ok)) => object.bool("ok", ok),
        // Control packets were handled above; nothing else lacks both.
        (None, None) => object,
    };
    object.uint("len", packet.payload().len() as u64).string("payload_hex", &hex(packet.payload()))
}

/// The malformed bytes' keys: `kind` malformed, `offset`, `error`.
pub fn malformed_json(object: Object, offset: u64, error: &str) -> Object {
    object.string("kind", "malformed").uint("offset", offset).string("error", error)
}

/// A packet for people: the same fields as the JSON, the payload shown
/// short.
pub fn packet_text(packet: &Packet) -> String {
    let kind = kind(packet);
    if matches!(kind, "eof" | "erq") {
        return kind.to_owned();
    }
    let what = match (packet.rq_type(), packet.ok()) {
        (Some(rq_type), _) => format!("rq_type={rq_type}"),
        (None, Some(ok)) => format!("ok={ok}"),
        (None, None) => String::new(),
    };
    let mut line = format!(
        "{kind:<8} channel={} tag={} {what} flags={} len={}",
        packet.channel(),
        packet.tag(),
        packet.flags(),
        packet.payload().len()
    );
    if !packet.payload().is_empty() {
        line.push_str(" payload=");
        line.push_str(&preview(packet.payload(), PREVIEW_BYTES));
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(packet: &Packet) -> serde_json::Value {
        serde_json::from_str(&packet_json(Object::new(), packet).finish()).unwrap()
    }

    #[test]
    fn the_keys_of_the_output_contract() {
        let request = json(&Packet::request(5, 300, 3, 7, b"hi".to_vec()).unwrap());
        assert_eq!(
            request,
            serde_json::json!({"kind": "request", "tag": 300, "channel": 5, "flags": 7, "rq_type": 3, "len": 2,
                               "payload_hex": "6869"})
        );
        let response = json(&Packet::response(0, 2, false, 1, vec![0; 3]).unwrap());
        assert_eq!(
            response,
            serde_json::json!({"kind": "response", "tag": 2, "channel": 0, "flags": 1, "ok": false, "len": 3,
                               "payload_hex": "000000"})
        );
        assert_eq!(json(&Packet::eof()), serde_json::json!({"kind": "eof"}));
        assert_eq!(json(&Packet::erq()), serde_json::json!({"kind": "erq"}));
        let big = vec![0xab; 100_000];
        let long = json(&Packet::response(0, 2, true, 0, big.clone()).unwrap());
        assert_eq!(long["payload_hex"].as_str().map(str::len), Some(200_000), "never cut short");
    }

    #[test]
    fn text_lines() {
        assert_eq!(
            packet_text(&Packet::request(0, 2, 0, 0, b"hi".to_vec()).unwrap()),
            "request  channel=0 tag=2 rq_type=0 flags=0 len=2 payload=\"hi\""
        );
        assert_eq!(
            packet_text(&Packet::response(0, 2, true, 4, Vec::new()).unwrap()),
            "response channel=0 tag=2 ok=true flags=4 len=0"
        );
        assert_eq!(packet_text(&Packet::eof()), "eof");
    }
}
