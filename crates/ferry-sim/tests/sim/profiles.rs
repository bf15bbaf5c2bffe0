//! Each profile's behaviour, driven in-process through the simulator's app on a paused
//! clock ([`AppTransport`]), and each profile's printed ceiling against what the fixed
//! client told its settings gets: within a band, from below and from above.

use std::time::Duration;

use ferry_sim::{
    AppTransport, Budget, Column, ColumnType, FixedClient, Profile, Reply, SimConfig, SimState,
    Transport, Work,
};
use serde_json::{json, Value};
use tokio::time::Instant;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn sim(config: SimConfig) -> (SimState, AppTransport) {
    let state = SimState::new(config).expect("valid settings");
    let transport = AppTransport::new(state.clone());
    (state, transport)
}

/// Posts `query`; panics if the connection was dropped.
async fn post(t: &AppTransport, query: &str) -> Reply {
    t.post(json!({ "query": query }).to_string())
        .await
        .expect("an answer")
}

/// A mutation of one alias per `(item id, column values)`.
fn mutation(items: &[(u64, Value)]) -> String {
    let fields: Vec<String> = items
        .iter()
        .enumerate()
        .map(|(i, (id, cols))| {
            let literal = Value::String(cols.to_string()).to_string();
            format!("a{i}: change_multiple_column_values(item_id: {id}, board_id: 1, column_values: {literal}) {{ id }}")
        })
        .collect();
    format!("mutation {{ {} }}", fields.join(" "))
}

/// `n` well-shaped items from id `first`.
fn items(first: u64, n: u64) -> String {
    let work = Work::default();
    mutation(
        &(0..n)
            .map(|i| (first + i, work.item(i as usize).1))
            .collect::<Vec<_>>(),
    )
}

/// Posts `query` and returns the answer and the virtual time it took.
async fn timed(t: &AppTransport, query: &str) -> (Reply, Duration) {
    let t0 = Instant::now();
    let reply = post(t, query).await;
    (reply, t0.elapsed())
}

#[tokio::test(start_paused = true)]
async fn gateway_queue_answers_504_from_arrival_and_the_slot_stays_held() {
    // One slot, 1.5 s gateway timeout; 23 mutations cost 80 + 23 × 60 = 1,460 ms.
    let (state, t) = sim(SimConfig {
        slots: 1,
        ..Profile::GatewayQueue.config()
    });
    let big = items(1, 23);
    let (a, b, c) = tokio::join!(timed(&t, &big), timed(&t, &big), timed(&t, &big));
    assert_eq!((a.0.status, a.1), (200, ms(1_460)));
    // The two that queued behind it answer 504 when 1.5 s have passed since they arrived...
    assert_eq!((b.0.status, b.1), (504, ms(1_500)));
    assert_eq!((c.0.status, c.1), (504, ms(1_500)));
    assert_eq!(b.0.body, json!({"error_message": "Gateway Timeout"}));
    // ...but each still takes the slot in turn for its whole cost: 1,460 to 2,920 and
    // 2,920 to 4,380 ms. A small request arriving now (1.5 s) waits for both and times out.
    let (d, took) = timed(&t, &items(100, 1)).await;
    assert_eq!((d.status, took), (504, ms(1_500)));
    // At 4,380 ms the slot is free again (d, which got it then, holds it 140 ms more).
    tokio::time::sleep_until(Instant::now() + ms(1_380 + 140)).await;
    let (e, took) = timed(&t, &items(200, 1)).await;
    assert_eq!((e.status, took), (200, ms(140)));
    let stats = state.stats();
    assert_eq!(stats.gateway_timeouts, 3);
    // The work behind every 504 was done and applied, as behind a real gateway.
    assert_eq!(stats.mutations_applied, 23 * 3 + 2);
    assert_eq!(stats.items[&1].applies, 3);
}

#[tokio::test(start_paused = true)]
async fn token_bucket_answers_a_fractional_retry_after_and_admits_at_its_rate() {
    let (state, t) = sim(Profile::TokenBucket.config());
    let one = items(1, 1);
    assert_eq!(post(&t, &one).await.status, 200);
    // The burst of 2 is spent by the first two; the first took 60 ms, refilling 0.48 token.
    assert_eq!(post(&t, &one).await.status, 200);
    let r = post(&t, &one).await;
    assert_eq!(r.status, 429);
    // (1 − 0.96) / 8 = 5 ms to the next token.
    assert_eq!(r.retry_after, Some(0.01));
    assert_eq!(
        r.body,
        json!({"error_message": "Rate limit exceeded", "retry_in_seconds": 0.01})
    );
    tokio::time::sleep(ms(5)).await;
    assert_eq!(post(&t, &one).await.status, 200);
    let r = post(&t, &one).await;
    // Empty again, 60 ms later: 0.48 token, 65 ms to the next.
    assert_eq!((r.status, r.retry_after), (429, Some(0.07)));

    // Hammered every 10 ms for 10 s, it admits 8 per second (plus what was left).
    state.reset();
    let t0 = Instant::now();
    let mut ok = 0;
    while t0.elapsed() < ms(10_000) {
        let send = t.clone();
        let q = one.clone();
        let h = tokio::spawn(async move { post(&send, &q).await.status });
        tokio::time::sleep(ms(10)).await;
        ok += u32::from(h.await.unwrap_or(0) == 200);
    }
    assert!((80..=83).contains(&ok), "{ok} admitted in 10 s");
}

