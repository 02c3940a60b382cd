//! One JSON object per line, written by hand: the objects are flat and
//! small, and their keys come out in the order written.

/// A JSON object being written, one key after another.
pub struct Object(String);

impl Object {
    /// An empty object.
    pub fn new() -> Object {
        Object(String::from("{"))
    }

    fn key(&mut self, key: &str) {
        if self.0.len() > 1 {
            self.0.push(',');
        }
        push_string(&mut self.0, key);
        self.0.push(':');
    }

    /// Adds a string.
    pub fn string(mut self, key: &str, value: &str) -> Object {
        self.key(key);
        push_string(&mut self.0, value);
        self
    }

    /// Adds an unsigned integer, in full (no rounding through a float).
    pub fn uint(mut self, key: &str, value: u64) -> Object {
        self.key(key);
        self.0.push_str(&value.to_string());
        self
    }

    /// Adds a boolean.
    pub fn bool(mut self, key: &str, value: bool) -> Object {
        self.key(key);
        self.0.push_str(if value { "true" } else { "false" });
        self
    }

    /// Adds a number of seconds, to the microsecond.
    pub fn seconds(mut self, key: &str, value: f64) -> Object {
        self.key(key);
        self.0.push_str(&format!("{value:.6}"));
        self
    }

    /// Adds a number, or null for one JSON cannot hold (NaN, infinity).
    pub fn float(mut self, key: &str, value: f64) -> Object {
        self.key(key);
        if value.is_finite() {
            self.0.push_str(&format!("{value}"));
        } else {
            self.0.push_str("null");
        }
        self
    }

    /// The object's text, without a newline.
    pub fn finish(mut self) -> String {
        self.0.push('}');
        self.0
    }
}

fn push_string(out: &mut String, value: &str) {
    out.push('"');
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 || c == '\u{7f}' => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objects_parse_back() {
        let text = Object::new()
            .string("kind", "malformed")
            .uint("offset", u64::MAX)
            .bool("ok", false)
            .seconds("t", 1.5)
            .float("x", f64::NAN)
            .string("error", "a \"quote\", a \\, a\nnewline, a \u{1} and é")
            .finish();
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(value["kind"], "malformed");
        assert_eq!(value["offset"].as_u64(), Some(u64::MAX));
        assert_eq!(value["ok"], false);
        assert_eq!(value["t"].as_f64(), Some(1.5));
        assert!(value["x"].is_null());
        assert_eq!(value["error"], "a \"quote\", a \\, a\nnewline, a \u{1} and é");
        assert!(text.starts_with("{\"kind\":\"malformed\",\"offset\":"), "{text}");
        assert_eq!(Object::new().finish(), "{}");
    }
}
