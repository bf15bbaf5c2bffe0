//! The board's columns and the value shapes each column type takes, as monday.com's
//! `change_multiple_column_values` takes them. The simulator answers
//! `boards(ids: ...) { columns { id type title } }` from [`SimConfig::columns`](crate::SimConfig::columns)
//! and, with [`check_values`](crate::SimConfig::check_values), rejects a wrongly shaped value
//! with a `ColumnValueException` naming the alias and the column; nothing of that item is
//! applied.
//!
//! [`default_board`] is the board of the monday.com board updater: `date4` (the FOB date) is a
//! date column and `country` a country column, as its job file maps them; the other columns
//! show the other common types. Without `check_values` (the default profile) every value is
//! taken as text, so clients that send plain strings keep working.

use std::fmt;
use std::str::FromStr;

use serde_json::Value;

/// A column type, named as monday.com's API names it (`boards { columns { type } }`).
///
/// The shapes accepted with `check_values` (`null` and `""` clear any column):
///
/// | type | accepted |
/// |---|---|
/// | `name`, `text` | a string or a number |
/// | `long_text` | a string, or `{"text": "..."}` |
/// | `numbers` | a number, or a string holding one |
/// | `status` | a label string, `{"label": "..."}` or `{"index": N}` |
/// | `date` | `{"date": "YYYY-MM-DD"}` (a real date), optionally with `"time": "HH:MM:SS"` |
/// | `country` | `{"countryCode": "DE", "countryName": "Germany"}`, the code ISO 3166-1 alpha-2 |
/// | `email` | `{"email": "a@b.example", "text": "..."}` (`text` optional) |
/// | `people` | `{"personsAndTeams": [{"id": N, "kind": "person" \| "team"}]}` |
///
/// A plain string for a date (`"2025-01-02"`) or a country name for a country (`"Germany"`)
/// is rejected, as monday.com rejects them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ColumnType {
    /// The item's name.
    Name,
    /// Short text.
    Text,
    /// Long text.
    LongText,
    /// A number.
    Numbers,
    /// A status label.
    Status,
    /// A date (and time).
    Date,
    /// A country.
    Country,
    /// An email address.
    Email,
    /// People and teams.
    People,
}

const TYPES: [(ColumnType, &str); 9] = [
    (ColumnType::Name, "name"),
    (ColumnType::Text, "text"),
    (ColumnType::LongText, "long_text"),
    (ColumnType::Numbers, "numbers"),
    (ColumnType::Status, "status"),
    (ColumnType::Date, "date"),
    (ColumnType::Country, "country"),
    (ColumnType::Email, "email"),
    (ColumnType::People, "people"),
];

impl ColumnType {
    /// The API's name for it, e.g. `long_text`.
    pub fn as_str(self) -> &'static str {
        TYPES
            .iter()
            .find(|(t, _)| *t == self)
            .map_or("text", |(_, name)| name)
    }
}

impl fmt::Display for ColumnType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ColumnType {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        TYPES
            .iter()
            .find(|(_, name)| *name == s)
            .map(|(t, _)| *t)
            .ok_or_else(|| {
                let names: Vec<_> = TYPES.iter().map(|(_, n)| *n).collect();
                format!("unknown column type `{s}` (one of {})", names.join(", "))
            })
    }
}

/// One column of the board.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    /// The column id used in `column_values`, e.g. `date4`.
    pub id: String,
    /// Its type.
    pub kind: ColumnType,
    /// Its title, e.g. `FOB Date`.
    pub title: String,
}

impl Column {
    /// A column.
    pub fn new(id: &str, kind: ColumnType, title: &str) -> Self {
        Column {
            id: id.to_owned(),
            kind,
            title: title.to_owned(),
        }
    }
}

impl FromStr for Column {
    type Err = String;

    /// `id:type` or `id:type:title`, e.g. `date4:date:FOB Date`.
    fn from_str(s: &str) -> Result<Self, String> {
        let mut parts = s.splitn(3, ':');
        let (Some(id), Some(kind)) = (parts.next(), parts.next()) else {
            return Err(format!("`{s}`: expected ID:TYPE[:TITLE]"));
        };
        let kind: ColumnType = kind.parse()?;
        Ok(Column::new(id, kind, parts.next().unwrap_or(id)))
    }
}

