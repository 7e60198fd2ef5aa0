//! The repository: the store as the engine uses it. Typed rows in and out, one writer
//! connection (transactions: all of a change or none of it) and one read-only connection for
//! the API's reads, so that reads never wait behind writes. No rusqlite type crosses this line.

use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use chrono::{DateTime, Utc};
use rusqlite::Connection;
use uuid::Uuid;

use super::{
    AttemptRow, CodeFilter, CodeRow, CodeStatus, DeviceFacts, DeviceRow, EventFilter, EventRow,
    IssueKind, IssueRow, KeyRow, SlotRow, SlotState, Store, StoreError,
};

/// The engine's store: a writer and a reader.
pub struct Repo {
    /// Handed to the threads waiting for it in turn when a write ends (see [`Repo::write`]).
    writer: parking_lot::Mutex<Store>,
    reader: Mutex<Store>,
    /// The engine task's own read-only connection: it plans from a snapshot without holding
    /// the writer (so creates do not wait behind a plan of a lock with thousands of codes)
    /// or the API's reader.
    planner: Mutex<Store>,
    checkpointer: Checkpointer,
}

/// Checkpoints taken off the writer: SQLite would otherwise copy the WAL into the database
/// (and fsync it, tens of milliseconds on a Pi's SD card) inside whichever commit crossed
/// 1,000 pages, a create's answer among them. The writer's automatic checkpoint is off;
/// this thread, on its own connection, checkpoints (PASSIVE: writers and readers go on)
/// after [`Checkpointer::EVERY`] commits, or [`Checkpointer::IDLE`] after the last one.
/// Dropping it stops the thread (after a checkpoint under way, if any).
struct Checkpointer {
    commits: Option<std::sync::mpsc::SyncSender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// What the WAL file is cut back to when SQLite starts the log again from the top (after a
/// checkpoint has copied all of it): otherwise the file stays the size of the largest burst
/// it ever took (70-90 MB after the load benchmark).
const WAL_KEPT: i64 = 16 << 20;

impl Checkpointer {
    const EVERY: u32 = 100;
    const IDLE: Duration = Duration::from_secs(2);

    fn start(path: &std::path::Path) -> Result<Checkpointer, StoreError> {
        let conn = Store::connect(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE)?;
        let (commits, rx) = std::sync::mpsc::sync_channel::<()>(1024);
        let thread = std::thread::Builder::new()
            .name("zwlock-checkpoint".into())
            .spawn(move || {
                use std::sync::mpsc::RecvTimeoutError;
                let mut since = 0u32;
                loop {
                    let wait = if since > 0 { Self::IDLE } else { Duration::MAX };
                    match rx.recv_timeout(wait) {
                        Ok(()) => since += 1,
                        Err(RecvTimeoutError::Timeout) => since = Self::EVERY,
                        Err(RecvTimeoutError::Disconnected) => break,
                    }
                    if since >= Self::EVERY {
                        since = 0;
                        if let Err(e) = conn.pragma_update(None, "wal_checkpoint", "PASSIVE") {
                            tracing::warn!(error = %e, "WAL checkpoint failed");
                        }
                    }
                }
            })
            .map_err(|e| StoreError::File {
                path: path.to_path_buf(),
                reason: format!("cannot start the checkpoint thread: {e}"),
            })?;
        Ok(Checkpointer {
            commits: Some(commits),
            thread: Some(thread),
        })
    }

