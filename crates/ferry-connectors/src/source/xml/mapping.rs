//! The mapping from a record element to a row: each column is a path into the record with a
//! cast, a count of elements, or a list of repeated elements (an array of objects, which a
//! sink writes as JSON or as rows of a child table).
//!
//! Paths, written in the job file as strings (`docs/job-file.md`, "XML sources"):
//! `a/b` is the text of element `b` inside `a` inside the record; `a/@x` is attribute `x` of
//! `a`; `@x` an attribute of the record element; `.` the record element's own text. A value
//! path that matches nothing is `null`; one that matches more than one element is an error
//! (map repeated elements with a list). `PATH as TYPE` casts: `text` (the default),
//! `integer`, `decimal`, `date`, `timestamp`, `boolean`. `count(PATH)` counts the elements
//! PATH matches.

use serde_json::{Map, Value};

use super::dom::Element;

/// What a value is cast to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cast {
    /// The text as it is.
    Text,
    /// A 64-bit integer (surrounding whitespace allowed).
    Integer,
    /// A decimal number, kept exactly as a string: `-12.50`, `3`, `.5`.
    Decimal,
    /// A calendar date, `YYYY-MM-DD`.
    Date,
    /// A date and time, `YYYY-MM-DDTHH:MM:SS` with optional fraction and offset (`Z`,
    /// `+02:00`); a space may replace the `T`.
    Timestamp,
    /// `true`/`false`/`1`/`0` (case-insensitive).
    Boolean,
}

impl Cast {
    const NAMES: &'static str = "text, integer, decimal, date, timestamp or boolean";

    fn parse(name: &str) -> Option<Cast> {
        Some(match name {
            "text" => Cast::Text,
            "integer" => Cast::Integer,
            "decimal" => Cast::Decimal,
            "date" => Cast::Date,
            "timestamp" => Cast::Timestamp,
            "boolean" => Cast::Boolean,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            Cast::Text => "text",
            Cast::Integer => "integer",
            Cast::Decimal => "decimal",
            Cast::Date => "date",
            Cast::Timestamp => "timestamp",
            Cast::Boolean => "boolean",
        }
    }

    /// Casts `text`; the error says what was expected.
    pub fn apply(self, text: &str) -> Result<Value, String> {
        let t = text.trim();
        let bad = || format!("`{}` is not a {}", shorten(text), self.name());
        match self {
            Cast::Text => Ok(Value::String(text.to_owned())),
            Cast::Integer => t.parse::<i64>().map(Value::from).map_err(|_| bad()),
            Cast::Decimal => is_decimal(t)
                .then(|| Value::String(t.to_owned()))
                .ok_or_else(bad),
            Cast::Date => is_date(t)
                .then(|| Value::String(t.to_owned()))
                .ok_or_else(bad),
            Cast::Timestamp => is_timestamp(t)
                .then(|| Value::String(t.to_owned()))
                .ok_or_else(bad),
            Cast::Boolean => match t.to_ascii_lowercase().as_str() {
                "true" | "1" => Ok(Value::Bool(true)),
                "false" | "0" => Ok(Value::Bool(false)),
                _ => Err(bad()),
            },
        }
    }
}

fn shorten(text: &str) -> String {
    match text.char_indices().nth(40) {
        Some((i, _)) => format!("{}...", &text[..i]),
        None => text.to_owned(),
    }
}

fn digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

fn is_decimal(s: &str) -> bool {
    let s = s.strip_prefix(['+', '-']).unwrap_or(s);
    match s.split_once('.') {
        None => digits(s),
        Some((a, b)) => (a.is_empty() || digits(a)) && digits(b),
    }
}

fn is_date(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return false;
    }
    let (Ok(y), Ok(m), Ok(d)) = (
        s[..4].parse::<u32>(),
        s[5..7].parse::<u32>(),
        s[8..].parse::<u32>(),
    ) else {
        return false;
    };
    if !(digits(&s[..4]) && digits(&s[5..7]) && digits(&s[8..])) {
        return false;
    }
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let days = match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return false,
    };
    (1..=days).contains(&d)
}

fn is_time(s: &str) -> bool {
    let (hms, frac) = match s.split_once('.') {
        Some((a, f)) => (a, Some(f)),
        None => (s, None),
    };
    let parts: Vec<&str> = hms.split(':').collect();
    let ok = parts.len() == 3
        && parts.iter().all(|p| p.len() == 2 && digits(p))
        && parts[0] < "24"
        && parts[1] < "60"
        && parts[2] < "61";
    ok && frac.is_none_or(digits)
}

fn is_timestamp(s: &str) -> bool {
    if s.len() < 19 || !s.is_char_boundary(10) || !s.is_char_boundary(11) {
        return false;
    }
    let (date, sep, rest) = (&s[..10], &s[10..11], &s[11..]);
    if !is_date(date) || !(sep == "T" || sep == " ") {
        return false;
    }
    let (time, zone) = if let Some(t) = rest.strip_suffix('Z') {
        (t, None)
    } else if let Some(i) = rest.rfind(['+', '-']) {
        (&rest[..i], Some(&rest[i + 1..]))
    } else {
        (rest, None)
    };
    let zone_ok = zone.is_none_or(|z| {
        let b = z.as_bytes();
        b.len() == 5 && b[2] == b':' && digits(&z[..2]) && digits(&z[3..])
    });
    is_time(time) && zone_ok
}

