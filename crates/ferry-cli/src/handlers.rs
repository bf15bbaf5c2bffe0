//! The service's handlers from `--config FILE`: each `[handler.NAME]` table, read by
//! `ferry_connectors::job::load_service_handlers` (the job file's own reader), is started as
//! `ferry run` would start that `[handler]` and registered beside the built-in handlers. A
//! configured handler may take a built-in one's name, and then replaces it. Other top-level
//! tables of the file are the service's settings, not handlers.

use std::path::Path;

use anyhow::Context;
use ferry_connectors::job::{load_service_handlers, HandlerSpec, SpecHandler};
use ferry_server::Handlers;

/// The handlers of `serve` or `worker`: the built-in ones plus `config`'s. With `run_here`
/// off (`serve --no-worker`) the configured ones are only declared, so the API accepts jobs
/// for them while its `ferry worker` processes run them; nothing is started here.
pub(crate) async fn handlers(config: Option<&Path>, run_here: bool) -> anyhow::Result<Handlers> {
    let builtin = Handlers::builtin();
    let Some(path) = config else {
        return Ok(builtin);
    };
    let specs = load_service_handlers(path, &Handlers::engine_config(), None)?;
    let mut configured = Handlers::new();
    for spec in specs {
        let kind = kind(&spec.handler);
        if !run_here {
            configured = configured.declare(&spec.name);
            continue;
        }
        let handler = SpecHandler::start(&spec.handler).await.with_context(|| {
            format!(
                "starting handler `{}` ({kind}) of {}",
                spec.name,
                path.display()
            )
        })?;
        tracing::info!(handler = %spec.name, kind, "configured handler started");
        configured = configured.register(&spec.name, handler, spec.engine);
    }
    Ok(builtin.merge(configured))
}

fn kind(spec: &HandlerSpec) -> &'static str {
    match spec {
        HandlerSpec::Graphql(_) => "graphql",
        HandlerSpec::Http(_) => "http",
        HandlerSpec::Exec(_) => "exec",
        HandlerSpec::Sql(_) => "sql",
        HandlerSpec::PgCopy(_) => "postgres_copy",
        HandlerSpec::Jsonl { .. } => "jsonl",
    }
}
