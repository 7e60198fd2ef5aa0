//! The schema and its migrations. `PRAGMA user_version` holds the version; each migration
//! runs in its own transaction.

use std::path::Path;

use rusqlite::Connection;

use super::StoreError;

/// Migrations, in order; migration `i` brings the schema to version `i + 1`.
const MIGRATIONS: &[&str] = &[
    // 1: the first schema.
    r#"
    CREATE TABLE devices (
        device_id        TEXT PRIMARY KEY,
        node_id          INTEGER NOT NULL UNIQUE,
        name             TEXT NOT NULL,
        info_json        TEXT,
        slot_count       INTEGER NOT NULL DEFAULT 0,
        min_code_length  INTEGER NOT NULL DEFAULT 4,
        max_code_length  INTEGER NOT NULL DEFAULT 10,
        code_characters  TEXT NOT NULL DEFAULT '0123456789',
        online           INTEGER NOT NULL DEFAULT 1,
        battery_level    INTEGER,
        locked           INTEGER,
        last_contact_at  TEXT,
        reserved_slots   TEXT NOT NULL DEFAULT '[]',
        backup_pool_size INTEGER NOT NULL DEFAULT 0,
        created_at       TEXT NOT NULL,
        updated_at       TEXT NOT NULL
    );

    CREATE TABLE slots (
        device_id     TEXT NOT NULL REFERENCES devices(device_id) ON DELETE CASCADE,
        slot          INTEGER NOT NULL,
        state         TEXT NOT NULL CHECK (state IN ('empty', 'occupied', 'hidden', 'unavailable')),
        code          TEXT,
        unmanaged_id  TEXT NOT NULL,
        reported_at   TEXT NOT NULL,
        PRIMARY KEY (device_id, slot)
    );

    CREATE TABLE access_codes (
        access_code_id                TEXT PRIMARY KEY,
        device_id                     TEXT NOT NULL REFERENCES devices(device_id) ON DELETE CASCADE,
        code                          TEXT NOT NULL,
        name                          TEXT,
        common_code_key               TEXT,
        starts_at                     TEXT,
        ends_at                       TEXT,
        status                        TEXT NOT NULL CHECK (status IN ('unset', 'setting', 'set', 'removing', 'unknown')),
        desired                       TEXT NOT NULL CHECK (desired IN ('active', 'deleted')),
        slot                          INTEGER,
        programmed_code               TEXT,
        allow_external_modification   INTEGER NOT NULL DEFAULT 0,
        is_one_time_use               INTEGER NOT NULL DEFAULT 0,
        is_backup                     INTEGER NOT NULL DEFAULT 0,
        pulled_backup_access_code_id  TEXT,
        prefer_native_scheduling      INTEGER NOT NULL DEFAULT 1,
        is_scheduled_on_device        INTEGER NOT NULL DEFAULT 0,
        attempts                      INTEGER NOT NULL DEFAULT 0,
        next_attempt_at               TEXT,
        pending_since                 TEXT,
        blocked                       INTEGER NOT NULL DEFAULT 0,
        used_at                       TEXT,
        created_at                    TEXT NOT NULL,
        updated_at                    TEXT NOT NULL,
        deleted_at                    TEXT
    );
    CREATE INDEX access_codes_device ON access_codes(device_id, deleted_at);
    CREATE INDEX access_codes_common_key ON access_codes(common_code_key);
    CREATE UNIQUE INDEX access_codes_slot ON access_codes(device_id, slot)
        WHERE slot IS NOT NULL AND deleted_at IS NULL;

    CREATE TABLE access_code_issues (
        access_code_id TEXT NOT NULL REFERENCES access_codes(access_code_id) ON DELETE CASCADE,
        kind           TEXT NOT NULL CHECK (kind IN ('error', 'warning')),
        code           TEXT NOT NULL,
        message        TEXT NOT NULL,
        created_at     TEXT NOT NULL,
        PRIMARY KEY (access_code_id, kind, code)
    );

    CREATE TABLE events (
        seq             INTEGER PRIMARY KEY AUTOINCREMENT,
        event_id        TEXT NOT NULL UNIQUE,
        event_type      TEXT NOT NULL,
        device_id       TEXT,
        access_code_id  TEXT,
        occurred_at     TEXT NOT NULL,
        created_at      TEXT NOT NULL,
        payload         TEXT NOT NULL DEFAULT '{}'
    );
    CREATE INDEX events_created ON events(created_at);
    CREATE INDEX events_code ON events(access_code_id);

    CREATE TABLE daemon_state (
        key   TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );

    CREATE TABLE action_attempts (
        action_attempt_id TEXT PRIMARY KEY,
        action_type       TEXT NOT NULL,
        status            TEXT NOT NULL CHECK (status IN ('pending', 'success', 'error')),
        result            TEXT,
        error             TEXT,
        created_at        TEXT NOT NULL,
        updated_at        TEXT NOT NULL
    );
    "#,
];

/// The schema version this binary writes.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

pub(super) fn migrate(conn: &Connection, path: &Path) -> Result<(), StoreError> {
    let mut version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if version > SCHEMA_VERSION {
        return Err(StoreError::NewerSchema {
            path: path.to_path_buf(),
            found: version,
            known: SCHEMA_VERSION,
        });
    }
    while version < SCHEMA_VERSION {
        let sql = MIGRATIONS[version as usize];
        conn.execute_batch(&format!(
            "BEGIN IMMEDIATE; {sql}; PRAGMA user_version = {}; COMMIT;",
            version + 1
        ))
        .map_err(|e| {
            let _ = conn.execute_batch("ROLLBACK;");
            StoreError::Open {
                path: path.to_path_buf(),
                source: e,
            }
        })?;
        version += 1;
        tracing::info!(version, "database schema migrated");
    }
    Ok(())
}
