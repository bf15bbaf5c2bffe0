//! Loading a job: reading the file, applying `--set` overrides, recognising its format
//! (Ferry's own, or the monday.com board-update format), validating it into a
//! [`JobConfig`], and reporting every problem at once, sorted by line.

use std::path::Path;

use super::board_update::{self, board_update_job};
use super::ferry_format::ferry_job;
use super::file::JobFile;
use super::reader::Reader;
use super::spec::{raise_concurrency, JobConfig};
use crate::error::Error;

/// An environment lookup: a variable's value, if set.
pub type EnvLookup<'a> = &'a dyn Fn(&str) -> Option<String>;

/// Values that come from the command line or the environment rather than the file.
#[derive(Default)]
pub struct LoadOptions<'a> {
    /// `--set key=value` overrides.
    pub sets: Vec<String>,
    /// `--max-concurrent N`: raises (or sets) the concurrency cap.
    pub max_concurrent: Option<usize>,
    /// A dry run does not need secrets: a missing token is not an error.
    pub dry_run: bool,
    /// Environment lookup (tests pass a closure; the CLI passes `std::env::var`).
    pub env: Option<EnvLookup<'a>>,
}

fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// Loads and validates a job file.
pub fn load(path: &Path, opts: &LoadOptions<'_>) -> Result<JobConfig, Error> {
    let mut file = JobFile::load(path)?;
    file.apply_sets(&opts.sets)?;
    validate(&file, opts)
}

