//! Templates: minijinja with the filters request bodies need.
//!
//! Filters beyond minijinja's built-ins:
//! * `graphql_string`: a value as a GraphQL string literal (strings quoted and escaped,
//!   anything else serialized to JSON first, then quoted): what `column_values: JSON!` wants.
//! * `json`: a value serialized to compact JSON, without HTML escaping.

use minijinja::{Environment, UndefinedBehavior, Value};

use crate::error::Error;

/// A set of compiled templates sharing one environment.
#[derive(Debug)]
pub struct Templates {
    env: Environment<'static>,
}

impl Default for Templates {
    fn default() -> Self {
        Self::new()
    }
}

impl Templates {
    /// An empty set with the Ferry filters and strict undefined variables (a typo in a
    /// template is an error, not an empty string).
    pub fn new() -> Self {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.add_filter("graphql_string", graphql_string);
        env.add_filter("json", json);
        Templates { env }
    }

    /// Compiles `source` under `name` (e.g. `handler.mutation`); errors name the template.
    pub fn add(&mut self, name: &str, source: &str) -> Result<(), Error> {
        self.env
            .add_template_owned(name.to_owned(), source.to_owned())
            .map_err(|e| Error::Template {
                template: name.to_owned(),
                key: None,
                message: describe(&e),
            })
    }

    /// Renders template `name` with `ctx`; `key` names the item in errors.
    pub fn render(&self, name: &str, ctx: &Value, key: Option<&str>) -> Result<String, Error> {
        let tmpl = self.env.get_template(name).map_err(|e| Error::Template {
            template: name.to_owned(),
            key: key.map(str::to_owned),
            message: describe(&e),
        })?;
        tmpl.render(ctx).map_err(|e| Error::Template {
            template: name.to_owned(),
            key: key.map(str::to_owned),
            message: describe(&e),
        })
    }
}

fn describe(e: &minijinja::Error) -> String {
    let mut msg = e.to_string();
    if let Some(line) = e.line() {
        msg = format!("{msg} (template line {line})");
    }
    msg
}

fn json(value: Value) -> Result<String, minijinja::Error> {
    if value.is_undefined() {
        return Err(minijinja::Error::new(
            minijinja::ErrorKind::UndefinedError,
            "the value is undefined (a missing column?)",
        ));
    }
    serde_json::to_string(&value)
        .map_err(|e| minijinja::Error::new(minijinja::ErrorKind::InvalidOperation, e.to_string()))
}

fn graphql_string(value: Value) -> Result<String, minijinja::Error> {
    if value.is_undefined() {
        return Err(minijinja::Error::new(
            minijinja::ErrorKind::UndefinedError,
            "the value is undefined (a missing column?)",
        ));
    }
    let text = match value.as_str() {
        Some(s) => s.to_owned(),
        None => json(value)?,
    };
    json(Value::from(text))
}

#[cfg(test)]
mod tests {
    use super::*;
    use minijinja::context;

    #[test]
    fn graphql_string_double_encodes_objects() {
        let mut t = Templates::new();
        t.add("m", "column_values: {{ cols | graphql_string }}")
            .unwrap();
        let out = t
            .render(
                "m",
                &context! { cols => context! { date4 => "2024-01-02" } },
                None,
            )
            .unwrap();
        assert_eq!(out, r#"column_values: "{\"date4\":\"2024-01-02\"}""#);
    }

    #[test]
    fn undefined_variables_are_errors_naming_the_item() {
        let mut t = Templates::new();
        t.add("handler.body", "{{ item.missing }}").unwrap();
        let err = t
            .render(
                "handler.body",
                &context! { item => context! { a => 1 } },
                Some("row-7"),
            )
            .unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("handler.body") && msg.contains("row-7"),
            "{msg}"
        );
    }

    #[test]
    fn syntax_errors_name_the_template() {
        let mut t = Templates::new();
        let err = t.add("handler.url", "{{ oops").unwrap_err();
        assert!(err.to_string().contains("handler.url"), "{err}");
    }
}
