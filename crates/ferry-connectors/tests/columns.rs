//! The GraphQL handler with a monday.com board, against the real `ferry-sim` on loopback with
//! `check_values` on: the board's column types are asked once, every value is shaped for its
//! column's type and the simulator (which refuses wrongly shaped values the way monday.com
//! does) applies it; a value that cannot be shaped is that item's error, its neighbours
//! applied. Also: a board that cannot be read is an error before any item is sent, and a
//! complexity budget spent inside a `200` body is back-pressure, not a failure.

#![allow(clippy::unwrap_used)] // Tests fail loudly on purpose.

use std::time::Duration;

use ferry_connectors::graphql::{GraphqlConfig, GraphqlHandler};
use ferry_connectors::Error;
use ferry_core::{Batch, BatchOutcome, Handler, Item, ItemOutcome};
use ferry_sim::{Budget, SimConfig, Simulator};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const MUTATION: &str = "change_multiple_column_values(item_id: {{ item.id }}, board_id: {{ board_id }}, column_values: {{ columns | graphql_string }}) { id }";

/// A simulator with `default_board()` that checks values per column type; no poison, no
/// rate limit.
async fn checking_sim() -> Simulator {
    ferry_sim::spawn(SimConfig {
        check_values: true,
        poison_value: String::new(),
        rate_limit: u32::MAX,
        ..SimConfig::default()
    })
    .await
    .unwrap()
}

fn config(url: String, columns: &[&str]) -> GraphqlConfig {
    GraphqlConfig {
        url,
        headers: vec![("Authorization".into(), "test-token".into())],
        mutation: MUTATION.into(),
        columns: columns
            .iter()
            .map(|c| ((*c).to_owned(), format!("item[\"{c}\"]")))
            .collect(),
        vars: serde_json::from_value(json!({"board_id": 8709134353u64})).unwrap(),
        board_id: Some("8709134353".into()),
    }
}

/// Sends one batch of rows (`{"id": 100 + i, column: value}`) to `column` and returns the
/// items' outcomes.
async fn send(sim: &Simulator, column: &str, values: &[Value]) -> Vec<ItemOutcome<Value>> {
    let mut h = GraphqlHandler::new(config(sim.url(), &[column])).unwrap();
    h.ask_board().await.unwrap();
    let items = values
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let id = 100 + i as u64;
            Item::new(id.to_string(), i as u64, json!({"id": id, column: v}))
        })
        .collect();
    match h.call(&Batch::new(items)).await {
        BatchOutcome::Done(outcomes) => outcomes,
        other => panic!("{other:?}"),
    }
}

/// Each value is applied with the shape next to it, as the simulator recorded it.
async fn applies_shaped(column: &str, cases: &[(Value, Value)]) {
    let sim = checking_sim().await;
    let inputs: Vec<Value> = cases.iter().map(|(v, _)| v.clone()).collect();
    let outcomes = send(&sim, column, &inputs).await;
    let stats = sim.stats();
    assert_eq!(stats.value_rejected, 0, "the simulator refused a value");
    for (i, ((input, want), outcome)) in cases.iter().zip(&outcomes).enumerate() {
        assert!(
            matches!(outcome, ItemOutcome::Ok(_)),
            "{input}: {outcome:?}"
        );
        let applied = &stats.items[&(100 + i as u64)].values[column];
        assert_eq!(applied, want, "{column} from {input}");
    }
    assert_eq!(stats.column_queries, 1, "the board is asked once");
}

#[tokio::test]
async fn date_columns_take_dates_timestamps_and_common_strings() {
    let d = json!({"date": "2024-03-05"});
    applies_shaped(
        "date4",
        &[
            (json!("2024-03-05"), d.clone()),
            (json!("2024-03-05T10:00:00Z"), d.clone()),
            (json!("5 March 2024"), d.clone()),
            (json!("05.03.2024"), d.clone()),
            (json!(1_709_632_800), d),
        ],
    )
    .await;
}

