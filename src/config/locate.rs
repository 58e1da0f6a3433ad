//! Where each value sits in a RON source, so that errors found after parsing (a bad rate, a
//! rule that does not compile, ceil below rate) still point at a line and column.
//!
//! One pass over the text builds a map from a field path such as `ports.wan.classes[2].ceil`
//! to the position of its value. The scanner knows RON's lexical structure (strings with
//! escapes, raw strings are not used by weir configs, line and block comments, nesting by
//! parentheses, brackets and braces); it does not validate anything, `ron` does that.

use std::collections::HashMap;

/// 1-based line and column (in characters).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Position {
    pub line: usize,
    pub column: usize,
}

#[derive(Debug, Default)]
pub struct Locator {
    values: HashMap<String, Position>,
}

enum Frame {
    /// Inside `( .. )` or `{ .. }`: fields by name.
    Fields { key: Option<String> },
    /// Inside `[ .. ]`: elements by index.
    List { index: usize },
}

impl Locator {
    pub fn scan(src: &str) -> Locator {
        let chars: Vec<char> = src.chars().collect();
        let mut values = HashMap::new();
        let mut stack: Vec<Frame> = vec![Frame::Fields { key: None }];
        let (mut line, mut col) = (1usize, 1usize);
        let mut i = 0;
        // Position of every char index, computed on the fly.
        let advance = |i: &mut usize, line: &mut usize, col: &mut usize| {
            if chars.get(*i) == Some(&'\n') {
                *line += 1;
                *col = 1;
            } else {
                *col += 1;
            }
            *i += 1;
        };
        let path_of = |stack: &[Frame]| -> String {
            let mut p = String::new();
            for f in stack {
                match f {
                    Frame::Fields { key: Some(k) } => {
                        if !p.is_empty() {
                            p.push('.');
                        }
                        p.push_str(k);
                    }
                    Frame::Fields { key: None } => {}
                    Frame::List { index } => p.push_str(&format!("[{index}]")),
                }
            }
            p
        };
        let mut value_pending = false;
        while i < chars.len() {
            let c = chars[i];
            let here = Position { line, column: col };
            if c.is_whitespace() {
                advance(&mut i, &mut line, &mut col);
                continue;
            }
            if value_pending || matches!(stack.last(), Some(Frame::List { .. })) {
                // Record where a value starts: after `key:` or at a list element.
                if value_pending || !matches!(c, ']' | ',') {
                    values.entry(path_of(&stack)).or_insert(here);
                }
                value_pending = false;
            }
            match c {
                '/' if chars.get(i + 1) == Some(&'/') => {
                    while i < chars.len() && chars[i] != '\n' {
                        advance(&mut i, &mut line, &mut col);
                    }
                    continue;
                }
                '/' if chars.get(i + 1) == Some(&'*') => {
                    while i < chars.len() && !(chars[i] == '*' && chars.get(i + 1) == Some(&'/')) {
                        advance(&mut i, &mut line, &mut col);
                    }
                    advance(&mut i, &mut line, &mut col);
                    advance(&mut i, &mut line, &mut col);
                    continue;
                }
                '"' => {
                    advance(&mut i, &mut line, &mut col);
                    while i < chars.len() && chars[i] != '"' {
                        if chars[i] == '\\' {
                            advance(&mut i, &mut line, &mut col);
                        }
                        advance(&mut i, &mut line, &mut col);
                    }
                    advance(&mut i, &mut line, &mut col);
                    continue;
                }
                '(' | '{' => stack.push(Frame::Fields { key: None }),
                '[' => stack.push(Frame::List { index: 0 }),
                ')' | '}' | ']' if stack.len() > 1 => {
                    stack.pop();
                }
                ',' => match stack.last_mut() {
                    Some(Frame::List { index }) => *index += 1,
                    Some(Frame::Fields { key }) => *key = None,
                    None => {}
                },
                c if c.is_alphabetic() || c == '_' => {
                    let start = i;
                    while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                        advance(&mut i, &mut line, &mut col);
                    }
                    let word: String = chars[start..i].iter().collect();
                    let mut j = i;
                    while j < chars.len() && chars[j].is_whitespace() && chars[j] != '\n' {
                        j += 1;
                    }
                    if chars.get(j) == Some(&':') {
                        if let Some(Frame::Fields { key }) = stack.last_mut() {
                            *key = Some(word);
                            while i <= j {
                                advance(&mut i, &mut line, &mut col);
                            }
                            value_pending = true;
                        }
                    }
                    continue;
                }
                _ => {}
            }
            advance(&mut i, &mut line, &mut col);
        }
        Locator { values }
    }

    /// Position of the value at `path`, or of the nearest enclosing value that was found.
    pub fn find(&self, path: &str) -> Option<Position> {
        let mut p = path;
        loop {
            if let Some(pos) = self.values.get(p) {
                return Some(*pos);
            }
            let cut = p.rfind(['.', '['])?;
            p = &p[..cut];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_nested_fields_and_list_elements() {
        let src = r#"(
    // a comment with "quotes" and ( parens
    ports: (
        wan: (
            rate: "20 Mbit",
            classes: [
                (name: "a", rate: "1 Mbit"),
                (
                    name: "b, c",
                    ceil: "2 Mbit",
                ),
            ],
        ),
    ),
)"#;
        let l = Locator::scan(src);
        assert_eq!(
            l.find("ports.wan.rate"),
            Some(Position {
                line: 5,
                column: 19
            })
        );
        assert_eq!(
            l.find("ports.wan.classes[0].rate"),
            Some(Position {
                line: 7,
                column: 35
            })
        );
        assert_eq!(
            l.find("ports.wan.classes[1].ceil"),
            Some(Position {
                line: 10,
                column: 27
            })
        );
        assert_eq!(
            l.find("ports.wan.classes[1]"),
            Some(Position {
                line: 8,
                column: 17
            })
        );
        // Falls back to the enclosing value.
        assert_eq!(
            l.find("ports.wan.classes[1].weight"),
            l.find("ports.wan.classes[1]")
        );
    }
}