/// The board of the monday.com board updater: `name`, `date4` (date, "FOB Date"), `country`
/// (country), `status`, `text`, `long_text`, `numbers`, `email`, `person` (people).
pub fn default_board() -> Vec<Column> {
    use ColumnType as T;
    vec![
        Column::new("name", T::Name, "Name"),
        Column::new("date4", T::Date, "FOB Date"),
        Column::new("country", T::Country, "Country"),
        Column::new("status", T::Status, "Status"),
        Column::new("text", T::Text, "Text"),
        Column::new("long_text", T::LongText, "Notes"),
        Column::new("numbers", T::Numbers, "Numbers"),
        Column::new("email", T::Email, "Email"),
        Column::new("person", T::People, "Owner"),
    ]
}

/// Why a value was refused: the message of the `ColumnValueException`.
pub(crate) fn check(kind: ColumnType, v: &Value) -> Result<(), String> {
    if v.is_null() || v.as_str() == Some("") {
        return Ok(());
    }
    let field = |name: &str| v.as_object().and_then(|o| o.get(name));
    let ok = match kind {
        ColumnType::Name | ColumnType::Text => v.is_string() || v.is_number(),
        ColumnType::LongText => v.is_string() || field("text").is_some_and(Value::is_string),
        ColumnType::Numbers => {
            v.is_number() || v.as_str().is_some_and(|s| s.trim().parse::<f64>().is_ok())
        }
        ColumnType::Status => {
            v.is_string()
                || field("label").is_some_and(Value::is_string)
                || field("index").is_some_and(Value::is_u64)
        }
        ColumnType::Date => {
            field("date").and_then(Value::as_str).is_some_and(is_date)
                && field("time").is_none_or(|t| t.as_str().is_some_and(is_time))
        }
        ColumnType::Country => {
            field("countryCode")
                .and_then(Value::as_str)
                .is_some_and(is_country_code)
                && field("countryName")
                    .and_then(Value::as_str)
                    .is_some_and(|n| !n.trim().is_empty())
        }
        ColumnType::Email => field("email").and_then(Value::as_str).is_some_and(|e| {
            e.split_once('@')
                .is_some_and(|(a, b)| !a.is_empty() && b.contains('.'))
        }),
        ColumnType::People => field("personsAndTeams")
            .and_then(Value::as_array)
            .is_some_and(|all| {
                all.iter().all(|p| {
                    p.get("id").is_some_and(Value::is_u64)
                        && matches!(
                            p.get("kind").and_then(Value::as_str),
                            Some("person" | "team")
                        )
                })
            }),
    };
    if ok {
        Ok(())
    } else {
        Err(format!(
            "invalid value, please check our API documentation for the correct data structure for this column ({kind}): expected {}, got {v}",
            expected(kind)
        ))
    }
}

fn expected(kind: ColumnType) -> &'static str {
    match kind {
        ColumnType::Name | ColumnType::Text => "a string",
        ColumnType::LongText => r#"a string or {"text": "..."}"#,
        ColumnType::Numbers => "a number",
        ColumnType::Status => r#"a label or {"label": "..."}"#,
        ColumnType::Date => r#"{"date": "YYYY-MM-DD"}"#,
        ColumnType::Country => {
            r#"{"countryCode": "DE", "countryName": "Germany"} with an ISO 3166 code"#
        }
        ColumnType::Email => r#"{"email": "...", "text": "..."}"#,
        ColumnType::People => r#"{"personsAndTeams": [{"id": 1, "kind": "person"}]}"#,
    }
}

/// `YYYY-MM-DD`, a real calendar date.
fn is_date(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return false;
    }
    let num = |r: std::ops::Range<usize>| s.get(r).and_then(|t| t.parse::<u32>().ok());
    let (Some(y), Some(m), Some(d)) = (num(0..4), num(5..7), num(8..10)) else {
        return false;
    };
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

/// `HH:MM:SS`.
fn is_time(s: &str) -> bool {
    let parts: Vec<_> = s.split(':').collect();
    let ok = |p: &str, max: u32| p.len() == 2 && p.parse::<u32>().is_ok_and(|v| v <= max);
    parts.len() == 3 && ok(parts[0], 23) && ok(parts[1], 59) && ok(parts[2], 59)
}