#[tokio::test(start_paused = true)]
async fn an_exhausted_complexity_budget_answers_200_with_the_error_and_applies_nothing() {
    let (state, t) = sim(SimConfig {
        budget: Some(Budget {
            points: 500,
            window: ms(10_000),
            per_request: 10,
            per_mutation: 10,
        }),
        ..Profile::ComplexityBudget.config()
    });
    // 23 mutations cost 240 points: two fit in 500.
    assert_eq!(post(&t, &items(1, 23)).await.body["data"]["a0"]["id"], "1");
    assert_eq!(post(&t, &items(101, 23)).await.status, 200);
    tokio::time::sleep(ms(2_500)).await;
    let r = post(&t, &items(201, 23)).await;
    assert_eq!(r.status, 200);
    assert!(r.body.get("data").is_none(), "{}", r.body);
    let e = &r.body["errors"][0];
    assert_eq!(
        e["message"],
        "Complexity budget exhausted, query cost 240 budget remaining 20 out of 500 reset in 7 seconds"
    );
    assert_eq!(e["extensions"]["code"], "COMPLEXITY_BUDGET_EXHAUSTED");
    assert_eq!(e["extensions"]["retry_in_seconds"], 7);
    assert!(e.get("path").is_none());
    let stats = state.stats();
    assert_eq!((stats.budget_exhausted, stats.mutations_applied), (1, 46));
    assert!(!stats.items.contains_key(&201));
    // The next window takes it.
    tokio::time::sleep(ms(7_500)).await;
    assert_eq!(
        post(&t, &items(201, 23)).await.body["data"]["a22"]["id"],
        "223"
    );
    // A request over the whole budget never fits: a different error, with no retry.
    let r = post(&t, &items(301, 50)).await;
    let e = &r.body["errors"][0];
    assert_eq!(e["extensions"]["code"], "maxComplexityExceeded", "{e}");
    assert!(e["extensions"].get("retry_in_seconds").is_none());
    assert_eq!(state.stats().budget_exhausted, 2);
}

#[tokio::test(start_paused = true)]
async fn unnamed_poison_fails_the_whole_request_with_an_error_naming_no_alias() {
    let (state, t) = sim(Profile::Poison.config());
    let work = Work::default();
    let mut batch: Vec<(u64, Value)> = (0..5).map(|i| (i, work.item(i as usize).1)).collect();
    batch[3].1["country"]["countryCode"] = json!("INVALID");
    let r = post(&t, &mutation(&batch)).await;
    assert_eq!(r.status, 200);
    assert!(r.body.get("data").is_none(), "{}", r.body);
    let errors = r.body["errors"].as_array().expect("errors");
    assert_eq!(errors.len(), 1);
    assert!(errors[0].get("path").is_none());
    let text = errors[0].to_string();
    assert!(!text.contains("a3") && !text.contains("country"), "{text}");
    let stats = state.stats();
    assert_eq!((stats.poisoned_requests, stats.mutations_applied), (1, 0));
    // Without the poisoned row, the rest goes through.
    batch.remove(3);
    let r = post(&t, &mutation(&batch)).await;
    assert_eq!(r.body["data"]["a3"]["id"], "4");
    assert_eq!(state.stats().mutations_applied, 4);
}

#[tokio::test(start_paused = true)]
async fn the_columns_query_answers_the_board_with_types() {
    let (state, t) = sim(SimConfig::default());
    let r = post(
        &t,
        "query { boards(ids: [8709134353]) { id columns { id type title } } }",
    )
    .await;
    assert_eq!(r.status, 200);
    let board = &r.body["data"]["boards"][0];
    assert_eq!(board["id"], "8709134353");
    let columns = board["columns"].as_array().expect("columns");
    assert!(columns.contains(&json!({"id": "date4", "type": "date", "title": "FOB Date"})));
    assert!(columns.contains(&json!({"id": "country", "type": "country", "title": "Country"})));
    assert_eq!(state.stats().column_queries, 1);

    let (_, t) = sim(SimConfig {
        columns: vec![Column::new("due", ColumnType::Date, "Due")],
        ..SimConfig::default()
    });
    let r = post(&t, "query Q { boards(ids: 1) { columns { type id } } }").await;
    assert_eq!(
        r.body,
        json!({"data": {"boards": [{"columns": [{"type": "date", "id": "due"}]}]}})
    );
}

