//! `HttpHandler` end to end against a tiny HTTP/1.1 server on `127.0.0.1:0` that records
//! each request and answers with scripted responses.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use ferry_connectors::http::{HttpConfig, HttpHandler};
use ferry_core::{Batch, BatchOutcome, Handler, Item, ItemOutcome};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

/// A request as the server saw it.
#[derive(Debug)]
struct Received {
    /// e.g. `POST /orders/a HTTP/1.1`.
    request_line: String,
    /// Lower-cased names.
    headers: Vec<(String, String)>,
    body: String,
}

impl Received {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A scripted answer: status, extra headers, body.
struct Reply(u16, &'static [(&'static str, &'static str)], &'static str);

/// Serves `replies` in order, one per connection, and records every request.
async fn serve(replies: Vec<Reply>) -> (String, mpsc::UnboundedReceiver<Received>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        for Reply(status, headers, body) in replies {
            let (stream, _) = listener.accept().await.unwrap();
            let (read, mut write) = stream.into_split();
            let mut read = BufReader::new(read);
            let mut request_line = String::new();
            read.read_line(&mut request_line).await.unwrap();
            let mut received_headers = Vec::new();
            loop {
                let mut line = String::new();
                read.read_line(&mut line).await.unwrap();
                let line = line.trim_end();
                if line.is_empty() {
                    break;
                }
                let (name, value) = line.split_once(':').unwrap();
                received_headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
            }
            let length: usize = received_headers
                .iter()
                .find(|(n, _)| n == "content-length")
                .map_or(0, |(_, v)| v.parse().unwrap());
            let mut received = vec![0; length];
            read.read_exact(&mut received).await.unwrap();
            tx.send(Received {
                request_line: request_line.trim_end().to_owned(),
                headers: received_headers,
                body: String::from_utf8(received).unwrap(),
            })
            .unwrap();
            let mut response = format!(
                "HTTP/1.1 {status} X\r\ncontent-length: {}\r\nconnection: close\r\n",
                body.len()
            );
            for (name, value) in headers {
                response.push_str(&format!("{name}: {value}\r\n"));
            }
            response.push_str("\r\n");
            response.push_str(body);
            write.write_all(response.as_bytes()).await.unwrap();
            write.shutdown().await.unwrap();
        }
    });
    (format!("http://{addr}"), rx)
}

fn batch(items: Vec<Item<Value>>) -> Batch<Value> {
    Batch::new(items)
}

fn orders(n: u64) -> Vec<Item<Value>> {
    (0..n)
        .map(|i| {
            Item::new(
                format!("k{i}"),
                i,
                json!({"id": i, "name": format!("n{i}")}),
            )
        })
        .collect()
}

fn handler(url: String) -> HttpHandler {
    HttpHandler::new(HttpConfig {
        method: "POST".into(),
        url: format!("{url}/boards/{{{{ board }}}}/items"),
        headers: vec![
            ("Authorization".into(), "Bearer {{ token }}".into()),
            ("X-First-Key".into(), "{{ keys[0] }}".into()),
            ("X-Tag".into(), "static".into()),
            ("X-Tag".into(), "board-{{ board }}".into()),
        ],
        body: r#"{"board": {{ board }}, "rows": [{% for it in items %}{"key": {{ keys[loop.index0] | json }}, "name": {{ it.name | json }}}{% if not loop.last %}, {% endif %}{% endfor %}]}"#.into(),
        vars: serde_json::from_value(json!({"board": 42, "token": "s3cret-token"})).unwrap(),
    })
    .unwrap()
}

