//! The one error type of `ferry-store`.
//!
//! `QueueFull` and `TenantQuota` are control flow (the server answers 429 with `Retry-After`), distinct from
//! failures. Every other variant says what was being done; messages never contain a
//! password or an API key.

use crate::types::Priority;

/// Everything a store operation can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The priority's queue already holds its maximum of unfinished jobs.
    #[error(
        "the {priority} queue is full ({limit} unfinished jobs); retry after {retry_after_secs} s"
    )]
    QueueFull {
        /// The full queue.
        priority: Priority,
        /// Its limit.
        limit: u64,
        /// A suggestion for `Retry-After`, from how fast that queue has been finishing jobs.
        retry_after_secs: u64,
    },
    /// The tenant already has as many queued items as its quota allows
    /// ([`StoreOptions::tenant_max_queued`](crate::StoreOptions::tenant_max_queued)).
    #[error(
        "tenant {tenant:?} has {queued} queued items; {more} more would pass its quota of \
         {limit}; retry after {retry_after_secs} s"
    )]
    TenantQuota {
        /// The tenant.
        tenant: String,
        /// Its quota of queued items.
        limit: u64,
        /// Its queued items now.
        queued: u64,
        /// The items of the refused job.
        more: u64,
        /// A suggestion for `Retry-After`, from how fast the tenant's items are being
        /// claimed.
        retry_after_secs: u64,
    },
    /// A new job is malformed (duplicate item keys, empty handler name).
    #[error("invalid job: {message}")]
    InvalidJob {
        /// What is wrong.
        message: String,
    },
    /// A store option is out of range (a schema name that is not a plain identifier).
    #[error("invalid store option `{option}`: {message}")]
    InvalidOption {
        /// The option.
        option: &'static str,
        /// What was expected.
        message: String,
    },
    /// The database could not be reached or a statement failed.
    #[error("{context}: {source}")]
    Sql {
        /// What was being done ("claiming items", "connecting to postgres://db/ferry").
        context: String,
        /// The driver's error.
        #[source]
        source: sqlx::Error,
    },
    /// A read on one of the SQLite store's own connections failed (the store's hottest
    /// reads run on the caller's thread, not through sqlx).
    #[error("{context}: {source}")]
    Direct {
        /// What was being done ("reading a job").
        context: String,
        /// SQLite's error.
        #[source]
        source: rusqlite::Error,
    },
    /// The database holds something this build cannot read.
    #[error("corrupt store data: {message}")]
    Corrupt {
        /// What and where.
        message: String,
    },
    /// The database was migrated by a newer build.
    #[error("the store's schema is at version {found}, newer than this build's {supported}")]
    SchemaTooNew {
        /// The version in `schema_version`.
        found: i64,
        /// The newest version this build knows.
        supported: i64,
    },
}

/// Wraps a driver error with what was being done.
impl Error {
    /// Whether the failure may pass by itself and the operation is worth retrying: the
    /// database connection was lost or refused (the server restarted, a backend was
    /// terminated, the network dropped), the pool timed out, or the database asked for a
    /// retry (serialization failure, deadlock, SQLite busy). Workers back off and retry
    /// these; every other error is a bug or bad data and is reported.
    pub fn is_transient(&self) -> bool {
        let source = match self {
            Error::Sql { source, .. } => source,
            Error::Direct { source, .. } => {
                return source.sqlite_error_code().is_some_and(|code| {
                    matches!(
                        code,
                        rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked
                    )
                })
            }
            _ => return false,
        };
        match source {
            sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::Protocol(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::WorkerCrashed => true,
            sqlx::Error::Database(e) => e.code().is_some_and(|code| {
                // 08: connection exception; 57P01-57P05: admin shutdown, crash shutdown,
                // cannot connect now, database dropped, idle session timeout; 40001 and
                // 40P01: serialization failure and deadlock; SQLite 5 and 6: busy, locked.
                code.starts_with("08")
                    || code.starts_with("57P")
                    || matches!(code.as_ref(), "40001" | "40P01" | "5" | "6" | "517")
            }),
            _ => false,
        }
    }
}

pub(crate) fn sql(context: &'static str) -> impl Fn(sqlx::Error) -> Error {
    move |source| Error::Sql {
        context: context.to_owned(),
        source,
    }
}

/// Parses stored JSON text.
pub(crate) fn json(text: &str, what: &str) -> Result<serde_json::Value, Error> {
    serde_json::from_str(text).map_err(|e| Error::Corrupt {
        message: format!("{what} is not JSON: {e}"),
    })
}

/// A connection URL with its password replaced by `***`, for messages.
pub(crate) fn redact(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_owned();
    };
    let rest = &url[scheme_end + 3..];
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    let Some(at) = authority.rfind('@') else {
        return url.to_owned();
    };
    let userinfo = &authority[..at];
    match userinfo.find(':') {
        Some(colon) => format!(
            "{}{}:***{}",
            &url[..scheme_end + 3],
            &userinfo[..colon],
            &rest[at..]
        ),
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_passwords_only() {
        assert_eq!(
            redact("postgres://u:secret@h:5432/db"),
            "postgres://u:***@h:5432/db"
        );
        assert_eq!(redact("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(redact("postgres://h/db?x=a@b"), "postgres://h/db?x=a@b");
    }
}

#[cfg(test)]
mod transient_tests {
    use super::*;

    #[test]
    fn lost_connections_are_transient_bad_data_is_not() {
        let lost = Error::Sql {
            context: "claiming items".into(),
            source: sqlx::Error::Io(std::io::Error::from(std::io::ErrorKind::ConnectionReset)),
        };
        assert!(lost.is_transient());
        let timed_out = Error::Sql {
            context: "claiming items".into(),
            source: sqlx::Error::PoolTimedOut,
        };
        assert!(timed_out.is_transient());
        let missing = Error::Sql {
            context: "reading".into(),
            source: sqlx::Error::RowNotFound,
        };
        assert!(!missing.is_transient());
        assert!(!Error::Corrupt {
            message: "x".into()
        }
        .is_transient());
    }
}
