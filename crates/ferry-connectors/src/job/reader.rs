//! The job-file reader: typed access to a [`JobFile`]'s leaves that collects every problem
//! as an [`Error::Config`] naming the file, line and key, instead of stopping at the first.
//!
//! The formats (`ferry_format`, `board_update`) ask it for keys. It records every key asked
//! for, present or not, and marks each leaf it hands out as read: whatever the file holds
//! that was never read is an unknown key, and the keys asked for are the ones suggested. So
//! the list of valid keys is what the formats read, never a second list to keep in step.
//!
//! A reader may be *scoped* to one `[handler.NAME]` table of the service's configuration
//! file ([`Reader::scoped`]): the formats still ask for `handler.type` or `batch.max_items`,
//! and the reader looks up (and names in errors) `handler.NAME.type` and
//! `handler.NAME.batch.max_items`. So a service handler is read by the very code that reads
//! a job file's `[handler]`, `[batch]`, `[dispatch]` and `[retry]`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::file::{interpolate, JobFile, Leaf, Val};
use crate::error::Error;
use crate::source::KeyBy;

/// Reads a [`JobFile`]'s leaves, collecting errors.
pub(super) struct Reader<'a> {
    pub(super) file: &'a JobFile,
    used: Vec<bool>,
    /// Every key asked for, in order (`prefix.*` for a table read whole).
    asked: Vec<String>,
    pub(super) errors: Vec<Error>,
    pub(super) env: &'a dyn Fn(&str) -> Option<String>,
    pub(super) dry_run: bool,
    /// The `[handler.NAME]` table this reader is scoped to (see the module docs).
    scope: Option<String>,
}

impl<'a> Reader<'a> {
    /// A reader of `file`, expanding `${NAME}` through `env`.
    pub(super) fn new(
        file: &'a JobFile,
        env: &'a dyn Fn(&str) -> Option<String>,
        dry_run: bool,
    ) -> Self {
        Reader {
            file,
            used: vec![false; file.leaves.len()],
            asked: Vec::new(),
            errors: Vec::new(),
            env,
            dry_run,
            scope: None,
        }
    }

    /// A reader of the `[handler.NAME]` table `name` of `file` (see the module docs): every
    /// key asked for is looked up under `handler.NAME`.
    pub(super) fn scoped(
        file: &'a JobFile,
        env: &'a dyn Fn(&str) -> Option<String>,
        name: &str,
    ) -> Self {
        let mut r = Reader::new(file, env, false);
        r.scope = Some(name.to_owned());
        r
    }

    /// Where the key (or section) `key` a format asks for is in the file: `key` itself, or
    /// under `handler.NAME` for a scoped reader (`handler.x` -> `handler.NAME.x`,
    /// `batch.x` -> `handler.NAME.batch.x`).
    fn physical(&self, key: &str) -> String {
        let Some(name) = &self.scope else {
            return key.to_owned();
        };
        match key.split_once('.') {
            Some(("handler", rest)) => format!("handler.{name}.{rest}"),
            None if key == "handler" => format!("handler.{name}"),
            _ => format!("handler.{name}.{key}"),
        }
    }

    /// The key a format would ask for to read the file's key `physical` (the inverse of
    /// [`physical`](Self::physical), for suggestions): a scoped reader's
    /// `handler.NAME.batch.x` is `batch.x` when `batch` is a section it reads, else
    /// `handler.batch.x`.
    fn logical(&self, physical: &str) -> String {
        let Some(name) = &self.scope else {
            return physical.to_owned();
        };
        let prefix = format!("handler.{name}.");
        let Some(rest) = physical.strip_prefix(&prefix) else {
            return physical.to_owned();
        };
        let first = rest.split('.').next().unwrap_or(rest);
        let is_section = first != "handler"
            && self
                .asked
                .iter()
                .any(|k| k.split('.').next() == Some(first) && k.contains('.'));
        if is_section {
            rest.to_owned()
        } else {
            format!("handler.{rest}")
        }
    }

    /// Records an error about `key` on `line`.
    pub(super) fn err(&mut self, key: &str, line: usize, message: impl Into<String>) {
        self.errors.push(Error::Config {
            file: self.file.path.clone(),
            line,
            key: self.physical(key),
            message: message.into(),
        });
    }

    /// The line of a section's first key, for errors about missing keys in it.
    pub(super) fn section_line(&self, section: &str) -> usize {
        let prefix = format!("{}.", self.physical(section));
        self.file
            .leaves
            .iter()
            .filter(|l| l.key.starts_with(&prefix))
            .map(|l| l.line.saturating_sub(1).max(1))
            .min()
            .unwrap_or(0)
    }

    /// The line `key` is written on (0: not in the file, or a `--set` override).
    pub(super) fn line_of(&self, key: &str) -> usize {
        let key = self.physical(key);
        self.file
            .leaves
            .iter()
            .find(|l| l.key == key)
            .map_or(0, |l| l.line)
    }

