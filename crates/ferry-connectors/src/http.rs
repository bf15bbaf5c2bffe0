//! Plain HTTP batches: one request per batch, its URL, headers and body rendered from the
//! whole batch.
//!
//! The templates (URL, header values, body) see `items` (the batch's payloads, in order),
//! `keys` (their keys, same order) and the job's variables at the top level (`items` and
//! `keys` win over variables of the same name). A body that parses as JSON is sent as
//! `application/json` unless a `Content-Type` header is configured; an empty body sends none.
//!
//! A batch that cannot be rendered is `Split` so the engine isolates the row that breaks it;
//! a single item that cannot be rendered is dead-lettered with the template error naming
//! its key.
//!
//! Responses: status codes and transport errors as in [`classify`]. A 2xx
//! body that is a JSON array as long as the batch holds one result per item, in order (an
//! element that is an object with an `"error"` string is that item's fatal error); any other
//! 2xx body (JSON or text) is every item's result.

use std::sync::Arc;

use ferry_core::{Batch, BatchOutcome, BoxFuture, Handler, Item, ItemOutcome, Key};
use minijinja::Value as Ctx;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_TYPE};
use reqwest::Method;
use serde_json::{Map, Value};

use crate::classify::{self, CallCounters};
use crate::error::Error;
use crate::template::Templates;

const URL: &str = "handler.url";
const BODY: &str = "handler.body";

/// Settings of an [`HttpHandler`]. Header values may hold secrets: they are never logged
/// or printed (dry runs show `***`).
#[derive(Debug, Clone, Default)]
pub struct HttpConfig {
    /// The HTTP method, e.g. `PUT` (case-insensitive); empty means `POST`.
    pub method: String,
    /// The URL template, e.g. `https://api.example.com/v1/orders`.
    pub url: String,
    /// Request headers: name -> value template (e.g. `Authorization`).
    pub headers: Vec<(String, String)>,
    /// The body template; empty sends no body.
    pub body: String,
    /// Job-level variables available to the templates.
    pub vars: Map<String, Value>,
}

/// A request rendered for one batch.
struct Rendered {
    url: reqwest::Url,
    headers: HeaderMap,
    body: String,
}

/// Sends each batch as one HTTP request.
#[derive(Debug)]
pub struct HttpHandler {
    client: reqwest::Client,
    method: Method,
    /// The URL template's source, for errors and the preflight.
    url: String,
    /// (name, template name) per configured header, in order.
    headers: Vec<(HeaderName, String)>,
    header_names: Vec<String>,
    has_content_type: bool,
    templates: Templates,
    vars: Map<String, Value>,
    counters: Arc<CallCounters>,
}

impl HttpHandler {
    /// Compiles the templates and prepares the client; every error names its key.
    pub fn new(config: HttpConfig) -> Result<Self, Error> {
        let method_name = if config.method.trim().is_empty() {
            "POST".to_owned()
        } else {
            config.method.trim().to_ascii_uppercase()
        };
        let method = Method::from_bytes(method_name.as_bytes()).map_err(|_| Error::Http {
            url: config.url.clone(),
            message: format!("invalid HTTP method `{}`", config.method),
        })?;
        let mut templates = Templates::new();
        templates.add(URL, &config.url)?;
        templates.add(BODY, &config.body)?;
        let mut headers = Vec::with_capacity(config.headers.len());
        let mut header_names = Vec::with_capacity(config.headers.len());
        for (name, value) in &config.headers {
            let n = HeaderName::from_bytes(name.as_bytes()).map_err(|_| Error::Http {
                url: config.url.clone(),
                message: format!("invalid header name `{name}`"),
            })?;
            // A repeated header (two `Accept` values) needs its own template name.
            let mut template = format!("handler.headers.{name}");
            if header_names.contains(name) {
                template = format!("{template}[{}]", header_names.len());
            }
            templates.add(&template, value)?;
            headers.push((n, template));
            header_names.push(name.clone());
        }
        let has_content_type = headers.iter().any(|(n, _)| n == CONTENT_TYPE);
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(64)
            .build()
            .map_err(|e| Error::Http {
                url: config.url.clone(),
                message: e.to_string(),
            })?;
        let handler = HttpHandler {
            client,
            method,
            url: config.url,
            headers,
            header_names,
            has_content_type,
            templates,
            vars: config.vars,
            counters: CallCounters::shared(),
        };
        // A URL that needs no item must be valid now, not at the first batch.
        if let Ok(url) = handler.templates.render(URL, &handler.context(&[]), None) {
            reqwest::Url::parse(&url).map_err(|e| Error::Http {
                url: handler.url.clone(),
                message: format!("invalid URL: {e}"),
            })?;
        }
        Ok(handler)
    }

