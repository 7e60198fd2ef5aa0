//! Access codes (declared state plus what is known to be on the lock), and their errors and
//! warnings.

use chrono::{DateTime, Utc};
use rusqlite::{params, Connection, OptionalExtension, Row, ToSql};
use uuid::Uuid;

use super::{parse_opt_ts, parse_ts, parse_uuid, ts, Cached, Store, StoreError};

/// Where a code is in its life on the lock, as users see it (Seam's `status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CodeStatus {
    /// Not on the lock: not yet, waiting for its window, or waiting for a slot.
    Unset,
    /// Being programmed (the intent is committed; the lock has not confirmed).
    Setting,
    /// On the lock and usable.
    Set,
    /// Being removed.
    Removing,
    /// The state cannot be verified.
    Unknown,
}

impl CodeStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            CodeStatus::Unset => "unset",
            CodeStatus::Setting => "setting",
            CodeStatus::Set => "set",
            CodeStatus::Removing => "removing",
            CodeStatus::Unknown => "unknown",
        }
    }

    pub fn parse(s: &str) -> Result<Self, StoreError> {
        Ok(match s {
            "unset" => CodeStatus::Unset,
            "setting" => CodeStatus::Setting,
            "set" => CodeStatus::Set,
            "removing" => CodeStatus::Removing,
            "unknown" => CodeStatus::Unknown,
            other => {
                return Err(StoreError::Corrupt {
                    what: "access_codes.status",
                    value: other.to_string(),
                })
            }
        })
    }

    /// A write is under way (its outcome is not known yet).
    pub fn is_transitional(self) -> bool {
        matches!(self, CodeStatus::Setting | CodeStatus::Removing)
    }
}

impl std::fmt::Display for CodeStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl PartialEq<&str> for CodeStatus {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

/// What the user declared about a code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Desired {
    /// On the lock while in its window.
    Active,
    /// Deleted by the user: removed from the lock, then forgotten.
    Deleted,
    /// Removed outside zwlock while external changes were allowed: the change stands, the code
    /// holds no slot and is not put back until it is updated.
    Released,
}

/// A change to a code that the lock has not caught up with yet (Seam's pending mutations).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MutationKind {
    /// A new PIN for a code that is on the lock.
    UpdatingCode,
    /// A new window for a code that is on the lock (or scheduled on it).
    UpdatingTimeFrame,
    /// Deleted: coming off the lock.
    Deleting,
}

/// One pending change, with when it was asked for and what it changes (`from`, `to`).
#[derive(Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Mutation {
    pub kind: MutationKind,
    pub created_at: DateTime<Utc>,
    #[serde(default)]
    pub from: serde_json::Value,
    #[serde(default)]
    pub to: serde_json::Value,
}

impl std::fmt::Debug for Mutation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // `from`/`to` of a code change hold PINs.
        f.debug_struct("Mutation")
            .field("kind", &self.kind)
            .field("created_at", &self.created_at)
            .finish_non_exhaustive()
    }
}

/// An access code as stored.
#[derive(Clone, PartialEq, Eq)]
pub struct CodeRow {
    pub access_code_id: Uuid,
    pub device_id: Uuid,
    /// The declared PIN.
    pub code: String,
    pub name: Option<String>,
    pub common_code_key: Option<String>,
    pub starts_at: Option<DateTime<Utc>>,
    pub ends_at: Option<DateTime<Utc>>,
    pub status: CodeStatus,
    pub desired: Desired,
    pub slot: Option<u16>,
    /// The PIN confirmed on the lock in `slot`, if any.
    pub programmed_code: Option<String>,
    pub allow_external_modification: bool,
    pub is_one_time_use: bool,
    pub is_backup: bool,
    /// On an original: the backup pulled for it. On a backup: the original it was pulled for
    /// (None while it waits in the pool).
    pub pulled_backup_access_code_id: Option<Uuid>,
    pub prefer_native_scheduling: bool,
    pub is_scheduled_on_device: bool,
    /// Failed attempts in the current effort to set or remove.
    pub attempts: u32,
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// When the current effort to set or remove began.
    pub pending_since: Option<DateTime<Utc>>,
    pub used_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub deleted_at: Option<DateTime<Utc>>,
    /// Changes the lock has not caught up with yet.
    pub mutations: Vec<Mutation>,
    /// Not a managed code: the record of an unmanaged code being removed at a user's request
    /// (it never shows among managed codes).
    pub removing_unmanaged: bool,
}