#[tokio::test]
async fn country_by_name_and_by_code_applied_an_unknown_one_is_the_items_error() {
    let sim = checking_sim().await;
    let outcomes = send(
        &sim,
        "country",
        &[
            json!("Germany"),
            json!("de"),
            json!("Atlantis"),
            json!("VN"),
        ],
    )
    .await;
    let stats = sim.stats();
    let applied = |id: u64| &stats.items[&id].values["country"];
    assert_eq!(
        applied(100),
        &json!({"countryCode": "DE", "countryName": "Germany"})
    );
    assert_eq!(
        applied(101),
        &json!({"countryCode": "DE", "countryName": "Germany"})
    );
    assert_eq!(
        applied(103),
        &json!({"countryCode": "VN", "countryName": "Vietnam"})
    );
    assert!(
        !stats.items.contains_key(&102),
        "the unknown country was sent"
    );
    match &outcomes[2] {
        ItemOutcome::Fatal(reason) => assert_eq!(
            reason,
            "column `country` (country) of item `102`: cannot send \"Atlantis\": not an ISO 3166 country code or English country name"
        ),
        other => panic!("{other:?}"),
    }
    for i in [0, 1, 3] {
        assert!(matches!(outcomes[i], ItemOutcome::Ok(_)), "{outcomes:?}");
    }
}

#[tokio::test]
async fn status_columns_take_labels() {
    applies_shaped(
        "status",
        &[
            (json!("Done"), json!({"label": "Done"})),
            (json!("Working on it"), json!({"label": "Working on it"})),
        ],
    )
    .await;
}

#[tokio::test]
async fn numbers_columns_take_numbers_as_strings() {
    applies_shaped(
        "numbers",
        &[
            (json!(4.5), json!("4.5")),
            (json!(12), json!("12")),
            (json!(" 7 "), json!("7")),
        ],
    )
    .await;
}

#[tokio::test]
async fn text_and_name_columns_take_text() {
    applies_shaped(
        "text",
        &[(json!("hello"), json!("hello")), (json!(42), json!("42"))],
    )
    .await;
    applies_shaped("name", &[(json!("Order 7"), json!("Order 7"))]).await;
}

#[tokio::test]
async fn long_text_columns_take_text_objects() {
    applies_shaped(
        "long_text",
        &[(json!("line 1\nline 2"), json!({"text": "line 1\nline 2"}))],
    )
    .await;
}

#[tokio::test]
async fn email_columns_take_addresses() {
    applies_shaped(
        "email",
        &[(
            json!("buyer@example.com"),
            json!({"email": "buyer@example.com", "text": "buyer@example.com"}),
        )],
    )
    .await;
}

#[tokio::test]
async fn people_columns_take_user_ids() {
    applies_shaped(
        "person",
        &[
            (
                json!(4),
                json!({"personsAndTeams": [{"id": 4, "kind": "person"}]}),
            ),
            (
                json!("4, 9"),
                json!({"personsAndTeams": [{"id": 4, "kind": "person"}, {"id": 9, "kind": "person"}]}),
            ),
        ],
    )
    .await;
}

#[tokio::test]
async fn null_values_leave_the_column_out() {
    let sim = checking_sim().await;
    let mut h = GraphqlHandler::new(config(sim.url(), &["date4", "country"])).unwrap();
    h.ask_board().await.unwrap();
    let item = Item::new("100", 0, json!({"id": 100, "date4": null, "country": "US"}));
    let outcome = h.call(&Batch::new(vec![item])).await;
    assert!(matches!(outcome, BatchOutcome::Done(ref o) if matches!(o[0], ItemOutcome::Ok(_))));
    let values = &sim.stats().items[&100].values;
    assert!(!values.contains_key("date4"), "{values:?}");
    assert_eq!(values["country"]["countryCode"], "US");
}