/// The ISO 3166-1 alpha-2 codes, two letters each.
const ISO_3166: &str = "ADAEAFAGAIALAMAOAQARASATAUAWAXAZBABBBDBEBFBGBHBIBJBLBMBNBOBQBRBSBTBVBWBYBZ\
CACCCDCFCGCHCICKCLCMCNCOCRCUCVCWCXCYCZDEDJDKDMDODZECEEEGEHERESETFIFJFKFMFOFRGAGBGDGEGFGGGHGIGL\
GMGNGPGQGRGSGTGUGWGYHKHMHNHRHTHUIDIEILIMINIOIQIRISITJEJMJOJPKEKGKHKIKMKNKPKRKWKYKZLALBLCLILKLR\
LSLTLULVLYMAMCMDMEMFMGMHMKMLMMMNMOMPMQMRMSMTMUMVMWMXMYMZNANCNENFNGNINLNONPNRNUNZOMPAPEPFPGPHPK\
PLPMPNPRPSPTPWPYQARERORSRURWSASBSCSDSESGSHSISJSKSLSMSNSOSRSSSTSVSXSYSZTCTDTFTGTHTJTKTLTMTNTOTR\
TTTVTWTZUAUGUMUSUYUZVAVCVEVGVIVNVUWFWSYEYTZAZMZW";

fn is_country_code(code: &str) -> bool {
    code.len() == 2
        && code.bytes().all(|b| b.is_ascii_uppercase())
        && ISO_3166.as_bytes().chunks(2).any(|c| c == code.as_bytes())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn the_iso_table_holds_249_codes() {
        assert_eq!(ISO_3166.len(), 2 * 249);
        for code in ["DE", "US", "VN", "BD", "ZW", "AD"] {
            assert!(is_country_code(code), "{code}");
        }
        for code in ["XX", "de", "DEU", "INVALID", ""] {
            assert!(!is_country_code(code), "{code}");
        }
    }

    #[test]
    fn each_type_takes_its_shapes_and_refuses_others() {
        use ColumnType as T;
        let good = [
            (T::Text, json!("hi")),
            (T::Text, json!(3)),
            (T::LongText, json!({"text": "long"})),
            (T::Numbers, json!("4.5")),
            (T::Numbers, json!(7)),
            (T::Status, json!({"label": "Done"})),
            (T::Status, json!({"index": 1})),
            (T::Date, json!({"date": "2024-02-29"})),
            (T::Date, json!({"date": "2025-01-02", "time": "13:05:00"})),
            (
                T::Country,
                json!({"countryCode": "DE", "countryName": "Germany"}),
            ),
            (T::Email, json!({"email": "a@b.example", "text": "A"})),
            (
                T::People,
                json!({"personsAndTeams": [{"id": 4, "kind": "person"}]}),
            ),
            (T::Date, json!(null)),
            (T::Country, json!("")),
        ];
        for (kind, v) in good {
            assert_eq!(check(kind, &v), Ok(()), "{kind} {v}");
        }
        let bad = [
            (T::Text, json!({"text": "x"})),
            (T::Numbers, json!("many")),
            (T::Status, json!({"index": "x"})),
            (T::Date, json!("2025-01-02")),
            (T::Date, json!({"date": "2025-02-29"})),
            (T::Date, json!({"date": "02/01/2025"})),
            (T::Date, json!({"date": "2025-01-02", "time": "25:00:00"})),
            (T::Country, json!("Germany")),
            (
                T::Country,
                json!({"countryCode": "Germany", "countryName": "Germany"}),
            ),
            (T::Country, json!({"countryCode": "DE"})),
            (T::Email, json!("a@b.example")),
            (
                T::People,
                json!({"personsAndTeams": [{"id": 4, "kind": "robot"}]}),
            ),
        ];
        for (kind, v) in bad {
            let e = check(kind, &v).expect_err(&format!("{kind} {v}"));
            assert!(e.contains(kind.as_str()) && e.contains("expected"), "{e}");
        }
    }

    #[test]
    fn columns_parse_from_flags() {
        let c: Column = "date4:date:FOB Date".parse().unwrap();
        assert_eq!(c, Column::new("date4", ColumnType::Date, "FOB Date"));
        let c: Column = "notes:long_text".parse().unwrap();
        assert_eq!((c.kind, c.title.as_str()), (ColumnType::LongText, "notes"));
        assert!("x".parse::<Column>().is_err());
        assert!("x:widget"
            .parse::<Column>()
            .unwrap_err()
            .contains("unknown column type"));
        for (kind, name) in TYPES {
            assert_eq!(name.parse::<ColumnType>(), Ok(kind));
        }
    }
}
