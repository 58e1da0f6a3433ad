//! Lexer: rule text to tokens with 1-based character columns.
//!
//! Guarantees: never panics; every token carries the column and length (in characters, not bytes)
//! of its text, so errors can point precisely even after non-ASCII input. Words are runs of
//! letters, digits and `. : / , - _ *` so addresses (`fe80::1/64`), port lists (`80,8000-8010`),
//! names (`echo-request`), host-name globs (`*.example.com`) and set names (`@video`) stay
//! whole; the parser splits
//! them further. A string in double or single quotes is one word too (`'*.example.com'`: the
//! single quotes spare escaping inside a config's double-quoted `match`).

use super::RuleError;

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Tok {
    /// A keyword, number, address or list; kept as written (case folded by the parser).
    Word(String),
    /// A quoted string, without its quotes.
    Str(String),
    LParen,
    RParen,
    /// `&&`
    AndAnd,
    /// `||`
    OrOr,
    /// `!`
    Bang,
    /// `<`, `<=`, `>`, `>=`, `=`, `==`, `!=`
    Cmp(Cmp),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Cmp {
    Lt,
    Le,
    Gt,
    Ge,
    Eq,
    Ne,
}

#[derive(Clone, Debug)]
pub(crate) struct Token {
    pub tok: Tok,
    /// 1-based character column of the first character.
    pub col: usize,
    /// Length in characters (at least 1).
    pub len: usize,
}

impl Token {
    /// The token as the user wrote it, for messages.
    pub fn text(&self) -> String {
        match &self.tok {
            Tok::Word(w) => w.clone(),
            Tok::Str(s) => format!("\"{s}\""),
            Tok::LParen => "(".into(),
            Tok::RParen => ")".into(),
            Tok::AndAnd => "&&".into(),
            Tok::OrOr => "||".into(),
            Tok::Bang => "!".into(),
            Tok::Cmp(c) => match c {
                Cmp::Lt => "<",
                Cmp::Le => "<=",
                Cmp::Gt => ">",
                Cmp::Ge => ">=",
                Cmp::Eq => "=",
                Cmp::Ne => "!=",
            }
            .into(),
        }
    }
}

fn is_word_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | ':' | '/' | ',' | '-' | '_' | '*' | '@')
}

pub(crate) fn lex(src: &str) -> Result<Vec<Token>, RuleError> {
    let chars: Vec<char> = src.chars().collect();
    let mut out = Vec::new();
    let mut i = 0usize;
    while i < chars.len() {
        let c = chars[i];
        let col = i + 1;
        let next = chars.get(i + 1).copied();
        let (tok, len) = match c {
            c if c.is_whitespace() => {
                i += 1;
                continue;
            }
            '(' => (Tok::LParen, 1),
            ')' => (Tok::RParen, 1),
            '&' if next == Some('&') => (Tok::AndAnd, 2),
            '|' if next == Some('|') => (Tok::OrOr, 2),
            '&' => {
                return Err(RuleError::new(
                    col,
                    1,
                    "unexpected `&`",
                    Some("use `&&` or `and`"),
                ))
            }
            '|' => {
                return Err(RuleError::new(
                    col,
                    1,
                    "unexpected `|`",
                    Some("use `||` or `or`"),
                ))
            }
            '!' if next == Some('=') => (Tok::Cmp(Cmp::Ne), 2),
            '!' => (Tok::Bang, 1),
            '<' if next == Some('=') => (Tok::Cmp(Cmp::Le), 2),
            '<' => (Tok::Cmp(Cmp::Lt), 1),
            '>' if next == Some('=') => (Tok::Cmp(Cmp::Ge), 2),
            '>' => (Tok::Cmp(Cmp::Gt), 1),
            '=' if next == Some('=') => (Tok::Cmp(Cmp::Eq), 2),
            '=' => (Tok::Cmp(Cmp::Eq), 1),
            '"' | '\'' => {
                let Some(close) = chars[i + 1..].iter().position(|&q| q == c) else {
                    return Err(RuleError::new(
                        col,
                        chars.len() - i,
                        format!("unterminated string: no closing `{c}`"),
                        Some("close the quote"),
                    ));
                };
                let s: String = chars[i + 1..i + 1 + close].iter().collect();
                (Tok::Str(s), close + 2)
            }
            c if is_word_char(c) => {
                let start = i;
                let mut j = i;
                while j < chars.len() && is_word_char(chars[j]) {
                    j += 1;
                }
                let w: String = chars[start..j].iter().collect();
                (Tok::Word(w), j - start)
            }
            c => {
                return Err(RuleError::new(
                    col,
                    1,
                    format!("unexpected character `{c}`"),
                    None,
                ));
            }
        };
        out.push(Token { tok, col, len });
        i += len;
    }
    Ok(out)
}