#[tokio::test]
async fn without_a_board_values_go_as_evaluated() {
    let sim = ferry_sim::spawn(SimConfig {
        rate_limit: u32::MAX,
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let mut cfg = config(sim.url(), &["country"]);
    cfg.board_id = None;
    let mut h = GraphqlHandler::new(cfg).unwrap();
    h.ask_board().await.unwrap();
    let item = Item::new("100", 0, json!({"id": 100, "country": "Germany"}));
    let _ = h.call(&Batch::new(vec![item])).await;
    let stats = sim.stats();
    assert_eq!(stats.column_queries, 0);
    assert_eq!(stats.items[&100].values["country"], "Germany");
}

#[tokio::test]
async fn a_column_not_on_the_board_is_an_error_before_sending() {
    let sim = checking_sim().await;
    let mut h = GraphqlHandler::new(config(sim.url(), &["date4", "fob"])).unwrap();
    let e = h.ask_board().await.unwrap_err().to_string();
    assert!(
        e.contains("board 8709134353") && e.contains("no column `fob`") && e.contains("date4"),
        "{e}"
    );
    assert_eq!(sim.stats().mutations_applied, 0);
    assert!(
        h.describe_columns().contains("not known"),
        "{}",
        h.describe_columns()
    );
}

/// Answers every connection with `body` (status 200), forever.
async fn canned(body: &'static str) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (mut stream, _) = listener.accept().await.unwrap();
            let mut buf = vec![0u8; 65536];
            let _ = stream.read(&mut buf).await;
            let reply = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = stream.write_all(reply.as_bytes()).await;
        }
    });
    format!("http://{addr}/v2")
}

#[tokio::test]
async fn a_board_that_is_not_found_is_a_clear_error() {
    let url = canned(r#"{"data":{"boards":[]}}"#).await;
    let mut h = GraphqlHandler::new(config(url, &["date4"])).unwrap();
    let e = h.ask_board().await.unwrap_err();
    assert!(matches!(e, Error::Board { .. }), "{e:?}");
    assert!(e.to_string().contains("board 8709134353 not found"), "{e}");
}

#[tokio::test]
async fn an_unauthorized_board_query_is_a_clear_error() {
    let sim = checking_sim().await;
    let mut cfg = config(sim.url(), &["date4"]);
    cfg.headers = vec![("Authorization".into(), String::new())];
    let e = GraphqlHandler::new(cfg)
        .unwrap()
        .ask_board()
        .await
        .unwrap_err();
    assert!(e.to_string().contains("no API token"), "{e}");
    let mut cfg = config(sim.url(), &["date4"]);
    cfg.headers = vec![];
    let e = GraphqlHandler::new(cfg)
        .unwrap()
        .ask_board()
        .await
        .unwrap_err();
    assert!(e.to_string().contains("HTTP 401: Not Authenticated"), "{e}");
}

#[tokio::test]
async fn an_exhausted_complexity_budget_is_back_pressure() {
    let sim = ferry_sim::spawn(SimConfig {
        rate_limit: u32::MAX,
        budget: Some(Budget {
            points: 100,
            window: Duration::from_secs(30),
            per_request: 10,
            per_mutation: 10,
        }),
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let mut cfg = config(sim.url(), &["text"]);
    cfg.board_id = None;
    let h = GraphqlHandler::new(cfg).unwrap();
    let batch = || {
        Batch::new(
            (0..5u64)
                .map(|i| Item::new(i.to_string(), i, json!({"id": 100 + i, "text": "x"})))
                .collect(),
        )
    };
    assert!(matches!(h.call(&batch()).await, BatchOutcome::Done(_)));
    match h.call(&batch()).await {
        BatchOutcome::Throttled { after, reason } => {
            let after = after.expect("the body names the wait");
            assert!(
                after > Duration::from_secs(20) && after <= Duration::from_secs(30),
                "{after:?}"
            );
            assert!(reason.contains("Complexity budget exhausted"), "{reason}");
        }
        other => panic!("read as {other:?}"),
    }
    assert_eq!(sim.stats().budget_exhausted, 1);
}

#[tokio::test]
async fn a_rate_limit_in_a_200_body_is_back_pressure_not_a_split() {
    // monday.com's older error format: top-level fields, the wait in `error_data`.
    let url = canned(
        r#"{"error_message":"Rate limit exceeded","error_code":"RATE_LIMIT_EXCEEDED","error_data":{"retry_in_seconds":2},"status_code":429}"#,
    )
    .await;
    let mut cfg = config(url, &["text"]);
    cfg.board_id = None;
    let h = GraphqlHandler::new(cfg).unwrap();
    let batch = Batch::new(vec![Item::new("1", 0, json!({"id": 1, "text": "x"}))]);
    match h.call(&batch).await {
        BatchOutcome::Throttled { after, reason } => {
            assert_eq!(after, Some(Duration::from_secs(2)));
            assert!(reason.contains("Rate limit exceeded"), "{reason}");
        }
        other => panic!("read as {other:?}"),
    }
}
