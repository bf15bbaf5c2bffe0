//! Items, keys, priorities and batches: the values that travel through the engine.
//!
//! An [`Item`] is owned by exactly one place at a time (a buffer, a batch, a settled
//! outcome), which is how the engine makes "every accepted item ends exactly once" hold by
//! construction; the ledger counts the moves and the tests check them.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use crate::error::Error;

/// A stable identity for an item: used for idempotency, resume and de-duplication.
///
/// Cheap to clone: a shared string. The empty key ([`Key::empty`], or `Key::from("")`)
/// holds no string at all, so cloning and dropping it touch no reference count (for
/// producers that push many items whose identity is their index, say).
#[derive(Clone, Default)]
pub struct Key(Option<Arc<str>>);

impl Key {
    /// The empty key, `""`.
    pub const fn empty() -> Self {
        Key(None)
    }

    /// The key as a string slice.
    pub fn as_str(&self) -> &str {
        self.0.as_deref().unwrap_or("")
    }
}

impl PartialEq for Key {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for Key {}

impl PartialOrd for Key {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Key {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.as_str().cmp(other.as_str())
    }
}

impl std::hash::Hash for Key {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.as_str().hash(state);
    }
}

impl Serialize for Key {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Key::from)
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<&str> for Key {
    fn from(s: &str) -> Self {
        Key((!s.is_empty()).then(|| Arc::from(s)))
    }
}

impl From<String> for Key {
    fn from(s: String) -> Self {
        Key((!s.is_empty()).then(|| Arc::from(s)))
    }
}

impl From<u64> for Key {
    fn from(n: u64) -> Self {
        Key::from(n.to_string())
    }
}

/// How soon an item must leave, and the one priority vocabulary of the whole project: the
/// engine orders items by it, the job store queues jobs by it, and the service's API
/// speaks it (`"low"`, `"medium"`, `"high"`).
///
/// The derived order makes `High` the greatest (`Low < Medium < High`); higher priorities
/// board first and have shorter maximum waits (see [`FlushPolicy`](crate::FlushPolicy)):
///
/// | priority | boards | default `max_wait` | old name |
/// |---|---|---|---|
/// | `High` | first; read even while the buffer is full | 20 ms | `urgent` |
/// | `Medium` (default) | after `High` | 1 s | `normal` (the old default) |
/// | `Low` | last | 5 s | (none) |
///
/// The rule for the rename: names map by meaning, not by position. The old default
/// (`normal`) is `Medium` and keeps its wait; the old top level (`urgent`) is `High`. The
/// old middle level (`high`, 200 ms) has no counterpart: it reads as `High`. Serde accepts
/// the old names `"normal"` and `"urgent"` as aliases, so files written before the rename
/// (dead-letter files, job files) still read; it always writes the new names.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Priority {
    /// Boards after every other priority and waits longest.
    Low = 0,
    /// The default.
    #[default]
    #[serde(alias = "normal")]
    Medium = 1,
    /// Boards before everything else and never waits behind lower priorities.
    #[serde(alias = "urgent")]
    High = 2,
}

impl Priority {
    /// All priorities, highest first: the order in which items board a batch.
    pub const DESCENDING: [Priority; 3] = [Priority::High, Priority::Medium, Priority::Low];

    /// Index into per-priority arrays (`Low` = 0, `Medium` = 1, `High` = 2).
    pub fn index(self) -> usize {
        self as usize
    }

    /// The priority's lowercase name (`"low"`, `"medium"`, `"high"`).
    pub fn as_str(self) -> &'static str {
        match self {
            Priority::Low => "low",
            Priority::Medium => "medium",
            Priority::High => "high",
        }
    }
}

impl fmt::Display for Priority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Parses the lowercase names and, like serde, the old aliases `normal` (= `Medium`) and
/// `urgent` (= `High`). Any other name is [`Error::InvalidConfig`] with the key `priority`
/// and a message listing the names.
impl std::str::FromStr for Priority {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "low" => Ok(Priority::Low),
            "medium" | "normal" => Ok(Priority::Medium),
            "high" | "urgent" => Ok(Priority::High),
            other => Err(Error::config(
                "priority",
                format!("unknown priority `{other}`: expected one of `high`, `medium`, `low`"),
            )),
        }
    }
}

/// One unit of work: a payload with a key, an index, a priority and a byte size.
///
/// The engine adds bookkeeping (when it was accepted, how many calls included it, how many
/// failures were charged to it) that handlers can read but not change.
#[derive(Debug, Clone)]
pub struct Item<T> {
    pub(crate) key: Key,
    pub(crate) index: u64,
    pub(crate) priority: Priority,
    pub(crate) bytes: usize,
    pub(crate) payload: T,
    pub(crate) accepted_at: Option<Instant>,
    pub(crate) attempts: u32,
    pub(crate) failures: u32,
}

