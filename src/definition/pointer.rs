//! JSON Pointers (RFC 6901) as definitions use them (SPEC §7): `when` and
//! the values of `payload` name a value inside `{"input": …, "results": …}`.
//!
//! Parse, don't validate: a [`Pointer`] is known to be empty or to start
//! with `/`, with `~` only in the escapes `~0` (`~`) and `~1` (`/`); its
//! reference tokens are kept unescaped, so resolving it never fails.

use std::fmt;

use serde_json::Value;

/// A JSON Pointer that passed RFC 6901's syntax.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Pointer {
    text: String,
    tokens: Vec<String>,
}

/// Why a text is not a JSON Pointer: a sentence for the definition error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct PointerError(pub String);

impl Pointer {
    /// Accepts `text` only if it is a JSON Pointer.
    pub fn parse(text: &str) -> Result<Pointer, PointerError> {
        if text.is_empty() {
            return Ok(Pointer { text: String::new(), tokens: Vec::new() });
        }
        let Some(rest) = text.strip_prefix('/') else {
            return Err(PointerError(format!("{text:?} must be empty or start with '/', e.g. \"/input/car\"")));
        };
        let tokens = rest.split('/').map(|token| unescape(text, token)).collect::<Result<Vec<_>, _>>()?;
        Ok(Pointer { text: text.to_owned(), tokens })
    }

    /// The pointer as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The value `self` names in `document`, if there is one. An array
    /// index is a decimal number without leading zeros.
    pub fn resolve<'v>(&self, document: &'v Value) -> Option<&'v Value> {
        self.tokens.iter().try_fold(document, |value, token| match value {
            Value::Object(map) => map.get(token),
            Value::Array(items) => index(token).and_then(|i| items.get(i)),
            _ => None,
        })
    }
}

impl fmt::Display for Pointer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// A reference token with `~1` → `/` and `~0` → `~` (in that order, as RFC 6901 §4 says).
fn unescape(text: &str, token: &str) -> Result<String, PointerError> {
    let mut out = String::with_capacity(token.len());
    let mut chars = token.chars();
    while let Some(c) = chars.next() {
        match (c, c == '~') {
            (_, false) => out.push(c),
            (_, true) => match chars.next() {
                Some('0') => out.push('~'),
                Some('1') => out.push('/'),
                _ => return Err(PointerError(format!("{text:?} has a '~' that is not \"~0\" (for '~') or \"~1\" (for '/')"))),
            },
        }
    }
    Ok(out)
}

/// An array index token: `0`, or digits without a leading zero.
fn index(token: &str) -> Option<usize> {
    let digits = !token.is_empty() && token.bytes().all(|b| b.is_ascii_digit());
    (digits && (token == "0" || !token.starts_with('0'))).then(|| token.parse().ok()).flatten()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn pointers_follow_rfc_6901() {
        let doc = json!({"foo": ["bar", "baz"], "": 0, "a/b": 1, "m~n": 8, "input": {"car": false}});
        let cases: &[(&str, Option<Value>)] = &[
            ("", Some(doc.clone())),
            ("/foo", Some(json!(["bar", "baz"]))),
            ("/foo/0", Some(json!("bar"))),
            ("/foo/01", None),
            ("/foo/2", None),
            ("/", Some(json!(0))),
            ("/a~1b", Some(json!(1))),
            ("/m~0n", Some(json!(8))),
            ("/input/car", Some(json!(false))),
            ("/input/car/x", None),
        ];
        for (text, expected) in cases {
            let pointer = Pointer::parse(text).unwrap();
            assert_eq!(pointer.resolve(&doc).cloned(), *expected, "{text}");
            assert_eq!(pointer.as_str(), *text);
        }
        for bad in ["input/car", "/a~2", "/a~", "~1"] {
            assert!(Pointer::parse(bad).is_err(), "{bad}");
        }
    }
}