#[tokio::test]
async fn one_request_per_batch_renders_items_into_the_body() {
    let (url, mut requests) = serve(vec![Reply(200, &[], r#"{"ok": true}"#)]).await;
    let h = handler(url);
    let outcome = h.call(&batch(orders(3))).await;
    assert_eq!(outcome, BatchOutcome::ok(vec![json!({"ok": true}); 3]));
    let got = requests.recv().await.unwrap();
    assert_eq!(got.request_line, "POST /boards/42/items HTTP/1.1");
    assert_eq!(got.header("authorization"), Some("Bearer s3cret-token"));
    assert_eq!(got.header("x-first-key"), Some("k0"));
    assert_eq!(got.header("content-type"), Some("application/json"));
    let tags: Vec<&str> = got
        .headers
        .iter()
        .filter(|(n, _)| n == "x-tag")
        .map(|(_, v)| v.as_str())
        .collect();
    assert_eq!(tags, ["static", "board-42"]);
    let body: Value = serde_json::from_str(&got.body).unwrap();
    assert_eq!(
        body,
        json!({"board": 42, "rows": [
            {"key": "k0", "name": "n0"},
            {"key": "k1", "name": "n1"},
            {"key": "k2", "name": "n2"},
        ]})
    );
    assert!(requests.try_recv().is_err(), "one request for the batch");
}

#[tokio::test]
async fn per_item_results_with_an_error_element_fail_that_item() {
    let (url, _requests) = serve(vec![Reply(
        200,
        &[("content-type", "application/json")],
        r#"[{"id": 1}, {"error": "name taken"}, {"id": 3}]"#,
    )])
    .await;
    let outcome = handler(url).call(&batch(orders(3))).await;
    assert_eq!(
        outcome,
        BatchOutcome::Done(vec![
            ItemOutcome::Ok(json!({"id": 1})),
            ItemOutcome::Fatal("name taken".into()),
            ItemOutcome::Ok(json!({"id": 3})),
        ])
    );
}

#[tokio::test]
async fn status_codes_map_to_throttled_retry_and_fatal() {
    let (url, _requests) = serve(vec![
        Reply(429, &[("retry-after", "2")], "slow down"),
        Reply(500, &[], "oops"),
        Reply(400, &[], r#"{"message": "board 42 is archived"}"#),
    ])
    .await;
    let h = handler(url);
    match h.call(&batch(orders(2))).await {
        BatchOutcome::Throttled { after, .. } => assert_eq!(after, Some(Duration::from_secs(2))),
        other => panic!("429: {other:?}"),
    }
    assert!(matches!(
        h.call(&batch(orders(2))).await,
        BatchOutcome::Retry { after: None, .. }
    ));
    match h.call(&batch(orders(2))).await {
        BatchOutcome::Fatal { reason } => assert_eq!(reason, "HTTP 400: board 42 is archived"),
        other => panic!("400: {other:?}"),
    }
    assert_eq!(h.counters().ambiguous(), 0);
}

#[tokio::test]
async fn a_row_that_cannot_be_rendered_splits_the_batch_then_fails_alone() {
    let (url, mut requests) = serve(vec![]).await;
    let h = handler(url);
    let mut items = orders(3);
    items[1] = Item::new("bad-row", 1, json!({"id": 1}));
    match h.call(&batch(items)).await {
        BatchOutcome::Split { reason } => assert!(reason.contains("handler.body"), "{reason}"),
        other => panic!("{other:?}"),
    }
    match h
        .call(&batch(vec![Item::new("bad-row", 1, json!({"id": 1}))]))
        .await
    {
        BatchOutcome::Fatal { reason } => {
            assert!(reason.contains("for item `bad-row`"), "{reason}")
        }
        other => panic!("{other:?}"),
    }
    assert!(requests.try_recv().is_err(), "nothing was sent");
}

#[tokio::test]
async fn dry_runs_mask_secrets() {
    let h = handler("http://127.0.0.1:9".into());
    let text = h.describe_request(&orders(2));
    assert!(!text.contains("s3cret-token"), "{text}");
    assert!(
        text.starts_with("POST http://127.0.0.1:9/boards/42/items"),
        "{text}"
    );
    assert!(text.contains("Authorization: ***"), "{text}");
    assert!(text.contains(r#""name": "n1""#), "{text}");
}

#[tokio::test]
async fn a_connection_refused_is_a_retry_and_fails_the_preflight() {
    // Bind then drop: the port is (almost certainly) closed.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let h = handler(url);
    assert!(h.preflight().await.is_err());
    assert!(matches!(
        h.call(&batch(orders(1))).await,
        BatchOutcome::Retry { .. }
    ));
    assert_eq!(h.counters().ambiguous(), 0, "nothing reached the target");
}
