//! A strict JSON reader (RFC 8259) that keeps what FHIR needs and generic parsers drop:
//! the byte offset of every value and key, the exact text of every number, and key order.
//!
//! [`Lexer`] reads tokens straight from the input (strings are borrowed unless they hold
//! escapes); [`parse`] builds a [`Node`] tree with it, and the FHIR reader reads resources with
//! it directly, without a tree. Both refuse duplicate keys, cap nesting depth and input size,
//! and never panic: every failure is a [`ParseError`] with a position.

use alloc::borrow::Cow;
use alloc::collections::BTreeSet;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use super::ParseError;

/// The deepest nesting any caller may allow: reading recurses once per level.
pub const MAX_DEPTH_CEILING: usize = 200;

/// Bounds on hostile input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Deepest nesting of arrays and objects accepted.
    pub max_depth: usize,
    /// Largest input accepted, in bytes.
    pub max_bytes: usize,
}

impl Default for Limits {
    /// 100 levels (the deepest R4 example nests 14) and 64 MiB.
    fn default() -> Self {
        Limits {
            max_depth: 100,
            max_bytes: 64 << 20,
        }
    }
}

/// A JSON value with the byte offset where it starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// The value.
    pub value: Value,
    /// Byte offset of the value's first character in the input.
    pub offset: usize,
}

/// A JSON value. Numbers keep their text so that `1.50` stays `1.50`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// `null`.
    Null,
    /// `true` or `false`.
    Bool(bool),
    /// A number, as written.
    Number(String),
    /// A string, unescaped.
    String(String),
    /// An array.
    Array(Vec<Node>),
    /// An object, in input order; keys are unique.
    Object(Vec<Member>),
}

/// One `"key": value` pair of an object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// The key, unescaped.
    pub key: String,
    /// Byte offset of the key's opening quote.
    pub key_offset: usize,
    /// The value.
    pub node: Node,
}

impl Value {
    /// How a message names this kind of value: "a string", "an array", ...
    pub fn describe(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "a boolean",
            Value::Number(_) => "a number",
            Value::String(_) => "a string",
            Value::Array(_) => "an array",
            Value::Object(_) => "an object",
        }
    }
}

/// Reads one JSON value that fills the whole input (surrounding whitespace allowed).
///
/// # Errors
/// A [`ParseError`] at the first offending character: bad UTF-8, bad syntax, a duplicate key,
/// nesting deeper than `limits.max_depth`, or more than `limits.max_bytes` bytes.
pub fn parse(bytes: &[u8], limits: Limits) -> Result<Node, ParseError> {
    let mut lexer = Lexer::new(bytes, limits)?;
    lexer.skip_whitespace();
    let node = tree_value(&mut lexer, 0)?;
    lexer.expect_end()?;
    Ok(node)
}

fn tree_value(lexer: &mut Lexer<'_>, depth: usize) -> Result<Node, ParseError> {
    let offset = lexer.pos;
    let value = match lexer.peek() {
        Some(b'{') => {
            lexer.enter(depth + 1)?;
            lexer.pos += 1;
            let mut members: Vec<Member> = Vec::new();
            let mut seen: BTreeSet<Cow<'_, str>> = BTreeSet::new();
            let mut more = lexer.first_member()?;
            while more {
                let key_offset = lexer.pos;
                let key = lexer.key()?;
                if !seen.insert(key.clone()) {
                    return Err(lexer.error_at(format!("duplicate key {key:?}"), key_offset));
                }
                let node = tree_value(lexer, depth + 1)?;
                members.push(Member {
                    key: key.into_owned(),
                    key_offset,
                    node,
                });
                more = lexer.next_member()?;
            }
            Value::Object(members)
        }
        Some(b'[') => {
            lexer.enter(depth + 1)?;
            lexer.pos += 1;
            let mut items = Vec::new();
            let mut more = lexer.first_item()?;
            while more {
                items.push(tree_value(lexer, depth + 1)?);
                more = lexer.next_item()?;
            }
            Value::Array(items)
        }
        Some(b'"') => Value::String(lexer.string()?.into_owned()),
        Some(b't') => lexer.literal("true", Value::Bool(true))?,
        Some(b'f') => lexer.literal("false", Value::Bool(false))?,
        Some(b'n') => lexer.literal("null", Value::Null)?,
        Some(b'-' | b'0'..=b'9') => Value::Number(String::from(lexer.number()?)),
        _ => {
            return Err(lexer.error_here(&format!("expected a JSON value, found {}", lexer.found())))
        }
    };
    Ok(Node { value, offset })
}

