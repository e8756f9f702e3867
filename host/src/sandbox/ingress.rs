//! Bounded ingress: how a value the guest hands the host is admitted.
//!
//! Every string, byte buffer and JSON text from the guest is size-checked
//! before it is parsed or copied anywhere, and JSON is depth-checked (on
//! its text, before parsing) well below the recursion limit of any reader
//! the host has: a value stored inside a record one or two levels deeper
//! must always read back. The caller charges what it admits to a budget.

use serde_json::Value;

/// Deepest JSON nesting a guest value may have. The API admits the same
/// from clients; serde_json refuses at 128, and stored records add a level
/// or two around what they hold.
pub(crate) const MAX_DEPTH: usize = 64;

/// Why a guest value was not admitted.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Refused {
    #[error("{what} is {len} bytes; the limit is {limit}")]
    TooLarge {
        what: &'static str,
        len: usize,
        limit: usize,
    },
    #[error("{what} nests deeper than {MAX_DEPTH} levels")]
    TooDeep { what: &'static str },
    #[error("{what} is not JSON: {error}")]
    NotJson { what: &'static str, error: String },
}

/// Admits `text` of at most `limit` bytes.
pub(crate) fn text(what: &'static str, text: &str, limit: usize) -> Result<(), Refused> {
    if text.len() > limit {
        return Err(Refused::TooLarge {
            what,
            len: text.len(),
            limit,
        });
    }
    Ok(())
}

/// Admits JSON `text` of at most `limit` bytes and [`MAX_DEPTH`] levels.
pub(crate) fn json(what: &'static str, text: &str, limit: usize) -> Result<Value, Refused> {
    self::text(what, text, limit)?;
    if too_deep(text.as_bytes()) {
        return Err(Refused::TooDeep { what });
    }
    serde_json::from_str(text).map_err(|e| Refused::NotJson {
        what,
        error: e.to_string(),
    })
}

/// Whether JSON text opens more than [`MAX_DEPTH`] arrays or objects at
/// once. Brackets inside strings do not count; malformed text is left to
/// the parser.
fn too_deep(bytes: &[u8]) -> bool {
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for &b in bytes {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > MAX_DEPTH {
                    return true;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nested(depth: usize) -> String {
        format!("{}1{}", "[".repeat(depth), "]".repeat(depth))
    }

    #[test]
    fn depth_is_checked_before_parsing_and_strings_do_not_count() {
        assert!(json("v", &nested(MAX_DEPTH), 1 << 20).is_ok());
        assert_eq!(
            json("v", &nested(MAX_DEPTH + 1), 1 << 20),
            Err(Refused::TooDeep { what: "v" })
        );
        // Far past serde_json's own limit: refused, not a parser error.
        assert!(matches!(
            json("v", &nested(100_000), 1 << 20),
            Err(Refused::TooDeep { .. })
        ));
        let brackets_in_strings = format!(r#"{{"a":"{}\"[{{"}}"#, "[".repeat(500));
        assert!(json("v", &brackets_in_strings, 1 << 20).is_ok());
        let objects = format!("{}{}", r#"{"a":"#.repeat(65), "}".repeat(65));
        assert!(matches!(
            json("v", &objects, 1 << 20),
            Err(Refused::TooDeep { .. })
        ));
    }

    #[test]
    fn size_is_checked_before_anything_else() {
        let big = "x".repeat(1025);
        assert!(matches!(
            json("v", &big, 1024),
            Err(Refused::TooLarge {
                len: 1025,
                limit: 1024,
                ..
            })
        ));
        assert!(matches!(json("v", "{", 1024), Err(Refused::NotJson { .. })));
        assert!(text("v", "abc", 3).is_ok());
        assert!(text("v", "abcd", 3).is_err());
    }

    #[test]
    fn an_admitted_value_stays_readable_inside_a_record() {
        let v = json("v", &nested(MAX_DEPTH), 1 << 20).unwrap();
        let record = serde_json::json!({ "run": { "output": v } });
        let text = serde_json::to_string(&record).unwrap();
        assert!(serde_json::from_str::<Value>(&text).is_ok());
    }
}