/// Validates an already-parsed job file (used by `load` and by tests).
pub(crate) fn validate(file: &JobFile, opts: &LoadOptions<'_>) -> Result<JobConfig, Error> {
    let env = opts.env.unwrap_or(&process_env);
    let mut r = Reader::new(file, env, opts.dry_run);
    let board_update = file.has_section(board_update::MARKER_SECTION);
    let job = if board_update {
        board_update_job(&mut r)
    } else {
        ferry_job(&mut r)
    };
    let mut job = job.map(|mut j| {
        if let Some(n) = opts.max_concurrent {
            raise_concurrency(&mut j.engine, n);
        }
        j
    });
    r.unknown_keys();
    if let Some(j) = &mut job {
        if let Err(e) = j.engine.clone().validate() {
            r.errors.push(Error::Config {
                file: file.path.clone(),
                line: 0,
                key: String::new(),
                message: e.to_string(),
            });
        }
    }
    r.errors.sort_by_key(|e| match e {
        Error::Config { line, .. } => *line,
        _ => 0,
    });
    match (job, r.errors.len()) {
        (Some(j), 0) => Ok(j),
        (_, 1) => Err(r.errors.remove(0)),
        (_, _) => Err(Error::Many(r.errors)),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use ferry_core::BatchSizing;

    use super::*;
    use crate::job::spec::{HandlerSpec, JobFormat, SourceSpec};
    use crate::source::KeyBy;

    fn env_of(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |n| {
            pairs
                .iter()
                .find(|(k, _)| *k == n)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    fn check(text: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<JobConfig, Error> {
        let f = JobFile::parse(Path::new("/jobs/board.toml"), text).unwrap();
        validate(
            &f,
            &LoadOptions {
                env: Some(env),
                ..Default::default()
            },
        )
    }

    /// The board-update example, the one copy of that file in the repository.
    const BOARD_UPDATE: &str = include_str!("../../../../examples/board-update/board_update.toml");

    #[test]
    fn board_update_file_maps_onto_sql_and_graphql() {
        let env = env_of(&[
            ("DATABASE_URL", "/data/planning.db"),
            ("MONDAY_API_TOKEN", "tok"),
        ]);
        let job = check(BOARD_UPDATE, &env).unwrap();
        assert_eq!(job.format, JobFormat::BoardUpdate);
        match &job.source {
            SourceSpec::Sql { url, query, key } => {
                assert_eq!(url, "/data/planning.db");
                assert!(query.contains("planning_board_updates"));
                assert_eq!(key, &KeyBy::Column("monday_item_id".into()));
            }
            other => panic!("{other:?}"),
        }
        let HandlerSpec::Graphql(g) = &job.handler else {
            panic!()
        };
        assert_eq!(g.url, "https://api.monday.com/v2");
        assert_eq!(g.columns[0].0, "date4");
        assert_eq!(job.engine.max_items(), 15);
        assert_eq!(job.engine.dispatch.concurrency.cap(), 3);
        assert_eq!(job.engine.dispatch.timeout, Duration::from_secs(25));
        assert_eq!(
            job.checkpoint.as_deref(),
            Some(Path::new("/jobs/board.checkpoint.db"))
        );
    }

    #[test]
    fn board_update_without_environment_names_the_variables() {
        let env = env_of(&[]);
        let err = check(BOARD_UPDATE, &env).unwrap_err().to_string();
        assert!(
            err.contains("DATABASE_URL") && err.contains("MONDAY_API_TOKEN"),
            "{err}"
        );
        assert!(err.contains("/jobs/board.toml:"), "{err}");
    }

    #[test]
    fn every_error_at_once_with_lines() {
        let text = "[source]\ntype = \"csv\"\n\n[handler]\ntype = \"graphql\"\nurl = \"${NOPE}\"\nmutation = 5\n\n[dispatch]\ntimout = \"5s\"\nsplit = [5, 15]\n";
        let env = env_of(&[]);
        let err = check(text, &env).unwrap_err();
        let Error::Many(errors) = &err else {
            panic!("{err}")
        };
        let text = err.to_string();
        assert!(
            text.contains("/jobs/board.toml:1: `source.path`: missing required key"),
            "{text}"
        );
        assert!(
            text.contains(":6: `handler.url`: environment variable `NOPE` is not set"),
            "{text}"
        );
        assert!(
            text.contains(":7: `handler.mutation`: expected a string, found an integer"),
            "{text}"
        );
        assert!(
            text.contains(":10: `dispatch.timout`: unknown key; expected one of:"),
            "{text}"
        );
        assert!(text.contains(":11: `dispatch.split`"), "{text}");
        let lines: Vec<usize> = errors
            .iter()
            .map(|e| match e {
                Error::Config { line, .. } => *line,
                _ => 0,
            })
            .collect();
        assert!(
            lines.windows(2).all(|w| w[0] <= w[1]),
            "sorted by line: {lines:?}"
        );
        assert_eq!(errors.len(), 5, "{text}");
    }

    #[test]
    fn exec_and_http_handlers() {
        let env = env_of(&[("TOKEN", "t")]);
        let text = "[source]\ntype = \"csv\"\npath = \"a.csv\"\n[handler]\ntype = \"exec\"\nprogram = \"python3\"\nargs = [\"model.py\", \"--fast\"]\nworkers = 2\n[handler.env]\nMODEL = \"small\"\n";
        let job = check(text, &env).unwrap();
        let HandlerSpec::Exec(e) = &job.handler else {
            panic!()
        };
        assert_eq!(
            (e.program.as_str(), e.args.len(), e.workers),
            ("python3", 2, 2)
        );
        assert_eq!(e.env, vec![("MODEL".to_owned(), "small".to_owned())]);
        let text = "[source]\ntype = \"csv\"\npath = \"a.csv\"\n[handler]\ntype = \"http\"\nurl = \"http://127.0.0.1:1/x\"\nbody = \"{{ items | json }}\"\n[handler.headers]\nAuthorization = \"Bearer ${TOKEN}\"\n";
        let job = check(text, &env).unwrap();
        let HandlerSpec::Http(h) = &job.handler else {
            panic!()
        };
        assert_eq!(h.method, "POST");
        assert_eq!(h.headers[0].1, "Bearer t");
        let bad = "[source]\ntype = \"csv\"\npath = \"a.csv\"\n[handler]\ntype = \"exec\"\nargs = \"x\"\n";
        let err = check(bad, &env).unwrap_err().to_string();
        assert!(
            err.contains("`handler.program`: missing required key"),
            "{err}"
        );
        assert!(
            err.contains(":6: `handler.args`: expected an array of strings"),
            "{err}"
        );
    }

    #[test]
    fn ferry_format_with_caps_and_overrides() {
        let text = "[source]\ntype = \"jsonl\"\npath = \"in.jsonl\"\nkey = \"id\"\n[handler]\ntype = \"jsonl\"\npath = \"out.jsonl\"\n[batch]\nmax_items = 40\ntarget_latency = \"500ms\"\n[dispatch]\nmax_concurrency = 6\nsplit = [15, 5, 1]\ntimeout = 12\n";
        let env = env_of(&[]);
        let job = check(text, &env).unwrap();
        assert_eq!(
            job.source,
            SourceSpec::Jsonl {
                path: "/jobs/in.jsonl".into(),
                key: KeyBy::Column("id".into())
            }
        );
        assert_eq!(job.engine.max_items(), 40);
        assert_eq!(job.engine.dispatch.concurrency.cap(), 6);
        assert_eq!(job.engine.dispatch.timeout, Duration::from_secs(12));
        assert!(
            matches!(job.engine.sizing, BatchSizing::Adaptive(ref c) if c.target_latency == Duration::from_millis(500))
        );
        assert_eq!(job.dead_letters, Path::new("/jobs/board.dead.jsonl"));
    }

    #[test]
    fn initial_concurrency_starts_the_adaptive_limit_within_the_cap() {
        use ferry_core::Concurrency;
        let env = env_of(&[]);
        let base = "[source]\ntype = \"jsonl\"\npath = \"in.jsonl\"\nkey = \"id\"\n[handler]\ntype = \"jsonl\"\npath = \"out.jsonl\"\n[dispatch]\n";
        let job = check(
            &format!("{base}max_concurrency = 32\ninitial_concurrency = 8\n"),
            &env,
        )
        .unwrap();
        match job.engine.dispatch.concurrency {
            Concurrency::Adaptive(c) => assert_eq!((c.initial, c.max), (8, 32)),
            other => panic!("{other:?}"),
        }
        let error = |dispatch: &str| {
            check(&format!("{base}{dispatch}"), &env)
                .unwrap_err()
                .to_string()
        };
        for (dispatch, want) in [
            (
                "max_concurrency = 4\ninitial_concurrency = 8\n",
                ":10: `dispatch.initial_concurrency`: 8 is above dispatch.max_concurrency (4)",
            ),
            (
                "concurrency = 4\ninitial_concurrency = 2\n",
                ":10: `dispatch.initial_concurrency`: only an adaptive limit starts somewhere",
            ),
        ] {
            let err = error(dispatch);
            assert!(err.contains(want), "{err}");
        }
    }

    #[test]
    fn keys_that_are_read_are_never_unknown_and_are_suggested() {
        let env = env_of(&[]);
        // A misspelt handler type: `method` and `body` work for http handlers, so the one
        // error is the type.
        let text = "[source]\ntype = \"csv\"\npath = \"a.csv\"\n[handler]\ntype = \"htp\"\nurl = \"http://127.0.0.1:1/x\"\nmethod = \"PUT\"\nbody = \"{{ items | json }}\"\n";
        let err = check(text, &env).unwrap_err().to_string();
        assert!(!err.contains("unknown key"), "{err}");
        // A misspelt key: the keys an http handler reads are suggested.
        let text = "[source]\ntype = \"csv\"\npath = \"a.csv\"\n[handler]\ntype = \"http\"\nurl = \"http://127.0.0.1:1/x\"\nmetod = \"PUT\"\n";
        let err = check(text, &env).unwrap_err().to_string();
        assert!(
            err.contains("/jobs/board.toml:7: `handler.metod`: unknown key; expected one of:")
                && err.contains("handler.method"),
            "{err}"
        );
        // A key of another handler type does nothing here, so it is reported.
        let text = "[source]\ntype = \"csv\"\npath = \"a.csv\"\n[handler]\ntype = \"jsonl\"\npath = \"out.jsonl\"\ntable = \"t\"\n";
        let err = check(text, &env).unwrap_err().to_string();
        assert_eq!(
            err,
            "/jobs/board.toml:7: `handler.table`: unknown key; expected one of: handler.type, handler.path"
        );
        // A missing required key leaves the section's other keys read.
        let text = "[source]\ntype = \"csv\"\nkey = \"id\"\n[handler]\ntype = \"jsonl\"\npath = \"out.jsonl\"\n";
        let err = check(text, &env).unwrap_err().to_string();
        assert_eq!(
            err,
            "/jobs/board.toml:1: `source.path`: missing required key"
        );
    }

    #[test]
    fn a_misspelt_board_update_key_names_file_line_and_key() {
        let env = env_of(&[
            ("DATABASE_URL", "/data/planning.db"),
            ("MONDAY_API_TOKEN", "tok"),
        ]);
        let text = BOARD_UPDATE.replace("max_batch_size", "max_batch_sise");
        let line = 1 + text
            .lines()
            .position(|l| l.contains("max_batch_sise"))
            .unwrap();
        let err = check(&text, &env).unwrap_err().to_string();
        assert!(
            err.starts_with(&format!(
                "/jobs/board.toml:{line}: `validation.max_batch_sise`: unknown key; expected one of: validation.max_batch_size,"
            )),
            "{err}"
        );
    }

    /// The job-file reference, whose key tables are checked against what is read.
    const JOB_FILE_DOC: &str = include_str!("../../../../docs/job-file.md");

    /// A documented key: its dotted name and the types it belongs to (none: every type).
    struct DocKey {
        board_update: bool,
        key: String,
        types: Vec<String>,
    }

    /// Every key in the reference's tables, from the `| key | default | meaning |` rows:
    /// the section comes from the `### [section]` heading, a type from `(graphql)` or
    /// `(csv, jsonl)` in the default column, and `NAME`/`COLUMN` stand for any name.
    fn documented_keys() -> Vec<DocKey> {
        const TYPES: &[&str] = &[
            "csv",
            "jsonl",
            "sql",
            "xml",
            "graphql",
            "http",
            "exec",
            "postgres_copy",
            "indicators",
            "breadth",
        ];
        let mut out = Vec::new();
        let (mut board_update, mut sections) = (false, Vec::new());
        for line in JOB_FILE_DOC.lines() {
            if let Some(h) = line.strip_prefix("## ") {
                board_update = h.contains("board-update");
                sections.clear();
            } else if let Some(h) = line.strip_prefix("### ") {
                // `[[stage]]`: an array of tables, its first table's keys are `stage.0.*`.
                sections = h
                    .split('`')
                    .filter_map(|p| match p.strip_prefix("[[") {
                        Some(a) => a.strip_suffix("]]").map(|a| format!("{a}.0")),
                        None => p.strip_prefix('[')?.strip_suffix(']').map(str::to_owned),
                    })
                    .collect();
            } else if let Some(row) = line.strip_prefix("| `") {
                let cells: Vec<&str> = row.split(" | ").collect();
                let name = cells[0].trim_end_matches('`').replace("NAME", "example");
                let name = name.replace("COLUMN", "example");
                let key = match sections.first() {
                    Some(s) if !sections.iter().any(|x| name.starts_with(&format!("{x}."))) => {
                        format!("{s}.{name}")
                    }
                    _ => name,
                };
                let default = cells[1];
                let types = match (default.find('('), default.find(')')) {
                    (Some(a), Some(b)) if a < b => default[a + 1..b]
                        .split(", ")
                        .filter(|t| TYPES.contains(t))
                        .map(str::to_owned)
                        .collect(),
                    _ => Vec::new(),
                };
                out.push(DocKey {
                    board_update,
                    key,
                    types,
                });
            }
        }
        out
    }

    /// A file setting every documented key that applies to a source of type `source` and a
    /// handler of type `handler` (values are arbitrary: only unknown keys are looked for).
    fn file_with_keys(keys: &[DocKey], source: &str, handler: &str) -> String {
        let mut text = format!(
            "vars.example = 1\nsource.type = \"{source}\"\nhandler.type = \"{handler}\"\nstage.0.type = \"xml\"\n"
        );
        for k in keys.iter().filter(|k| !k.key.ends_with(".type")) {
            let ty = if k.key.starts_with("source.") {
                source
            } else if k.key.starts_with("stage.") {
                "xml"
            } else {
                handler
            };
            if k.types.is_empty() || k.types.iter().any(|t| t == ty) {
                text.push_str(&format!("{} = \"x\"\n", k.key));
            }
        }
        text
    }

    #[test]
    fn every_documented_key_is_accepted() {
        let env = env_of(&[]);
        let (board, ferry): (Vec<DocKey>, Vec<DocKey>) =
            documented_keys().into_iter().partition(|k| k.board_update);
        assert!(
            ferry.len() >= 45 && board.len() >= 8,
            "{} {}",
            ferry.len(),
            board.len()
        );
        let pairs = [
            ("csv", "graphql"),
            ("jsonl", "http"),
            ("sql", "exec"),
            ("csv", "sql"),
            ("jsonl", "jsonl"),
            ("xml", "postgres_copy"),
        ];
        for (source, handler) in pairs {
            let text = file_with_keys(&ferry, source, handler);
            if let Err(e) = check(&text, &env) {
                let e = e.to_string();
                assert!(
                    !e.contains("unknown key"),
                    "{source}, {handler}:\n{text}\n{e}"
                );
            }
        }
        let mut text = String::new();
        for k in &board {
            text.push_str(&format!("{} = \"x\"\n", k.key));
        }
        let e = check(&text, &env).unwrap_err().to_string();
        assert!(!e.contains("unknown key"), "{text}\n{e}");
    }

    /// The reference's ```toml blocks.
    fn doc_examples() -> Vec<String> {
        JOB_FILE_DOC
            .split("```toml\n")
            .skip(1)
            .filter_map(|b| b.split_once("```").map(|(toml, _)| toml.to_owned()))
            .collect()
    }

    /// A TOML text without comments and blank lines, each line trimmed (comparison only).
    fn without_comments(text: &str) -> Vec<String> {
        text.lines()
            .map(|l| match l.find(" #") {
                // A ` #` outside quotes starts a comment.
                Some(i) if l[..i].matches('"').count() % 2 == 0 => &l[..i],
                _ => l,
            })
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(str::to_owned)
            .collect()
    }

    #[test]
    fn the_reference_examples_are_valid_and_the_board_update_is_the_example_file() {
        let env = env_of(&[
            ("DATABASE_URL", "/data/planning.db"),
            ("MONDAY_API_TOKEN", "tok"),
        ]);
        let examples = doc_examples();
        assert_eq!(examples.len(), 3);
        let ferry = check(&examples[0], &env).unwrap();
        assert_eq!(ferry.format, JobFormat::Ferry);
        // The stages' example: a SQL source's text column parsed by an `xml` stage.
        let staged = format!(
            "{}\n[handler]\ntype = \"jsonl\"\npath = \"o.jsonl\"\n",
            examples[1]
        );
        let staged = check(&staged, &env).unwrap();
        assert_eq!(staged.stages.len(), 1);
        let board = check(&examples[2], &env).unwrap();
        assert_eq!(board.format, JobFormat::BoardUpdate);
        assert_eq!(
            without_comments(&examples[2]),
            without_comments(BOARD_UPDATE)
        );
    }

    proptest::proptest! {
        /// Whatever documented keys a file sets, the unknown keys reported are exactly the
        /// misspelt ones, each on its own line.
        #[test]
        fn exactly_the_misspelt_keys_are_unknown(
            pair in 0usize..5,
            keep in proptest::collection::vec(proptest::bool::ANY, 64),
            junk in proptest::collection::btree_set(
                ("(job|source|handler|batch|dispatch|retry|checkpoint|nosuch)", "[a-z]{1,8}_x"),
                0..4,
            ),
        ) {
            let (source, handler) =
                [("csv", "graphql"), ("jsonl", "http"), ("sql", "exec"), ("csv", "sql"), ("jsonl", "jsonl")][pair];
            let ferry: Vec<DocKey> = documented_keys()
                .into_iter()
                .filter(|k| !k.board_update)
                .zip(keep.iter().cycle())
                .filter_map(|(k, keep)| keep.then_some(k))
                .collect();
            let mut text = file_with_keys(&ferry, source, handler);
            let mut expected = std::collections::BTreeSet::new();
            for (section, name) in &junk {
                let key = format!("{section}.{name}");
                text.push_str(&format!("{key} = 1\n"));
                expected.insert((key, text.lines().count()));
            }
            let f = JobFile::parse(Path::new("/jobs/board.toml"), &text).unwrap();
            let env = env_of(&[]);
            let opts = LoadOptions { env: Some(&env), ..Default::default() };
            let errors = match validate(&f, &opts) {
                Ok(_) => Vec::new(),
                Err(Error::Many(errors)) => errors,
                Err(e) => vec![e],
            };
            let unknown: std::collections::BTreeSet<(String, usize)> = errors
                .into_iter()
                .filter_map(|e| match e {
                    Error::Config { key, line, message, .. } if message.starts_with("unknown key") => {
                        Some((key, line))
                    }
                    _ => None,
                })
                .collect();
            proptest::prop_assert_eq!(unknown, expected, "{}", text);
        }
    }
}