/// Reads JSON tokens from UTF-8 input, tracking the byte position.
pub(crate) struct Lexer<'a> {
    text: &'a str,
    bytes: &'a [u8],
    /// Byte offset of the next unread character.
    pub(crate) pos: usize,
    limits: Limits,
}

impl<'a> Lexer<'a> {
    /// Checks size and UTF-8, and starts at the first byte.
    pub(crate) fn new(bytes: &'a [u8], limits: Limits) -> Result<Self, ParseError> {
        if bytes.len() > limits.max_bytes {
            return Err(ParseError::new(
                format!(
                    "expected at most {} bytes of JSON, found {}",
                    limits.max_bytes,
                    bytes.len()
                ),
                bytes,
                0,
            ));
        }
        let text = core::str::from_utf8(bytes).map_err(|err| {
            ParseError::new(
                "expected UTF-8 text, found an invalid byte".into(),
                bytes,
                err.valid_up_to(),
            )
        })?;
        // A UTF-8 byte order mark is ignored (RFC 8259 §8.1 allows it), and the depth is
        // capped whatever the caller asks, so that recursion stays within the stack.
        let pos = if text.starts_with('\u{feff}') { 3 } else { 0 };
        let limits = Limits {
            max_depth: limits.max_depth.min(MAX_DEPTH_CEILING),
            ..limits
        };
        Ok(Lexer {
            text,
            bytes,
            pos,
            limits,
        })
    }

    pub(crate) fn error_here(&self, message: &str) -> ParseError {
        ParseError::new(message.into(), self.bytes, self.pos)
    }

    pub(crate) fn error_at(&self, message: String, offset: usize) -> ParseError {
        ParseError::new(message, self.bytes, offset)
    }

