//! The SQLite store: devices, slots, access codes, their errors and warnings, events, action
//! attempts, and what each lock model can do ([`ModelRow`]). Knows nothing of the radio.
//!
//! One file, WAL mode, `synchronous=FULL` (a committed transition survives power loss),
//! foreign keys on, mode 0600, a versioned schema migrated at open. A schema newer than this
//! binary knows is refused rather than guessed at.

mod attempts;
mod codes;
mod devices;
mod events;
mod keys;
mod models;
mod repo;
mod schema;
mod slots;

use std::path::{Path, PathBuf};

use chrono::{DateTime, SecondsFormat, Utc};
use rusqlite::{Connection, OpenFlags};

pub use attempts::AttemptRow;
pub use codes::{
    CodeFilter, CodeRow, CodeStatus, Desired, IssueKind, IssueRow, Mutation, MutationKind,
};
pub use devices::{DeviceFacts, DeviceRow, LockFacts, Notifications, SecurityProblem};
pub use events::{EventFilter, EventRow};
pub use keys::{KeyRow, KEYS_KEPT, KEY_TTL};
pub use models::{ModelKeyRow, ModelRow};
pub use repo::{Repo, Tx};
pub use schema::SCHEMA_VERSION;
pub use slots::{SlotRow, SlotState};

/// Statements the store runs again and again are compiled once per connection: parsing a
/// 28-column upsert cost more than running it.
const STATEMENT_CACHE: usize = 64;

