//! [`Cached`]: a result cache in front of a deterministic handler, keyed by a hash of the
//! item's content, as KubeSentiment caches predictions.
//!
//! * Key: SHA-256 of the handler's name and the payload (a string's bytes as they are, any
//!   other JSON value in its serialized form), so the same text sent in any job by any tenant
//!   is computed once per TTL. Only handlers whose result depends on nothing but the payload
//!   may be wrapped (the models are; a handler that calls an API is not).
//! * A hit is served without calling the handler; when the result is a JSON object with a
//!   `cached` field (the sentiment prediction's shape), the served copy says `"cached": true`.
//! * Entries live `ttl` (KubeSentiment: `cache_ttl_seconds = 3600`) and at most `capacity` are
//!   kept; the oldest is evicted first. Only successful results are cached.
//! * A batch with some hits sends only its misses to the handler; if that call fails as a
//!   whole, the whole batch takes that outcome (the engine retries or splits it, and the
//!   hits are served again from the cache).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ferry_core::{Batch, BatchOutcome, BoxFuture, Handler, ItemOutcome};
use serde_json::Value;
use sha2::{Digest, Sha256};
use tokio::time::Instant;

type Hash = [u8; 32];

/// The result cache in front of the built-in `sentiment` handler
/// ([`Handlers::builtin_with`](crate::Handlers::builtin_with)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheOptions {
    /// How long a result is served from the cache (default 1 hour, KubeSentiment's
    /// `cache_ttl_seconds = 3600`).
    pub ttl: Duration,
    /// Most results kept; the oldest is evicted first (default 100,000; KubeSentiment's
    /// `result_cache_max_size`). `0` turns the cache off.
    pub capacity: usize,
}

impl Default for CacheOptions {
    fn default() -> Self {
        CacheOptions {
            ttl: Duration::from_secs(3600),
            capacity: 100_000,
        }
    }
}

#[derive(Debug, Default)]
struct Entries {
    map: HashMap<Hash, (Instant, Value)>,
    order: VecDeque<(Instant, Hash)>,
}

/// A handler behind a content-hash result cache with a TTL; see the module docs.
#[derive(Debug)]
pub struct Cached<H> {
    inner: H,
    salt: String,
    ttl: Duration,
    capacity: usize,
    entries: Arc<Mutex<Entries>>,
}

impl<H> Cached<H> {
    /// Caches `inner`'s results for `ttl`, at most `capacity` of them; `name` (the handler's
    /// registered name) is part of every key.
    pub fn new(name: &str, inner: H, ttl: Duration, capacity: usize) -> Self {
        Cached {
            inner,
            salt: name.to_owned(),
            ttl,
            capacity,
            entries: Arc::default(),
        }
    }

    fn key(&self, payload: &Value) -> Hash {
        let mut h = Sha256::new();
        h.update(self.salt.as_bytes());
        h.update([0]);
        match payload {
            Value::String(s) => {
                h.update([b's']);
                h.update(s.as_bytes());
            }
            other => {
                h.update([b'j']);
                h.update(other.to_string().as_bytes());
            }
        }
        h.finalize().into()
    }

    fn get(&self, key: &Hash, now: Instant) -> Option<Value> {
        let entries = self.entries.lock().ok()?;
        let (at, value) = entries.map.get(key)?;
        (now.duration_since(*at) < self.ttl).then(|| {
            let mut v = value.clone();
            if let Some(flag) = v.as_object_mut().and_then(|o| o.get_mut("cached")) {
                *flag = Value::Bool(true);
            }
            v
        })
    }

    fn put(&self, fresh: Vec<(Hash, Value)>, now: Instant) {
        if self.capacity == 0 || fresh.is_empty() {
            return;
        }
        let Ok(mut e) = self.entries.lock() else {
            return;
        };
        for (key, value) in fresh {
            e.map.insert(key, (now, value));
            e.order.push_back((now, key));
        }
        // Evict: expired first (the queue is in insertion order), then oldest over capacity.
        // A key inserted twice has two queue entries; only the one matching its stored time
        // removes it.
        while let Some(&(at, key)) = e.order.front() {
            let expired = now.duration_since(at) >= self.ttl;
            if !expired && e.map.len() <= self.capacity {
                break;
            }
            e.order.pop_front();
            if e.map.get(&key).is_some_and(|(stored, _)| *stored == at) {
                e.map.remove(&key);
            }
        }
    }

    /// Number of live entries (expired ones may linger until the next insert).
    pub fn len(&self) -> usize {
        self.entries.lock().map(|e| e.map.len()).unwrap_or(0)
    }

