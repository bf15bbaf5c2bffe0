//! The one GraphQL shape the simulator understands, and turning it into [`Mutation`]s:
//!
//! ```graphql
//! mutation Optional($vars: JSON!) {
//!   a0: change_multiple_column_values(item_id: 123, board_id: 456,
//!         column_values: "{\"date4\":\"2024-01-02\"}") { id }
//!   a1: ...
//! }
//! ```
//!
//! A small hand-written lexer and recursive-descent parser: GraphQL's lexical rules (commas
//! and `#` comments are ignored, strings with escapes and block strings), but only this
//! grammar. `item_id`/`board_id` may be Int or String literals or `$variables`;
//! `column_values` a String literal holding a JSON object or a `$variable` (a JSON string or
//! object); other arguments (e.g. `create_labels_if_missing`) are accepted and ignored, and
//! so is the selection set. Besides mutations, the one query a client needs to format values,
//! the board's columns ([`ColumnsQuery`]):
//!
//! ```graphql
//! query { boards(ids: [456]) { id columns { id type title } } }
//! ```
//!
//! Anything else is a [`ParseError`], reported to the client the way a GraphQL server
//! reports syntax errors.

use std::fmt;

use serde_json::{Map, Value};

/// The only field the simulator implements.
const FIELD: &str = "change_multiple_column_values";

/// One aliased `change_multiple_column_values` call.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Mutation {
    /// The response key: the alias, or the field name when there is none.
    pub(crate) alias: String,
    pub(crate) item_id: u64,
    pub(crate) board_id: u64,
    /// Column id -> new value.
    pub(crate) column_values: Map<String, Value>,
}

/// A parsed request: mutations to apply, or the columns query.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Operation {
    /// `change_multiple_column_values` calls, in order.
    Mutations(Vec<Mutation>),
    /// `boards(ids: ...) { columns { ... } }`.
    Columns(ColumnsQuery),
}

/// `boards(ids: [...]) { <board_fields> columns { <column_fields> } }`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ColumnsQuery {
    /// The response key of `boards` (its alias, or `boards`).
    pub(crate) key: String,
    /// The boards asked for.
    pub(crate) board_ids: Vec<u64>,
    /// The board's fields asked for, in order: `id`, `name` or `columns`.
    pub(crate) board_fields: Vec<String>,
    /// The columns' fields asked for, in order (see [`COLUMN_FIELDS`]).
    pub(crate) column_fields: Vec<String>,
}

/// The fields of a column the simulator answers.
pub(crate) const COLUMN_FIELDS: [&str; 6] = [
    "id",
    "type",
    "title",
    "settings_str",
    "description",
    "archived",
];

/// Why a query was rejected; `Display` is the message sent to the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ParseError {
    message: String,
    line: usize,
    column: usize,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Parse error on line {}, column {}: {}",
            self.line, self.column, self.message
        )
    }
}

/// Parses `query` (with `variables` for `$name` arguments).
pub(crate) fn parse(
    query: &str,
    variables: Option<&Map<String, Value>>,
) -> Result<Operation, ParseError> {
    let empty = Map::new();
    Parser {
        src: query,
        pos: 0,
        vars: variables.unwrap_or(&empty),
    }
    .document()
}

#[derive(Debug, Clone, PartialEq)]
enum Tok<'a> {
    Punct(char),
    Name(&'a str),
    /// Int or Float, as written.
    Number(&'a str),
    /// A string literal, unescaped.
    Str(String),
    Eof,
}

impl fmt::Display for Tok<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Tok::Punct(c) => write!(f, "`{c}`"),
            Tok::Name(n) => write!(f, "name `{n}`"),
            Tok::Number(n) => write!(f, "number {n}"),
            Tok::Str(_) => f.write_str("a string"),
            Tok::Eof => f.write_str("the end of the query"),
        }
    }
}

