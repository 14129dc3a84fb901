//! Text from participants and the API (error messages, reasons, step
//! outcomes) on an operator's terminal: control characters (ANSI escape
//! sequences, `\r`, backspace, C1 controls) and bidirectional overrides
//! are shown escaped, never interpreted.

use std::borrow::Cow;

/// `text` with every control character (line breaks too) and every
/// bidirectional override shown as a Rust escape (`\u{1b}`, `\r`, `\n`).
pub fn escape(text: &str) -> Cow<'_, str> {
    if !text.chars().any(needs_escape) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match needs_escape(c) {
            true => out.extend(c.escape_default()),
            false => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// [`escape`] for text of several lines: the line breaks stay.
pub fn escape_lines(text: &str) -> Cow<'_, str> {
    if !text.chars().any(|c| c != '\n' && needs_escape(c)) {
        return Cow::Borrowed(text);
    }
    Cow::Owned(text.split('\n').map(escape).collect::<Vec<_>>().join("\n"))
}

fn needs_escape(c: char) -> bool {
    c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_shown_not_obeyed() {
        assert_eq!(escape("card declined"), "card declined");
        assert_eq!(escape("\u{1b}[2Jgone\rover\u{9b}31m"), "\\u{1b}[2Jgone\\rover\\u{9b}31m");
        assert_eq!(escape("a\nb\u{202e}c"), "a\\nb\\u{202e}c");
        assert_eq!(escape_lines("row 1\nrow\u{7} 2\n"), "row 1\nrow\\u{7} 2\n");
    }
}