    /// A commit was made. (When the thread is behind, it is counted with the next one.)
    fn committed(&self) {
        if let Some(c) = &self.commits {
            let _ = c.try_send(());
        }
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        drop(self.commits.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl std::fmt::Debug for Repo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Repo")
    }
}

fn guard(m: &Mutex<Store>) -> MutexGuard<'_, Store> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Run `f` in one read transaction of a read-only connection (rolled back at the end: it
/// wrote nothing).
fn read_in<T, E: From<StoreError>>(
    conn: &Mutex<Store>,
    f: impl FnOnce(&Tx<'_>) -> Result<T, E>,
) -> Result<T, E> {
    let mut store = guard(conn);
    let tx = store
        .conn_mut()
        .transaction()
        .map_err(|e| E::from(e.into()))?;
    f(&Tx { conn: &tx })
}

impl Repo {
    /// The repository over an open store (a read-only connection to the same file is opened).
    pub fn new(store: Store) -> Result<Repo, StoreError> {
        let reader = Store::open_read_only(store.path())?;
        let planner = Store::open_read_only(store.path())?;
        store.conn().pragma_update(None, "wal_autocheckpoint", 0)?;
        store
            .conn()
            .pragma_update(None, "journal_size_limit", WAL_KEPT)?;
        let checkpointer = Checkpointer::start(store.path())?;
        Ok(Repo {
            writer: parking_lot::Mutex::new(store),
            reader: Mutex::new(reader),
            planner: Mutex::new(planner),
            checkpointer,
        })
    }

    /// Run `f` in one write transaction: committed when it returns `Ok`, rolled back otherwise.
    /// The writer then goes to the thread that has waited for it longest, if any: a caller
    /// writing several transactions in a row (a pass's bookkeeping) lets a create in between
    /// each, instead of taking the writer straight back.
    pub fn write<T, E: From<StoreError>>(
        &self,
        f: impl FnOnce(&Tx<'_>) -> Result<T, E>,
    ) -> Result<T, E> {
        let mut store = self.writer.lock();
        let done = (|| {
            let tx = store
                .conn_mut()
                .transaction()
                .map_err(|e| E::from(e.into()))?;
            let v = f(&Tx { conn: &tx })?;
            tx.commit().map_err(|e| E::from(e.into()))?;
            Ok(v)
        })();
        parking_lot::MutexGuard::unlock_fair(store);
        if done.is_ok() {
            self.checkpointer.committed();
        }
        done
    }

    /// Run `f` on the read-only connection, in one read transaction: what it reads is one
    /// state of the store (a page and its codes' issues agree), and its statements share one
    /// WAL snapshot instead of taking one each.
    pub fn read<T, E: From<StoreError>>(
        &self,
        f: impl FnOnce(&Tx<'_>) -> Result<T, E>,
    ) -> Result<T, E> {
        read_in(&self.reader, f)
    }

    /// Run `f` on a consistent snapshot (one read transaction) of the engine task's own
    /// read-only connection.
    pub fn snapshot<T, E: From<StoreError>>(
        &self,
        f: impl FnOnce(&Tx<'_>) -> Result<T, E>,
    ) -> Result<T, E> {
        read_in(&self.planner, f)
    }

    /// Whether the writer is free within `within` (a wedged store stops the watchdog).
    pub async fn writable_within(&self, within: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if self.writer.try_lock().is_some() {
                return true;
            }
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Make the database file whole (WAL checkpoint); for a clean stop.
    pub fn checkpoint(&self) {
        let store = self.writer.lock();
        if let Err(e) = store
            .conn()
            .pragma_update(None, "wal_checkpoint", "TRUNCATE")
        {
            tracing::warn!(error = %e, "WAL checkpoint failed");
        }
    }
}

/// Typed operations inside a transaction (or on the reader).
pub struct Tx<'c> {
    conn: &'c Connection,
}

impl Tx<'_> {
    // Codes.
    pub fn code(&self, id: &Uuid) -> Result<Option<CodeRow>, StoreError> {
        Store::code(self.conn, id)
    }
    pub fn put_code(&self, c: &CodeRow) -> Result<(), StoreError> {
        Store::put_code(self.conn, c)
    }
    pub fn device_codes(&self, device: &Uuid) -> Result<Vec<CodeRow>, StoreError> {
        Store::device_codes(self.conn, device)
    }
    pub fn codes_with_pin(&self, device: &Uuid, pin: &str) -> Result<Vec<CodeRow>, StoreError> {
        Store::codes_with_pin(self.conn, device, pin)
    }
    pub fn slot_held(&self, device: &Uuid, slot: u16) -> Result<bool, StoreError> {
        Store::slot_held(self.conn, device, slot)
    }
    pub fn slots_with_pin(&self, device: &Uuid, pin: &str) -> Result<Vec<SlotRow>, StoreError> {
        Store::slots_with_pin(self.conn, device, pin)
    }
    pub fn list_codes(&self, filter: &CodeFilter) -> Result<Vec<CodeRow>, StoreError> {
        Store::list_codes(self.conn, filter)
    }
    /// Managed codes (not deleted, not pool spares) per status.
    pub fn codes_by_status(&self) -> Result<Vec<(CodeStatus, u64)>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT status, COUNT(*) FROM access_codes WHERE deleted_at IS NULL AND is_backup = 0 \
             GROUP BY status ORDER BY status",
        )?;
        let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?;
        rows.map(|r| {
            let (s, n) = r?;
            Ok((CodeStatus::parse(&s)?, n as u64))
        })
        .collect()
    }

    // Issues.
    pub fn set_issue(
        &self,
        id: &Uuid,
        kind: IssueKind,
        code: &str,
        message: &str,
        at: &DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        Store::set_issue(self.conn, id, kind, code, message, at)
    }
    pub fn set_issue_with(
        &self,
        id: &Uuid,
        kind: IssueKind,
        code: &str,
        message: &str,
        at: &DateTime<Utc>,
        details: &serde_json::Value,
    ) -> Result<bool, StoreError> {
        Store::set_issue_with(self.conn, id, kind, code, message, at, Some(details))
    }
    pub fn expire_issue(
        &self,
        id: &Uuid,
        kind: IssueKind,
        code: &str,
        at: &DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        Store::expire_issue(self.conn, id, kind, code, at)
    }
    pub fn drop_expired_issues(
        &self,
        device: &Uuid,
        now: &DateTime<Utc>,
    ) -> Result<usize, StoreError> {
        Store::drop_expired_issues(self.conn, device, now)
    }
    pub fn clear_issue(&self, id: &Uuid, kind: IssueKind, code: &str) -> Result<bool, StoreError> {
        Store::clear_issue(self.conn, id, kind, code)
    }
    pub fn has_issue(&self, id: &Uuid, kind: IssueKind, code: &str) -> Result<bool, StoreError> {
        Store::has_issue(self.conn, id, kind, code)
    }
    pub fn issues(&self, id: &Uuid) -> Result<Vec<IssueRow>, StoreError> {
        Store::issues(self.conn, id)
    }
    /// The issues of several codes in one query, by code.
    pub fn issues_of(
        &self,
        ids: &[Uuid],
    ) -> Result<std::collections::HashMap<Uuid, Vec<IssueRow>>, StoreError> {
        Store::issues_of(self.conn, ids)
    }
    /// The codes of a device that carry an issue.
    pub fn codes_with_issue(
        &self,
        device: &Uuid,
        kind: IssueKind,
        code: &str,
    ) -> Result<std::collections::BTreeSet<Uuid>, StoreError> {
        Store::codes_with_issue(self.conn, device, kind, code)
    }

    // Devices.
    pub fn upsert_device(
        &self,
        facts: &DeviceFacts,
        now: &DateTime<Utc>,
    ) -> Result<DeviceRow, StoreError> {
        Store::upsert_device(self.conn, facts, now)
    }
    pub fn delete_device(&self, id: &Uuid) -> Result<bool, StoreError> {
        Store::delete_device(self.conn, id)
    }
    pub fn device(&self, id: &Uuid) -> Result<Option<DeviceRow>, StoreError> {
        Store::device(self.conn, id)
    }
    pub fn device_by_node(&self, node: u16) -> Result<Option<DeviceRow>, StoreError> {
        Store::device_by_node(self.conn, node)
    }
    pub fn devices(&self) -> Result<Vec<DeviceRow>, StoreError> {
        Store::devices(self.conn)
    }
    pub fn set_device_online(
        &self,
        id: &Uuid,
        online: bool,
        now: &DateTime<Utc>,
    ) -> Result<(), StoreError> {
        Store::set_device_online(self.conn, id, online, now)
    }
    pub fn touch_device(&self, id: &Uuid, now: &DateTime<Utc>) -> Result<(), StoreError> {
        Store::touch_device(self.conn, id, now)
    }
    pub fn set_device_state(
        &self,
        id: &Uuid,
        battery: Option<u8>,
        locked: Option<bool>,
    ) -> Result<(), StoreError> {
        Store::set_device_state(self.conn, id, battery, locked)
    }
    pub fn set_code_capacity(&self, id: &Uuid, capacity: Option<u16>) -> Result<(), StoreError> {
        Store::set_code_capacity(self.conn, id, capacity)
    }
    pub fn set_code_lengths(
        &self,
        id: &Uuid,
        min: u8,
        max: u8,
        refused: &[u8],
    ) -> Result<(), StoreError> {
        Store::set_code_lengths(self.conn, id, min, max, refused)
    }
    pub fn add_refused_code_length(&self, id: &Uuid, length: u8) -> Result<(), StoreError> {
        Store::add_refused_code_length(self.conn, id, length)
    }
    pub fn set_device_settings(
        &self,
        id: &Uuid,
        name: Option<&str>,
        reserved_slots: Option<&[u16]>,
        backup_pool_size: Option<u8>,
    ) -> Result<(), StoreError> {
        Store::set_device_settings(self.conn, id, name, reserved_slots, backup_pool_size)
    }

    // Slots.
    pub fn observe_slot(
        &self,
        device: &Uuid,
        slot: u16,
        state: SlotState,
        code: Option<&str>,
        at: &DateTime<Utc>,
    ) -> Result<Option<SlotRow>, StoreError> {
        Store::observe_slot(self.conn, device, slot, state, code, at)
    }
    pub fn slot(&self, device: &Uuid, slot: u16) -> Result<Option<SlotRow>, StoreError> {
        Store::slot(self.conn, device, slot)
    }
    pub fn slots(&self, device: &Uuid) -> Result<Vec<SlotRow>, StoreError> {
        Store::slots(self.conn, device)
    }
    pub fn set_slot_disabled(
        &self,
        device: &Uuid,
        slot: u16,
        disabled: bool,
    ) -> Result<(), StoreError> {
        Store::set_slot_disabled(self.conn, device, slot, disabled)
    }
    pub fn set_unmanaged_id(&self, device: &Uuid, slot: u16, id: &Uuid) -> Result<(), StoreError> {
        Store::set_unmanaged_id(self.conn, device, slot, id)
    }
    pub fn slot_by_unmanaged_id(&self, id: &Uuid) -> Result<Option<SlotRow>, StoreError> {
        Store::slot_by_unmanaged_id(self.conn, id)
    }

    // Events and action attempts.
    pub fn add_event(
        &self,
        event_type: &str,
        device: Option<&Uuid>,
        code: Option<&Uuid>,
        at: &DateTime<Utc>,
        payload: serde_json::Value,
    ) -> Result<EventRow, StoreError> {
        Store::add_event(self.conn, event_type, device, code, at, payload)
    }
    pub fn event(&self, id: &Uuid) -> Result<Option<EventRow>, StoreError> {
        Store::event(self.conn, id)
    }
    pub fn events(&self, filter: &EventFilter) -> Result<Vec<EventRow>, StoreError> {
        Store::events(self.conn, filter)
    }
    pub fn last_event_seq(&self) -> Result<i64, StoreError> {
        Store::last_event_seq(self.conn)
    }
    pub fn put_attempt(&self, a: &AttemptRow) -> Result<(), StoreError> {
        Store::put_attempt(self.conn, a)
    }
    pub fn attempt(&self, id: &Uuid) -> Result<Option<AttemptRow>, StoreError> {
        Store::attempt(self.conn, id)
    }
    pub fn pending_attempts(&self, code: &Uuid) -> Result<Vec<AttemptRow>, StoreError> {
        Store::pending_attempts(self.conn, code)
    }

    // Idempotency keys.
    pub fn put_key(&self, k: &KeyRow) -> Result<(), StoreError> {
        Store::put_key(self.conn, k)
    }
    pub fn keyed(
        &self,
        route: &str,
        key: &str,
        now: &DateTime<Utc>,
    ) -> Result<Vec<KeyRow>, StoreError> {
        Store::keyed(self.conn, route, key, now)
    }
    pub fn key_count(&self) -> Result<usize, StoreError> {
        Store::key_count(self.conn)
    }

    // Small pieces of daemon state.
    pub fn state(&self, key: &str) -> Result<Option<String>, StoreError> {
        Store::state(self.conn, key)
    }
    pub fn set_state(&self, key: &str, value: &str) -> Result<(), StoreError> {
        Store::set_state(self.conn, key, value)
    }
    pub fn delete_state(&self, key: &str) -> Result<(), StoreError> {
        Store::delete_state(self.conn, key)
    }
    /// Keys of daemon state entries that start with `prefix`.
    pub fn state_keys(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT key FROM daemon_state WHERE substr(key, 1, length(?1)) = ?1 ORDER BY key",
        )?;
        let rows = stmt.query_map([prefix], |r| r.get::<_, String>(0))?;
        rows.map(|r| r.map_err(StoreError::from)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The writer never checkpoints (its automatic checkpoint is off), yet the database file
    /// takes the commits in: the checkpointer thread copied them out of the WAL.
    #[test]
    fn commits_reach_the_database_file_through_the_checkpointer() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("z.db");
        let repo = Repo::new(Store::open(&path).unwrap()).unwrap();
        let before = std::fs::metadata(&path).unwrap().len();
        let value = "x".repeat(4000);
        // About 300 pages: under SQLite's own threshold of 1,000, over the checkpointer's count.
        for n in 0..150 {
            repo.write(|tx| tx.set_state(&format!("k{n}"), &value))
                .unwrap();
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while std::fs::metadata(&path).unwrap().len() < before + 150 * 4000 {
            assert!(
                std::time::Instant::now() < deadline,
                "the database file did not grow: no checkpoint"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        let value_back = repo.read(|tx| tx.state("k149")).unwrap();
        assert_eq!(value_back.as_deref(), Some(value.as_str()));
        // Dropping the repository stops the thread (the drop joins it).
        drop(repo);
    }

    fn lock(tx: &Tx<'_>, node_id: u16) -> Uuid {
        let facts = DeviceFacts {
            node_id,
            name: None,
            interview_cache: None,
            facts: Default::default(),
            slot_count: 30,
            min_code_length: 4,
            max_code_length: 8,
            code_characters: "0123456789".into(),
            battery_level: None,
            locked: None,
        };
        tx.upsert_device(&facts, &Utc::now()).unwrap().device_id
    }

    /// A pass's housekeeping drops the issues whose time is up, of its own lock only, and
    /// finds them by the expiry index (not by walking the lock's codes, which held the writer
    /// 25-40 ms at 10,000 codes).
    #[test]
    fn expired_issues_go_found_by_their_index() {
        let dir = tempfile::tempdir().unwrap();
        let repo = Repo::new(Store::open(&dir.path().join("z.db")).unwrap()).unwrap();
        let now = Utc::now();
        let past = now - chrono::Duration::minutes(1);
        let later = now + chrono::Duration::minutes(1);
        let (a, b, kept) = repo
            .write(|tx| {
                let (one, two) = (lock(tx, 5), lock(tx, 6));
                let mut ids = Vec::new();
                for (device, pin) in [(one, "1111"), (one, "2222"), (one, "3333"), (two, "4444")] {
                    let row = CodeRow::new(device, pin.into(), now);
                    tx.put_code(&row)?;
                    tx.set_issue(&row.access_code_id, IssueKind::Error, "e", "m", &now)?;
                    ids.push(row.access_code_id);
                }
                // Expired on lock one, lasting on lock one, expiring later, expired on lock two.
                tx.expire_issue(&ids[0], IssueKind::Error, "e", &past)?;
                tx.expire_issue(&ids[2], IssueKind::Error, "e", &later)?;
                tx.expire_issue(&ids[3], IssueKind::Error, "e", &past)?;
                Ok::<_, StoreError>((one, two, ids))
            })
            .unwrap();
        assert_eq!(
            repo.write(|tx| tx.drop_expired_issues(&a, &now)).unwrap(),
            1
        );
        let left = |id: &Uuid| repo.read(|tx| tx.issues(id)).unwrap().len();
        assert_eq!(
            kept.iter().map(left).collect::<Vec<_>>(),
            [0, 1, 1, 1],
            "only lock one's expired issue goes"
        );
        assert_eq!(
            repo.write(|tx| tx.drop_expired_issues(&b, &now)).unwrap(),
            1
        );
        assert_eq!(left(&kept[3]), 0);
        let plan: Vec<String> = repo
            .read(|tx| {
                let mut stmt = tx.conn.prepare(&format!(
                    "EXPLAIN QUERY PLAN {}",
                    super::super::codes::DROP_EXPIRED_ISSUES
                ))?;
                let rows = stmt.query_map(
                    rusqlite::params![a.to_string(), crate::store::ts(&now)],
                    |r| r.get::<_, String>(3),
                )?;
                Ok::<_, StoreError>(rows.collect::<Result<Vec<_>, _>>()?)
            })
            .unwrap();
        assert!(
            plan[0].contains("access_code_issues_expiring"),
            "walked by the expiry index: {plan:?}"
        );
    }

    /// A writer that waits gets the store between two writes of another thread: the releasing
    /// thread does not take it straight back (std's Mutex let a pass's chunked bookkeeping
    /// keep a create waiting for all of it).
    #[test]
    fn a_waiting_write_goes_between_two_writes_of_another_thread() {
        let dir = tempfile::tempdir().unwrap();
        let repo =
            std::sync::Arc::new(Repo::new(Store::open(&dir.path().join("z.db")).unwrap()).unwrap());
        let order = std::sync::Arc::new(Mutex::new(Vec::new()));
        let note = |order: &Mutex<Vec<&'static str>>, what| order.lock().unwrap().push(what);
        let (holding, held) = std::sync::mpsc::channel();
        let (waiting, waited) = std::sync::mpsc::channel::<()>();
        let first = std::thread::spawn({
            let (repo, order) = (repo.clone(), order.clone());
            move || {
                repo.write(|tx| {
                    holding.send(()).unwrap();
                    waited.recv().unwrap();
                    // Time for the other thread to block on the writer.
                    std::thread::sleep(Duration::from_millis(300));
                    note(&order, "first");
                    tx.set_state("a", "1")
                })
                .unwrap();
                // Then more writes straight after, as a pass commits its bookkeeping.
                for _ in 0..20 {
                    repo.write(|tx| {
                        note(&order, "again");
                        tx.set_state("a", "2")
                    })
                    .unwrap();
                }
            }
        });
        held.recv().unwrap();
        let second = std::thread::spawn({
            let (repo, order) = (repo.clone(), order.clone());
            move || {
                waiting.send(()).unwrap();
                repo.write(|tx| {
                    note(&order, "waiting");
                    tx.set_state("b", "1")
                })
                .unwrap();
            }
        });
        first.join().unwrap();
        second.join().unwrap();
        let order = order.lock().unwrap();
        assert_eq!(
            order.iter().position(|w| *w == "waiting"),
            Some(1),
            "the waiting write goes next: {order:?}"
        );
    }

    /// A burst the WAL could not be checkpointed through (a reader held it) leaves a big WAL
    /// file; once the checkpointer has copied it all and the log starts again, the file is
    /// cut back to WAL_KEPT.
    #[test]
    fn the_wal_file_is_cut_back_after_a_burst() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("z.db");
        let repo = Repo::new(Store::open(&path).unwrap()).unwrap();
        let wal = dir.path().join("z.db-wal");
        let size = || std::fs::metadata(&wal).map_or(0, |m| m.len());
        // Each value new (SQLite skips writing a page whose content is unchanged).
        let value = |n: usize| format!("{n:08}{}", "x".repeat(8000));
        let burst = 2 * WAL_KEPT as u64;
        // A read transaction that has read (its snapshot taken): no checkpoint gets past it,
        // so the WAL only grows.
        repo.read(|tx| {
            tx.state("k0")?;
            let mut n = 0;
            while size() < burst {
                repo.write(|tx| tx.set_state(&format!("k{}", n % 100), &value(n)))?;
                n += 1;
            }
            Ok::<_, StoreError>(())
        })
        .unwrap();
        // Once commits stop (2 s) the checkpointer copies it all; the next commit starts the
        // log again, and the file is cut.
        std::thread::sleep(Duration::from_secs(3));
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while size() > WAL_KEPT as u64 {
            assert!(
                std::time::Instant::now() < deadline,
                "the WAL file stayed at {} bytes",
                size()
            );
            repo.write(|tx| tx.set_state("after", "1")).unwrap();
            std::thread::sleep(Duration::from_millis(2500));
        }
    }
}