/// An argument value, as far as the simulator cares.
#[derive(Debug, Clone, PartialEq)]
enum Arg {
    Number(String),
    Str(String),
    Var(String),
    List(Vec<Arg>),
    /// Anything else (booleans, enums, objects, null): accepted, never used.
    Other,
}

struct Parser<'a> {
    src: &'a str,
    pos: usize,
    vars: &'a Map<String, Value>,
}

impl<'a> Parser<'a> {
    fn error(&self, at: usize, message: impl Into<String>) -> ParseError {
        let before = &self.src[..at.min(self.src.len())];
        let line = before.matches('\n').count() + 1;
        let column = before.rfind('\n').map_or(before.chars().count(), |nl| {
            before[nl + 1..].chars().count()
        }) + 1;
        ParseError {
            message: message.into(),
            line,
            column,
        }
    }

    fn rest(&self) -> &'a str {
        &self.src[self.pos..]
    }

    /// Skips whitespace, commas, a byte-order mark and `#` comments.
    fn skip_ignored(&mut self) {
        loop {
            let rest = self.rest();
            let trimmed = rest.trim_start_matches([' ', '\t', '\n', '\r', ',', '\u{feff}']);
            self.pos += rest.len() - trimmed.len();
            if trimmed.starts_with('#') {
                self.pos += trimmed.find('\n').unwrap_or(trimmed.len());
            } else {
                return;
            }
        }
    }

    /// The next token and where it starts.
    fn next(&mut self) -> Result<(Tok<'a>, usize), ParseError> {
        self.skip_ignored();
        let start = self.pos;
        let rest = self.rest();
        let Some(c) = rest.chars().next() else {
            return Ok((Tok::Eof, start));
        };
        let tok = match c {
            '{' | '}' | '(' | ')' | '[' | ']' | ':' | '$' | '!' | '=' | '@' => {
                self.pos += 1;
                Tok::Punct(c)
            }
            '"' if rest.starts_with("\"\"\"") => Tok::Str(self.block_string()?),
            '"' => Tok::Str(self.string()?),
            c if c == '_' || c.is_ascii_alphabetic() => {
                let len = rest
                    .find(|c: char| !(c == '_' || c.is_ascii_alphanumeric()))
                    .unwrap_or(rest.len());
                self.pos += len;
                Tok::Name(&rest[..len])
            }
            c if c == '-' || c.is_ascii_digit() => {
                let len = rest
                    .char_indices()
                    .skip(1)
                    .find(|&(_, c)| {
                        !(c.is_ascii_digit() || matches!(c, '.' | 'e' | 'E' | '+' | '-'))
                    })
                    .map_or(rest.len(), |(i, _)| i);
                let text = &rest[..len];
                let digits = text.strip_prefix('-').unwrap_or(text);
                if !digits.starts_with(|c: char| c.is_ascii_digit()) {
                    return Err(self.error(start, format!("invalid number `{text}`")));
                }
                self.pos += len;
                Tok::Number(text)
            }
            other => return Err(self.error(start, format!("unexpected character `{other}`"))),
        };
        Ok((tok, start))
    }

    fn peek(&mut self) -> Result<Tok<'a>, ParseError> {
        let saved = self.pos;
        let tok = self.next().map(|(t, _)| t);
        self.pos = saved;
        tok
    }

    fn expect_punct(&mut self, want: char) -> Result<(), ParseError> {
        match self.next()? {
            (Tok::Punct(c), _) if c == want => Ok(()),
            (other, at) => Err(self.error(at, format!("expected `{want}`, found {other}"))),
        }
    }

    fn expect_name(&mut self) -> Result<(&'a str, usize), ParseError> {
        match self.next()? {
            (Tok::Name(n), at) => Ok((n, at)),
            (other, at) => Err(self.error(at, format!("expected a name, found {other}"))),
        }
    }

    /// A `"..."` string at `self.pos`, unescaped.
    fn string(&mut self) -> Result<String, ParseError> {
        let start = self.pos;
        let mut out = String::new();
        let mut chars = self.src[start + 1..].char_indices();
        while let Some((i, c)) = chars.next() {
            match c {
                '"' => {
                    self.pos = start + 1 + i + 1;
                    return Ok(out);
                }
                '\n' | '\r' => break,
                '\\' => {
                    let at = start + 1 + i;
                    match chars.next().map(|(_, c)| c) {
                        Some('"') => out.push('"'),
                        Some('\\') => out.push('\\'),
                        Some('/') => out.push('/'),
                        Some('b') => out.push('\u{8}'),
                        Some('f') => out.push('\u{c}'),
                        Some('n') => out.push('\n'),
                        Some('r') => out.push('\r'),
                        Some('t') => out.push('\t'),
                        Some('u') => {
                            let hi =
                                hex4(&mut chars).ok_or_else(|| self.error(at, "bad \\u escape"))?;
                            let code = if (0xD800..0xDC00).contains(&hi) {
                                // A surrogate pair: `\uD83D\uDE00`.
                                let low = match (chars.next(), chars.next()) {
                                    (Some((_, '\\')), Some((_, 'u'))) => hex4(&mut chars),
                                    _ => None,
                                }
                                .filter(|lo| (0xDC00..0xE000).contains(lo))
                                .ok_or_else(|| {
                                    self.error(at, "unpaired surrogate in \\u escape")
                                })?;
                                0x10000 + ((hi - 0xD800) << 10) + (low - 0xDC00)
                            } else {
                                hi
                            };
                            out.push(
                                char::from_u32(code)
                                    .ok_or_else(|| self.error(at, "bad \\u escape"))?,
                            );
                        }
                        _ => return Err(self.error(at, "invalid escape sequence in string")),
                    }
                }
                c => out.push(c),
            }
        }
        Err(self.error(start, "unterminated string"))
    }

    /// A `"""..."""` block string at `self.pos` (only `\"""` is an escape; no indentation
    /// stripping, which JSON does not need).
    fn block_string(&mut self) -> Result<String, ParseError> {
        let start = self.pos;
        let body = &self.src[start + 3..];
        let mut out = String::new();
        let mut i = 0;
        while i < body.len() {
            let rest = &body[i..];
            if rest.starts_with("\\\"\"\"") {
                out.push_str("\"\"\"");
                i += 4;
            } else if rest.starts_with("\"\"\"") {
                self.pos = start + 3 + i + 3;
                return Ok(out);
            } else if let Some(c) = rest.chars().next() {
                out.push(c);
                i += c.len_utf8();
            }
        }
        Err(self.error(start, "unterminated block string"))
    }

    /// `mutation Name? ($defs)? { fields } <end>`, or the columns query.
    fn document(mut self) -> Result<Operation, ParseError> {
        match self.next()? {
            (Tok::Name("mutation"), _) => {}
            (Tok::Name("query"), at) => {
                self.operation_head()?;
                return self.columns_query(at);
            }
            (Tok::Punct('{'), at) => {
                self.pos = at;
                return self.columns_query(at);
            }
            (Tok::Name("subscription"), at) => {
                return Err(self.error(at, "only a `mutation` operation is supported"));
            }
            (other, at) => {
                return Err(self.error(at, format!("expected `mutation`, found {other}")));
            }
        }
        self.operation_head()?;
        self.expect_punct('{')?;
        let mut mutations: Vec<Mutation> = Vec::new();
        loop {
            if self.peek()? == Tok::Punct('}') {
                let (_, at) = self.next()?;
                if mutations.is_empty() {
                    return Err(self.error(at, "a mutation needs at least one field"));
                }
                break;
            }
            self.skip_ignored();
            let at = self.pos;
            let m = self.field()?;
            if mutations.iter().any(|seen| seen.alias == m.alias) {
                return Err(self.error(at, format!("alias `{}` used twice", m.alias)));
            }
            mutations.push(m);
        }
        self.end()?;
        Ok(Operation::Mutations(mutations))
    }

    /// An operation's optional name and variable definitions.
    fn operation_head(&mut self) -> Result<(), ParseError> {
        if let Tok::Name(_) = self.peek()? {
            self.next()?;
        }
        if self.peek()? == Tok::Punct('(') {
            self.skip_balanced('(', ')')?;
        }
        Ok(())
    }

    fn end(&mut self) -> Result<(), ParseError> {
        match self.next()? {
            (Tok::Eof, _) => Ok(()),
            (other, at) => {
                Err(self.error(at, format!("expected the end of the query, found {other}")))
            }
        }
    }

    /// `{ boards(ids: ...) { id name columns { id type title } } } <end>`; any other query
    /// is an error located at the operation (`op_at`).
    fn columns_query(mut self, op_at: usize) -> Result<Operation, ParseError> {
        let unsupported = |p: &Self| {
            p.error(
                op_at,
                "only `boards(ids: ...) { columns { id type title } }` queries and `mutation`s are supported",
            )
        };
        self.expect_punct('{')?;
        let (first, _) = self.expect_name()?;
        let (key, field) = if self.peek()? == Tok::Punct(':') {
            self.next()?;
            (first, self.expect_name()?.0)
        } else {
            (first, first)
        };
        if field != "boards" {
            return Err(unsupported(&self));
        }
        let mut board_ids = Vec::new();
        if self.peek()? == Tok::Punct('(') {
            self.next()?;
            while self.peek()? != Tok::Punct(')') {
                let (name, at) = self.expect_name()?;
                self.expect_punct(':')?;
                let value = self.value()?;
                if name == "ids" {
                    let value = match value {
                        Arg::Var(var) => var_arg(self.variable("boards", &var, at)?),
                        v => v,
                    };
                    let ids = match value {
                        Arg::List(items) => items,
                        one => vec![one],
                    };
                    for id in &ids {
                        board_ids.push(self.id("boards", "ids", id, at)?);
                    }
                }
            }
            self.next()?;
        }
        if board_ids.is_empty() {
            return Err(self.error(
                op_at,
                "`boards` needs `ids`: the simulator has one board per id",
            ));
        }
        let mut board_fields = Vec::new();
        let mut column_fields = Vec::new();
        self.expect_punct('{')?;
        while self.peek()? != Tok::Punct('}') {
            let (name, at) = self.expect_name()?;
            match name {
                "id" | "name" => {}
                "columns" => {
                    if self.peek()? == Tok::Punct('(') {
                        self.skip_balanced('(', ')')?;
                    }
                    self.expect_punct('{')?;
                    while self.peek()? != Tok::Punct('}') {
                        let (col, at) = self.expect_name()?;
                        if !COLUMN_FIELDS.contains(&col) {
                            return Err(self.error(
                                at,
                                format!("Field '{col}' doesn't exist on type 'Column'"),
                            ));
                        }
                        column_fields.push(col.to_owned());
                    }
                    self.next()?;
                }
                other => {
                    return Err(
                        self.error(at, format!("Field '{other}' doesn't exist on type 'Board'"))
                    )
                }
            }
            board_fields.push(name.to_owned());
        }
        self.next()?;
        self.expect_punct('}')?;
        self.end()?;
        Ok(Operation::Columns(ColumnsQuery {
            key: key.to_owned(),
            board_ids,
            board_fields,
            column_fields,
        }))
    }

    /// `alias: change_multiple_column_values(args) { selection }`
    fn field(&mut self) -> Result<Mutation, ParseError> {
        let (first, at) = self.expect_name()?;
        let (alias, field, field_at) = if self.peek()? == Tok::Punct(':') {
            self.next()?;
            let (field, field_at) = self.expect_name()?;
            (first, field, field_at)
        } else {
            (first, first, at)
        };
        if field != FIELD {
            return Err(self.error(
                field_at,
                format!("unsupported field `{field}`: only `{FIELD}` is simulated"),
            ));
        }
        let mut args: Vec<(&'a str, Arg, usize)> = Vec::new();
        if self.peek()? == Tok::Punct('(') {
            self.next()?;
            while self.peek()? != Tok::Punct(')') {
                let (name, name_at) = self.expect_name()?;
                self.expect_punct(':')?;
                let value = self.value()?;
                if args.iter().any(|(n, _, _)| *n == name) {
                    return Err(
                        self.error(name_at, format!("`{alias}`: argument `{name}` given twice"))
                    );
                }
                args.push((name, value, name_at));
            }
            self.next()?;
        }
        if self.peek()? == Tok::Punct('{') {
            self.skip_balanced('{', '}')?;
        }
        let arg = |name: &str| {
            args.iter()
                .find(|(n, _, _)| *n == name)
                .map(|(_, v, at)| (v, *at))
                .ok_or_else(|| self.error(at, format!("`{alias}`: missing argument `{name}`")))
        };
        let (item, item_at) = arg("item_id")?;
        let (board, board_at) = arg("board_id")?;
        let (columns, columns_at) = arg("column_values")?;
        Ok(Mutation {
            alias: alias.to_owned(),
            item_id: self.id(alias, "item_id", item, item_at)?,
            board_id: self.id(alias, "board_id", board, board_at)?,
            column_values: self.columns(alias, columns, columns_at)?,
        })
    }

    /// A value: `$var`, number, string, or anything else GraphQL allows (skipped).
    fn value(&mut self) -> Result<Arg, ParseError> {
        match self.next()? {
            (Tok::Punct('$'), _) => Ok(Arg::Var(self.expect_name()?.0.to_owned())),
            (Tok::Number(n), _) => Ok(Arg::Number(n.to_owned())),
            (Tok::Str(s), _) => Ok(Arg::Str(s)),
            (Tok::Name(_), _) => Ok(Arg::Other),
            (Tok::Punct('['), _) => {
                let mut items = Vec::new();
                while self.peek()? != Tok::Punct(']') {
                    items.push(self.value()?);
                }
                self.next()?;
                Ok(Arg::List(items))
            }
            (Tok::Punct('{'), _) => {
                while self.peek()? != Tok::Punct('}') {
                    self.expect_name()?;
                    self.expect_punct(':')?;
                    self.value()?;
                }
                self.next()?;
                Ok(Arg::Other)
            }
            (other, at) => Err(self.error(at, format!("expected a value, found {other}"))),
        }
    }

    /// Skips from an `open` token to its matching `close`.
    fn skip_balanced(&mut self, open: char, close: char) -> Result<(), ParseError> {
        self.expect_punct(open)?;
        let mut depth = 1usize;
        while depth > 0 {
            match self.next()? {
                (Tok::Punct(c), _) if c == open => depth += 1,
                (Tok::Punct(c), _) if c == close => depth -= 1,
                (Tok::Eof, at) => {
                    return Err(self.error(
                        at,
                        format!("expected `{close}`, found the end of the query"),
                    ))
                }
                _ => {}
            }
        }
        Ok(())
    }

    fn variable(&self, alias: &str, name: &str, at: usize) -> Result<&'a Value, ParseError> {
        self.vars
            .get(name)
            .ok_or_else(|| self.error(at, format!("`{alias}`: variable `${name}` is not provided")))
    }

    /// An `ID`: a non-negative integer, written as a number or a string.
    fn id(&self, alias: &str, key: &str, arg: &Arg, at: usize) -> Result<u64, ParseError> {
        let parsed = match arg {
            Arg::Number(n) => n.parse().ok(),
            Arg::Str(s) => s.trim().parse().ok(),
            Arg::Var(name) => match self.variable(alias, name, at)? {
                Value::Number(n) => n.as_u64(),
                Value::String(s) => s.trim().parse().ok(),
                _ => None,
            },
            Arg::List(_) | Arg::Other => None,
        };
        parsed.ok_or_else(|| {
            self.error(
                at,
                format!("`{alias}`: `{key}` must be an ID (a non-negative integer)"),
            )
        })
    }

    /// `column_values`: a JSON object, given as a JSON string or (through a variable) an object.
    fn columns(&self, alias: &str, arg: &Arg, at: usize) -> Result<Map<String, Value>, ParseError> {
        let from_json = |text: &str| match serde_json::from_str::<Value>(text) {
            Ok(Value::Object(m)) => Ok(m),
            Ok(_) => Err(self.error(
                at,
                format!("`{alias}`: `column_values` must be a JSON object"),
            )),
            Err(e) => Err(self.error(
                at,
                format!("`{alias}`: `column_values` is not valid JSON: {e}"),
            )),
        };
        match arg {
            Arg::Str(s) => from_json(s),
            Arg::Var(name) => match self.variable(alias, name, at)? {
                Value::String(s) => from_json(s),
                Value::Object(m) => Ok(m.clone()),
                _ => Err(self.error(
                    at,
                    format!("`{alias}`: `column_values` must be a JSON object"),
                )),
            },
            Arg::Number(_) | Arg::List(_) | Arg::Other => Err(self.error(
                at,
                format!("`{alias}`: `column_values` must be a string holding a JSON object"),
            )),
        }
    }
}