impl CodeRow {
    /// Record a pending change (replacing one of the same kind, keeping its first `from`).
    pub fn mutate(
        &mut self,
        kind: MutationKind,
        at: DateTime<Utc>,
        from: serde_json::Value,
        to: serde_json::Value,
    ) {
        match self.mutations.iter_mut().find(|m| m.kind == kind) {
            Some(m) => {
                m.to = to;
                m.created_at = at;
            }
            None => self.mutations.push(Mutation {
                kind,
                created_at: at,
                from,
                to,
            }),
        }
    }

    /// The lock caught up with these kinds of change.
    pub fn settle(&mut self, kinds: &[MutationKind]) {
        self.mutations.retain(|m| !kinds.contains(&m.kind));
    }

    /// A new managed code for `device` with PIN `code`: ongoing, wanted on the lock, not there
    /// yet, no slot. Callers set what differs with struct update syntax.
    pub fn new(device_id: Uuid, code: String, now: DateTime<Utc>) -> CodeRow {
        CodeRow {
            access_code_id: Uuid::new_v4(),
            device_id,
            code,
            name: None,
            common_code_key: None,
            starts_at: None,
            ends_at: None,
            status: CodeStatus::Unset,
            desired: Desired::Active,
            slot: None,
            programmed_code: None,
            allow_external_modification: false,
            is_one_time_use: false,
            is_backup: false,
            pulled_backup_access_code_id: None,
            prefer_native_scheduling: true,
            is_scheduled_on_device: false,
            attempts: 0,
            next_attempt_at: None,
            pending_since: None,
            used_at: None,
            created_at: now,
            updated_at: now,
            deleted_at: None,
            mutations: Vec::new(),
            removing_unmanaged: false,
        }
    }
}

impl std::fmt::Debug for CodeRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CodeRow")
            .field("access_code_id", &self.access_code_id)
            .field("device_id", &self.device_id)
            .field("status", &self.status)
            .field("desired", &self.desired)
            .field("slot", &self.slot)
            .field("starts_at", &self.starts_at)
            .field("ends_at", &self.ends_at)
            .field("attempts", &self.attempts)
            .finish_non_exhaustive()
    }
}

const COLUMNS: &str =
    "access_code_id, device_id, code, name, common_code_key, starts_at, ends_at, status, \
    desired, slot, programmed_code, allow_external_modification, is_one_time_use, is_backup, \
    pulled_backup_access_code_id, prefer_native_scheduling, is_scheduled_on_device, attempts, \
    next_attempt_at, pending_since, blocked, used_at, created_at, updated_at, deleted_at, released_at, \
    mutations, removing_unmanaged";

