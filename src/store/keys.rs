//! Idempotency keys of creates: which code (and action attempt) a key made on a lock, kept a
//! day and at most [`KEYS_KEPT`], written in the transaction that makes the code.

use chrono::{DateTime, Duration, Utc};
use rusqlite::{params, Connection};
use uuid::Uuid;

use super::{parse_ts, parse_uuid, ts, Cached, Store, StoreError};

/// Keys kept at most (the oldest go first).
pub const KEYS_KEPT: usize = 10_000;

/// How long a key is kept.
pub const KEY_TTL: Duration = Duration::hours(24);

/// What a key made on one lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRow {
    pub route: String,
    pub key: String,
    pub device_id: Uuid,
    /// The request's parameters' fingerprint: the same key with others is refused.
    pub fingerprint: String,
    pub access_code_id: Uuid,
    pub action_attempt_id: Uuid,
    pub created_at: DateTime<Utc>,
}

impl Store {
    /// Record what a key made; keys past [`KEY_TTL`] or beyond [`KEYS_KEPT`] go.
    pub fn put_key(conn: &Connection, k: &KeyRow) -> Result<(), StoreError> {
        conn.exec(
            "DELETE FROM idempotency_keys WHERE created_at < ?1",
            [ts(&(k.created_at - KEY_TTL))],
        )?;
        conn.exec(
            "INSERT INTO idempotency_keys (route, key, device_id, fingerprint, access_code_id, action_attempt_id, created_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                k.route,
                k.key,
                k.device_id.to_string(),
                k.fingerprint,
                k.access_code_id.to_string(),
                k.action_attempt_id.to_string(),
                ts(&k.created_at),
            ],
        )?;
        conn.exec(
            "DELETE FROM idempotency_keys WHERE rowid IN (SELECT rowid FROM idempotency_keys \
             ORDER BY created_at DESC LIMIT -1 OFFSET ?1)",
            [KEYS_KEPT as i64],
        )?;
        Ok(())
    }

    /// What `key` made on `route`, lock by lock (none when it is unknown or past its time).
    pub fn keyed(
        conn: &Connection,
        route: &str,
        key: &str,
        now: &DateTime<Utc>,
    ) -> Result<Vec<KeyRow>, StoreError> {
        let mut stmt = conn.prepare_cached(
            "SELECT route, key, device_id, fingerprint, access_code_id, action_attempt_id, created_at \
             FROM idempotency_keys WHERE route = ?1 AND key = ?2 AND created_at >= ?3 ORDER BY created_at",
        )?;
        let rows = stmt.query_map(params![route, key, ts(&(*now - KEY_TTL))], |r| {
            let strings: [String; 7] = [
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
                r.get(6)?,
            ];
            Ok(strings)
        })?;
        rows.map(|r| {
            let [route, key, device, fingerprint, code, attempt, created] = r?;
            Ok(KeyRow {
                route,
                key,
                device_id: parse_uuid("idempotency_keys.device_id", &device)?,
                fingerprint,
                access_code_id: parse_uuid("idempotency_keys.access_code_id", &code)?,
                action_attempt_id: parse_uuid("idempotency_keys.action_attempt_id", &attempt)?,
                created_at: parse_ts("idempotency_keys.created_at", &created)?,
            })
        })
        .collect()
    }

    /// How many keys are kept.
    pub fn key_count(conn: &Connection) -> Result<usize, StoreError> {
        Ok(conn.one("SELECT count(*) FROM idempotency_keys", [], |r| {
            r.get::<_, i64>(0)
        })? as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;

    fn row(key: &str, at: DateTime<Utc>) -> KeyRow {
        KeyRow {
            route: "/access_codes/create".into(),
            key: key.into(),
            device_id: Uuid::new_v4(),
            fingerprint: "00000000000000ff".into(),
            access_code_id: Uuid::new_v4(),
            action_attempt_id: Uuid::new_v4(),
            created_at: at,
        }
    }

    #[test]
    fn keys_are_found_by_route_and_key_and_go_after_a_day_or_beyond_the_cap() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("k.db")).unwrap();
        // To the millisecond, as stored.
        let now = parse_ts("now", &ts(&Utc::now())).unwrap();
        let old = row("old", now - KEY_TTL - Duration::minutes(1));
        let fresh = row("fresh", now);
        store
            .transaction(|tx| {
                Store::put_key(tx, &old)?;
                Store::put_key(tx, &fresh)
            })
            .unwrap();
        let c = store.conn();
        // The old one went when the fresh one came (and would not be found anyway).
        assert_eq!(Store::key_count(c).unwrap(), 1);
        assert!(Store::keyed(c, &old.route, "old", &now).unwrap().is_empty());
        assert_eq!(
            Store::keyed(c, &fresh.route, "fresh", &now).unwrap(),
            std::slice::from_ref(&fresh)
        );
        assert!(
            Store::keyed(c, "/access_codes/create_multiple", "fresh", &now)
                .unwrap()
                .is_empty()
        );
        // A day later it is not found, though nothing has removed it yet.
        let later = now + KEY_TTL + Duration::minutes(1);
        assert!(Store::keyed(c, &fresh.route, "fresh", &later)
            .unwrap()
            .is_empty());
        // At most KEYS_KEPT: the oldest go first.
        store
            .transaction(|tx| {
                for n in 0..KEYS_KEPT {
                    Store::put_key(
                        tx,
                        &row(&format!("k{n}"), now + Duration::milliseconds(n as i64)),
                    )?;
                }
                Ok(())
            })
            .unwrap();
        let c = store.conn();
        assert_eq!(Store::key_count(c).unwrap(), KEYS_KEPT);
        assert!(Store::keyed(c, &fresh.route, "fresh", &now)
            .unwrap()
            .is_empty());
        assert_eq!(Store::keyed(c, &fresh.route, "k0", &now).unwrap().len(), 1);
    }
}