#[tokio::test(start_paused = true)]
async fn wrongly_shaped_values_are_rejected_per_alias_and_nothing_of_that_item_applied() {
    let (state, t) = sim(Profile::TokenBucket.config());
    let good = json!({"date4": {"date": "2025-03-04"}, "country": {"countryCode": "DE", "countryName": "Germany"}});
    let cases = [
        (json!({"date4": "2025-03-04"}), "date4", "date"),
        (
            json!({"date4": {"date": "2025-03-04"}, "country": "Germany"}),
            "country",
            "country",
        ),
        (
            json!({"country": {"countryCode": "Germany", "countryName": "Germany"}}),
            "country",
            "country",
        ),
        (json!({"numbers": "lots"}), "numbers", "numbers"),
        (json!({"status": {"index": "x"}}), "status", "status"),
        (json!({"email": "a@b.example"}), "email", "email"),
        (
            json!({"person": {"personsAndTeams": [{"id": 1, "kind": "robot"}]}}),
            "person",
            "people",
        ),
        (json!({"long_text": {"txt": 1}}), "long_text", "long_text"),
        (json!({"text": {"x": 1}}), "text", "text"),
    ];
    for (values, column, kind) in cases {
        tokio::time::sleep(ms(1_000)).await;
        let r = post(&t, &mutation(&[(1, good.clone()), (2, values.clone())])).await;
        assert_eq!(r.body["data"]["a0"]["id"], "1", "{values}");
        assert_eq!(r.body["data"]["a1"], Value::Null, "{values}");
        let e = &r.body["errors"][0];
        assert_eq!(e["path"], json!(["a1"]), "{values}");
        assert_eq!(e["extensions"]["code"], "ColumnValueException");
        assert_eq!(e["extensions"]["error_data"]["column_id"], column);
        assert_eq!(e["extensions"]["error_data"]["column_type"], kind);
        assert!(
            e["message"].as_str().is_some_and(|m| m.contains(column)),
            "{e}"
        );
    }
    tokio::time::sleep(ms(1_000)).await;
    let r = post(&t, &mutation(&[(3, json!({"colour": "red"}))])).await;
    assert_eq!(
        r.body["errors"][0]["extensions"]["code"],
        "InvalidColumnIdException"
    );
    let stats = state.stats();
    assert_eq!(stats.value_rejected, 10);
    assert!(!stats.items.contains_key(&2) && !stats.items.contains_key(&3));
    assert_eq!(stats.items[&1].values, *good.as_object().expect("object"));
    // Every shape the table says a type takes is applied.
    tokio::time::sleep(ms(1_000)).await;
    let all = json!({
        "name": "Item", "text": 5, "long_text": {"text": "notes"}, "numbers": "4.5",
        "status": {"label": "Done"}, "email": {"email": "a@b.example", "text": "A"},
        "person": {"personsAndTeams": [{"id": 4, "kind": "team"}]},
        "date4": {"date": "2024-02-29", "time": "10:00:00"}, "country": "",
    });
    let r = post(&t, &mutation(&[(4, all)])).await;
    assert_eq!(r.body, json!({"data": {"a0": {"id": "4"}}}));
}

/// Runs the fixed client told `profile`'s plan over `n` items and returns its items/s as a
/// share of the printed ceiling.
async fn share_of_ceiling(profile: Profile, n: usize) -> f64 {
    let config = profile.config();
    let ceiling = config.ceiling();
    let plan = config.plan();
    let (state, t) = sim(config);
    let work = Work {
        items: n,
        ..Work::default()
    };
    let report = FixedClient { plan }.run(t, &work).await;
    assert_eq!(report.confirmed, n, "{profile}: {report:?}");
    assert_eq!(state.stats().items.len(), n, "{profile}");
    report.items_per_s() / ceiling
}

#[tokio::test(start_paused = true)]
async fn each_profiles_ceiling_is_what_a_fixed_client_told_its_settings_gets() {
    for profile in Profile::ALL {
        let share = share_of_ceiling(profile, 3_000).await;
        assert!(
            (0.93..=1.0).contains(&share),
            "{profile}: the fixed client got {share:.3} of the printed ceiling"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn the_fixed_client_loses_nothing_to_faults_and_bisects_unnamed_poison() {
    let config = SimConfig {
        error_rate: 0.05,
        drop_rate: 0.05,
        seed: 3,
        ..Profile::Poison.config()
    };
    let plan = config.plan();
    let (state, t) = sim(config);
    let work = Work {
        items: 2_000,
        poison_every: Some(500),
        ..Work::default()
    };
    let report = FixedClient { plan }.run(t, &work).await;
    let poisoned: Vec<u64> = (0..2_000)
        .filter(|&i| work.poisoned(i))
        .map(|i| work.item(i).0)
        .collect();
    let mut rejected = report.rejected.clone();
    rejected.sort_unstable();
    assert_eq!(rejected, poisoned);
    assert_eq!(report.confirmed, 2_000 - 4);
    assert!(
        report.server_errors > 0 && report.dropped > 0 && report.splits >= 4,
        "{report:?}"
    );
    let stats = state.stats();
    assert_eq!(stats.items.len(), 2_000 - 4);
    assert!(poisoned.iter().all(|id| !stats.items.contains_key(id)));
}