    /// Whether the cache holds nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl<H: Handler<Value, Value>> Handler<Value, Value> for Cached<H> {
    fn call<'a>(&'a self, batch: &'a Batch<Value>) -> BoxFuture<'a, BatchOutcome<Value>> {
        Box::pin(async move {
            let now = Instant::now();
            let keys: Vec<Hash> = batch.payloads().map(|p| self.key(p)).collect();
            let hits: Vec<Option<Value>> = keys.iter().map(|k| self.get(k, now)).collect();
            let misses: Vec<usize> = (0..hits.len()).filter(|&i| hits[i].is_none()).collect();
            if misses.is_empty() {
                return BatchOutcome::ok(hits.into_iter().flatten());
            }
            let outcome = if misses.len() == batch.len() {
                self.inner.call(batch).await
            } else {
                let sub = Batch::new(misses.iter().map(|&i| batch.items()[i].clone()).collect());
                self.inner.call(&sub).await
            };
            let BatchOutcome::Done(fresh) = outcome else {
                return outcome;
            };
            if fresh.len() != misses.len() {
                // The handler broke its contract; let the engine's own check report it.
                return BatchOutcome::Done(fresh);
            }
            let mut to_cache = Vec::new();
            let mut merged: Vec<Option<ItemOutcome<Value>>> =
                hits.into_iter().map(|h| h.map(ItemOutcome::Ok)).collect();
            for (&i, o) in misses.iter().zip(fresh) {
                if let ItemOutcome::Ok(v) = &o {
                    to_cache.push((keys[i], v.clone()));
                }
                merged[i] = Some(o);
            }
            self.put(to_cache, now);
            BatchOutcome::Done(merged.into_iter().flatten().collect())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_core::Item;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Uppercases strings, counting the items it computed; "bad" fails fatally.
    #[derive(Default)]
    struct Upper(Arc<AtomicUsize>);

    impl Handler<Value, Value> for Upper {
        fn call<'a>(&'a self, batch: &'a Batch<Value>) -> BoxFuture<'a, BatchOutcome<Value>> {
            self.0.fetch_add(batch.len(), Ordering::SeqCst);
            let out = batch
                .payloads()
                .map(|p| match p.as_str() {
                    Some("bad") => ItemOutcome::Fatal("bad".into()),
                    Some(s) => ItemOutcome::Ok(serde_json::json!({
                        "text": s.to_uppercase(), "cached": false
                    })),
                    None => ItemOutcome::Fatal("not a string".into()),
                })
                .collect();
            Box::pin(async move { BatchOutcome::Done(out) })
        }
    }

    fn batch(texts: &[&str]) -> Batch<Value> {
        Batch::new(
            texts
                .iter()
                .enumerate()
                .map(|(i, t)| Item::new(i.to_string(), i as u64, Value::from(*t)))
                .collect(),
        )
    }

    fn results(o: BatchOutcome<Value>) -> Vec<Result<Value, String>> {
        match o {
            BatchOutcome::Done(v) => v
                .into_iter()
                .map(|o| match o {
                    ItemOutcome::Ok(v) => Ok(v),
                    ItemOutcome::Retry(e) | ItemOutcome::Fatal(e) => Err(e),
                })
                .collect(),
            other => panic!("expected Done, got {other:?}"),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn hits_skip_the_handler_and_say_cached() {
        let calls = Arc::new(AtomicUsize::new(0));
        let c = Cached::new(
            "upper",
            Upper(Arc::clone(&calls)),
            Duration::from_secs(60),
            100,
        );
        let first = results(c.call(&batch(&["a", "b", "bad"])).await);
        assert_eq!(first[0].as_ref().unwrap()["cached"], false);
        assert!(first[2].is_err());
        assert_eq!(calls.load(Ordering::SeqCst), 3);
        // "a" and "b" hit, "c" and "bad" (failures are not cached) are computed, in place.
        let second = results(c.call(&batch(&["b", "c", "a", "bad"])).await);
        assert_eq!(calls.load(Ordering::SeqCst), 5);
        assert_eq!(second[0].as_ref().unwrap()["text"], "B");
        assert_eq!(second[0].as_ref().unwrap()["cached"], true);
        assert_eq!(second[1].as_ref().unwrap()["text"], "C");
        assert_eq!(second[1].as_ref().unwrap()["cached"], false);
        assert_eq!(second[2].as_ref().unwrap()["text"], "A");
        assert!(second[3].is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn entries_expire_after_the_ttl_and_capacity_evicts_the_oldest() {
        let calls = Arc::new(AtomicUsize::new(0));
        let c = Cached::new(
            "upper",
            Upper(Arc::clone(&calls)),
            Duration::from_secs(60),
            2,
        );
        c.call(&batch(&["a"])).await;
        tokio::time::advance(Duration::from_secs(30)).await;
        c.call(&batch(&["b", "c"])).await; // capacity 2: "a" goes
        assert_eq!(c.len(), 2);
        c.call(&batch(&["a"])).await;
        assert_eq!(
            calls.load(Ordering::SeqCst),
            4,
            "a was evicted and recomputed"
        );
        tokio::time::advance(Duration::from_secs(61)).await;
        c.call(&batch(&["c"])).await;
        assert_eq!(
            calls.load(Ordering::SeqCst),
            5,
            "c expired and was recomputed"
        );
    }

    #[test]
    fn keys_depend_on_the_handler_and_the_content() {
        let a = Cached::new("one", (), Duration::from_secs(1), 1);
        let b = Cached::new("two", (), Duration::from_secs(1), 1);
        let text = Value::from("same");
        assert_eq!(a.key(&text), a.key(&Value::from("same")));
        assert_ne!(a.key(&text), b.key(&text));
        assert_ne!(a.key(&Value::from("1")), a.key(&Value::from(1)));
    }
}