    /// Whether the file sets `key` (without reading it).
    pub(super) fn has(&self, key: &str) -> bool {
        let key = self.physical(key);
        self.file.leaves.iter().any(|l| l.key == key)
    }

    /// Whether the file sets any key under `prefix.`.
    pub(super) fn has_under(&self, prefix: &str) -> bool {
        let p = format!("{}.", self.physical(prefix));
        self.file.leaves.iter().any(|l| l.key.starts_with(&p))
    }

    /// Records that `key` is one the format reads.
    fn ask(&mut self, key: String) {
        if !self.asked.contains(&key) {
            self.asked.push(key);
        }
    }

    /// The leaf at `key`, marked read.
    pub(super) fn leaf(&mut self, key: &str) -> Option<Leaf> {
        self.ask(key.to_owned());
        let key = self.physical(key);
        let i = self.file.leaves.iter().position(|l| l.key == key)?;
        self.used[i] = true;
        Some(self.file.leaves[i].clone())
    }

    /// `s` with `${NAME}` expanded, or an error naming the unset variable.
    pub(super) fn expand(&mut self, key: &str, line: usize, s: &str) -> Option<String> {
        match interpolate(s, self.env) {
            Ok(v) => Some(v),
            Err(var) => {
                self.err(
                    key,
                    line,
                    format!("environment variable `{var}` is not set"),
                );
                None
            }
        }
    }

    /// An optional string, expanded.
    pub(super) fn string(&mut self, key: &str) -> Option<String> {
        let leaf = self.leaf(key)?;
        match &leaf.value {
            Val::Str(s) => self.expand(key, leaf.line, s),
            other => {
                let t = other.type_name();
                self.err(key, leaf.line, format!("expected a string, found {t}"));
                None
            }
        }
    }

    /// A string that must be there.
    pub(super) fn required_string(&mut self, key: &str) -> Option<String> {
        self.ask(key.to_owned());
        let physical = self.physical(key);
        if self.file.leaves.iter().any(|l| l.key == physical) {
            return self.string(key);
        }
        let section = key.split('.').next().unwrap_or(key);
        let line = self.section_line(section);
        self.err(key, line, "missing required key");
        None
    }

    /// An optional integer of at least `min`.
    pub(super) fn int(&mut self, key: &str, min: i64) -> Option<i64> {
        let leaf = self.leaf(key)?;
        match leaf.value {
            Val::Int(i) if i >= min => Some(i),
            Val::Int(i) => {
                self.err(key, leaf.line, format!("must be at least {min}, got {i}"));
                None
            }
            ref other => {
                let t = other.type_name();
                self.err(key, leaf.line, format!("expected an integer, found {t}"));
                None
            }
        }
    }

    /// An optional integer of at least 1.
    pub(super) fn positive(&mut self, key: &str) -> Option<usize> {
        self.int(key, 1).map(|i| i as usize)
    }

    /// An optional share: a number in `(0, 1]`.
    pub(super) fn share(&mut self, key: &str) -> Option<f64> {
        let leaf = self.leaf(key)?;
        let f = match leaf.value {
            Val::Float(f) => f,
            Val::Int(i) => i as f64,
            ref other => {
                let t = other.type_name();
                self.err(key, leaf.line, format!("expected a number, found {t}"));
                return None;
            }
        };
        if f > 0.0 && f <= 1.0 {
            Some(f)
        } else {
            self.err(key, leaf.line, format!("must lie in (0, 1], got {f}"));
            None
        }
    }

    /// An optional boolean.
    pub(super) fn boolean(&mut self, key: &str) -> Option<bool> {
        let leaf = self.leaf(key)?;
        match leaf.value {
            Val::Bool(b) => Some(b),
            ref other => {
                let t = other.type_name();
                self.err(key, leaf.line, format!("expected true or false, found {t}"));
                None
            }
        }
    }

    /// A duration: `"250ms"`, `"2s"`, `"1m 30s"`, or a number of seconds.
    pub(super) fn duration(&mut self, key: &str) -> Option<Duration> {
        let leaf = self.leaf(key)?;
        let parsed = match &leaf.value {
            Val::Int(i) if *i >= 0 => Ok(Duration::from_secs(*i as u64)),
            Val::Float(f) if *f >= 0.0 && f.is_finite() => Ok(Duration::from_secs_f64(*f)),
            Val::Str(s) => humantime::parse_duration(s)
                .map_err(|e| format!("expected a duration like \"250ms\" or \"2s\": {e}")),
            other => Err(format!(
                "expected a duration like \"250ms\" or \"2s\", found {}",
                other.type_name()
            )),
        };
        match parsed {
            Ok(d) => Some(d),
            Err(m) => {
                self.err(key, leaf.line, m);
                None
            }
        }
    }

