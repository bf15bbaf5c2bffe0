//! What the `/v1` API reads: a submitted job and its items, a redrive, listing parameters.
//! Each type parses and checks its own input, answering problems that name the field.

use axum::extract::rejection::QueryRejection;
use axum::extract::Query;
use ferry_store::{NewItem, Priority};
use serde::Deserialize;
use serde_json::{Map, Value};
use utoipa::{IntoParams, ToSchema};

use super::job::{api_priority, PrioritySchema};
use crate::api::problem::Problem;

/// Default page size of every listing.
const DEFAULT_LIMIT: u64 = 100;
/// Largest page size of every listing.
const MAX_LIMIT: u64 = 1000;
/// Most item ids one redrive takes.
const MAX_REDRIVE: usize = 10_000;

/// `POST /v1/jobs`: a job to run.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct SubmitJob {
    /// The handler that processes the items (see `GET /v1/handlers`).
    #[schema(example = "echo")]
    pub(crate) handler: String,
    /// The items, in the order results are reported: each `{"key"?: string, "payload": any}`
    /// or a bare payload (keyed by its index).
    #[schema(min_items = 1)]
    pub(crate) items: Vec<ItemInput>,
    /// Parameters for the handler (default `{}`).
    #[serde(default)]
    pub(crate) params: Option<Map<String, Value>>,
    /// Queue priority (default `medium`).
    #[serde(default, deserialize_with = "api_priority")]
    #[schema(value_type = Option<PrioritySchema>)]
    pub(crate) priority: Option<Priority>,
}

/// One item of a submitted job: `{"key"?: string, "payload": any}`, or any other JSON value
/// as the payload itself (see the module docs).
#[derive(Debug, Deserialize)]
#[serde(transparent)]
pub(crate) struct ItemInput(pub(crate) Value);

/// The explicit form of an item: an object whose only members are `payload` and,
/// optionally, `key`.
#[derive(Debug, ToSchema)]
pub(crate) struct KeyedItem {
    /// Unique within the job (default: the item's index).
    key: Option<String>,
    /// What the handler receives.
    payload: Value,
}

impl utoipa::PartialSchema for ItemInput {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{AnyOfBuilder, Object, SchemaType};
        AnyOfBuilder::new()
            .item(utoipa::openapi::Ref::from_schema_name("KeyedItem"))
            .item(Object::with_type(SchemaType::AnyValue))
            .description(Some(
                "`{\"key\"?: string, \"payload\": any}` (an object with only those members), \
                 or any other JSON value as the payload itself, keyed by its index",
            ))
            .into()
    }
}

impl ToSchema for ItemInput {
    fn schemas(
        schemas: &mut Vec<(
            String,
            utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>,
        )>,
    ) {
        schemas.push((
            "KeyedItem".into(),
            <KeyedItem as utoipa::PartialSchema>::schema(),
        ));
    }
}

impl ItemInput {
    /// The item at `index`: its key (the index by default) and payload.
    pub(crate) fn into_item(self, index: usize) -> Result<NewItem, Problem> {
        let KeyedItem { key, payload } = self.keyed(index)?;
        Ok(NewItem {
            key: key.unwrap_or_else(|| index.to_string()),
            payload,
        })
    }

    /// The item in its explicit form: an object with `payload` and an optional string (or
    /// `null`) `key` is one already; any other value is a payload without a key.
    fn keyed(self, index: usize) -> Result<KeyedItem, Problem> {
        match self.0 {
            Value::Object(mut map)
                if map.contains_key("payload")
                    && map.keys().all(|k| k == "payload" || k == "key") =>
            {
                let payload = map.remove("payload").unwrap_or(Value::Null);
                let key = match map.remove("key") {
                    None | Some(Value::Null) => None,
                    Some(Value::String(k)) => Some(k),
                    Some(other) => {
                        return Err(Problem::invalid(format!(
                            "`items[{index}].key` must be a string, not {}",
                            kind(&other)
                        )))
                    }
                };
                Ok(KeyedItem { key, payload })
            }
            payload => Ok(KeyedItem { key: None, payload }),
        }
    }
}

/// A JSON value's type, for messages.
fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// `POST /v1/dead-letters/redrive`: dead letters to queue again.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RedriveRequest {
    /// Item ids from `GET /v1/dead-letters` (1 to 10,000).
    #[schema(value_type = Vec<i64>, min_items = 1, max_items = 10000)]
    item_ids: Vec<serde_json::Number>,
}

