//! The `Sec-WebSocket-Extensions` header grammar (RFC 6455 §9.1), shared by every extension.

use std::fmt;

/// One element of a `Sec-WebSocket-Extensions` list: a name and its parameters, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExtensionOffer {
    /// The extension token, e.g. `permessage-deflate`.
    pub name: String,
    /// The parameters in order of appearance; quoted values are unquoted.
    pub params: Vec<(String, Option<String>)>,
}

/// A `Sec-WebSocket-Extensions` value that does not follow RFC 6455 §9.1.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExtensionParseError {
    value_index: usize,
    offset: usize,
    reason: &'static str,
}

impl ExtensionParseError {
    /// Index of the offending header value in the slice given to [`parse_extensions`].
    pub fn value_index(&self) -> usize {
        self.value_index
    }

    /// Byte offset of the problem inside that header value.
    pub fn offset(&self) -> usize {
        self.offset
    }
}

impl fmt::Display for ExtensionParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "malformed Sec-WebSocket-Extensions (value {}, byte {}): {}",
            self.value_index, self.offset, self.reason
        )
    }
}

impl std::error::Error for ExtensionParseError {}

/// Parses `Sec-WebSocket-Extensions` header values (RFC 6455 §9.1) into one list, in order.
///
/// Grammar: `extension *( "," extension )`, `extension = token *( ";" token [ "=" value ] )`,
/// where `value` is a token or a quoted-string whose unescaped content must be a token.
/// Whitespace around separators is allowed, and empty list elements (`a, , b`) are skipped as
/// HTTP list syntax requires. Names are returned as written (compare them case-insensitively).
pub fn parse_extensions(values: &[&str]) -> Result<Vec<ExtensionOffer>, ExtensionParseError> {
    let mut list = Vec::new();
    for (value_index, value) in values.iter().enumerate() {
        let mut parser = HeaderParser {
            s: value.as_bytes(),
            pos: 0,
            value_index,
        };
        parser.parse_list(&mut list)?;
    }
    Ok(list)
}

/// Parser for one header value of the RFC 6455 §9.1 grammar.
struct HeaderParser<'a> {
    s: &'a [u8],
    pos: usize,
    value_index: usize,
}

impl HeaderParser<'_> {
    fn parse_list(&mut self, list: &mut Vec<ExtensionOffer>) -> Result<(), ExtensionParseError> {
        loop {
            self.skip_ows();
            match self.peek() {
                None => return Ok(()),
                Some(b',') => {
                    self.bump();
                    continue;
                }
                Some(_) => {}
            }
            let name = self.token("extension name")?;
            let mut params = Vec::new();
            loop {
                self.skip_ows();
                match self.peek() {
                    None => break,
                    Some(b',') => {
                        self.bump();
                        break;
                    }
                    Some(b';') => {
                        self.bump();
                        self.skip_ows();
                        let param = self.token("parameter name")?;
                        self.skip_ows();
                        let value = if self.peek() == Some(b'=') {
                            self.bump();
                            self.skip_ows();
                            Some(if self.peek() == Some(b'"') {
                                self.quoted()?
                            } else {
                                self.token("parameter value")?
                            })
                        } else {
                            None
                        };
                        params.push((param, value));
                    }
                    Some(_) => return Err(self.error("expected ',' or ';'")),
                }
            }
            list.push(ExtensionOffer { name, params });
        }
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.pos).copied()
    }

    /// Steps past the byte `peek` returned (`pos` never exceeds the header's length).
    fn bump(&mut self) {
        self.pos = self.pos.saturating_add(1);
    }

    fn skip_ows(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.bump();
        }
    }

    fn token(&mut self, what: &'static str) -> Result<String, ExtensionParseError> {
        let start = self.pos;
        while self.peek().is_some_and(is_tchar) {
            self.bump();
        }
        if start == self.pos {
            return Err(self.error(what));
        }
        let token = self.s.get(start..self.pos).unwrap_or_default();
        Ok(String::from_utf8_lossy(token).into_owned())
    }

    /// A quoted-string; its unescaped content must be a token (RFC 6455 §9.1).
    fn quoted(&mut self) -> Result<String, ExtensionParseError> {
        let start = self.pos;
        self.bump();
        let mut value = Vec::new();
        loop {
            match self.peek() {
                None => {
                    self.pos = start;
                    return Err(self.error("unterminated quoted-string"));
                }
                Some(b'"') => {
                    self.bump();
                    break;
                }
                Some(b'\\') => {
                    self.bump();
                    match self.peek() {
                        Some(c) => value.push(c),
                        None => return Err(self.error("unterminated quoted-pair")),
                    }
                    self.bump();
                }
                Some(c) => {
                    value.push(c);
                    self.bump();
                }
            }
        }
        if value.is_empty() || !value.iter().copied().all(is_tchar) {
            self.pos = start;
            return Err(self.error("quoted value is not a token"));
        }
        Ok(String::from_utf8_lossy(&value).into_owned())
    }

    fn error(&self, reason: &'static str) -> ExtensionParseError {
        ExtensionParseError {
            value_index: self.value_index,
            offset: self.pos,
            reason,
        }
    }
}

/// `tchar` of RFC 7230 §3.2.6.
pub(crate) fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}
