//! A board's columns, asked once per run with
//! `query { boards(ids: [ID]) { columns { id type title } } }`.
//!
//! Back-pressure on that one query (`429`/`503`, or a rate-limit or complexity error in a
//! `200` body) is waited out, at most [`ATTEMPTS`] times; anything else, or a board that is
//! not in the answer (monday.com answers `"boards": []` for a board that does not exist or
//! that the token cannot see), is an error before any item is sent.

use std::time::Duration;

use reqwest::header::HeaderMap;
use serde_json::{json, Value};

use crate::classify;

/// Tries of the columns query when the API pushes back.
pub const ATTEMPTS: u32 = 5;
/// The longest wait between tries (a longer `Retry-After` is cut to this).
const LONGEST_WAIT: Duration = Duration::from_secs(60);
/// One try's timeout.
const TIMEOUT: Duration = Duration::from_secs(20);

/// One column of a board.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BoardColumn {
    /// The id `column_values` uses, e.g. `date4`.
    pub id: String,
    /// The API's type name, e.g. `date`, `country`, `long_text`.
    pub kind: String,
    /// The title shown on the board, e.g. `FOB Date`.
    pub title: String,
}

/// The columns query for `board_id` (an integer id is sent as a number, anything else as a
/// string; `ID` takes both).
pub fn columns_query(board_id: &str) -> String {
    let id = if !board_id.is_empty() && board_id.bytes().all(|b| b.is_ascii_digit()) {
        board_id.to_owned()
    } else {
        Value::String(board_id.to_owned()).to_string()
    };
    format!("query {{ boards(ids: [{id}]) {{ columns {{ id type title }} }} }}")
}

/// The columns in a `200` answer to [`columns_query`], or why there are none.
pub fn parse_columns(board_id: &str, body: &Value) -> Result<Vec<BoardColumn>, String> {
    if let Some(errors) = body.get("errors").and_then(Value::as_array) {
        if !errors.is_empty() {
            let messages: Vec<String> = errors
                .iter()
                .map(|e| {
                    e.get("message")
                        .and_then(Value::as_str)
                        .map_or_else(|| e.to_string(), str::to_owned)
                })
                .collect();
            return Err(messages.join("; "));
        }
    }
    let boards = body
        .pointer("/data/boards")
        .and_then(Value::as_array)
        .ok_or("the answer has no `data.boards`")?;
    let board = boards.first().ok_or_else(|| {
        format!("board {board_id} not found (it does not exist, or the token cannot see it)")
    })?;
    let columns = board
        .get("columns")
        .and_then(Value::as_array)
        .ok_or("the board has no `columns`")?;
    columns
        .iter()
        .map(|c| {
            let field = |name: &str| c.get(name).and_then(Value::as_str).map(str::to_owned);
            match (field("id"), field("type")) {
                (Some(id), Some(kind)) => Ok(BoardColumn {
                    title: field("title").unwrap_or_else(|| id.clone()),
                    id,
                    kind,
                }),
                _ => Err(format!("a column without `id` or `type`: {c}")),
            }
        })
        .collect()
}

/// Asks `url` for `board_id`'s columns, waiting out back-pressure; the error says why not.
pub async fn fetch_columns(
    client: &reqwest::Client,
    url: &str,
    headers: &HeaderMap,
    board_id: &str,
) -> Result<Vec<BoardColumn>, String> {
    let body = json!({ "query": columns_query(board_id) });
    let mut attempt = 1;
    loop {
        let wait = match ask(client, url, headers, &body).await? {
            Answer::Body(v) => match classify::body_backpressure(&v) {
                None => return parse_columns(board_id, &v),
                Some(after) => (after, classify::body_message(&v.to_string())),
            },
            Answer::Busy(after, message) => (after, message),
        };
        if attempt >= ATTEMPTS {
            return Err(format!("still refused after {ATTEMPTS} tries: {}", wait.1));
        }
        let pause = wait.0.unwrap_or(Duration::from_secs(1)).min(LONGEST_WAIT);
        tracing::info!(board_id, ?pause, reason = %wait.1, "columns query pushed back; waiting");
        tokio::time::sleep(pause).await;
        attempt += 1;
    }
}

enum Answer {
    /// A `200` body.
    Body(Value),
    /// `429`/`503`: wait this long (if said) and ask again.
    Busy(Option<Duration>, String),
}

async fn ask(
    client: &reqwest::Client,
    url: &str,
    headers: &HeaderMap,
    body: &Value,
) -> Result<Answer, String> {
    let response = client
        .post(url)
        .headers(headers.clone())
        .timeout(TIMEOUT)
        .json(body)
        .send()
        .await
        .map_err(|e| classify::error_chain(&e))?;
    let status = response.status();
    let after = classify::retry_after(response.headers());
    let text = response
        .text()
        .await
        .map_err(|e| classify::error_chain(&e))?;
    if matches!(status.as_u16(), 429 | 503) {
        return Ok(Answer::Busy(
            after,
            format!(
                "HTTP {}: {}",
                status.as_u16(),
                classify::body_message(&text)
            ),
        ));
    }
    if !status.is_success() {
        return Err(format!(
            "HTTP {}: {}",
            status.as_u16(),
            classify::body_message(&text)
        ));
    }
    serde_json::from_str(&text)
        .map(Answer::Body)
        .map_err(|e| format!("invalid JSON in the answer: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_query_names_the_board() {
        assert_eq!(
            columns_query("8709134353"),
            "query { boards(ids: [8709134353]) { columns { id type title } } }"
        );
        assert_eq!(
            columns_query("a\"b"),
            r#"query { boards(ids: ["a\"b"]) { columns { id type title } } }"#
        );
    }

    #[test]
    fn answers() {
        let ok = json!({"data": {"boards": [{"columns": [
            {"id": "date4", "type": "date", "title": "FOB Date"},
            {"id": "x", "type": "text"},
        ]}]}});
        assert_eq!(
            parse_columns("1", &ok).unwrap(),
            vec![
                BoardColumn {
                    id: "date4".into(),
                    kind: "date".into(),
                    title: "FOB Date".into()
                },
                BoardColumn {
                    id: "x".into(),
                    kind: "text".into(),
                    title: "x".into()
                },
            ]
        );
        let table = [
            (json!({"data": {"boards": []}}), "board 1 not found"),
            (
                json!({"errors": [{"message": "Parse error"}]}),
                "Parse error",
            ),
            (json!({"data": {}}), "no `data.boards`"),
            (json!({"data": {"boards": [{}]}}), "no `columns`"),
            (
                json!({"data": {"boards": [{"columns": [{"id": "a"}]}]}}),
                "without `id` or `type`",
            ),
        ];
        for (body, want) in table {
            let e = parse_columns("1", &body).unwrap_err();
            assert!(e.contains(want), "{body}: {e}");
        }
    }
}
