//! Reads a psql script (PostgreSQL's regression `.sql` files) the way psql does: statements end
//! at a `;` outside quotes, comments and parentheses, or at a `\g`-style meta-command; other
//! backslash commands stand alone; `COPY ... FROM stdin` takes the lines up to `\.` as its
//! data. Variables (`\set`, `\getenv`, `\gset`) are interpolated when a statement runs, as psql
//! interpolates them, so the splitter only finds the boundaries.
#![allow(dead_code)]

use std::collections::HashMap;

/// One thing a script asks psql to do.
#[derive(Debug, Clone, PartialEq)]
pub enum Item {
    /// A statement, with the line it starts on and what ended it.
    Sql {
        text: String,
        line: usize,
        end: End,
        /// The inline data of a `COPY ... FROM stdin`.
        copy_data: Option<String>,
    },
    /// A backslash command other than the ones that end a statement: its name and arguments.
    Meta {
        name: String,
        args: String,
        line: usize,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub enum End {
    Semicolon,
    /// `\gset [prefix]`: the one result row becomes variables.
    Gset(String),
    /// `\g`, `\gx`, `\gexec` and friends: run it, as `;` would.
    Go,
}

/// Splits a script into its items.
pub fn split(script: &str) -> Vec<Item> {
    let mut items = Vec::new();
    let lines: Vec<&str> = script.split_inclusive('\n').collect();
    let mut buffer = String::new();
    let mut start_line = 0;
    let mut state = State::Normal;
    let mut depth = 0usize;
    let mut line_no = 0;
    while line_no < lines.len() {
        let line = lines[line_no];
        line_no += 1;
        let chars: Vec<char> = line.chars().collect();
        let mut i = 0;
        while i < chars.len() {
            let c = chars[i];
            let next = chars.get(i + 1).copied();
            match &state {
                State::Normal => {
                    if buffer.trim().is_empty() && !c.is_whitespace() {
                        start_line = line_no;
                    }
                    match c {
                        '-' if next == Some('-') => {
                            // A line comment: the rest of the line, kept out of the statement.
                            break;
                        }
                        '/' if next == Some('*') => {
                            state = State::Block(1);
                            i += 2;
                            continue;
                        }
                        '\'' => {
                            let escapes =
                                buffer.chars().last().is_some_and(|p| p == 'E' || p == 'e')
                                    && !buffer
                                        .chars()
                                        .rev()
                                        .nth(1)
                                        .is_some_and(|p| p.is_alphanumeric() || p == '_');
                            state = State::Quoted { escapes };
                        }
                        '"' => state = State::Identifier,
                        '$' => {
                            if let Some(tag) = dollar_tag(&chars[i..])
                                && !buffer.chars().last().is_some_and(is_ident_char)
                            {
                                buffer.push_str(&tag);
                                i += tag.chars().count();
                                state = State::Dollar(tag);
                                continue;
                            }
                        }
                        '(' => depth += 1,
                        ')' => depth = depth.saturating_sub(1),
                        ';' if depth == 0 => {
                            finish(&mut items, &mut buffer, start_line, End::Semicolon);
                            take_copy_data(&mut items, &lines, &mut line_no);
                            i += 1;
                            continue;
                        }
                        '\\' => {
                            let rest: String = chars[i + 1..].iter().collect();
                            let rest = rest.trim_end_matches(['\n', '\r']);
                            let (name, args) = match rest.find(char::is_whitespace) {
                                Some(at) => (&rest[..at], rest[at..].trim()),
                                None => (rest, ""),
                            };
                            if name.starts_with('g') && !buffer.trim().is_empty() {
                                let end = if name == "gset" {
                                    End::Gset(args.to_owned())
                                } else {
                                    End::Go
                                };
                                finish(&mut items, &mut buffer, start_line, end);
                                take_copy_data(&mut items, &lines, &mut line_no);
                            } else if name == ";" {
                                buffer.push(';');
                                i += 2;
                                continue;
                            } else {
                                items.push(Item::Meta {
                                    name: name.to_owned(),
                                    args: args.to_owned(),
                                    line: line_no,
                                });
                            }
                            break;
                        }
                        _ => {}
                    }
                    buffer.push(c);
                }
                State::Quoted { escapes } => {
                    buffer.push(c);
                    if *escapes && c == '\\' {
                        if let Some(n) = next {
                            buffer.push(n);
                            i += 2;
                            continue;
                        }
                    } else if c == '\'' {
                        if next == Some('\'') {
                            buffer.push('\'');
                            i += 2;
                            continue;
                        }
                        state = State::Normal;
                    }
                }
                State::Identifier => {
                    buffer.push(c);
                    if c == '"' {
                        state = State::Normal;
                    }
                }
                State::Dollar(tag) => {
                    if chars[i..].starts_with(&tag.chars().collect::<Vec<_>>()) {
                        let tag = tag.clone();
                        buffer.push_str(&tag);
                        i += tag.chars().count();
                        state = State::Normal;
                        continue;
                    }
                    buffer.push(c);
                }
                State::Block(level) => {
                    let level = *level;
                    if c == '*' && next == Some('/') {
                        state = if level == 1 {
                            State::Normal
                        } else {
                            State::Block(level - 1)
                        };
                        i += 2;
                        continue;
                    }
                    if c == '/' && next == Some('*') {
                        state = State::Block(level + 1);
                        i += 2;
                        continue;
                    }
                }
            }
            i += 1;
        }
        if !buffer.is_empty() && !buffer.ends_with('\n') {
            buffer.push('\n');
        }
    }
    if !buffer.trim().is_empty() {
        finish(&mut items, &mut buffer, start_line, End::Semicolon);
    }
    items
}

enum State {
    Normal,
    Quoted { escapes: bool },
    Identifier,
    Dollar(String),
    Block(usize),
}

fn is_ident_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// `$tag$` at the start of `chars`, if it is one.
fn dollar_tag(chars: &[char]) -> Option<String> {
    let mut tag = String::from("$");
    for &c in &chars[1..] {
        if c == '$' {
            tag.push('$');
            return Some(tag);
        }
        if !is_ident_char(c) || (tag.len() == 1 && c.is_ascii_digit()) {
            return None;
        }
        tag.push(c);
    }
    None
}

fn finish(items: &mut Vec<Item>, buffer: &mut String, line: usize, end: End) {
    let text = buffer.trim().to_owned();
    buffer.clear();
    if text.is_empty() {
        return;
    }
    items.push(Item::Sql {
        text,
        line,
        end,
        copy_data: None,
    });
}

/// After a `COPY ... FROM stdin` statement, the lines up to `\.` are its data.
fn take_copy_data(items: &mut [Item], lines: &[&str], line_no: &mut usize) {
    let Some(Item::Sql {
        text, copy_data, ..
    }) = items.last_mut()
    else {
        return;
    };
    if !is_copy_from_stdin(text) {
        return;
    }
    let mut data = String::new();
    while *line_no < lines.len() {
        let line = lines[*line_no];
        *line_no += 1;
        if line.trim_end_matches(['\n', '\r']) == "\\." {
            break;
        }
        data.push_str(line);
    }
    *copy_data = Some(data);
}

pub fn is_copy_from_stdin(text: &str) -> bool {
    let lower = text.to_ascii_lowercase();
    lower.starts_with("copy") && lower.split_whitespace().any(|w| w == "stdin")
}

/// psql's variables, and their interpolation into statement text.
#[derive(Default)]
pub struct Variables(pub HashMap<String, String>);

impl Variables {
    /// `\set name value...`: the arguments, each unquoted or interpolated, concatenated.
    pub fn set(&mut self, args: &str) {
        let mut words = args.splitn(2, char::is_whitespace);
        let Some(name) = words.next().filter(|n| !n.is_empty()) else {
            return;
        };
        let value = self.arguments(words.next().unwrap_or(""));
        self.0.insert(name.to_owned(), value);
    }

    fn arguments(&self, text: &str) -> String {
        let mut value = String::new();
        let chars: Vec<char> = text.chars().collect();
        let mut i = 0;
        while i < chars.len() {
            match chars[i] {
                '\'' => {
                    i += 1;
                    while i < chars.len() {
                        if chars[i] == '\'' {
                            if chars.get(i + 1) != Some(&'\'') {
                                break;
                            }
                            i += 1;
                        }
                        value.push(chars[i]);
                        i += 1;
                    }
                    i += 1;
                }
                ':' => {
                    let name: String = chars[i + 1..]
                        .iter()
                        .take_while(|c| is_ident_char(**c))
                        .collect();
                    value.push_str(self.0.get(&name).map(String::as_str).unwrap_or(""));
                    i += 1 + name.chars().count();
                }
                c if c.is_whitespace() => i += 1,
                c => {
                    value.push(c);
                    i += 1;
                }
            }
        }
        value
    }

    /// The statement with `:name`, `:'name'` and `:"name"` replaced outside quotes, as psql
    /// does; unknown names are left as they are.
    pub fn interpolate(&self, text: &str) -> String {
        let chars: Vec<char> = text.chars().collect();
        let mut out = String::with_capacity(text.len());
        let mut quote: Option<char> = None;
        let mut i = 0;
        while i < chars.len() {
            let c = chars[i];
            if let Some(q) = quote {
                out.push(c);
                if c == q {
                    quote = None;
                }
                i += 1;
                continue;
            }
            match c {
                '\'' | '"' => {
                    quote = Some(c);
                    out.push(c);
                    i += 1;
                }
                ':' if chars.get(i + 1) == Some(&':') => {
                    out.push_str("::");
                    i += 2;
                }
                ':' => {
                    let (style, from) = match chars.get(i + 1) {
                        Some('\'') => (Some('\''), i + 2),
                        Some('"') => (Some('"'), i + 2),
                        _ => (None, i + 1),
                    };
                    let name: String = chars[from..]
                        .iter()
                        .take_while(|c| is_ident_char(**c))
                        .collect();
                    let close = from + name.chars().count();
                    let closed = style.is_none_or(|q| chars.get(close) == Some(&q));
                    match self.0.get(&name).filter(|_| !name.is_empty() && closed) {
                        Some(value) => {
                            match style {
                                Some('\'') => {
                                    out.push('\'');
                                    out.push_str(&value.replace('\'', "''"));
                                    out.push('\'');
                                }
                                Some(_) => {
                                    out.push('"');
                                    out.push_str(&value.replace('"', "\"\""));
                                    out.push('"');
                                }
                                None => out.push_str(value),
                            }
                            i = close + usize::from(style.is_some());
                        }
                        None => {
                            out.push(c);
                            i += 1;
                        }
                    }
                }
                _ => {
                    out.push(c);
                    i += 1;
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_end_at_semicolons_outside_quotes_parentheses_and_comments() {
        let items = split(
            "SELECT 'a;b', \"c;d\" -- x;y\nFROM t;\n/* ; */ SELECT $$;$$;\nCREATE RULE r AS ON INSERT TO t DO (SELECT 1; SELECT 2);\n",
        );
        let texts: Vec<_> = items
            .iter()
            .map(|i| match i {
                Item::Sql { text, .. } => text.clone(),
                Item::Meta { name, .. } => format!("\\{name}"),
            })
            .collect();
        assert_eq!(
            texts,
            [
                "SELECT 'a;b', \"c;d\" \nFROM t",
                "SELECT $$;$$",
                "CREATE RULE r AS ON INSERT TO t DO (SELECT 1; SELECT 2)"
            ]
        );
    }

    #[test]
    fn copy_from_stdin_takes_the_lines_up_to_the_end_marker() {
        let items = split("COPY t FROM stdin;\n1\ta\n2\tb\n\\.\nSELECT 1 \\gset p_\n\\d t\n");
        assert_eq!(
            items,
            [
                Item::Sql {
                    text: "COPY t FROM stdin".into(),
                    line: 1,
                    end: End::Semicolon,
                    copy_data: Some("1\ta\n2\tb\n".into())
                },
                Item::Sql {
                    text: "SELECT 1".into(),
                    line: 5,
                    end: End::Gset("p_".into()),
                    copy_data: None
                },
                Item::Meta {
                    name: "d".into(),
                    args: "t".into(),
                    line: 6
                }
            ]
        );
    }

    #[test]
    fn variables_interpolate_as_literals_identifiers_or_text() {
        let mut vars = Variables::default();
        vars.0.insert("dir".into(), "/src".into());
        vars.set("filename :dir '/data/o''k.data'");
        assert_eq!(vars.0["filename"], "/src/data/o'k.data");
        vars.set("f :dir '/data/onek.data'");
        assert_eq!(
            vars.interpolate("COPY t FROM :'f'; SELECT 1::int, ':f', :\"dir\""),
            "COPY t FROM '/src/data/onek.data'; SELECT 1::int, ':f', \"/src\""
        );
    }
}