fn from_row(r: &Row<'_>) -> rusqlite::Result<Result<CodeRow, StoreError>> {
    // Columns kept as text are copied out; those only parsed (ids, times, enums, the
    // mutations list) are read in place: a plan of a lock with 10,000 codes reads them all.
    let s = |i: usize| r.get::<_, Option<String>>(i);
    let t = |i: usize| {
        r.get_ref(i)?.as_str_or_null().map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, Box::new(e))
        })
    };
    let b = |i: usize| r.get::<_, i64>(i).map(|v| v != 0);
    let row = CodeRow {
        access_code_id: Uuid::nil(),
        device_id: Uuid::nil(),
        code: r.get(2)?,
        name: s(3)?,
        common_code_key: s(4)?,
        starts_at: None,
        ends_at: None,
        status: CodeStatus::Unset,
        desired: Desired::Active,
        slot: r.get::<_, Option<i64>>(9)?.map(|v| v as u16),
        programmed_code: s(10)?,
        allow_external_modification: b(11)?,
        is_one_time_use: b(12)?,
        is_backup: b(13)?,
        pulled_backup_access_code_id: None,
        prefer_native_scheduling: b(15)?,
        is_scheduled_on_device: b(16)?,
        attempts: r.get::<_, i64>(17)? as u32,
        next_attempt_at: None,
        pending_since: None,
        used_at: None,
        created_at: DateTime::<Utc>::UNIX_EPOCH,
        updated_at: DateTime::<Utc>::UNIX_EPOCH,
        deleted_at: None,
        mutations: Vec::new(),
        removing_unmanaged: b(27)?,
    };
    let (id, device) = (t(0)?.unwrap_or_default(), t(1)?.unwrap_or_default());
    let (starts, ends, pulled) = (t(5)?, t(6)?, t(14)?);
    let (status, desired) = (t(7)?.unwrap_or_default(), t(8)?.unwrap_or_default());
    let (next, pending, used) = (t(18)?, t(19)?, t(21)?);
    let (created, updated) = (t(22)?.unwrap_or_default(), t(23)?.unwrap_or_default());
    let (deleted, released) = (t(24)?, t(25)?);
    let mutations = t(26)?.unwrap_or_default();
    let opt_ts = |what, v: Option<&str>| v.map(|v| parse_ts(what, v)).transpose();
    Ok((|| {
        let desired = match (desired, released.is_some()) {
            ("active", false) => Desired::Active,
            ("active", true) => Desired::Released,
            ("deleted", _) => Desired::Deleted,
            (other, _) => {
                return Err(StoreError::Corrupt {
                    what: "access_codes.desired",
                    value: other.to_string(),
                })
            }
        };
        Ok(CodeRow {
            status: CodeStatus::parse(status)?,
            desired,
            access_code_id: parse_uuid("access_codes.access_code_id", id)?,
            device_id: parse_uuid("access_codes.device_id", device)?,
            starts_at: opt_ts("access_codes.starts_at", starts)?,
            ends_at: opt_ts("access_codes.ends_at", ends)?,
            pulled_backup_access_code_id: pulled
                .map(|p| parse_uuid("access_codes.pulled_backup_access_code_id", p))
                .transpose()?,
            next_attempt_at: opt_ts("access_codes.next_attempt_at", next)?,
            pending_since: opt_ts("access_codes.pending_since", pending)?,
            used_at: opt_ts("access_codes.used_at", used)?,
            created_at: parse_ts("access_codes.created_at", created)?,
            updated_at: parse_ts("access_codes.updated_at", updated)?,
            deleted_at: opt_ts("access_codes.deleted_at", deleted)?,
            mutations: if mutations == "[]" {
                Vec::new()
            } else {
                serde_json::from_str(mutations).map_err(|_| StoreError::Corrupt {
                    what: "access_codes.mutations",
                    value: "(not a list of mutations)".into(),
                })?
            },
            ..row
        })
    })())
}

/// Which codes to list.
#[derive(Debug, Clone, Default)]
pub struct CodeFilter {
    pub device_id: Option<Uuid>,
    pub access_code_ids: Option<Vec<Uuid>>,
    pub common_code_key: Option<String>,
    /// Partial match on name, code or id.
    pub search: Option<String>,
    pub include_backups: bool,
    /// Continue after this (created_at, id) position.
    pub after: Option<(DateTime<Utc>, Uuid)>,
    pub limit: Option<usize>,
}

/// Error or warning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IssueKind {
    Error,
    Warning,
}

impl IssueKind {
    fn as_str(self) -> &'static str {
        match self {
            IssueKind::Error => "error",
            IssueKind::Warning => "warning",
        }
    }
}

/// An error or warning on an access code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssueRow {
    pub kind: IssueKind,
    pub code: String,
    pub message: String,
    pub created_at: DateTime<Utc>,
    /// Extra fields of the issue's JSON object (e.g. `change_type`, `modified_fields`).
    pub details: Option<serde_json::Value>,
    /// The issue is dropped from this time on (None: while its cause lasts).
    pub expires_at: Option<DateTime<Utc>>,
}

/// Every engine pass runs this, in a write transaction. Walked from the expiring issues (by
/// their index: usually none), each checked for its device. Left to itself SQLite walks the
/// device's codes instead and looks each one's issues up: 25-40 ms holding the writer on a
/// lock with 10,000 codes, which every create then waited for.
pub(super) const DROP_EXPIRED_ISSUES: &str =
    "DELETE FROM access_code_issues INDEXED BY access_code_issues_expiring \
     WHERE expires_at IS NOT NULL AND expires_at <= ?2 AND EXISTS (SELECT 1 FROM access_codes c \
     WHERE c.access_code_id = access_code_issues.access_code_id AND c.device_id = ?1)";

