//! Page state as URL query parameters (`?page=calculator&model=...&format=Q4_K_M`), so that any
//! result can be shared as a link and reopened exactly.
//!
//! Pure string handling (no browser calls) so it is tested natively. Percent-encoding follows
//! `application/x-www-form-urlencoded` as browsers read it: `+` decodes to a space, `%XX` to a
//! byte; we encode everything except unreserved characters (RFC 3986 §2.3).

/// An ordered list of query parameters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Query {
    pairs: Vec<(String, String)>,
}

impl Query {
    /// An empty query.
    pub fn new() -> Self {
        Self::default()
    }

    /// Parse `?a=1&b=x%20y` (the leading `?` is optional). Malformed escapes are kept literally:
    /// a hand-edited link must never stop the page from loading.
    pub fn parse(search: &str) -> Self {
        let search = search.strip_prefix('?').unwrap_or(search);
        let pairs = search
            .split('&')
            .filter(|part| !part.is_empty())
            .map(|part| match part.split_once('=') {
                Some((k, v)) => (percent_decode(k), percent_decode(v)),
                None => (percent_decode(part), String::new()),
            })
            .collect();
        Self { pairs }
    }

    /// The first value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Set `key` to `value`, replacing any earlier values.
    pub fn set(&mut self, key: &str, value: impl Into<String>) {
        self.remove(key);
        self.pairs.push((key.to_string(), value.into()));
    }

    /// Set `key` when `value` is `Some`, remove it otherwise.
    pub fn set_opt(&mut self, key: &str, value: Option<impl Into<String>>) {
        match value {
            Some(v) => self.set(key, v),
            None => self.remove(key),
        }
    }

    /// Remove every value of `key`.
    pub fn remove(&mut self, key: &str) {
        self.pairs.retain(|(k, _)| k != key);
    }

    /// `?a=1&b=x%20y`, or the empty string for an empty query.
    pub fn to_search(&self) -> String {
        if self.pairs.is_empty() {
            return String::new();
        }
        let body: Vec<String> = self
            .pairs
            .iter()
            .map(|(k, v)| format!("{}={}", percent_encode(k), percent_encode(v)))
            .collect();
        format!("?{}", body.join("&"))
    }
}

/// Percent-encode everything but RFC 3986 unreserved characters.
pub fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(byte as char)
            }
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}

/// Decode `%XX` escapes and `+` (space). Invalid escapes and invalid UTF-8 are kept as they are
/// (lossily for UTF-8) rather than rejected.
pub fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b'%' => {
                let hex = bytes
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(b) => {
                        out.push(b);
                        i += 3;
                    }
                    None => {
                        out.push(b'%');
                        i += 1;
                    }
                }
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_awkward_values() {
        let mut q = Query::new();
        q.set("page", "calculator");
        q.set("spec", r#"{"name":"a b&c=d","x":[1,2]}"#);
        q.set("unicode", "Grüße 🙂");
        let parsed = Query::parse(&q.to_search());
        assert_eq!(parsed, q);
        assert_eq!(parsed.get("spec"), Some(r#"{"name":"a b&c=d","x":[1,2]}"#));
    }

    #[test]
    fn set_replaces_and_remove_removes() {
        let mut q = Query::parse("?a=1&a=2&b=3");
        q.set("a", "9");
        assert_eq!(q.to_search(), "?b=3&a=9");
        q.set_opt("b", None::<String>);
        assert_eq!(q.to_search(), "?a=9");
    }

    #[test]
    fn malformed_escapes_are_kept() {
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz+x"), "%zz x");
        assert_eq!(Query::parse("").to_search(), "");
        assert_eq!(Query::parse("?flag").get("flag"), Some(""));
    }
}
