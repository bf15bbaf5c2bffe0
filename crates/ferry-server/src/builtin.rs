//! Handlers built into the service besides the models: [`Echo`], the no-op handler.

use ferry_core::{Batch, BatchOutcome, BoxFuture, Handler};
use serde_json::Value;

/// The no-op handler `echo`: every item succeeds at once with its own payload as the result.
/// It measures what the service itself costs (store, claims, engine, results) and serves
/// tests that need to see which payload produced which result.
#[derive(Debug, Clone, Copy, Default)]
pub struct Echo;

impl Handler<Value, Value> for Echo {
    fn call<'a>(&'a self, batch: &'a Batch<Value>) -> BoxFuture<'a, BatchOutcome<Value>> {
        let results: Vec<Value> = batch.payloads().cloned().collect();
        Box::pin(async move { BatchOutcome::ok(results) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_core::Item;

    #[tokio::test]
    async fn echo_returns_each_payload() {
        let batch = Batch::new(vec![
            Item::new("a", 0, Value::from(1)),
            Item::new("b", 1, Value::from("x")),
        ]);
        match Echo.call(&batch).await {
            BatchOutcome::Done(items) => {
                let got: Vec<Value> = items
                    .into_iter()
                    .map(|o| match o {
                        ferry_core::ItemOutcome::Ok(v) => v,
                        other => panic!("expected Ok, got {other:?}"),
                    })
                    .collect();
                assert_eq!(got, vec![Value::from(1), Value::from("x")]);
            }
            other => panic!("expected Done, got {other:?}"),
        }
    }
}