impl<T> Item<T> {
    /// A medium-priority item whose byte size is the size of `T` in memory. Use
    /// [`with_bytes`](Self::with_bytes) when the payload owns heap data that should count
    /// toward memory limits and `max_bytes`.
    pub fn new(key: impl Into<Key>, index: u64, payload: T) -> Self {
        Item {
            key: key.into(),
            index,
            priority: Priority::Medium,
            bytes: std::mem::size_of::<T>().max(1),
            payload,
            accepted_at: None,
            attempts: 0,
            failures: 0,
        }
    }

    /// Sets the priority (default [`Priority::Medium`]).
    pub fn with_priority(mut self, priority: Priority) -> Self {
        self.priority = priority;
        self
    }

    /// Sets the byte size used by `max_bytes` and the memory watermarks
    /// (default `size_of::<T>()`).
    pub fn with_bytes(mut self, bytes: usize) -> Self {
        self.bytes = bytes.max(1);
        self
    }

    /// The item's key.
    pub fn key(&self) -> &Key {
        &self.key
    }

    /// The item's position in its source (row number, sequence number).
    pub fn index(&self) -> u64 {
        self.index
    }

    /// The item's priority.
    pub fn priority(&self) -> Priority {
        self.priority
    }

    /// The byte size counted against `max_bytes` and the memory watermarks.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// The payload.
    pub fn payload(&self) -> &T {
        &self.payload
    }

    /// Gives up the item and returns its payload.
    pub fn into_payload(self) -> T {
        self.payload
    }

    /// How many handler calls have included this item so far (the current one included,
    /// while a handler runs).
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// When the engine accepted the item (`None` before it was pushed).
    pub fn accepted_at(&self) -> Option<Instant> {
        self.accepted_at
    }
}

/// A group of items that travel together to a handler.
#[derive(Debug)]
pub struct Batch<T> {
    pub(crate) items: Vec<Item<T>>,
    /// Batch-level retryable failures at this size, refunded to the items when the batch is
    /// split (a failure of a mixed batch is not any one item's fault).
    pub(crate) level_failures: u32,
    pub(crate) bytes: usize,
    /// Whether this batch carries the batch-size controller's probe size.
    pub(crate) probe: bool,
    /// Calls in flight when this batch's last call left, itself included.
    pub(crate) sent_with: usize,
    /// The confirmed batch size when this batch's last call left: a batch no larger was not
    /// testing the size.
    pub(crate) sent_size: usize,
    /// Whether calls that timed out queued at the target were still counted as holding a
    /// slot there when this batch's last call left.
    pub(crate) sent_behind: bool,
    /// When this batch's last call left (the engine counts every call but a probe among
    /// those whose rounds slow start waits for).
    pub(crate) sent_at: Option<Instant>,
    /// Times it came back uncharged (throttled, or a crowded timeout): grows its wait.
    pub(crate) requeues: u32,
    /// Set on a test call of an isolation search (`engine::isolate`).
    pub(crate) suspects: Option<Suspects>,
}

/// Marks a batch as a test call of an isolation search: its first `count` items are the
/// suspects under test; the rest, if any, are fresh items topped up to the batch size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Suspects {
    /// The search this test belongs to.
    pub(crate) search: u64,
    /// How many of the batch's first items are under test.
    pub(crate) count: usize,
}

impl<T> Batch<T> {
    /// A batch of `items`, as the engine would send it (for calling a [`Handler`] directly,
    /// in a test or a benchmark).
    ///
    /// [`Handler`]: crate::Handler
    pub fn new(items: Vec<Item<T>>) -> Self {
        Self::from_items(items)
    }

    pub(crate) fn from_items(items: Vec<Item<T>>) -> Self {
        let bytes = items.iter().map(|i| i.bytes).sum();
        Batch {
            items,
            level_failures: 0,
            bytes,
            probe: false,
            sent_with: 0,
            sent_size: 0,
            sent_behind: false,
            sent_at: None,
            requeues: 0,
            suspects: None,
        }
    }

    /// Appends `other`'s items after this batch's own.
    pub(crate) fn append(&mut self, other: Batch<T>) {
        self.bytes += other.bytes;
        self.items.extend(other.items);
    }

    /// The batch in parts of at most `size` items (itself when it fits), in order, each
    /// keeping its whole-batch failures and requeue count.
    pub(crate) fn into_parts(self, size: usize) -> Vec<Batch<T>> {
        let size = size.max(1);
        if self.items.len() <= size {
            return vec![self];
        }
        let (requeues, level_failures) = (self.requeues, self.level_failures);
        let mut parts = Vec::with_capacity(self.items.len().div_ceil(size));
        let mut items = self.items;
        while !items.is_empty() {
            let rest = items.split_off(size.min(items.len()));
            let mut part = Batch::from_items(items);
            part.requeues = requeues;
            part.level_failures = level_failures;
            parts.push(part);
            items = rest;
        }
        parts
    }

    /// The items, in boarding order (highest priority first).
    pub fn items(&self) -> &[Item<T>] {
        &self.items
    }

