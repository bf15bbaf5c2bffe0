//! A value from the source, shaped the way a monday.com column of its type takes it in
//! `change_multiple_column_values`, as monday.com's column-types reference documents them
//! (the table of shapes is in the `monday` module's docs).

use serde_json::{json, Value};

use super::{country, date};

/// `Ok(None)`: no value, leave the column out; `Ok(Some(v))`: send `v`; `Err`: why `value`
/// cannot go into a column of type `kind`.
pub(crate) fn format(kind: &str, value: &Value) -> Result<Option<Value>, String> {
    let blank = value.as_str().is_some_and(|s| s.trim().is_empty());
    if value.is_null() || blank {
        return Ok(None);
    }
    if value.is_object() {
        return Ok(Some(value.clone()));
    }
    let text = scalar_text(value);
    let shaped = match kind {
        "date" => {
            let day = match value {
                Value::Number(n) => date::from_number(n.as_f64().unwrap_or(f64::NAN)),
                Value::String(s) => date::parse(s),
                _ => Err("expected a date or a Unix timestamp".to_owned()),
            }?;
            json!({ "date": day })
        }
        "country" => {
            let (code, name) = value
                .as_str()
                .and_then(country::lookup)
                .ok_or("not an ISO 3166 country code or English country name")?;
            json!({ "countryCode": code, "countryName": name })
        }
        "status" | "color" => json!({ "label": text.ok_or("expected a status label")? }),
        "numbers" => {
            let t = text
                .filter(|t| t.trim().parse::<f64>().is_ok_and(f64::is_finite))
                .filter(|_| !value.is_boolean())
                .ok_or("expected a number")?;
            Value::String(t.trim().to_owned())
        }
        "text" | "name" => Value::String(text.ok_or("expected text")?),
        "long_text" => {
            json!({ "text": text.filter(|_| !value.is_boolean()).ok_or("expected text")? })
        }
        "email" => {
            let address = value
                .as_str()
                .map(str::trim)
                .filter(|a| is_email(a))
                .ok_or("expected an email address")?;
            json!({ "email": address, "text": address })
        }
        "people" | "multiple-person" => {
            let ids = text
                .filter(|_| !value.is_boolean())
                .and_then(|t| person_ids(&t))
                .ok_or("expected a user id (or ids separated by commas)")?;
            let people: Vec<Value> = ids
                .into_iter()
                .map(|id| json!({ "id": id, "kind": "person" }))
                .collect();
            json!({ "personsAndTeams": people })
        }
        _ => value.clone(),
    };
    Ok(Some(shaped))
}

/// A string, number or boolean as text; `None` for arrays.
fn scalar_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// `local@domain.tld`: something before the `@`, a dot after it, no blanks.
fn is_email(address: &str) -> bool {
    !address.contains(char::is_whitespace)
        && address
            .split_once('@')
            .is_some_and(|(local, domain)| !local.is_empty() && domain.contains('.'))
}

/// `4`, `"4"`, `"4, 7"`: positive user ids.
fn person_ids(text: &str) -> Option<Vec<u64>> {
    text.split(',')
        .map(|p| p.trim().parse::<u64>().ok().filter(|&id| id > 0))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_type_shapes_its_values() {
        let table = [
            ("date", json!("2024-03-05"), json!({"date": "2024-03-05"})),
            ("date", json!("5 March 2024"), json!({"date": "2024-03-05"})),
            (
                "date",
                json!("2024-03-05T10:00:00Z"),
                json!({"date": "2024-03-05"}),
            ),
            ("date", json!(1_709_632_800), json!({"date": "2024-03-05"})),
            ("date", json!(20_240_305), json!({"date": "2024-03-05"})),
            (
                "country",
                json!("DE"),
                json!({"countryCode": "DE", "countryName": "Germany"}),
            ),
            (
                "country",
                json!("germany"),
                json!({"countryCode": "DE", "countryName": "Germany"}),
            ),
            (
                "country",
                json!("us"),
                json!({"countryCode": "US", "countryName": "United States"}),
            ),
            ("status", json!("Done"), json!({"label": "Done"})),
            ("color", json!(3), json!({"label": "3"})),
            ("numbers", json!(4.5), json!("4.5")),
            ("numbers", json!(" 12 "), json!("12")),
            ("numbers", json!(-3), json!("-3")),
            ("text", json!("hello"), json!("hello")),
            ("text", json!(42), json!("42")),
            ("name", json!(true), json!("true")),
            ("long_text", json!("a\nb"), json!({"text": "a\nb"})),
            (
                "email",
                json!("a@b.example"),
                json!({"email": "a@b.example", "text": "a@b.example"}),
            ),
            (
                "people",
                json!(4),
                json!({"personsAndTeams": [{"id": 4, "kind": "person"}]}),
            ),
            (
                "people",
                json!("4, 7"),
                json!({"personsAndTeams": [{"id": 4, "kind": "person"}, {"id": 7, "kind": "person"}]}),
            ),
            ("date", json!({"date": "x"}), json!({"date": "x"})),
            ("dropdown", json!(["a"]), json!(["a"])),
            ("checkbox", json!(true), json!(true)),
        ];
        for (kind, input, want) in table {
            assert_eq!(format(kind, &input), Ok(Some(want)), "{kind} {input}");
        }
    }

    #[test]
    fn no_value_leaves_the_column_out() {
        for kind in ["date", "country", "text", "people", "dropdown"] {
            for v in [json!(null), json!(""), json!("  ")] {
                assert_eq!(format(kind, &v), Ok(None), "{kind} {v}");
            }
        }
    }

    #[test]
    fn unshapeable_values_say_what_was_expected() {
        let table = [
            ("date", json!("05/03/2024"), "ambiguous"),
            ("date", json!("soon"), "not a date"),
            ("date", json!(true), "expected a date"),
            ("country", json!("Atlantis"), "ISO 3166"),
            ("country", json!("INVALID"), "ISO 3166"),
            ("country", json!(49), "ISO 3166"),
            ("status", json!([1]), "status label"),
            ("numbers", json!("many"), "a number"),
            ("numbers", json!(true), "a number"),
            ("text", json!([1]), "expected text"),
            ("long_text", json!(false), "expected text"),
            ("email", json!("not an address"), "email"),
            ("email", json!("a@localhost"), "email"),
            ("people", json!("alice@b.example"), "user id"),
            ("people", json!("0"), "user id"),
        ];
        for (kind, input, want) in table {
            let e = format(kind, &input).expect_err(&format!("{kind} {input}"));
            assert!(e.contains(want), "{kind} {input}: {e}");
        }
    }
}