/// A path into a record: element steps, then optionally an attribute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Path {
    steps: Vec<String>,
    attr: Option<String>,
    text: String,
}

impl Path {
    /// Parses `a/b`, `a/@x`, `@x` or `.`.
    pub fn parse(text: &str) -> Result<Path, String> {
        let t = text.trim();
        if t.is_empty() {
            return Err("an empty path".into());
        }
        let mut steps = Vec::new();
        let mut attr = None;
        if t != "." {
            let parts: Vec<&str> = t.split('/').collect();
            for (i, part) in parts.iter().enumerate() {
                if let Some(a) = part.strip_prefix('@') {
                    if i + 1 != parts.len() {
                        return Err(format!("`{t}`: an attribute must be the last step"));
                    }
                    check_name(a, t)?;
                    attr = Some(a.to_owned());
                } else {
                    check_name(part, t)?;
                    steps.push((*part).to_owned());
                }
            }
        }
        Ok(Path {
            steps,
            attr,
            text: t.to_owned(),
        })
    }

    /// The elements the steps reach from `root`, in document order.
    fn elements<'e>(&self, root: &'e Element) -> Vec<&'e Element> {
        let mut out = Vec::new();
        visit(root, &self.steps, &mut |e| out.push(e));
        out
    }

    /// How many values the path reaches (element texts, or attribute values) and the first.
    fn first_value<'e>(&self, root: &'e Element) -> (usize, Option<&'e str>) {
        let (mut n, mut first) = (0, None);
        visit(root, &self.steps, &mut |e| {
            let value = match &self.attr {
                None => Some(e.text.as_str()),
                Some(a) => e
                    .attrs
                    .iter()
                    .find(|(k, _)| k == a)
                    .map(|(_, v)| v.as_str()),
            };
            if let Some(v) = value {
                n += 1;
                first = first.or(Some(v));
            }
        });
        (n, first)
    }
}

/// Calls `f` on each element `steps` reach from `el`, in document order (no allocation:
/// this runs for every column of every record).
fn visit<'e>(el: &'e Element, steps: &[String], f: &mut impl FnMut(&'e Element)) {
    match steps.split_first() {
        None => f(el),
        Some((step, rest)) => {
            for child in el.children.iter().filter(|c| &c.name == step) {
                visit(child, rest, f);
            }
        }
    }
}