    /// Number of items.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether the batch has no items (the engine never sends an empty batch).
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Sum of the items' byte sizes.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// The highest priority among the items.
    pub fn priority(&self) -> Priority {
        self.items
            .iter()
            .map(|i| i.priority)
            .max()
            .unwrap_or_default()
    }

    /// Iterates over the payloads.
    pub fn payloads(&self) -> impl Iterator<Item = &T> {
        self.items.iter().map(|i| &i.payload)
    }

    pub(crate) fn into_items(self) -> Vec<Item<T>> {
        self.items
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_keep_order_failures_and_requeues() {
        let mut batch = Batch::from_items((0..7u64).map(|i| Item::new(i, i, i)).collect());
        batch.requeues = 2;
        batch.level_failures = 1;
        let parts = batch.into_parts(3);
        let sizes: Vec<_> = parts.iter().map(|p| p.len()).collect();
        assert_eq!(sizes, [3, 3, 1]);
        assert!(parts
            .iter()
            .all(|p| p.requeues == 2 && p.level_failures == 1));
        let keys: Vec<u64> = parts
            .into_iter()
            .flat_map(|p| p.into_items())
            .map(|i| i.payload)
            .collect();
        assert_eq!(keys, (0..7).collect::<Vec<_>>());
        let whole = Batch::from_items(vec![Item::new(1u64, 1u64, 1)]).into_parts(3);
        assert_eq!(whole.len(), 1);
    }

    #[test]
    fn priorities_order_high_greatest() {
        assert!(Priority::High > Priority::Medium);
        assert!(Priority::Medium > Priority::Low);
        assert_eq!(Priority::default(), Priority::Medium);
        assert_eq!(
            Priority::DESCENDING,
            [Priority::High, Priority::Medium, Priority::Low]
        );
        let mut sorted = Priority::DESCENDING;
        sorted.sort();
        assert_eq!(sorted, [Priority::Low, Priority::Medium, Priority::High]);
        assert_eq!(sorted.map(Priority::index), [0, 1, 2]);
    }

    /// Every spelling, how serde and `FromStr` read it, and what is written back.
    #[test]
    fn priority_names_and_aliases() {
        let table = [
            ("low", Some(Priority::Low)),
            ("medium", Some(Priority::Medium)),
            ("high", Some(Priority::High)),
            ("normal", Some(Priority::Medium)),
            ("urgent", Some(Priority::High)),
            ("High", None),
            ("critical", None),
            ("", None),
        ];
        for (name, want) in table {
            let json = format!("\"{name}\"");
            let read: Option<Priority> = serde_json::from_str(&json).ok();
            assert_eq!(read, want, "serde {name:?}");
            assert_eq!(name.parse::<Priority>().ok(), want, "FromStr {name:?}");
        }
        for p in Priority::DESCENDING {
            let written = serde_json::to_string(&p).unwrap();
            assert_eq!(written, format!("\"{}\"", p.as_str()));
            assert_eq!(p.to_string(), p.as_str());
            assert_eq!(p.as_str().parse::<Priority>().ok(), Some(p));
        }
        let err = "critical".parse::<Priority>().unwrap_err().to_string();
        assert!(err.contains("critical") && err.contains("medium"), "{err}");
    }

    #[test]
    fn batch_priority_and_bytes() {
        let b = Batch::from_items(vec![
            Item::new("a", 0, ()).with_bytes(10),
            Item::new("b", 1, ())
                .with_bytes(5)
                .with_priority(Priority::High),
        ]);
        assert_eq!(b.len(), 2);
        assert_eq!(b.bytes(), 15);
        assert_eq!(b.priority(), Priority::High);
    }

    #[test]
    fn keys_from_numbers_and_strings_compare() {
        assert_eq!(Key::from(7u64), Key::from("7"));
        assert_eq!(Key::from("x").to_string(), "x");
    }

    /// The empty key is `""`, however it was made: equal, ordered, hashed and serialised
    /// as that string.
    #[test]
    fn the_empty_key_behaves_as_its_string() {
        use std::collections::HashSet;
        let (e, s, d) = (Key::empty(), Key::from(String::new()), Key::default());
        assert!(e == s && s == d && e == Key::from(""));
        assert_eq!(format!("[{e}] {e:?}"), "[] \"\"");
        assert!(Key::empty() < Key::from("a"));
        let set: HashSet<Key> = [e.clone(), s, d, Key::from("a")].into_iter().collect();
        assert_eq!(set.len(), 2);
        assert_eq!(serde_json::to_string(&e).unwrap(), "\"\"");
        let back: Key = serde_json::from_str("\"\"").unwrap();
        assert_eq!(back, e);
        let a: Key = serde_json::from_str("\"a-7\"").unwrap();
        assert_eq!(
            (a.as_str(), serde_json::to_string(&a).unwrap().as_str()),
            ("a-7", "\"a-7\"")
        );
    }
}