    #[inline]
    pub(crate) fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    #[inline]
    pub(crate) fn skip_whitespace(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.pos += 1;
        }
    }

    /// After the top-level value: only whitespace may follow.
    pub(crate) fn expect_end(&mut self) -> Result<(), ParseError> {
        self.skip_whitespace();
        if self.pos < self.bytes.len() {
            return Err(self.error_here("expected the end of the input, found more text"));
        }
        Ok(())
    }

    /// Describes what stands at the current position, for "found ..." in messages.
    pub(crate) fn found(&self) -> String {
        match self
            .text
            .get(self.pos..)
            .and_then(|rest| rest.chars().next())
        {
            None => String::from("the end of the input"),
            Some(ch) => format!("{ch:?}"),
        }
    }

    /// Fails when `depth` exceeds the limit.
    pub(crate) fn enter(&self, depth: usize) -> Result<(), ParseError> {
        if depth > self.limits.max_depth {
            return Err(self.error_here(&format!(
                "expected at most {} levels of nested arrays and objects, found more",
                self.limits.max_depth
            )));
        }
        Ok(())
    }

    pub(crate) fn literal<T>(&mut self, word: &str, value: T) -> Result<T, ParseError> {
        if self.bytes.get(self.pos..self.pos + word.len()) == Some(word.as_bytes()) {
            self.pos += word.len();
            Ok(value)
        } else {
            Err(self.error_here(&format!("expected a JSON value, found {}", self.found())))
        }
    }

    /// After `{`: true when a member follows, false (and `}` consumed) for an empty object.
    #[inline]
    pub(crate) fn first_member(&mut self) -> Result<bool, ParseError> {
        self.skip_whitespace();
        if self.peek() == Some(b'}') {
            self.pos += 1;
            return Ok(false);
        }
        Ok(true)
    }

    /// Reads `"key":` and the whitespace after it; the key is borrowed unless it has escapes.
    #[inline]
    pub(crate) fn key(&mut self) -> Result<Cow<'a, str>, ParseError> {
        self.skip_whitespace();
        if self.peek() != Some(b'"') {
            return Err(self.error_here(&format!("expected a string key, found {}", self.found())));
        }
        let key = self.string()?;
        self.skip_whitespace();
        if self.peek() != Some(b':') {
            return Err(
                self.error_here(&format!("expected ':' after a key, found {}", self.found()))
            );
        }
        self.pos += 1;
        self.skip_whitespace();
        Ok(key)
    }

    /// After a member's value: true when another member follows (`,` and whitespace consumed,
    /// so that the position is the next key's), false at `}`.
    #[inline]
    pub(crate) fn next_member(&mut self) -> Result<bool, ParseError> {
        self.skip_whitespace();
        match self.peek() {
            Some(b',') => {
                self.pos += 1;
                self.skip_whitespace();
                Ok(true)
            }
            Some(b'}') => {
                self.pos += 1;
                Ok(false)
            }
            _ => Err(self.error_here(&format!(
                "expected ',' or '}}' in an object, found {}",
                self.found()
            ))),
        }
    }

    /// After `[`: true when an item follows, false (and `]` consumed) for an empty array.
    #[inline]
    pub(crate) fn first_item(&mut self) -> Result<bool, ParseError> {
        self.skip_whitespace();
        if self.peek() == Some(b']') {
            self.pos += 1;
            return Ok(false);
        }
        Ok(true)
    }

    /// After an item: true when another item follows (`,` and whitespace consumed), false at `]`.
    #[inline]
    pub(crate) fn next_item(&mut self) -> Result<bool, ParseError> {
        self.skip_whitespace();
        match self.peek() {
            Some(b',') => {
                self.pos += 1;
                self.skip_whitespace();
                Ok(true)
            }
            Some(b']') => {
                self.pos += 1;
                Ok(false)
            }
            _ => Err(self.error_here(&format!(
                "expected ',' or ']' in an array, found {}",
                self.found()
            ))),
        }
    }

    /// Reads and checks a value without keeping it.
    pub(crate) fn skip_value(&mut self, depth: usize) -> Result<(), ParseError> {
        match self.peek() {
            Some(b'{') => {
                self.enter(depth + 1)?;
                self.pos += 1;
                let mut keys: BTreeSet<Cow<'a, str>> = BTreeSet::new();
                let mut more = self.first_member()?;
                while more {
                    let key_offset = self.pos;
                    let key = self.key()?;
                    if !keys.insert(key.clone()) {
                        return Err(self.error_at(format!("duplicate key {key:?}"), key_offset));
                    }
                    self.skip_value(depth + 1)?;
                    more = self.next_member()?;
                }
                Ok(())
            }
            Some(b'[') => {
                self.enter(depth + 1)?;
                self.pos += 1;
                let mut more = self.first_item()?;
                while more {
                    self.skip_value(depth + 1)?;
                    more = self.next_item()?;
                }
                Ok(())
            }
            Some(b'"') => self.string().map(drop),
            Some(b't') => self.literal("true", ()),
            Some(b'f') => self.literal("false", ()),
            Some(b'n') => self.literal("null", ()),
            Some(b'-' | b'0'..=b'9') => self.number().map(drop),
            _ => Err(self.error_here(&format!("expected a JSON value, found {}", self.found()))),
        }
    }

    /// Reads a number and returns its text.
    pub(crate) fn number(&mut self) -> Result<&'a str, ParseError> {
        let start = self.pos;
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        match self.peek() {
            Some(b'0') => self.pos += 1,
            Some(b'1'..=b'9') => self.digits(),
            _ => return Err(self.error_here(&format!("expected a digit, found {}", self.found()))),
        }
        if self.peek() == Some(b'.') {
            self.pos += 1;
            if !matches!(self.peek(), Some(b'0'..=b'9')) {
                return Err(self.error_here(&format!(
                    "expected a digit after '.', found {}",
                    self.found()
                )));
            }
            self.digits();
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.pos += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.pos += 1;
            }
            if !matches!(self.peek(), Some(b'0'..=b'9')) {
                return Err(self.error_here(&format!(
                    "expected a digit in the exponent, found {}",
                    self.found()
                )));
            }
            self.digits();
        }
        // The scanned bytes are ASCII, so the slice falls on character boundaries.
        Ok(self.text.get(start..self.pos).unwrap_or_default())
    }

    #[inline]
    fn digits(&mut self) {
        while let Some(b'0'..=b'9') = self.peek() {
            self.pos += 1;
        }
    }

    /// Reads a string (at its opening quote); borrowed from the input unless it has escapes.
    pub(crate) fn string(&mut self) -> Result<Cow<'a, str>, ParseError> {
        self.pos += 1; // '"'
        let start = self.pos;
        self.pos = plain_run_end(self.bytes, self.pos);
        if self.peek() == Some(b'"') {
            let text = self.text.get(start..self.pos).unwrap_or_default();
            self.pos += 1;
            return Ok(Cow::Borrowed(text));
        }
        let mut res = String::from(self.text.get(start..self.pos).unwrap_or_default());
        loop {
            match self.peek() {
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(Cow::Owned(res));
                }
                Some(b'\\') => {
                    let escape_start = self.pos;
                    self.pos += 1;
                    let ch = match self.peek() {
                        Some(b'u') => {
                            self.pos += 1;
                            self.unicode_escape(escape_start)?
                        }
                        Some(escaped) => {
                            let ch = match escaped {
                                b'"' => '"',
                                b'\\' => '\\',
                                b'/' => '/',
                                b'b' => '\u{8}',
                                b'f' => '\u{c}',
                                b'n' => '\n',
                                b'r' => '\r',
                                b't' => '\t',
                                _ => {
                                    return Err(self.error_here(&format!(
                                        "expected an escape character after '\\', found {}",
                                        self.found()
                                    )))
                                }
                            };
                            self.pos += 1;
                            ch
                        }
                        None => {
                            return Err(self.error_here(
                                "expected '\"' to close a string, found the end of the input",
                            ))
                        }
                    };
                    res.push(ch);
                }
                Some(_) => {
                    return Err(self.error_here(
                        "expected a character in a string, found an unescaped control character",
                    ))
                }
                None => {
                    return Err(self
                        .error_here("expected '\"' to close a string, found the end of the input"))
                }
            }
            // Copy the run of plain characters in one step.
            let run_start = self.pos;
            while let Some(byte) = self.peek() {
                if byte == b'"' || byte == b'\\' || byte < 0x20 {
                    break;
                }
                self.pos += 1;
            }
            res.push_str(self.text.get(run_start..self.pos).unwrap_or_default());
        }
    }

    /// Reads the 4 hex digits after `\u` (and a low surrogate's `\uXXXX` after a high one).
    fn unicode_escape(&mut self, escape_start: usize) -> Result<char, ParseError> {
        let high = self.hex4()?;
        let code = if (0xD800..0xDC00).contains(&high) {
            if self.bytes.get(self.pos..self.pos + 2) != Some(b"\\u") {
                return Err(self.error_at(
                    "expected a low surrogate '\\uDC00'..'\\uDFFF' after a high surrogate".into(),
                    escape_start,
                ));
            }
            self.pos += 2;
            let low = self.hex4()?;
            if !(0xDC00..0xE000).contains(&low) {
                return Err(self.error_at(
                    "expected a low surrogate '\\uDC00'..'\\uDFFF' after a high surrogate".into(),
                    escape_start,
                ));
            }
            0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00)
        } else {
            high
        };
        char::from_u32(code).ok_or_else(|| {
            self.error_at(
                "expected a Unicode scalar value, found a lone surrogate escape".into(),
                escape_start,
            )
        })
    }

    fn hex4(&mut self) -> Result<u32, ParseError> {
        let mut code = 0u32;
        for _ in 0..4 {
            let digit = match self.peek() {
                Some(byte @ b'0'..=b'9') => byte - b'0',
                Some(byte @ b'a'..=b'f') => byte - b'a' + 10,
                Some(byte @ b'A'..=b'F') => byte - b'A' + 10,
                _ => {
                    return Err(self.error_here(&format!(
                        "expected 4 hex digits after '\\u', found {}",
                        self.found()
                    )))
                }
            };
            code = code * 16 + u32::from(digit);
            self.pos += 1;
        }
        Ok(code)
    }
}