/// A variable's JSON value as an argument (a list of IDs, or one).
fn var_arg(v: &Value) -> Arg {
    match v {
        Value::Array(items) => Arg::List(items.iter().map(var_arg).collect()),
        Value::Number(n) => Arg::Number(n.to_string()),
        Value::String(s) => Arg::Str(s.clone()),
        _ => Arg::Other,
    }
}

/// Four hex digits of a `\u` escape.
fn hex4(chars: &mut std::str::CharIndices<'_>) -> Option<u32> {
    let mut v = 0;
    for _ in 0..4 {
        v = v * 16 + chars.next()?.1.to_digit(16)?;
    }
    Some(v)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn ok(q: &str) -> Vec<Mutation> {
        match parse(q, None) {
            Ok(Operation::Mutations(m)) => m,
            other => panic!("{other:?}\n{q}"),
        }
    }

    fn err(q: &str) -> String {
        match parse(q, None) {
            Ok(m) => panic!("parsed: {m:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn parses_aliased_mutations_with_escaped_json() {
        let q = r#"mutation {
            a0: change_multiple_column_values(item_id: 123, board_id: 456,
                column_values: "{\"date4\":\"2024-01-02\",\"country\":\"US\"}") { id }
            a1: change_multiple_column_values(item_id: "124", board_id: "456", column_values: "{\"country\":{\"countryCode\":\"FR\",\"countryName\":\"France \\u00e9\"}}", create_labels_if_missing: true) { id name }
        }"#;
        let m = ok(q);
        assert_eq!(m.len(), 2);
        assert_eq!(m[0].alias, "a0");
        assert_eq!(m[0].item_id, 123);
        assert_eq!(m[0].board_id, 456);
        assert_eq!(
            Value::Object(m[0].column_values.clone()),
            json!({"date4": "2024-01-02", "country": "US"})
        );
        assert_eq!(m[1].item_id, 124);
        assert_eq!(
            Value::Object(m[1].column_values.clone()),
            json!({"country": {"countryCode": "FR", "countryName": "France é"}})
        );
    }

    #[test]
    fn accepts_names_variables_comments_block_strings_and_no_alias() {
        let vars = json!({"id": "77", "board": 9, "cols": {"text": "hi"}, "raw": "{\"n\":1}"});
        let q = r#"
            # a comment
            mutation Update($id: ID!, $board: ID!, $cols: JSON!, $raw: JSON!) {
              x: change_multiple_column_values(item_id: $id, board_id: $board, column_values: $cols) { id }
              y: change_multiple_column_values(item_id: 78, board_id: $board, column_values: $raw) { id }
              change_multiple_column_values(item_id: 79, board_id: 1, column_values: """{"a":"b\"c"}""") { id }
            }"#;
        let Ok(Operation::Mutations(m)) = parse(q, vars.as_object()) else {
            panic!("{q}")
        };
        assert_eq!(m.len(), 3);
        assert_eq!((m[0].item_id, m[0].board_id), (77, 9));
        assert_eq!(
            Value::Object(m[0].column_values.clone()),
            json!({"text": "hi"})
        );
        assert_eq!(Value::Object(m[1].column_values.clone()), json!({"n": 1}));
        assert_eq!(m[2].alias, FIELD);
        assert_eq!(
            Value::Object(m[2].column_values.clone()),
            json!({"a": "b\"c"})
        );
    }

    #[test]
    fn rejects_everything_else_with_a_located_message() {
        let e = err("query { items { id } }");
        assert!(e.starts_with("Parse error on line 1, column 1:"), "{e}");
        assert!(err("mutation { a0: create_item(board_id: 1) { id } }")
            .contains("unsupported field `create_item`"));
        assert!(err("mutation { }").contains("at least one field"));
        assert!(err("mutation { a0: change_multiple_column_values(item_id: 1, column_values: \"{}\") { id } }")
            .contains("missing argument `board_id`"));
        assert!(err("mutation { a0: change_multiple_column_values(item_id: -1, board_id: 1, column_values: \"{}\") { id } }")
            .contains("`item_id` must be an ID"));
        assert!(err("mutation { a0: change_multiple_column_values(item_id: 1, board_id: 1, column_values: \"[1]\") { id } }")
            .contains("must be a JSON object"));
        assert!(err("mutation { a0: change_multiple_column_values(item_id: 1, board_id: 1, column_values: \"{\") { id } }")
            .contains("not valid JSON"));
        assert!(err("mutation { a0: change_multiple_column_values(item_id: 1, board_id: 1, column_values: \"{}) { id } }")
            .contains("unterminated string"));
        assert!(err("mutation { a0: change_multiple_column_values(item_id: $x, board_id: 1, column_values: \"{}\") { id } }")
            .contains("`$x` is not provided"));
        assert!(err("mutation { a0: change_multiple_column_values(item_id: 1, board_id: 1, column_values: \"{}\") { id } ")
            .contains("expected a name, found the end"));
        assert!(err("mutation { a0: change_multiple_column_values(item_id: 1, board_id: 1, column_values: \"{}\") { id } } }")
            .contains("expected the end of the query"));
        let e = err("mutation {\n  a0: change_multiple_column_values(item_id: 1 board_id: 1 column_values: \"{}\") % }");
        assert!(
            e.starts_with("Parse error on line 2, column 81: unexpected character `%`"),
            "{e}"
        );
        assert!(err("").contains("expected `mutation`"));
        let one =
            "a0: change_multiple_column_values(item_id: 1, board_id: 1, column_values: \"{}\")";
        assert!(err(&format!("mutation {{ {one} {one} }}")).contains("alias `a0` used twice"));
        assert!(err("not json at all").contains("expected `mutation`"));
        assert!(err("query { boards(ids: 1) { id items { id } } }")
            .contains("Field 'items' doesn't exist on type 'Board'"));
        assert!(err("query { boards(ids: 1) { columns { id colour } } }")
            .contains("Field 'colour' doesn't exist on type 'Column'"));
    }

    #[test]
    fn parses_the_columns_query() {
        let q = "query Cols($b: [ID!]) { b: boards(ids: $b, limit: 1) { id columns { id type title } } }";
        let vars = json!({"b": ["456", 7]});
        let Ok(Operation::Columns(c)) = parse(q, vars.as_object()) else {
            panic!("{q}")
        };
        assert_eq!(c.key, "b");
        assert_eq!(c.board_ids, [456, 7]);
        assert_eq!(c.board_fields, ["id", "columns"]);
        assert_eq!(c.column_fields, ["id", "type", "title"]);
        let Ok(Operation::Columns(c)) = parse("{ boards(ids: [1]) { columns { id } } }", None)
        else {
            panic!("shorthand")
        };
        assert_eq!(
            (c.key.as_str(), c.board_ids.as_slice()),
            ("boards", &[1][..])
        );
    }
}