    /// Every leaf under `prefix.`, as (sub-key, leaf), in document order.
    pub(super) fn table(&mut self, prefix: &str) -> Vec<(String, Leaf)> {
        self.ask(format!("{prefix}.*"));
        let p = format!("{}.", self.physical(prefix));
        let mut out = Vec::new();
        for (i, l) in self.file.leaves.iter().enumerate() {
            if let Some(sub) = l.key.strip_prefix(&p) {
                self.used[i] = true;
                out.push((sub.to_owned(), l.clone()));
            }
        }
        out
    }

    /// Every string under `prefix.`, expanded, as (sub-key, value), in document order.
    pub(super) fn string_table(&mut self, prefix: &str) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for (sub, leaf) in self.table(prefix) {
            let key = format!("{prefix}.{sub}");
            match &leaf.value {
                Val::Str(s) => {
                    if let Some(v) = self.expand(&key, leaf.line, s) {
                        out.push((sub, v));
                    }
                }
                other => {
                    let t = other.type_name();
                    self.err(&key, leaf.line, format!("expected a string, found {t}"));
                }
            }
        }
        out
    }

    /// An optional array of strings, expanded (empty when absent).
    pub(super) fn string_list(&mut self, key: &str) -> Vec<String> {
        let Some(leaf) = self.leaf(key) else {
            return Vec::new();
        };
        match &leaf.value {
            Val::Array(items) if items.iter().all(|v| matches!(v, Val::Str(_))) => items
                .iter()
                .filter_map(|v| match v {
                    Val::Str(s) => self.expand(key, leaf.line, s),
                    _ => None,
                })
                .collect(),
            other => {
                let t = other.type_name();
                self.err(
                    key,
                    leaf.line,
                    format!("expected an array of strings, found {t}"),
                );
                Vec::new()
            }
        }
    }

    /// An optional path, relative to the job file.
    pub(super) fn path(&mut self, key: &str) -> Option<PathBuf> {
        self.string(key).map(|p| self.relative(&p))
    }

    /// `p` relative to the job file's folder (unless absolute).
    pub(super) fn relative(&self, p: &str) -> PathBuf {
        let p = Path::new(p);
        if p.is_absolute() {
            p.to_owned()
        } else {
            self.file.path.parent().unwrap_or(Path::new(".")).join(p)
        }
    }

    /// Reports `section.type = "other"` as unknown (`expected`: the types there are) and
    /// skips the section, whose keys depend on the type.
    pub(super) fn unknown_type(&mut self, section: &str, other: &str, expected: &str) {
        let key = format!("{section}.type");
        let line = self.line_of(&key);
        self.err(
            &key,
            line,
            format!("unknown {section} type `{other}`; expected {expected}"),
        );
        self.skip_section(section);
    }

    /// Marks every leaf under `section.` as read without asking for it: used when the
    /// section's type is missing or unknown, so what it holds cannot be judged.
    pub(super) fn skip_section(&mut self, section: &str) {
        let p = format!("{}.", self.physical(section));
        for (i, l) in self.file.leaves.iter().enumerate() {
            if l.key.starts_with(&p) {
                self.used[i] = true;
            }
        }
    }

    /// Reports every leaf that was never read, suggesting the keys asked for in its section
    /// (or the sections asked for, when none was asked for in its own).
    pub(super) fn unknown_keys(&mut self) {
        for (i, leaf) in self.file.leaves.iter().enumerate() {
            if self.used[i] {
                continue;
            }
            let logical = self.logical(&leaf.key);
            let section = logical.split('.').next().unwrap_or("");
            let prefix = format!("{section}.");
            let siblings: Vec<String> = self
                .asked
                .iter()
                .filter(|k| k.starts_with(&prefix))
                .map(|k| self.physical(k))
                .collect();
            let message = if siblings.is_empty() {
                let mut sections: Vec<String> = Vec::new();
                for s in self.asked.iter().filter_map(|k| k.split('.').next()) {
                    let s = self.physical(s);
                    if !sections.contains(&s) {
                        sections.push(s);
                    }
                }
                format!("unknown key; known sections: {}", sections.join(", "))
            } else {
                format!("unknown key; expected one of: {}", siblings.join(", "))
            };
            self.errors.push(Error::Config {
                file: self.file.path.clone(),
                line: leaf.line,
                key: leaf.key.clone(),
                message,
            });
        }
    }

    /// How items are keyed: the column named at `key`, or the row number.
    pub(super) fn key_by(&mut self, key: &str) -> KeyBy {
        self.string(key).map_or(KeyBy::RowNumber, KeyBy::Column)
    }

    /// The job file's name without extension.
    pub(super) fn stem(&self) -> String {
        self.file
            .path
            .file_stem()
            .map_or_else(|| "job".to_owned(), |s| s.to_string_lossy().into_owned())
    }

    /// `STEM.suffix` beside the job file.
    pub(super) fn beside_job(&self, suffix: &str) -> PathBuf {
        self.file
            .path
            .with_file_name(format!("{}.{suffix}", self.stem()))
    }
}
