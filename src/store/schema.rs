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
    // 2: the facts the engine uses about a lock in their own columns (read out of the driver's
    // record where an earlier version kept them), a code released by an allowed outside
    // removal, a code's pending mutations, action attempts that follow their code, and issues
    // that carry details and last for a while after their cause.
    r#"
    ALTER TABLE devices ADD COLUMN manufacturer_id INTEGER;
    ALTER TABLE devices ADD COLUMN product_type INTEGER;
    ALTER TABLE devices ADD COLUMN product_id INTEGER;
    ALTER TABLE devices ADD COLUMN user_code_version INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE devices ADD COLUMN supports_checksum INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE devices ADD COLUMN supports_bulk_reports INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE devices ADD COLUMN supports_schedule INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE devices ADD COLUMN notifications TEXT NOT NULL DEFAULT 'none'
        CHECK (notifications IN ('access_control', 'legacy_alarm', 'none'));
    ALTER TABLE devices ADD COLUMN code_capacity INTEGER;
    ALTER TABLE devices ADD COLUMN refused_code_lengths TEXT NOT NULL DEFAULT '[]';
    ALTER TABLE devices ADD COLUMN security_failure TEXT
        CHECK (security_failure IN ('key_exchange_failed', 'no_key'));
    ALTER TABLE devices ADD COLUMN security_class TEXT
        CHECK (security_class IN ('s2_access_control', 's2_authenticated', 's2_unauthenticated', 's0_legacy'));
    UPDATE devices SET
        manufacturer_id = json_extract(info_json, '$.manufacturer.manufacturer_id'),
        product_type = json_extract(info_json, '$.manufacturer.product_type'),
        product_id = json_extract(info_json, '$.manufacturer.product_id'),
        user_code_version = COALESCE(json_extract(info_json, '$.user_code.version'), 0),
        supports_checksum = COALESCE(json_extract(info_json, '$.user_code.checksum'), 0),
        supports_bulk_reports = COALESCE(json_extract(info_json, '$.user_code.bulk_reports'), 0),
        supports_schedule = (
            (COALESCE(json_extract(info_json, '$.versions."78"'), 0) > 0
             OR EXISTS (SELECT 1 FROM json_each(info_json, '$.command_classes') WHERE value = 78))
            AND (COALESCE(json_extract(info_json, '$.versions."139"'), 0) > 0
             OR EXISTS (SELECT 1 FROM json_each(info_json, '$.command_classes') WHERE value = 139))),
        security_class = CASE json_extract(info_json, '$.security_class')
            WHEN 's2_access_control' THEN 's2_access_control'
            WHEN 's2_authenticated' THEN 's2_authenticated'
            WHEN 's2_unauthenticated' THEN 's2_unauthenticated'
            WHEN 's0_legacy' THEN 's0_legacy'
            ELSE NULL END,
        notifications = CASE json_extract(info_json, '$.notification')
            WHEN 'access_control' THEN 'access_control'
            WHEN 'legacy_alarm' THEN 'legacy_alarm'
            ELSE 'none' END
    WHERE info_json IS NOT NULL AND json_valid(info_json);
    ALTER TABLE access_codes ADD COLUMN released_at TEXT;
    ALTER TABLE access_codes ADD COLUMN mutations TEXT NOT NULL DEFAULT '[]';
    ALTER TABLE access_codes ADD COLUMN removing_unmanaged INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE action_attempts ADD COLUMN access_code_id TEXT;
    CREATE INDEX action_attempts_code ON action_attempts(access_code_id) WHERE status = 'pending';
    ALTER TABLE slots ADD COLUMN disabled INTEGER NOT NULL DEFAULT 0;
    CREATE INDEX access_codes_pin ON access_codes(device_id, code) WHERE deleted_at IS NULL;
    CREATE INDEX slots_pin ON slots(device_id, code) WHERE code IS NOT NULL;
    ALTER TABLE access_code_issues ADD COLUMN details TEXT;
    ALTER TABLE access_code_issues ADD COLUMN expires_at TEXT;
    "#,
    // 3: what a lock model can do (command class versions, User Code capabilities,
    // notifications), learnt once per model and reused by the interview of every other lock
    // of the same model. Keyed by the model's ids, its firmware when known ('' otherwise) and
    // the command classes it lists.
    r#"
    CREATE TABLE lock_models (
        manufacturer_id    INTEGER NOT NULL,
        product_type       INTEGER NOT NULL,
        product_id         INTEGER NOT NULL,
        firmware           TEXT NOT NULL DEFAULT '',
        command_classes    TEXT NOT NULL,
        user_code_version  INTEGER NOT NULL CHECK (user_code_version BETWEEN 1 AND 255),
        slots              INTEGER NOT NULL CHECK (slots BETWEEN 0 AND 65535),
        supports_checksum  INTEGER NOT NULL DEFAULT 0,
        supports_bulk_reports INTEGER NOT NULL DEFAULT 0,
        code_characters    TEXT NOT NULL,
        supports_admin_code INTEGER NOT NULL DEFAULT 0,
        notifications      TEXT NOT NULL
            CHECK (notifications IN ('access_control', 'legacy_alarm', 'none')),
        versions           TEXT NOT NULL DEFAULT '{}',
        learnt_at          TEXT NOT NULL,
        PRIMARY KEY (manufacturer_id, product_type, product_id, firmware, command_classes)
    );
    "#,
    // 4: a lock's codes in list order, so a page of a lock with 10,000 codes reads its page
    // and no more (it was a sort of every code per page); issues that expire, so a pass's
    // housekeeping does not scan every issue of the lock.
    r#"
    CREATE INDEX access_codes_device_order ON access_codes(device_id, created_at, access_code_id)
        WHERE deleted_at IS NULL;
    CREATE INDEX access_code_issues_expiring ON access_code_issues(expires_at)
        WHERE expires_at IS NOT NULL;
    "#,
    // 5: creates' idempotency keys, kept with the code each made (in that code's own
    // transaction), so that a create retried after the daemon restarted (a power cut before
    // the answer went out) finds its code instead of making a second one. No foreign key: a
    // key outlives its code, so that a retry never brings a deleted code back.
    r#"
    CREATE TABLE idempotency_keys (
        route             TEXT NOT NULL,
        key               TEXT NOT NULL,
        device_id         TEXT NOT NULL,
        fingerprint       TEXT NOT NULL,
        access_code_id    TEXT NOT NULL,
        action_attempt_id TEXT NOT NULL,
        created_at        TEXT NOT NULL,
        PRIMARY KEY (route, key, device_id)
    );
    CREATE INDEX idempotency_keys_age ON idempotency_keys(created_at);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Notifications, Store};

    #[test]
    fn version_1_devices_get_their_facts_in_columns() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v1.db");
        {
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch(&format!("{}; PRAGMA user_version = 1;", MIGRATIONS[0]))
                .unwrap();
            // The driver's record as version 1 kept it (only what the migration reads).
            let info = r#"{"node_id":5,"versions":{"78":3,"139":1,"99":2},"command_classes":[99,78,139],
                "manufacturer":{"manufacturer_id":59,"product_type":1,"product_id":2},
                "user_code":{"version":2,"slots":30,"checksum":true,"bulk_reports":false,"characters":"0123456789","admin_code":false},
                "notification":"access_control","security_class":"s2_access_control"}"#;
            conn.execute(
                "INSERT INTO devices (device_id, node_id, name, info_json, slot_count, created_at, updated_at) \
                 VALUES ('6428cb03-4b0c-4d05-90fc-ab19cf621d4e', 5, 'front', ?1, 30, '2026-01-01T00:00:00.000Z', '2026-01-01T00:00:00.000Z')",
                [info],
            )
            .unwrap();
            conn.execute(
                "INSERT INTO devices (device_id, node_id, name, info_json, created_at, updated_at) \
                 VALUES ('6428cb03-4b0c-4d05-90fc-ab19cf621d4f', 6, 'back', 'not json', '2026-01-01T00:00:00.000Z', '2026-01-01T00:00:00.000Z')",
                [],
            )
            .unwrap();
        }
        let store = Store::open(&path).unwrap();
        let d = Store::device_by_node(store.conn(), 5).unwrap().unwrap();
        let f = &d.facts;
        assert_eq!(
            (f.manufacturer_id, f.product_type, f.product_id),
            (Some(59), Some(1), Some(2))
        );
        assert_eq!(f.user_code_version, 2);
        assert!(f.supports_checksum && !f.supports_bulk_reports && f.supports_schedule);
        assert_eq!(f.notifications, Notifications::AccessControl);
        assert_eq!(
            f.security_class,
            Some(crate::security::SecurityClass::S2AccessControl)
        );
        // A record that cannot be read leaves the facts at their defaults (the next interview
        // fills them), and the row stays readable.
        let d = Store::device_by_node(store.conn(), 6).unwrap().unwrap();
        assert_eq!(d.facts, Default::default());
    }
}
