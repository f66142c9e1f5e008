//! FHIRPath tokens with their character offsets.

use alloc::string::String;
use alloc::vec::Vec;

use super::ParseError;

/// One token.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Token {
    /// An identifier, plain or `` `delimited` ``; `delimited` is true for the latter.
    Ident(String, bool),
    /// A string literal, unescaped.
    Str(String),
    /// A number literal, as written.
    Number(String),
    /// A date, date-time or time literal, without the `@`.
    DateTime(String),
    /// `%name` or `` %`name` `` or `%'name'`.
    External(String),
    /// `$this`, `$index`, `$total`.
    Special(String),
    /// An operator or punctuation.
    Symbol(&'static str),
    /// The end of the expression.
    End,
}

/// A token and the character offset where it starts.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Spanned {
    pub token: Token,
    pub offset: usize,
}

const SYMBOLS: &[&str] = &[
    "<=", ">=", "!=", "!~", ".", "[", "]", "(", ")", "{", "}", ",", "+", "-", "*", "/", "&", "|",
    "<", ">", "=", "~",
];

/// Splits an expression into tokens; comments and whitespace are dropped.
pub(crate) fn tokenize(text: &str) -> Result<Vec<Spanned>, ParseError> {
    let chars: Vec<char> = text.chars().collect();
    let mut tokens = Vec::new();
    let mut pos = 0;
    while pos < chars.len() {
        let ch = chars[pos];
        if ch.is_whitespace() {
            pos += 1;
            continue;
        }
        if ch == '/' && chars.get(pos + 1) == Some(&'/') {
            while pos < chars.len() && chars[pos] != '\n' {
                pos += 1;
            }
            continue;
        }
        if ch == '/' && chars.get(pos + 1) == Some(&'*') {
            let start = pos;
            pos += 2;
            loop {
                match (chars.get(pos), chars.get(pos + 1)) {
                    (Some('*'), Some('/')) => {
                        pos += 2;
                        break;
                    }
                    (Some(_), _) => pos += 1,
                    (None, _) => {
                        return Err(ParseError::new(
                            "expected '*/' to close a comment, found the end",
                            start,
                        ))
                    }
                }
            }
            continue;
        }
        let start = pos;
        let token = if ch.is_ascii_alphabetic() || ch == '_' {
            while pos < chars.len() && (chars[pos].is_ascii_alphanumeric() || chars[pos] == '_') {
                pos += 1;
            }
            Token::Ident(chars[start..pos].iter().collect(), false)
        } else if ch == '`' {
            let (text, end) = quoted(&chars, pos, '`')?;
            pos = end;
            Token::Ident(text, true)
        } else if ch == '\'' {
            let (text, end) = quoted(&chars, pos, '\'')?;
            pos = end;
            Token::Str(text)
        } else if ch.is_ascii_digit() {
            while pos < chars.len() && chars[pos].is_ascii_digit() {
                pos += 1;
            }
            if chars.get(pos) == Some(&'.') && chars.get(pos + 1).is_some_and(char::is_ascii_digit)
            {
                pos += 1;
                while pos < chars.len() && chars[pos].is_ascii_digit() {
                    pos += 1;
                }
            }
            // A long literal (FHIRPath 2.1) ends in L.
            if chars.get(pos) == Some(&'L') {
                pos += 1;
            }
            Token::Number(chars[start..pos].iter().collect())
        } else if ch == '@' {
            pos += 1;
            while pos < chars.len()
                && (chars[pos].is_ascii_alphanumeric()
                    || matches!(chars[pos], '-' | ':' | '.' | '+'))
            {
                // A '-' or '+' after the time part starts a time zone, and the zone
                // ends the literal; a '.' needs a digit after it.
                if chars[pos] == '.' && !chars.get(pos + 1).is_some_and(char::is_ascii_digit) {
                    break;
                }
                if matches!(chars[pos], '+' | '-')
                    && !chars.get(pos + 1).is_some_and(char::is_ascii_digit)
                {
                    break;
                }
                pos += 1;
            }
            Token::DateTime(chars[start + 1..pos].iter().collect())
        } else if ch == '%' {
            pos += 1;
            match chars.get(pos) {
                Some('`') | Some('\'') => {
                    let quote = chars[pos];
                    let (text, end) = quoted(&chars, pos, quote)?;
                    pos = end;
                    Token::External(text)
                }
                _ => {
                    let name_start = pos;
                    while pos < chars.len()
                        && (chars[pos].is_ascii_alphanumeric() || matches!(chars[pos], '_' | '-'))
                    {
                        pos += 1;
                    }
                    if pos == name_start {
                        return Err(ParseError::new("expected a name after '%'", start));
                    }
                    Token::External(chars[name_start..pos].iter().collect())
                }
            }
        } else if ch == '$' {
            pos += 1;
            while pos < chars.len() && chars[pos].is_ascii_alphanumeric() {
                pos += 1;
            }
            Token::Special(chars[start..pos].iter().collect())
        } else {
            let rest: String = chars[pos..chars.len().min(pos + 2)].iter().collect();
            match SYMBOLS.iter().find(|symbol| rest.starts_with(**symbol)) {
                Some(symbol) => {
                    pos += symbol.chars().count();
                    Token::Symbol(symbol)
                }
                None => {
                    return Err(ParseError::new(
                        alloc::format!("unexpected character {ch:?}"),
                        start,
                    ));
                }
            }
        };
        tokens.push(Spanned {
            token,
            offset: start,
        });
    }
    tokens.push(Spanned {
        token: Token::End,
        offset: chars.len(),
    });
    Ok(tokens)
}

/// Reads a quoted string or identifier starting at `start` (the opening quote).
fn quoted(chars: &[char], start: usize, quote: char) -> Result<(String, usize), ParseError> {
    let mut res = String::new();
    let mut pos = start + 1;
    loop {
        match chars.get(pos) {
            None => {
                return Err(ParseError::new(
                    alloc::format!("expected {quote} to close, found the end"),
                    start,
                ))
            }
            Some(ch) if *ch == quote => return Ok((res, pos + 1)),
            Some('\\') => {
                pos += 1;
                let escaped = match chars.get(pos) {
                    Some('\'') => '\'',
                    Some('"') => '"',
                    Some('`') => '`',
                    Some('\\') => '\\',
                    Some('/') => '/',
                    Some('f') => '\u{c}',
                    Some('n') => '\n',
                    Some('r') => '\r',
                    Some('t') => '\t',
                    Some('u') => {
                        let hex: String = chars
                            .get(pos + 1..pos + 5)
                            .map(|h| h.iter().collect())
                            .unwrap_or_default();
                        let code = u32::from_str_radix(&hex, 16)
                            .ok()
                            .filter(|_| hex.len() == 4)
                            .and_then(char::from_u32)
                            .ok_or_else(|| {
                                ParseError::new("expected 4 hex digits after \\u", pos)
                            })?;
                        pos += 4;
                        code
                    }
                    _ => return Err(ParseError::new("unknown escape sequence", pos)),
                };
                res.push(escaped);
                pos += 1;
            }
            Some(ch) => {
                res.push(*ch);
                pos += 1;
            }
        }
    }
}
