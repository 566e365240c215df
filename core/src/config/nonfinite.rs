//! `NaN`, `Infinity` and `-Infinity` in a `config.json`.
//!
//! Python's `json.dumps` writes non-finite floats as these bare words (Nemotron-H's
//! `time_step_limit: [0.0, Infinity]`); JSON has no such values and serde_json refuses them. Before
//! parsing, each such word *outside string literals* becomes a marker string, so the rest of the
//! file parses; [`marked`] recognises a marker when a field that shapes the model holds one.

/// Prefix of the marker strings (not a string any real config holds).
const MARKER: &str = "\u{1}headroom-non-finite:";

/// The bare words Python writes, longest first so `-Infinity` wins over `Infinity`.
const WORDS: &[&str] = &["-Infinity", "Infinity", "NaN"];

/// `text` with every bare `NaN` / `Infinity` / `-Infinity` outside string literals replaced by
/// a marker string. Text without them is returned unchanged.
pub(super) fn mark_non_finite(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.contains("NaN") && !text.contains("Infinity") {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 64);
    let mut in_string = false;
    let mut escaped = false;
    let mut rest = text;
    while let Some(ch) = rest.chars().next() {
        if in_string {
            if escaped {
                escaped = false;
            } else if ch == '\\' {
                escaped = true;
            } else if ch == '"' {
                in_string = false;
            }
            out.push(ch);
            rest = &rest[ch.len_utf8()..];
            continue;
        }
        if ch == '"' {
            in_string = true;
            out.push(ch);
            rest = &rest[1..];
            continue;
        }
        // A bare word starts where a value can start; it must end at a delimiter.
        if let Some(word) = WORDS.iter().find(|w| {
            rest.starts_with(**w)
                && rest[w.len()..]
                    .chars()
                    .next()
                    .is_none_or(|c| !c.is_ascii_alphanumeric() && c != '_')
        }) {
            out.push('"');
            // `\u0001` escapes the control character the marker starts with.
            out.push_str("\\u0001headroom-non-finite:");
            out.push_str(word);
            out.push('"');
            rest = &rest[word.len()..];
            continue;
        }
        out.push(ch);
        rest = &rest[ch.len_utf8()..];
    }
    std::borrow::Cow::Owned(out)
}

/// The word a marker string stands for (`NaN`, `Infinity`, `-Infinity`), if `s` is one.
pub(super) fn marked(s: &str) -> Option<&str> {
    s.strip_prefix(MARKER)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_outside_strings_become_markers() {
        let t = r#"{"a": [0.0, Infinity], "b": NaN, "c": -Infinity, "d": "NaN Infinity"}"#;
        let m = mark_non_finite(t);
        let v: serde_json::Value = serde_json::from_str(&m).expect("parses");
        assert_eq!(
            marked(v["a"][1].as_str().expect("marker")),
            Some("Infinity")
        );
        assert_eq!(marked(v["b"].as_str().expect("marker")), Some("NaN"));
        assert_eq!(marked(v["c"].as_str().expect("marker")), Some("-Infinity"));
        assert_eq!(v["d"], "NaN Infinity", "inside a string nothing changes");
    }

    #[test]
    fn escaped_quotes_keep_the_string_open() {
        let t = r#"{"a": "x\" NaN", "b": 1}"#;
        assert_eq!(mark_non_finite(t), t);
    }
}