    /// Checks that the endpoint accepts connections (see [`classify::preflight`]). A URL
    /// whose host depends on the items cannot be checked: `Ok`.
    pub async fn preflight(&self) -> Result<(), Error> {
        let Some(url) = self.static_url() else {
            tracing::debug!("HTTP preflight skipped: the URL's host depends on the items");
            return Ok(());
        };
        if url.host_str().is_none() {
            return Ok(());
        }
        classify::preflight(&url).await
    }

    /// The URL as far as it is known without items: rendered with the variables alone, or
    /// else the template's text before its first tag (enough for scheme, host and port).
    fn static_url(&self) -> Option<reqwest::Url> {
        if let Ok(text) = self.templates.render(URL, &self.context(&[]), None) {
            if let Ok(url) = reqwest::Url::parse(&text) {
                return Some(url);
            }
        }
        let prefix = &self.url[..self.url.find('{').unwrap_or(self.url.len())];
        let url = reqwest::Url::parse(prefix).ok()?;
        // The host must be complete: the tag must not start inside the authority.
        let authority_end = prefix
            .find("://")
            .map(|i| i + 3)
            .and_then(|start| prefix[start..].find(['/', '?', '#']).map(|j| start + j));
        authority_end.map(|_| url)
    }

    /// The handler's counters (ambiguous failures).
    pub fn counters(&self) -> Arc<CallCounters> {
        Arc::clone(&self.counters)
    }

    /// The template context for `items`: the variables, `items` and `keys`.
    fn context(&self, items: &[Item<Value>]) -> Ctx {
        let payloads: Vec<&Value> = items.iter().map(Item::payload).collect();
        let keys: Vec<&str> = items.iter().map(Item::key).map(Key::as_str).collect();
        let vars = Ctx::from_serialize(&self.vars);
        minijinja::context! {
            items => Ctx::from_serialize(&payloads),
            keys => Ctx::from_serialize(&keys),
            ..vars
        }
    }

    /// Renders the request for `items`; errors name the item when there is only one.
    fn render(&self, items: &[Item<Value>]) -> Result<Rendered, Error> {
        let ctx = self.context(items);
        let key = match items {
            [only] => Some(only.key().as_str()),
            _ => None,
        };
        let url_text = self.templates.render(URL, &ctx, key)?;
        let url = reqwest::Url::parse(&url_text).map_err(|e| Error::Template {
            template: URL.to_owned(),
            key: key.map(str::to_owned),
            message: format!("not a valid URL: {e}"),
        })?;
        let mut headers = HeaderMap::with_capacity(self.headers.len() + 1);
        for (name, template) in &self.headers {
            let text = self.templates.render(template, &ctx, key)?;
            // The value may be a secret: the message must not quote it.
            let mut value = HeaderValue::from_str(&text).map_err(|_| Error::Template {
                template: template.clone(),
                key: key.map(str::to_owned),
                message: "not a valid header value".to_owned(),
            })?;
            value.set_sensitive(true);
            headers.append(name.clone(), value);
        }
        let body = self.templates.render(BODY, &ctx, key)?;
        if !self.has_content_type
            && !body.is_empty()
            && serde_json::from_str::<serde::de::IgnoredAny>(&body).is_ok()
        {
            headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        }
        Ok(Rendered { url, headers, body })
    }

