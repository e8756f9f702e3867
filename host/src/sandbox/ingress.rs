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
    if json_depth(text.as_bytes()) > MAX_DEPTH {
        return Err(Refused::TooDeep { what });
    }
    serde_json::from_str(text).map_err(|e| Refused::NotJson {
        what,
        error: e.to_string(),
    })
}

/// The deepest nesting of arrays and objects in JSON `text`, brackets in
/// strings skipped. Measured before parsing, so hostile text (from a guest
/// or a client) never reaches a parser's recursion; malformed text is left
/// to the parser.
pub(crate) fn json_depth(text: &[u8]) -> usize {
    let (mut depth, mut max, mut in_string, mut escaped) = (0usize, 0usize, false, false);
    for &b in text {
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
                max = max.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    max
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn depth_ignores_brackets_in_strings() {
        assert_eq!(json_depth(br#"{"a":[1,{"b":"[[[["}]}"#), 3);
        assert_eq!(json_depth(br#""\"[""#), 0);
        let deep = "[".repeat(100) + &"]".repeat(100);
        assert_eq!(json_depth(deep.as_bytes()), 100);
    }

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
