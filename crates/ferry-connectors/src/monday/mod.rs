//! monday.com column values: the board's column types, asked once per run ([`board`]), and
//! each value shaped the way a column of its type takes it ([`format_value`]). The GraphQL
//! handler uses them when its job names a board
//! (`GraphqlConfig::board_id`); without one,
//! values are sent as they are evaluated.
//!
//! | column type | from | sent |
//! |---|---|---|
//! | `date` | a date string or a Unix timestamp (below) | `{"date": "2024-03-05"}` |
//! | `country` | an ISO 3166-1 alpha-2 code or an English name, any case (the full ISO 3166-1 table in the crate) | `{"countryCode": "DE", "countryName": "Germany"}` |
//! | `status` (`color`) | a label (a number is taken as its text) | `{"label": "Done"}` |
//! | `numbers` | a number, or a string holding one | `"4.5"` |
//! | `text`, `name` | a string, number or boolean | the text |
//! | `long_text` | a string or number | `{"text": "..."}` |
//! | `email` | an address | `{"email": "a@b.example", "text": "a@b.example"}` |
//! | `people` (`multiple-person`) | a user id, or ids separated by commas | `{"personsAndTeams": [{"id": 4, "kind": "person"}]}` |
//! | any other type | anything | the value as it is (Ferry does not know the type's shape) |
//!
//! `null`, and a string that is empty or only blanks, is *no value*: the column is left out
//! of the item's `column_values` (not cleared). A JSON object is taken as already shaped for
//! its column and sent as it is. Anything else that cannot be shaped is an error naming what
//! was expected; the caller makes it that item's error.
//!
//! Dates: `2024-03-05`, `2024/03/05`, `2024.03.05`, `20240305`; ISO 8601 timestamps
//! (`2024-03-05T10:00:00Z`, `2024-03-05 10:00:00`: the date as written, no time-zone
//! conversion); `05.03.2024` (day first); English month names (`5 March 2024`,
//! `March 5, 2024`, `Tue, 05-Mar-2024`); a JSON number is a date if it is an eight-digit
//! `YYYYMMDD` one, else a Unix timestamp in seconds (milliseconds from 10^11 on), taken as a
//! UTC date. `05/03/2024` is refused as ambiguous
//! (day or month first?) rather than guessed.

pub mod board;
mod country;
mod date;
mod format;

pub use board::{columns_query, fetch_columns, parse_columns, BoardColumn};

/// The value `value` shaped for a column of type `kind` (the API's type name, e.g. `date`):
/// `Ok(None)` when it is no value (`null` or blank: leave the column out), `Err` saying what
/// was expected when it cannot be shaped (the table above).
pub fn format_value(
    kind: &str,
    value: &serde_json::Value,
) -> Result<Option<serde_json::Value>, String> {
    format::format(kind, value)
}