impl std::fmt::Display for Path {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

fn check_name(name: &str, path: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | '.'))
        && !name.starts_with(['-', '.']);
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{path}`: `{name}` is not an element or attribute name (paths are like a/b, a/@x, @x or .)"
        ))
    }
}

/// How one column gets its value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Field {
    /// The value at a path, cast.
    Value(Path, Cast),
    /// How many elements a path matches.
    Count(Path),
    /// The elements a path matches, each mapped to an object by its own columns (paths
    /// relative to the element).
    List(Path, Vec<(String, Field)>),
}

impl Field {
    /// Parses a column's string: `PATH`, `PATH as TYPE` or `count(PATH)`.
    pub fn parse(text: &str) -> Result<Field, String> {
        let t = text.trim();
        if let Some(inner) = t.strip_prefix("count(").and_then(|r| r.strip_suffix(')')) {
            let path = Path::parse(inner)?;
            if path.attr.is_some() {
                return Err(format!("`{t}`: count() counts elements, not attributes"));
            }
            return Ok(Field::Count(path));
        }
        match t.rsplit_once(" as ") {
            Some((path, cast)) => {
                let cast = Cast::parse(cast.trim()).ok_or_else(|| {
                    format!("`{}` is not a type; expected {}", cast.trim(), Cast::NAMES)
                })?;
                Ok(Field::Value(Path::parse(path)?, cast))
            }
            None => Ok(Field::Value(Path::parse(t)?, Cast::Text)),
        }
    }

    fn map(&self, column: &str, el: &Element, hits: &mut bool) -> Result<Value, String> {
        match self {
            Field::Value(path, cast) => {
                match path.first_value(el) {
                    (0, _) | (_, None) => Ok(Value::Null),
                    (1, Some(one)) => {
                        *hits = true;
                        cast.apply(one).map_err(|e| format!("column `{column}`: {e}"))
                    }
                    (n, _) => Err(format!(
                        "column `{column}`: `{}` matches {n} elements; map repeated elements with a list",
                        path.text,
                    )),
                }
            }
            Field::Count(path) => {
                let mut n = 0usize;
                visit(el, &path.steps, &mut |_| n += 1);
                *hits |= n > 0;
                Ok(Value::from(n))
            }
            Field::List(path, columns) => {
                let elements = path.elements(el);
                *hits |= !elements.is_empty();
                let mut rows = Vec::with_capacity(elements.len());
                for (i, e) in elements.into_iter().enumerate() {
                    let mut row = Map::new();
                    for (name, field) in columns {
                        let mut unused = false;
                        let v = field
                            .map(name, e, &mut unused)
                            .map_err(|m| format!("list `{column}` item {}: {m}", i + 1))?;
                        row.insert(name.clone(), v);
                    }
                    rows.push(Value::Object(row));
                }
                Ok(Value::Array(rows))
            }
        }
    }
}

/// All the columns of a record.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Mapping {
    /// Column name and how it is filled, in order.
    pub columns: Vec<(String, Field)>,
}

impl Mapping {
    /// Maps a record to a JSON object; `hits[i]` is set when column `i`'s path matched.
    pub(super) fn apply(
        &self,
        el: &Element,
        hits: &mut [bool],
    ) -> Result<Map<String, Value>, String> {
        let mut row = Map::new();
        for (i, (name, field)) in self.columns.iter().enumerate() {
            let mut hit = false;
            let v = field.map(name, el, &mut hit)?;
            if let Some(h) = hits.get_mut(i) {
                *h = hit;
            }
            row.insert(name.clone(), v);
        }
        Ok(row)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::xml::dom::parse;
    use serde_json::json;

    #[test]
    fn casts_accept_and_refuse() {
        let ok = [
            (Cast::Integer, " 42 ", json!(42)),
            (Cast::Decimal, "-12.50", json!("-12.50")),
            (Cast::Decimal, ".5", json!(".5")),
            (Cast::Date, "2024-02-29", json!("2024-02-29")),
            (
                Cast::Timestamp,
                "2024-02-29T23:59:59.5+02:00",
                json!("2024-02-29T23:59:59.5+02:00"),
            ),
            (
                Cast::Timestamp,
                "2024-01-01 00:00:00Z",
                json!("2024-01-01 00:00:00Z"),
            ),
            (Cast::Boolean, "TRUE", json!(true)),
            (Cast::Boolean, "0", json!(false)),
            (Cast::Text, " a ", json!(" a ")),
        ];
        for (cast, text, want) in ok {
            assert_eq!(cast.apply(text), Ok(want), "{cast:?} {text}");
        }
        let bad = [
            (Cast::Integer, "4.2"),
            (Cast::Integer, "99999999999999999999"),
            (Cast::Decimal, "1e5"),
            (Cast::Decimal, "12,5"),
            (Cast::Decimal, "-"),
            (Cast::Date, "2023-02-29"),
            (Cast::Date, "2023-13-01"),
            (Cast::Timestamp, "2023-01-01T25:00:00"),
            (Cast::Timestamp, "2023-01-01"),
            (Cast::Boolean, "yes"),
        ];
        for (cast, text) in bad {
            let e = cast.apply(text).unwrap_err();
            assert!(e.contains("is not a"), "{cast:?} {text}: {e}");
        }
    }

    #[test]
    fn paths_fields_and_lists() {
        let el = parse(b"<order id=\"9\"><c><name>Ann &amp; Bo</name></c><total cur=\"EUR\">10.50</total><items><item sku=\"a\" q=\"1\"/><item sku=\"b\" q=\"2\"><note>n</note></item></items></order>").unwrap();
        let m = Mapping {
            columns: vec![
                ("id".into(), Field::parse("@id as integer").unwrap()),
                ("name".into(), Field::parse("c/name").unwrap()),
                ("total".into(), Field::parse("total as decimal").unwrap()),
                ("cur".into(), Field::parse("total/@cur").unwrap()),
                ("missing".into(), Field::parse("c/email").unwrap()),
                ("n".into(), Field::parse("count(items/item)").unwrap()),
                (
                    "items".into(),
                    Field::List(
                        Path::parse("items/item").unwrap(),
                        vec![
                            ("sku".into(), Field::parse("@sku").unwrap()),
                            ("q".into(), Field::parse("@q as integer").unwrap()),
                            ("note".into(), Field::parse("note").unwrap()),
                        ],
                    ),
                ),
            ],
        };
        let mut hits = vec![false; 7];
        let row = m.apply(&el, &mut hits).unwrap();
        assert_eq!(
            Value::Object(row),
            json!({"id": 9, "name": "Ann & Bo", "total": "10.50", "cur": "EUR", "missing": null, "n": 2,
                   "items": [{"sku": "a", "q": 1, "note": null}, {"sku": "b", "q": 2, "note": "n"}]})
        );
        assert_eq!(hits, [true, true, true, true, false, true, true]);
        let two = Mapping {
            columns: vec![("sku".into(), Field::parse("items/item/@sku").unwrap())],
        };
        let e = two.apply(&el, &mut []).unwrap_err();
        assert!(e.contains("matches 2 elements"), "{e}");
    }

    #[test]
    fn bad_paths_and_types_are_named() {
        assert!(Field::parse("a/@x/b").unwrap_err().contains("last step"));
        assert!(Field::parse("a as money")
            .unwrap_err()
            .contains("`money` is not a type"));
        assert!(Field::parse("a//b")
            .unwrap_err()
            .contains("is not an element"));
        assert!(Field::parse("count(a/@x)")
            .unwrap_err()
            .contains("attributes"));
    }
}