/// `execute` and `query_row` through the connection's statement cache.
pub(crate) trait Cached {
    fn exec<P: rusqlite::Params>(&self, sql: &str, params: P) -> rusqlite::Result<usize>;
    fn one<T, P: rusqlite::Params>(
        &self,
        sql: &str,
        params: P,
        f: impl FnOnce(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
    ) -> rusqlite::Result<T>;
}

impl Cached for Connection {
    fn exec<P: rusqlite::Params>(&self, sql: &str, params: P) -> rusqlite::Result<usize> {
        self.prepare_cached(sql)?.execute(params)
    }
    fn one<T, P: rusqlite::Params>(
        &self,
        sql: &str,
        params: P,
        f: impl FnOnce(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
    ) -> rusqlite::Result<T> {
        self.prepare_cached(sql)?.query_row(params, f)
    }
}

/// Why the store failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database {path}: {source}")]
    Open {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error("database {path}: schema version {found} is newer than this zwlock knows ({known}); upgrade zwlock or restore a backup")]
    NewerSchema {
        path: PathBuf,
        found: i64,
        known: i64,
    },
    #[error("database {path}: {reason}")]
    File { path: PathBuf, reason: String },
    #[error("database: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("database holds a bad value in {what}: {value}")]
    Corrupt { what: &'static str, value: String },
}

impl StoreError {
    /// Whether trying again can help (a busy database) or not (a bad file or schema).
    pub fn is_retryable(&self) -> bool {
        match self {
            StoreError::Sql(rusqlite::Error::SqliteFailure(e, _)) => matches!(
                e.code,
                rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked
            ),
            _ => false,
        }
    }
}

/// A connection to the store.
pub struct Store {
    conn: Connection,
    path: PathBuf,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("path", &self.path).finish()
    }
}

impl Store {
    /// Open (creating if needed) the database at `path` and bring its schema up to date.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let file_err = |reason: String| StoreError::File {
            path: path.to_path_buf(),
            reason,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| file_err(format!("cannot create {}: {e}", dir.display())))?;
        }
        let existed = path.exists();
        if !existed {
            // Create the file 0600 before SQLite does, so there is never a wider window.
            use std::os::unix::fs::OpenOptionsExt;
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path)
                .map_err(|e| file_err(e.to_string()))?;
        } else {
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600));
        }
        let conn = Store::connect(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE,
        )?;
        let store = Store {
            conn,
            path: path.to_path_buf(),
        };
        store.configure()?;
        schema::migrate(&store.conn, path)?;
        Ok(store)
    }

    /// A connection to the file as the store's connections are made: not shared across
    /// threads (each sits behind its own lock), waiting up to 5 s for a busy database, with
    /// the statement cache.
    pub(crate) fn connect(path: &Path, flags: OpenFlags) -> Result<Connection, StoreError> {
        let conn = Connection::open_with_flags(path, flags | OpenFlags::SQLITE_OPEN_NO_MUTEX)
            .map_err(|source| StoreError::Open {
                path: path.to_path_buf(),
                source,
            })?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        Ok(conn)
    }

    /// A read-only connection (for the API); WAL lets it read while the engine writes.
    pub fn open_read_only(path: &Path) -> Result<Store, StoreError> {
        let conn = Store::connect(path, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
        let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        if version > SCHEMA_VERSION {
            return Err(StoreError::NewerSchema {
                path: path.to_path_buf(),
                found: version,
                known: SCHEMA_VERSION,
            });
        }
        Ok(Store {
            conn,
            path: path.to_path_buf(),
        })
    }

    fn configure(&self) -> Result<(), StoreError> {
        self.conn.pragma_update(None, "journal_mode", "WAL")?;
        self.conn.pragma_update(None, "synchronous", "FULL")?;
        self.conn.pragma_update(None, "foreign_keys", "ON")?;
        Ok(())
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The connection, for reads.
    pub fn conn(&self) -> &Connection {
        &self.conn
    }

    pub(crate) fn conn_mut(&mut self) -> &mut Connection {
        &mut self.conn
    }

    /// Run `f` in one transaction: all of it is committed, or none.
    pub fn transaction<T>(
        &mut self,
        f: impl FnOnce(&rusqlite::Transaction<'_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let tx = self.conn.transaction()?;
        let v = f(&tx)?;
        tx.commit()?;
        Ok(v)
    }

    /// A small piece of daemon state (e.g. whether the stick is connected).
    pub fn state(conn: &Connection, key: &str) -> Result<Option<String>, StoreError> {
        use rusqlite::OptionalExtension;
        Ok(conn
            .query_row(
                "SELECT value FROM daemon_state WHERE key = ?1",
                [key],
                |r| r.get(0),
            )
            .optional()?)
    }

    pub fn set_state(conn: &Connection, key: &str, value: &str) -> Result<(), StoreError> {
        conn.exec(
            "INSERT INTO daemon_state (key, value) VALUES (?1, ?2) ON CONFLICT(key) DO UPDATE SET value = ?2",
            [key, value],
        )?;
        Ok(())
    }

    /// Forget a daemon state entry (absent is fine).
    pub fn delete_state(conn: &Connection, key: &str) -> Result<(), StoreError> {
        conn.exec("DELETE FROM daemon_state WHERE key = ?1", [key])?;
        Ok(())
    }

    /// Close cleanly (checkpoint the WAL).
    pub fn close(self) -> Result<(), StoreError> {
        let _ = self.conn.pragma_update(None, "wal_checkpoint", "TRUNCATE");
        self.conn.close().map_err(|(_, e)| StoreError::Sql(e))
    }
}

/// Timestamps are stored as RFC 3339 text with milliseconds, always UTC.
pub fn ts(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

pub(crate) fn parse_ts(what: &'static str, s: &str) -> Result<DateTime<Utc>, StoreError> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| StoreError::Corrupt {
            what,
            value: s.to_string(),
        })
}

pub(crate) fn parse_opt_ts(
    what: &'static str,
    s: Option<String>,
) -> Result<Option<DateTime<Utc>>, StoreError> {
    s.map(|s| parse_ts(what, &s)).transpose()
}

pub(crate) fn parse_uuid(what: &'static str, s: &str) -> Result<uuid::Uuid, StoreError> {
    uuid::Uuid::parse_str(s).map_err(|_| StoreError::Corrupt {
        what,
        value: s.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creates_the_file_0600_in_wal_mode_with_foreign_keys() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/zwlock.db");
        let store = Store::open(&path).unwrap();
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let jm: String = store
            .conn()
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        assert_eq!(jm, "wal");
        let sync: i64 = store
            .conn()
            .query_row("PRAGMA synchronous", [], |r| r.get(0))
            .unwrap();
        assert_eq!(sync, 2, "FULL");
        let fk: i64 = store
            .conn()
            .query_row("PRAGMA foreign_keys", [], |r| r.get(0))
            .unwrap();
        assert_eq!(fk, 1);
        let v: i64 = store
            .conn()
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(v, SCHEMA_VERSION);
        store.close().unwrap();
        // Opening again migrates nothing and keeps the version.
        let store = Store::open(&path).unwrap();
        let v: i64 = store
            .conn()
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(v, SCHEMA_VERSION);
    }

    #[test]
    fn a_newer_schema_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("zwlock.db");
        let store = Store::open(&path).unwrap();
        store
            .conn()
            .pragma_update(None, "user_version", SCHEMA_VERSION + 1)
            .unwrap();
        store.close().unwrap();
        let e = Store::open(&path).unwrap_err();
        assert!(matches!(e, StoreError::NewerSchema { .. }), "{e}");
        assert!(e.to_string().contains("newer"), "{e}");
        assert!(!e.is_retryable());
    }

    #[test]
    fn a_file_that_is_not_a_database_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("zwlock.db");
        std::fs::write(
            &path,
            b"this is not sqlite, just text that is long enough to matter ........",
        )
        .unwrap();
        let e = Store::open(&path).unwrap_err();
        assert!(
            e.to_string().contains("zwlock.db") || e.to_string().contains("database"),
            "{e}"
        );
    }
}