    /// What a dry run prints: method, URL, header names (values masked) and the body.
    pub fn describe_request(&self, items: &[Item<Value>]) -> String {
        match self.render(items) {
            Ok(r) => {
                let mut out = format!("{} {}", self.method, r.url);
                for name in &self.header_names {
                    out.push_str(&format!("\n{name}: ***"));
                }
                out.push('\n');
                out.push_str(&r.body);
                out
            }
            Err(e) => format!("{} {}\nnot rendered: {e}", self.method, self.url),
        }
    }

    async fn send(&self, batch: &Batch<Value>) -> BatchOutcome<Value> {
        let rendered = match self.render(batch.items()) {
            Ok(r) => r,
            // Several items: one of them may be the cause; splitting isolates it.
            Err(e) if batch.len() > 1 => return BatchOutcome::split(e.to_string()),
            Err(e) => return BatchOutcome::fatal(e.to_string()),
        };
        let mut request = self
            .client
            .request(self.method.clone(), rendered.url)
            .headers(rendered.headers);
        if !rendered.body.is_empty() {
            request = request.body(rendered.body);
        }
        let text = match classify::exchange(request, &self.counters).await {
            Ok(text) => text,
            Err(outcome) => return outcome,
        };
        Self::read_body(&text, batch.len())
    }

    /// The outcome of a 2xx response with body `text` for a batch of `n` items.
    fn read_body(text: &str, n: usize) -> BatchOutcome<Value> {
        let body = if text.trim().is_empty() {
            Value::Null
        } else {
            serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_owned()))
        };
        match body {
            Value::Array(results) if results.len() == n => BatchOutcome::Done(
                results
                    .into_iter()
                    .map(|r| match r.get("error").and_then(Value::as_str) {
                        Some(message) => ItemOutcome::Fatal(message.to_owned()),
                        None => ItemOutcome::Ok(r),
                    })
                    .collect(),
            ),
            body => BatchOutcome::ok(vec![body; n]),
        }
    }
}

impl Handler<Value, Value> for HttpHandler {
    fn call<'a>(&'a self, batch: &'a Batch<Value>) -> BoxFuture<'a, BatchOutcome<Value>> {
        Box::pin(self.send(batch))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn handler(url: &str) -> HttpHandler {
        HttpHandler::new(HttpConfig {
            method: "post".into(),
            url: url.into(),
            headers: vec![("Authorization".into(), "Bearer {{ token }}".into())],
            body: "{{ items | json }}".into(),
            vars: serde_json::from_value(json!({"token": "secret-token"})).unwrap(),
        })
        .unwrap()
    }

    #[test]
    fn per_item_results_need_the_batch_length() {
        match HttpHandler::read_body(r#"[1, {"error": "bad"}]"#, 2) {
            BatchOutcome::Done(o) => assert_eq!(
                o,
                vec![ItemOutcome::Ok(json!(1)), ItemOutcome::Fatal("bad".into())]
            ),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            HttpHandler::read_body("[1]", 2),
            BatchOutcome::ok(vec![json!([1]), json!([1])])
        );
        assert_eq!(
            HttpHandler::read_body("accepted", 1),
            BatchOutcome::ok(vec![json!("accepted")])
        );
        assert_eq!(
            HttpHandler::read_body("", 1),
            BatchOutcome::ok(vec![Value::Null])
        );
    }

    #[test]
    fn static_urls_are_validated_and_templated_hosts_skip_the_preflight() {
        assert!(HttpHandler::new(HttpConfig {
            url: "not a url".into(),
            ..HttpConfig::default()
        })
        .is_err());
        let h = handler("http://127.0.0.1:9/orders/{{ keys[0] }}");
        assert_eq!(
            h.static_url().map(|u| u.to_string()),
            Some("http://127.0.0.1:9/orders/".into())
        );
        let h = handler("http://{{ items[0].host }}/x");
        assert!(h.static_url().is_none());
    }
}