impl RedriveRequest {
    /// The ids as integers: JSON Schema counts `7.0` as the integer 7, and so does this.
    pub(crate) fn ids(self) -> Result<Vec<i64>, Problem> {
        if self.item_ids.is_empty() || self.item_ids.len() > MAX_REDRIVE {
            return Err(Problem::invalid(format!(
                "`item_ids` holds {} ids; send 1 to {MAX_REDRIVE}",
                self.item_ids.len()
            )));
        }
        self.item_ids
            .iter()
            .enumerate()
            .map(|(i, n)| {
                n.as_i64()
                    .or_else(|| {
                        n.as_f64()
                            .filter(|f| f.fract() == 0.0 && f.abs() < 9.0e15)
                            .map(|f| f as i64)
                    })
                    .ok_or_else(|| {
                        Problem::invalid(format!(
                            "`item_ids[{i}]` is {n}, not a 64-bit integer item id"
                        ))
                    })
            })
            .collect()
    }
}

/// `limit` and `cursor` of every listing.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct Paging {
    /// Rows per page, 1 to 1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u64>,
    /// A previous page's `next_cursor` (omit for the first page).
    cursor: Option<i64>,
}

impl Paging {
    /// The parsed query, or the problem with it.
    pub(crate) fn parse(
        query: Result<Query<Paging>, QueryRejection>,
    ) -> Result<(usize, Option<i64>), Problem> {
        let Query(paging) = query.map_err(|e| Problem::bad_request(e.body_text()))?;
        let limit = paging.limit.unwrap_or(DEFAULT_LIMIT);
        if !(1..=MAX_LIMIT).contains(&limit) {
            return Err(Problem::invalid(format!(
                "`limit` is {limit}; it must lie between 1 and {MAX_LIMIT}"
            )));
        }
        Ok((limit as usize, paging.cursor))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::StatusCode;
    use serde_json::json;

    fn item(v: Value, i: usize) -> Result<NewItem, Problem> {
        ItemInput(v).into_item(i)
    }

    /// A whole number written with `.0` is an id, however large, up to 9e15: serde_json
    /// parses floats exactly (`float_roundtrip`; its best-effort default read
    /// -2251799813685247.0 as -2251799813685247.2, found by schemathesis).
    #[test]
    fn whole_numbers_written_as_floats_are_ids() {
        let req: RedriveRequest =
            serde_json::from_str(r#"{"item_ids": [-2251799813685247.0, 557720729099.0, 386]}"#)
                .unwrap();
        assert_eq!(
            req.ids().unwrap(),
            vec![-2251799813685247, 557720729099, 386]
        );
    }

    #[test]
    fn items_are_keyed_objects_or_bare_payloads() {
        let keyed = item(json!({"key": "a", "payload": [1]}), 3).unwrap();
        assert_eq!((keyed.key.as_str(), keyed.payload), ("a", json!([1])));
        let unkeyed = item(json!({"payload": "x"}), 3).unwrap();
        assert_eq!((unkeyed.key.as_str(), unkeyed.payload), ("3", json!("x")));
        // Anything else is the payload itself.
        for bare in [
            json!("text"),
            json!(5),
            json!({"payload": 1, "other": 2}),
            json!({}),
        ] {
            let got = item(bare.clone(), 0).unwrap();
            assert_eq!((got.key.as_str(), got.payload), ("0", bare));
        }
        let bad = item(json!({"key": 7, "payload": 1}), 2).unwrap_err();
        assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(bad.detail.contains("items[2].key"), "{}", bad.detail);
    }

    #[test]
    fn paging_defaults_and_bounds() {
        let parse = |limit, cursor| Paging::parse(Ok(Query(Paging { limit, cursor })));
        assert_eq!(parse(None, None).unwrap(), (100, None));
        assert_eq!(parse(Some(1000), Some(-4)).unwrap(), (1000, Some(-4)));
        for bad in [0, 1001] {
            assert_eq!(
                parse(Some(bad), None).unwrap_err().status,
                StatusCode::UNPROCESSABLE_ENTITY
            );
        }
    }

    #[test]
    fn redrive_ids_are_integers_however_written() {
        let req: RedriveRequest =
            serde_json::from_value(json!({"item_ids": [1, 7.0, -2]})).unwrap();
        assert_eq!(req.ids().unwrap(), vec![1, 7, -2]);
        for bad in [json!([1.5]), json!([18446744073709551615u64]), json!([])] {
            let req: RedriveRequest = serde_json::from_value(json!({ "item_ids": bad })).unwrap();
            assert_eq!(
                req.ids().unwrap_err().status,
                StatusCode::UNPROCESSABLE_ENTITY
            );
        }
    }
}
