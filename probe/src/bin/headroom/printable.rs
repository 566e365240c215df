//! Text headed for a terminal. Adapter names and notes from a probe report, model ids, file
//! names and config fields are chosen by whoever wrote them; an escape sequence among them could
//! recolor, move the cursor, retitle the window or hide the lines above. Everything the binary
//! prints passes through [`printable`] on its way out.

use std::borrow::Cow;

/// `text` with every control character but newline and tab written as a visible escape
/// (`\u{1b}`); text without any is returned as it is. Newlines and tabs stay: the output's own
/// lines and columns are made of them.
pub fn printable(text: &str) -> Cow<'_, str> {
    if !text
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t')
    {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if c.is_control() && c != '\n' && c != '\t' {
            out.extend(c.escape_unicode());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::printable;

    #[test]
    fn control_characters_are_escaped_and_lines_kept() {
        assert_eq!(printable("RTX 4090"), "RTX 4090");
        assert_eq!(
            printable("evil\x1b[2J\x07 name\r\nnext\tcol\u{9b}"),
            "evil\\u{1b}[2J\\u{7} name\\u{d}\nnext\tcol\\u{9b}"
        );
    }
}