/// Where the run of string bytes from `pos` that need no attention ends: the position of the
/// first `"`, `\\` or control character, or the end. Eight bytes are looked at together.
#[inline]
fn plain_run_end(bytes: &[u8], mut pos: usize) -> usize {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    // A byte's high bit is set where it is zero (exact for the first such byte).
    let zero = |word: u64| word.wrapping_sub(ONES) & !word & HIGH;
    while let Some(chunk) = bytes.get(pos..pos + 8) {
        let Ok(chunk) = <[u8; 8]>::try_from(chunk) else {
            break;
        };
        let word = u64::from_le_bytes(chunk);
        let found = zero(word ^ (ONES * u64::from(b'"')))
            | zero(word ^ (ONES * u64::from(b'\\')))
            // Below 0x20: subtracting 0x20 borrows into the high bit of an ASCII byte.
            | (word.wrapping_sub(ONES * 0x20) & !word & HIGH);
        if found != 0 {
            return pos + (found.trailing_zeros() / 8) as usize;
        }
        pos += 8;
    }
    while let Some(&byte) = bytes.get(pos) {
        if byte == b'"' || byte == b'\\' || byte < 0x20 {
            break;
        }
        pos += 1;
    }
    pos
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_runs_end_where_byte_by_byte_they_would() {
        let naive = |bytes: &[u8], mut pos: usize| {
            while let Some(&byte) = bytes.get(pos) {
                if byte == b'"' || byte == b'\\' || byte < 0x20 {
                    break;
                }
                pos += 1;
            }
            pos
        };
        // Every stop byte and some that are near them, at every place in runs of every length
        // around a word, after every start; with bytes past 0x7f before and after.
        let stops = [b'"', b'\\', 0x00, 0x1f, 0x0a];
        let others = [
            b'a', b' ', b'!', b'#', b'[', b']', 0x7f, 0x80, 0xc3, 0xff, 0x21, 0x5d,
        ];
        let mut checked = 0;
        for len in 0..20 {
            for &fill in &others {
                for stop_at in 0..=len {
                    for &stop in &stops {
                        let mut bytes = alloc::vec![fill; len];
                        if stop_at < len {
                            bytes[stop_at] = stop;
                        }
                        for start in 0..=len {
                            assert_eq!(
                                plain_run_end(&bytes, start),
                                naive(&bytes, start),
                                "{bytes:?} from {start}"
                            );
                            checked += 1;
                        }
                    }
                }
            }
        }
        // Two stops in one word, and a stop after bytes that borrow.
        for bytes in [
            &b"ab\\c\"def"[..],
            b"\x01\x00\"aaaaaaaaa",
            b"\xff\xfe\x20\x1f\"abcdefg",
        ] {
            assert_eq!(plain_run_end(bytes, 0), naive(bytes, 0), "{bytes:?}");
        }
        assert!(checked > 10_000);
    }

    #[track_caller]
    fn check_error(input: &str, message: &str, line: usize, column: usize) {
        match parse(input.as_bytes(), Limits::default()) {
            Ok(node) => panic!("expected an error for {input:?}, got {node:?}"),
            Err(err) => assert_eq!(
                (err.message.as_str(), err.line, err.column),
                (message, line, column)
            ),
        }
    }

    #[track_caller]
    fn check_ok(input: &str, expected: Value) {
        match parse(input.as_bytes(), Limits::default()) {
            Ok(node) => assert_eq!(node.value, expected),
            Err(err) => panic!("{input:?}: {err}"),
        }
    }

    #[test]
    fn numbers_keep_their_text() {
        check_ok("1.50", Value::Number("1.50".into()));
        check_ok("-0.0e+10", Value::Number("-0.0e+10".into()));
    }

    #[test]
    fn strings_are_unescaped() {
        check_ok(
            r#""a\"\\\/\b\f\n\r\t\u00e9\ud83d\ude00""#,
            Value::String("a\"\\/\u{8}\u{c}\n\r\t\u{e9}\u{1F600}".into()),
        );
    }

    #[test]
    fn members_keep_order_and_offsets() {
        let node = parse(br#" {"b":1, "a":[true,null]}"#, Limits::default());
        let Ok(Node {
            value: Value::Object(members),
            offset: 1,
        }) = node
        else {
            panic!("{node:?}")
        };
        assert_eq!(
            (
                members[0].key.as_str(),
                members[0].key_offset,
                members[0].node.offset
            ),
            ("b", 2, 6)
        );
        assert_eq!((members[1].key.as_str(), members[1].node.offset), ("a", 13));
    }

    #[test]
    fn syntax_errors_point_at_the_offending_character() {
        check_error("{\"a\":1,}", "expected a string key, found '}'", 1, 8);
        check_error("[1,]", "expected a JSON value, found ']'", 1, 4);
        check_error("01", "expected the end of the input, found more text", 1, 2);
        check_error(
            "1.",
            "expected a digit after '.', found the end of the input",
            1,
            3,
        );
        check_error("{\n \"a\": tru }", "expected a JSON value, found 't'", 2, 7);
        check_error(
            "\"ab",
            "expected '\"' to close a string, found the end of the input",
            1,
            4,
        );
        check_error(
            "\"a\nb\"",
            "expected a character in a string, found an unescaped control character",
            1,
            3,
        );
        check_error(
            r#""\x""#,
            "expected an escape character after '\\', found 'x'",
            1,
            3,
        );
        check_error(
            r#""\ud800x""#,
            "expected a low surrogate '\\uDC00'..'\\uDFFF' after a high surrogate",
            1,
            2,
        );
        check_error(
            r#""\udc00""#,
            "expected a Unicode scalar value, found a lone surrogate escape",
            1,
            2,
        );
        check_error(
            "",
            "expected a JSON value, found the end of the input",
            1,
            1,
        );
        check_error(
            "{} {}",
            "expected the end of the input, found more text",
            1,
            4,
        );
    }

    #[test]
    fn duplicate_keys_are_refused_at_the_second_key() {
        check_error("{\"a\":1,\n \"a\":2}", "duplicate key \"a\"", 2, 2);
    }

    #[test]
    fn columns_count_characters_not_bytes() {
        check_error("[\"é\", x]", "expected a JSON value, found 'x'", 1, 7);
    }

    #[test]
    fn invalid_utf8_is_refused_at_the_bad_byte() {
        match parse(b"[\"ab\xff\"]", Limits::default()) {
            Err(err) => assert_eq!(
                (err.message.as_str(), err.line, err.column),
                ("expected UTF-8 text, found an invalid byte", 1, 5)
            ),
            Ok(node) => panic!("{node:?}"),
        }
    }

    #[test]
    fn hundred_thousand_nested_arrays_return_error_not_panic() {
        let text: String = core::iter::repeat_n('[', 100_000)
            .chain(core::iter::repeat_n(']', 100_000))
            .collect();
        check_error(
            &text,
            "expected at most 100 levels of nested arrays and objects, found more",
            1,
            101,
        );
    }

    #[test]
    fn input_over_the_size_limit_is_refused() {
        let limits = Limits {
            max_depth: 100,
            max_bytes: 4,
        };
        assert!(parse(b"[1,2]", limits).is_err());
        assert!(parse(b"[12]", limits).is_ok());
    }
}