impl Store {
    /// Write a whole code row (insert, or update in place: a REPLACE would delete the row and
    /// with it, by cascade, its errors and warnings).
    pub fn put_code(conn: &Connection, c: &CodeRow) -> Result<(), StoreError> {
        let opt_ts = |t: &Option<DateTime<Utc>>| t.as_ref().map(ts);
        static UPSERT: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
            let updates = COLUMNS
                .split(',')
                .map(str::trim)
                .filter(|c| *c != "access_code_id")
                .map(|c| format!("{c} = excluded.{c}"))
                .collect::<Vec<_>>()
                .join(", ");
            format!(
                "INSERT INTO access_codes ({COLUMNS}) VALUES \
                 (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22, ?23, ?24, ?25, ?26, ?27, ?28) \
                 ON CONFLICT(access_code_id) DO UPDATE SET {updates}"
            )
        });
        conn.exec(
            &UPSERT,
            params![
                c.access_code_id.to_string(),
                c.device_id.to_string(),
                c.code,
                c.name,
                c.common_code_key,
                opt_ts(&c.starts_at),
                opt_ts(&c.ends_at),
                c.status.as_str(),
                if c.desired == Desired::Deleted {
                    "deleted"
                } else {
                    "active"
                },
                c.slot,
                c.programmed_code,
                c.allow_external_modification,
                c.is_one_time_use,
                c.is_backup,
                c.pulled_backup_access_code_id.map(|u| u.to_string()),
                c.prefer_native_scheduling,
                c.is_scheduled_on_device,
                c.attempts,
                opt_ts(&c.next_attempt_at),
                opt_ts(&c.pending_since),
                false,
                opt_ts(&c.used_at),
                ts(&c.created_at),
                ts(&c.updated_at),
                opt_ts(&c.deleted_at),
                (c.desired == Desired::Released).then(|| ts(&c.updated_at)),
                serde_json::to_string(&c.mutations).expect("mutations serialize"),
                c.removing_unmanaged,
            ],
        )?;
        Ok(())
    }

    /// A code that has not been deleted.
    pub fn code(conn: &Connection, id: &Uuid) -> Result<Option<CodeRow>, StoreError> {
        conn.one(
            &format!("SELECT {COLUMNS} FROM access_codes WHERE access_code_id = ?1 AND deleted_at IS NULL"),
            [id.to_string()],
            from_row,
        )
        .optional()?
        .transpose()
    }

    /// Every code of a device that has not been deleted, oldest first.
    pub fn device_codes(conn: &Connection, device_id: &Uuid) -> Result<Vec<CodeRow>, StoreError> {
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {COLUMNS} FROM access_codes WHERE device_id = ?1 AND deleted_at IS NULL ORDER BY created_at, access_code_id"
        ))?;
        let rows = stmt.query_map([device_id.to_string()], from_row)?;
        rows.map(|r| r?).collect()
    }

    /// The codes of a device that have `pin` (not forgotten), by index: no scan of the lock.
    pub fn codes_with_pin(
        conn: &Connection,
        device_id: &Uuid,
        pin: &str,
    ) -> Result<Vec<CodeRow>, StoreError> {
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {COLUMNS} FROM access_codes WHERE device_id = ?1 AND code = ?2 AND deleted_at IS NULL"
        ))?;
        let rows = stmt.query_map(params![device_id.to_string(), pin], from_row)?;
        rows.map(|r| r?).collect()
    }

    /// Whether a code (not forgotten) holds `slot` of the device.
    pub fn slot_held(conn: &Connection, device_id: &Uuid, slot: u16) -> Result<bool, StoreError> {
        Ok(conn
            .prepare_cached(
                "SELECT 1 FROM access_codes WHERE device_id = ?1 AND slot = ?2 AND deleted_at IS NULL",
            )?
            .query_row(params![device_id.to_string(), slot], |_| Ok(()))
            .optional()?
            .is_some())
    }

    /// Codes matching `filter`, oldest first, at most `limit`.
    pub fn list_codes(conn: &Connection, filter: &CodeFilter) -> Result<Vec<CodeRow>, StoreError> {
        let mut sql = format!(
            "SELECT {COLUMNS} FROM access_codes WHERE deleted_at IS NULL AND removing_unmanaged = 0"
        );
        let mut args: Vec<Box<dyn ToSql>> = Vec::new();
        if let Some(d) = &filter.device_id {
            args.push(Box::new(d.to_string()));
            sql.push_str(&format!(" AND device_id = ?{}", args.len()));
        }
        if let Some(ids) = &filter.access_code_ids {
            if ids.is_empty() {
                return Ok(Vec::new());
            }
            let mut marks = Vec::new();
            for id in ids {
                args.push(Box::new(id.to_string()));
                marks.push(format!("?{}", args.len()));
            }
            sql.push_str(&format!(" AND access_code_id IN ({})", marks.join(",")));
        }
        if let Some(k) = &filter.common_code_key {
            args.push(Box::new(k.clone()));
            sql.push_str(&format!(" AND common_code_key = ?{}", args.len()));
        }
        if let Some(s) = &filter.search {
            args.push(Box::new(format!(
                "%{}%",
                s.replace('%', "\\%").replace('_', "\\_")
            )));
            let n = args.len();
            sql.push_str(&format!(
                " AND (name LIKE ?{n} ESCAPE '\\' OR code LIKE ?{n} ESCAPE '\\' OR access_code_id LIKE ?{n} ESCAPE '\\')"
            ));
        }
        if !filter.include_backups {
            // Pool codes are hidden until pulled (a pulled backup links back to its original).
            sql.push_str(" AND (is_backup = 0 OR pulled_backup_access_code_id IS NOT NULL)");
        }
        if let Some((t, id)) = &filter.after {
            args.push(Box::new(ts(t)));
            args.push(Box::new(id.to_string()));
            let n = args.len();
            sql.push_str(&format!(
                " AND (created_at, access_code_id) > (?{}, ?{n})",
                n - 1
            ));
        }
        sql.push_str(" ORDER BY created_at, access_code_id");
        if let Some(l) = filter.limit {
            // A parameter, not text: one cached statement serves every page size.
            args.push(Box::new(l as i64));
            sql.push_str(&format!(" LIMIT ?{}", args.len()));
        }
        let mut stmt = conn.prepare_cached(&sql)?;
        let refs: Vec<&dyn ToSql> = args.iter().map(|a| a.as_ref()).collect();
        let rows = stmt.query_map(refs.as_slice(), from_row)?;
        rows.map(|r| r?).collect()
    }

    /// Codes of every device that are not settled (work for the reconcilers), by device.
    pub fn devices_with_codes(conn: &Connection) -> Result<Vec<Uuid>, StoreError> {
        let mut stmt = conn.prepare_cached(
            "SELECT DISTINCT device_id FROM access_codes WHERE deleted_at IS NULL",
        )?;
        let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
        rows.map(|r| parse_uuid("access_codes.device_id", &r?))
            .collect()
    }

    /// Record an error or warning (kept with its first time while it lasts; a new message and
    /// details replace the old, and it lasts again until cleared or [`Store::expire_issue`]).
    pub fn set_issue(
        conn: &Connection,
        id: &Uuid,
        kind: IssueKind,
        code: &str,
        message: &str,
        at: &DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        Store::set_issue_with(conn, id, kind, code, message, at, None)
    }

    /// [`Store::set_issue`] with extra fields for the issue's object.
    pub fn set_issue_with(
        conn: &Connection,
        id: &Uuid,
        kind: IssueKind,
        code: &str,
        message: &str,
        at: &DateTime<Utc>,
        details: Option<&serde_json::Value>,
    ) -> Result<bool, StoreError> {
        let details = details.map(|d| d.to_string());
        let n = conn.exec(
            "INSERT INTO access_code_issues (access_code_id, kind, code, message, created_at, details, expires_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, NULL) \
             ON CONFLICT DO UPDATE SET message = ?4, details = ?6, expires_at = NULL",
            params![id.to_string(), kind.as_str(), code, message, ts(at), details],
        )?;
        Ok(n > 0)
    }

    /// Let an issue last until `at` (then it is dropped); returns whether it was there.
    pub fn expire_issue(
        conn: &Connection,
        id: &Uuid,
        kind: IssueKind,
        code: &str,
        at: &DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let n = conn.exec(
            "UPDATE access_code_issues SET expires_at = ?4 \
             WHERE access_code_id = ?1 AND kind = ?2 AND code = ?3 AND expires_at IS NULL",
            params![id.to_string(), kind.as_str(), code, ts(at)],
        )?;
        Ok(n > 0)
    }

    /// Drop the issues of a device's codes whose time is up; returns how many went.
    pub fn drop_expired_issues(
        conn: &Connection,
        device_id: &Uuid,
        now: &DateTime<Utc>,
    ) -> Result<usize, StoreError> {
        Ok(conn.exec(DROP_EXPIRED_ISSUES, params![device_id.to_string(), ts(now)])?)
    }

    /// Remove an error or warning; returns whether it was there.
    pub fn clear_issue(
        conn: &Connection,
        id: &Uuid,
        kind: IssueKind,
        code: &str,
    ) -> Result<bool, StoreError> {
        let n = conn.exec(
            "DELETE FROM access_code_issues WHERE access_code_id = ?1 AND kind = ?2 AND code = ?3",
            params![id.to_string(), kind.as_str(), code],
        )?;
        Ok(n > 0)
    }

    pub fn has_issue(
        conn: &Connection,
        id: &Uuid,
        kind: IssueKind,
        code: &str,
    ) -> Result<bool, StoreError> {
        Ok(conn
            .query_row(
                "SELECT 1 FROM access_code_issues WHERE access_code_id = ?1 AND kind = ?2 AND code = ?3",
                params![id.to_string(), kind.as_str(), code],
                |_| Ok(()),
            )
            .optional()?
            .is_some())
    }

    /// The codes of a device that carry an issue (one query, however many codes it has).
    pub fn codes_with_issue(
        conn: &Connection,
        device_id: &Uuid,
        kind: IssueKind,
        code: &str,
    ) -> Result<std::collections::BTreeSet<Uuid>, StoreError> {
        let mut stmt = conn.prepare_cached(
            "SELECT i.access_code_id FROM access_code_issues i \
             JOIN access_codes c ON c.access_code_id = i.access_code_id \
             WHERE c.device_id = ?1 AND i.kind = ?2 AND i.code = ?3",
        )?;
        let rows = stmt.query_map(params![device_id.to_string(), kind.as_str(), code], |r| {
            r.get::<_, String>(0)
        })?;
        let mut out = std::collections::BTreeSet::new();
        for id in rows {
            out.insert(super::parse_uuid(
                "access_code_issues.access_code_id",
                &id?,
            )?);
        }
        Ok(out)
    }

    pub fn issues(conn: &Connection, id: &Uuid) -> Result<Vec<IssueRow>, StoreError> {
        Ok(Store::issues_of(conn, std::slice::from_ref(id))?
            .remove(id)
            .unwrap_or_default())
    }

    /// The errors and warnings of several codes in one query (a page of a list), by code,
    /// each code's oldest first.
    pub fn issues_of(
        conn: &Connection,
        ids: &[Uuid],
    ) -> Result<std::collections::HashMap<Uuid, Vec<IssueRow>>, StoreError> {
        let mut out = std::collections::HashMap::<Uuid, Vec<IssueRow>>::new();
        if ids.is_empty() {
            return Ok(out);
        }
        let mut stmt = conn.prepare_cached(
            "SELECT access_code_id, kind, code, message, created_at, details, expires_at \
             FROM access_code_issues \
             WHERE access_code_id IN (SELECT value FROM json_each(?1)) \
             ORDER BY access_code_id, created_at, code",
        )?;
        let list = serde_json::to_string(ids).expect("uuids serialize");
        let rows = stmt.query_map([list], |r| {
            Ok((
                r.get::<_, String>(0)?,
                (
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                ),
                r.get::<_, String>(4)?,
                r.get::<_, Option<String>>(5)?,
                r.get::<_, Option<String>>(6)?,
            ))
        })?;
        for r in rows {
            let (id, (kind, code, message), at, details, expires) = r?;
            let row = IssueRow {
                details: details
                    .map(|d| {
                        serde_json::from_str(&d).map_err(|_| StoreError::Corrupt {
                            what: "access_code_issues.details",
                            value: d,
                        })
                    })
                    .transpose()?,
                expires_at: parse_opt_ts("access_code_issues.expires_at", expires)?,
                kind: if kind == "error" {
                    IssueKind::Error
                } else {
                    IssueKind::Warning
                },
                code,
                message,
                created_at: parse_ts("access_code_issues.created_at", &at)?,
            };
            out.entry(parse_uuid("access_code_issues.access_code_id", &id)?)
                .or_default()
                .push(row);
        }
        Ok(out)
    }
}
