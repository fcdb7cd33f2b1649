//! PostgreSQL's JSON parser: what text is JSON, read into a tree that remembers where each
//! value stood, and PostgreSQL's DETAIL when it is not (`Token "tru" is invalid.`, `Expected
//! ":", but found ","`, `The input string ended unexpectedly.`).

use super::value::{Node, Value};

/// Nesting deeper than this is refused rather than risk the stack.
pub(super) const MAX_DEPTH: usize = 1000;

/// Why text is not JSON: PostgreSQL's DETAIL line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError(pub String);

pub fn parse(text: &str) -> Result<Node, ParseError> {
    let mut parser = Parser { text, pos: 0 };
    parser.skip_space();
    let node = parser.value(0, "JSON value")?;
    parser.skip_space();
    if parser.pos < text.len() {
        return Err(parser.unexpected("end of input"));
    }
    Ok(node)
}

struct Parser<'a> {
    text: &'a str,
    pos: usize,
}

impl Parser<'_> {
    fn bytes(&self) -> &[u8] {
        self.text.as_bytes()
    }

    fn peek(&self) -> Option<u8> {
        self.bytes().get(self.pos).copied()
    }

    fn skip_space(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.pos += 1;
        }
    }

    /// The token at the current position as PostgreSQL's lexer reads it, or its complaint
    /// about it (a word that is no literal, a malformed number, the end of the input).
    fn lexeme(&self) -> Result<&str, ParseError> {
        let rest = &self.text[self.pos..];
        let Some(first) = rest.chars().next() else {
            return Err(ParseError("The input string ended unexpectedly.".into()));
        };
        let word = |rest: &str| {
            rest.char_indices()
                .find(|(_, c)| !(c.is_alphanumeric() || *c == '_' || !c.is_ascii()))
                .map_or(rest.len(), |(at, _)| at)
        };
        let invalid = |token: &str| ParseError(format!("Token \"{token}\" is invalid."));
        match first {
            '{' | '}' | '[' | ']' | ',' | ':' => Ok(&rest[..1]),
            '"' => {
                let mut escaped = false;
                for (at, c) in rest.char_indices().skip(1) {
                    match c {
                        _ if escaped => escaped = false,
                        '\\' => escaped = true,
                        '"' => return Ok(&rest[..=at]),
                        _ => {}
                    }
                }
                Err(ParseError("The input string ended unexpectedly.".into()))
            }
            '-' | '0'..='9' => {
                let end = rest
                    .char_indices()
                    .skip(1)
                    .find(|(_, c)| !(c.is_alphanumeric() || matches!(c, '.' | '+' | '-' | '_')))
                    .map_or(rest.len(), |(at, _)| at);
                let token = &rest[..end];
                let mut probe = Parser {
                    text: token,
                    pos: 0,
                };
                match probe.number() {
                    Ok(_) if probe.pos == token.len() => Ok(token),
                    _ => Err(invalid(token)),
                }
            }
            c if c.is_alphanumeric() || !c.is_ascii() => {
                let token = &rest[..word(rest)];
                match token {
                    "true" | "false" | "null" => Ok(token),
                    _ => Err(invalid(token)),
                }
            }
            c => Err(invalid(&c.to_string())),
        }
    }

    /// PostgreSQL's complaint when the token here is not what the grammar `expected`.
    fn unexpected(&self, expected: &str) -> ParseError {
        match self.lexeme() {
            Ok(token) => ParseError(format!("Expected {expected}, but found \"{token}\".")),
            Err(e) => e,
        }
    }

    /// Consumes `byte` (after whitespace) or complains that it expected `expected`.
    fn expect(&mut self, byte: u8, expected: &str) -> Result<(), ParseError> {
        self.skip_space();
        if self.peek() == Some(byte) {
            self.pos += 1;
            return Ok(());
        }
        Err(self.unexpected(expected))
    }

    fn value(&mut self, depth: usize, expected: &str) -> Result<Node, ParseError> {
        if depth > MAX_DEPTH {
            return Err(ParseError(format!(
                "JSON nested deeper than {MAX_DEPTH} levels."
            )));
        }
        self.skip_space();
        let start = self.pos;
        let value = match self.peek() {
            Some(b'{') => {
                self.pos += 1;
                let mut members = Vec::new();
                self.skip_space();
                if self.peek() == Some(b'}') {
                    self.pos += 1;
                } else {
                    let mut expected_key = "string or \"}\"";
                    loop {
                        self.skip_space();
                        if self.peek() != Some(b'"') {
                            return Err(self.unexpected(expected_key));
                        }
                        let key = self.string()?;
                        self.expect(b':', "\":\"")?;
                        let member = self.value(depth + 1, "JSON value")?;
                        members.push((key, member));
                        self.skip_space();
                        match self.peek() {
                            Some(b',') => self.pos += 1,
                            Some(b'}') => {
                                self.pos += 1;
                                break;
                            }
                            _ => return Err(self.unexpected("\",\" or \"}\"")),
                        }
                        expected_key = "string";
                    }
                }
                Value::Object(members)
            }
            Some(b'[') => {
                self.pos += 1;
                let mut items = Vec::new();
                self.skip_space();
                if self.peek() == Some(b']') {
                    self.pos += 1;
                } else {
                    let mut expected_item = "array element or \"]\"";
                    loop {
                        items.push(self.value(depth + 1, expected_item)?);
                        self.skip_space();
                        match self.peek() {
                            Some(b',') => self.pos += 1,
                            Some(b']') => {
                                self.pos += 1;
                                break;
                            }
                            _ => return Err(self.unexpected("\",\" or \"]\"")),
                        }
                        expected_item = "JSON value";
                    }
                }
                Value::Array(items)
            }
            Some(b'"') => Value::String(self.string()?),
            Some(b'-' | b'0'..=b'9') => Value::Number(self.number()?),
            _ => {
                let token = self.lexeme()?;
                let value = match token {
                    "true" => Value::Bool(true),
                    "false" => Value::Bool(false),
                    "null" => Value::Null,
                    _ => return Err(self.unexpected(expected)),
                };
                self.pos += token.len();
                value
            }
        };
        Ok(Node {
            value,
            span: start..self.pos,
        })
    }

    fn number(&mut self) -> Result<String, ParseError> {
        let start = self.pos;
        let digits = |p: &mut Self| {
            let from = p.pos;
            while matches!(p.peek(), Some(b'0'..=b'9')) {
                p.pos += 1;
            }
            p.pos - from
        };
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        let int_start = self.pos;
        let int_digits = digits(self);
        let leading_zero = int_digits > 1 && self.bytes()[int_start] == b'0';
        let mut valid = int_digits > 0 && !leading_zero;
        if self.peek() == Some(b'.') {
            self.pos += 1;
            valid &= digits(self) > 0;
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.pos += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.pos += 1;
            }
            valid &= digits(self) > 0;
        }
        // A number runs into letters (`1x`): the whole word is the bad token.
        while matches!(self.peek(), Some(b) if b.is_ascii_alphanumeric()) {
            self.pos += 1;
            valid = false;
        }
        if !valid {
            return Err(ParseError(format!(
                "Token \"{}\" is invalid.",
                &self.text[start..self.pos]
            )));
        }
        Ok(self.text[start..self.pos].to_owned())
    }

    fn string(&mut self) -> Result<String, ParseError> {
        self.pos += 1; // the opening quote
        let mut out = String::new();
        loop {
            let rest = &self.text[self.pos..];
            let Some(c) = rest.chars().next() else {
                return Err(ParseError("The input string ended unexpectedly.".into()));
            };
            self.pos += c.len_utf8();
            match c {
                '"' => return Ok(out),
                '\\' => {
                    let Some(escape) = self.peek() else {
                        return Err(ParseError("The input string ended unexpectedly.".into()));
                    };
                    self.pos += 1;
                    match escape {
                        b'"' => out.push('"'),
                        b'\\' => out.push('\\'),
                        b'/' => out.push('/'),
                        b'b' => out.push('\u{8}'),
                        b'f' => out.push('\u{c}'),
                        b'n' => out.push('\n'),
                        b'r' => out.push('\r'),
                        b't' => out.push('\t'),
                        b'u' => out.push(self.unicode_escape()?),
                        _ => {
                            return Err(ParseError(format!(
                                "Escape sequence \"\\{}\" is invalid.",
                                escape as char
                            )));
                        }
                    }
                }
                c if (c as u32) < 0x20 => {
                    return Err(ParseError(format!(
                        "Character with value 0x{:02x} must be escaped.",
                        c as u32
                    )));
                }
                c => out.push(c),
            }
        }
    }

    fn hex4(&mut self) -> Result<u32, ParseError> {
        let hex = self.text.get(self.pos..self.pos + 4).unwrap_or("");
        match u32::from_str_radix(hex, 16) {
            Ok(code) if hex.len() == 4 && hex.bytes().all(|b| b.is_ascii_hexdigit()) => {
                self.pos += 4;
                Ok(code)
            }
            _ => Err(ParseError(
                "\"\\u\" must be followed by four hexadecimal digits.".into(),
            )),
        }
    }

    fn unicode_escape(&mut self) -> Result<char, ParseError> {
        let code = self.hex4()?;
        if code == 0 {
            return Err(ParseError("\\u0000 cannot be converted to text.".into()));
        }
        if (0xD800..0xDC00).contains(&code) {
            if self.text[self.pos..].starts_with("\\u") {
                self.pos += 2;
                let low = self.hex4()?;
                if (0xDC00..0xE000).contains(&low) {
                    let combined = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00);
                    return char::from_u32(combined).ok_or_else(surrogate_error);
                }
            }
            return Err(surrogate_error());
        }
        char::from_u32(code).ok_or_else(surrogate_error)
    }
}

fn surrogate_error() -> ParseError {
    ParseError("Unicode low surrogate must follow a high surrogate.".into())
}
