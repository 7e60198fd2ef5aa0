//! The engine task: the one owner of the work on locks. One `select!` loop over what locks say
//! (port events), what the API asks (wakes and requests), the writes and reads in flight, and
//! the timers; at most one operation in flight per lock, any number of locks at once.
//!
//! Each pass over a lock: plan it ([`super::planner`], pure), commit the plan's bookkeeping and
//! the intent of its action in one transaction, then start the action on the lock port; its
//! outcome comes back to the loop, which commits it ([`super::apply`]). With nothing to write,
//! the lock is watched ([`super::watch`]). Every operation has a timeout; a lock that does not
//! answer is left alone for the time the driver says, the others go on; while the stick is
//! gone, nothing is sent and the stick's return wakes every lock.
//!
//! Shutdown drops the operations in flight (their intents are committed and are redone at the
//! next start), checkpoints the database and stops the port.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use futures::future::BoxFuture;
use futures::stream::{FuturesUnordered, StreamExt};
use serde_json::json;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use uuid::Uuid;

use super::apply::{self, Attempt, Failure, LockWait, Write};
use super::attempts;
use super::ctx::{Ctx, Request};
use super::inbox::Effect;
use super::model::error_code;
use super::observe;
use super::ops::{self, caps, full_read_key, Done, Op, OpResult};
use super::planner::{self, LockView, Plan, SlotAction};
use super::schedule;
use super::watch::{self, Read, Verify, WatchInput, WatchState};
use crate::lock::{LockPort, PortEvent, SlotReading, Written};

use crate::store::{CodeRow, CodeStatus, DeviceRow, IssueKind, SlotRow, StoreError, Tx};

/// How long a notification that a slot changed waits for the lock's own report of it before
/// the slot is read.
const REPORT_GRACE: Duration = Duration::from_secs(2);

/// Messages only the engine handle sends.
pub(crate) enum Control {
    /// Answer at once: the loop is alive.
    Ping(oneshot::Sender<()>),
    /// Stop; answered when everything is closed.
    Shutdown(oneshot::Sender<()>),
}

/// The engine's per-lock state.
#[derive(Debug, Default)]
struct LockRt {
    watch: WatchState,
    /// An operation is in flight.
    busy: bool,
    /// Look at the lock again.
    dirty: bool,
    /// The lock did not answer: not before this.
    quiet_until: Option<Instant>,
    /// Plans and polls ask to be woken at this time.
    wake_at: Option<Instant>,
    /// When a full read last told its waiting clients how far it is.
    progress_at: Option<Instant>,
    /// Not planned again before this ([`PASS_BUDGET`]): a lock with 10,000 codes costs tens of
    /// milliseconds a pass, and every create asks for one; a small lock's pass is too short
    /// for this to matter.
    not_before: Option<Instant>,
}

/// A lock is planned again no sooner than this many times its last pass took, after it: a
/// lock's passes take at most a tenth of the engine's time. A pass of a lock with 10,000
/// codes costs 25-80 ms of CPU (a small lock's, well under one), and while it runs the API
/// has one core of two: at 3x, one create in fifty waited 10-20 ms for it (`store_scale`).
const PASS_BUDGET: u32 = 10;

/// Changes of a plan committed together (see `Task::pass`): ~85 µs each on a lock with
/// 10,000 codes, so the writer is held ~1-2 ms at a time.
const CHANGES_PER_COMMIT: usize = 16;

/// Run `f`, a pass that may take tens of milliseconds of SQLite and planning, without holding
/// up the other tasks of the async worker it runs on (the API's connections): on the daemon's
/// multi-threaded runtime they move to another worker meanwhile. (A current-thread runtime,
/// as in tests, has no other worker: `f` just runs.)
fn off_the_workers<T>(f: impl FnOnce() -> T) -> T {
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(RuntimeFlavor::MultiThread) => tokio::task::block_in_place(f),
        _ => f(),
    }
}

/// What a lock's plan is made from, read in one transaction.
pub(super) struct PlanInput {
    pub device: DeviceRow,
    pub codes: Vec<CodeRow>,
    pub slots: Vec<SlotRow>,
    pub scheduled: BTreeSet<u16>,
    pub waiting: BTreeSet<Uuid>,
}

impl PlanInput {
    pub(super) fn read(tx: &Tx<'_>, id: &Uuid) -> Result<Option<PlanInput>, StoreError> {
        let Some(device) = tx.device(id)? else {
            return Ok(None);
        };
        Ok(Some(PlanInput {
            device,
            codes: tx.device_codes(id)?,
            slots: tx.slots(id)?,
            scheduled: schedule::scheduled_slots(tx, id)?,
            waiting: tx.codes_with_issue(
                id,
                IssueKind::Error,
                error_code::NO_SPACE_FOR_ACCESS_CODE_ON_DEVICE,
            )?,
        }))
    }

    pub(super) fn view<'a>(
        &'a self,
        reserved: &'a [u16],
        now: chrono::DateTime<Utc>,
        synced: bool,
        hub: bool,
    ) -> LockView<'a> {
        LockView {
            device: &self.device,
            codes: &self.codes,
            slots: &self.slots,
            scheduled: &self.scheduled,
            reserved,
            waiting: &self.waiting,
            now,
            synced,
            hub,
        }
    }
}

pub(crate) struct Task {
    ctx: Arc<Ctx>,
    port: Arc<dyn LockPort>,
    locks: HashMap<Uuid, LockRt>,
    inflight: FuturesUnordered<BoxFuture<'static, Done>>,
    /// Every lock is planned again at least this often (clock jumps, missed wakes).
    next_tick: Instant,
}

impl Task {
    pub(crate) fn new(ctx: Arc<Ctx>, port: Arc<dyn LockPort>) -> Result<Task, StoreError> {
        let devices = ctx.repo.write(|tx| {
            tx.set_state("hub_connected", "false")?;
            // Names from the configuration for locks that still have zwlock's default one.
            for d in tx.devices()? {
                if let Some(name) = ctx.config.lock_names.get(&d.node_id) {
                    if d.name == format!("Lock {}", d.node_id) && *name != d.name {
                        tx.set_device_settings(&d.device_id, Some(name), None, None)?;
                    }
                }
            }
            tx.devices()
        })?;
        let mut locks = HashMap::new();
        for d in &devices {
            // What the interview learned before: the driver need not ask again.
            if let Some(cache) = &d.interview_cache {
                port.restore(cache);
            }
            locks.insert(
                d.device_id,
                LockRt {
                    dirty: true,
                    ..Default::default()
                },
            );
        }
        let next_tick = Instant::now() + ctx.config.tick;
        Ok(Task {
            ctx,
            port,
            locks,
            inflight: FuturesUnordered::new(),
            next_tick,
        })
    }

    pub(crate) async fn run(
        mut self,
        mut events: mpsc::Receiver<PortEvent>,
        mut requests: mpsc::Receiver<Request>,
        mut control: mpsc::Receiver<Control>,
    ) {
        let ctx = self.ctx.clone();
        let mut events_open = true;
        let stopped = loop {
            self.run_ready();
            let next = self.next_timer();
            tokio::select! {
                biased;
                c = control.recv() => match c {
                    Some(Control::Ping(reply)) => { let _ = reply.send(()); }
                    Some(Control::Shutdown(reply)) => break Some(reply),
                    None => break None,
                },
                ev = events.recv(), if events_open => match ev {
                    Some(ev) => self.on_event(ev),
                    None => events_open = false,
                },
                Some(done) = self.inflight.next(), if !self.inflight.is_empty() => self.on_done(done),
                Some(r) = requests.recv() => self.on_request(r),
                _ = ctx.wakes.notified() => {}
                _ = tokio::time::sleep_until(next) => {}
            }
            for d in ctx.wakes.take() {
                self.locks.entry(d).or_default().dirty = true;
            }
            let now = Instant::now();
            let tick = now >= self.next_tick;
            if tick {
                self.next_tick = now + ctx.config.tick;
            }
            for rt in self.locks.values_mut() {
                rt.dirty |= tick;
                if rt.wake_at.is_some_and(|t| t <= now) || rt.quiet_until.is_some_and(|t| t <= now)
                {
                    rt.wake_at = None;
                    rt.quiet_until = None;
                    rt.dirty = true;
                }
            }
        };
        // Work in flight is abandoned safely: its intent is committed and redone at the next
        // start.
        self.ctx.set_stopped();
        let abandoned = self.inflight.len();
        drop(std::mem::take(&mut self.inflight));
        self.ctx.repo.checkpoint();
        self.port.shutdown().await;
        tracing::info!(abandoned, "engine stopped");
        if let Some(reply) = stopped {
            let _ = reply.send(());
        }
    }

    fn next_timer(&self) -> Instant {
        let tick = self.next_tick;
        let now = Instant::now();
        self.locks
            .values()
            .flat_map(|rt| {
                // A lock waiting only for its pass budget (and not yet due).
                let held = rt
                    .not_before
                    .filter(|t| rt.dirty && !rt.busy && rt.quiet_until.is_none() && *t > now);
                [rt.wake_at, rt.quiet_until, held]
            })
            .flatten()
            .fold(tick, Instant::min)
    }

    fn log_store(&self, what: &str, e: &StoreError) {
        tracing::error!(error = %e, "{what}: store error");
    }

    /// Plan every lock that wants it and can be acted on.
    fn run_ready(&mut self) {
        let ready: Vec<Uuid> = self
            .locks
            .iter()
            .filter(|(_, rt)| rt.dirty && !rt.busy && rt.quiet_until.is_none())
            .filter(|(_, rt)| rt.not_before.is_none_or(|t| t <= Instant::now()))
            .map(|(id, _)| *id)
            .collect();
        for id in ready {
            if let Some(rt) = self.locks.get_mut(&id) {
                rt.dirty = false;
            }
            let started = Instant::now();
            let result = off_the_workers(|| self.pass(&id));
            if let Some(rt) = self.locks.get_mut(&id) {
                let done = Instant::now();
                rt.not_before = Some(done + PASS_BUDGET * (done - started));
            }
            if let Err(e) = result {
                self.log_store("planning", &e);
                if let Some(rt) = self.locks.get_mut(&id) {
                    rt.wake_at = Some(Instant::now() + Duration::from_secs(10));
                }
            }
        }
    }

    /// One pass over a lock: plan, commit, act (or watch).
    fn pass(&mut self, id: &Uuid) -> Result<(), StoreError> {
        let ctx = self.ctx.clone();
        let now = ctx.now();
        let hub = ctx.hub_connected();
        let synced = ctx.clock.is_synchronized();
        let reserved = ctx.config.reserved_slots.clone();
        // Housekeeping first, in its own short transaction.
        let exists = ctx.repo.write(|tx| {
            let Some(device) = tx.device(id)? else {
                return Ok::<_, StoreError>(false);
            };
            if super::backup::refill(tx, &device, &now)? > 0 {
                tracing::info!(node = device.node_id, "backup code pool refilled");
            }
            tx.drop_expired_issues(id, &now)?;
            Ok(true)
        })?;
        // Plan from a snapshot, holding no lock the API needs.
        let planned = if exists {
            ctx.repo.snapshot(|tx| {
                let Some(input) = PlanInput::read(tx, id)? else {
                    return Ok::<_, StoreError>(None);
                };
                let plan = planner::plan(&input.view(&reserved, now, synced, hub));
                let PlanInput { device, codes, .. } = input;
                let managed: Vec<u16> = codes
                    .iter()
                    .filter(|c| c.programmed_code.is_some())
                    .filter_map(|c| c.slot)
                    .collect();
                let full_read_done = tx.state(&full_read_key(id))?.is_some();
                Ok(Some((device, plan, managed, full_read_done)))
            })?
        } else {
            None
        };
        // Commit the plan's bookkeeping and the intent of its action, the action only if the
        // code is still as planned (an intent may have come in since the snapshot).
        let planned = match planned {
            None => None,
            Some((device, mut plan, managed, full_read_done)) => {
                // The bookkeeping in commits of a few changes each, so that the writer is
                // never held long (a create waits for it): each change re-reads its code and
                // holds on its own, and what a stop leaves undone the next pass plans again.
                // The action goes with the last few.
                let split =
                    plan.changes.len().saturating_sub(1) / CHANGES_PER_COMMIT * CHANGES_PER_COMMIT;
                let (early, last) = plan.changes.split_at(split);
                let bookkeeping = |tx: &crate::store::Tx<'_>, chunk: &[planner::Change]| {
                    let events = apply::changes(tx, id, chunk, &now)?;
                    settle_changes(&ctx, tx, chunk, &now)?;
                    Ok::<_, StoreError>(events)
                };
                let mut events = Vec::new();
                for chunk in early.chunks(CHANGES_PER_COMMIT) {
                    events.extend(ctx.repo.write(|tx| bookkeeping(tx, chunk))?);
                }
                let (more, begun) = ctx.repo.write(|tx| {
                    let events = bookkeeping(tx, last)?;
                    let Some(action) = &plan.action else {
                        return Ok::<_, StoreError>((events, true));
                    };
                    let phase = match action {
                        SlotAction::Clear { .. } => CodeStatus::Removing,
                        _ => CodeStatus::Setting,
                    };
                    if !apply::still_planned(tx, action)?
                        || !apply::begin(tx, &action.code(), phase, &now)?
                    {
                        return Ok((events, false));
                    }
                    if let SlotAction::Set {
                        slot,
                        native: Some(_),
                        ..
                    } = action
                    {
                        schedule::mark_slot(tx, id, *slot, true)?;
                    }
                    Ok((events, true))
                })?;
                events.extend(more);
                if !begun {
                    plan.action = None;
                }
                if plan.action.is_none() && !plan.changes.is_empty() {
                    // Look again: what was planned may have changed under it.
                    if let Some(rt) = self.locks.get_mut(id) {
                        rt.dirty = true;
                    }
                }
                Some((device, plan, events, managed, full_read_done))
            }
        };
        let Some((device, plan, events, managed, full_read_done)) = planned else {
            self.locks.remove(id);
            return Ok(());
        };
        ctx.publish(events);
        let Plan {
            action, wake_at, ..
        } = plan;
        let rt = self.locks.entry(*id).or_default();
        rt.wake_at = wake_at.map(|t| {
            let d = (t - now).to_std().unwrap_or(Duration::ZERO);
            Instant::now() + d
        });
        if let Some(action) = action {
            self.start_write(&device, action);
            return Ok(());
        }
        // Nothing to write: watch the lock, when the stick is up and the lock is known (and can
        // be reached as it must be).
        if !hub || device.slot_count == 0 || device.facts.security_failure.is_some() {
            return Ok(());
        }
        let config = ctx
            .watch_config
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let input = WatchInput {
            managed: &managed,
            checksum: device.facts.user_code_version >= 2 && device.facts.supports_checksum,
            full_read_done,
        };
        let (read, due) = rt.watch.next(input, &config, Instant::now());
        if let Some(due) = due {
            rt.wake_at = Some(rt.wake_at.map_or(due, |w| w.min(due)));
        }
        if let Some(read) = read {
            self.start_watch(&device, read);
        }
        Ok(())
    }

    fn push(&mut self, device: Uuid, fut: BoxFuture<'static, Done>) {
        self.locks.entry(device).or_default().busy = true;
        self.inflight.push(fut);
    }

    fn start_write(&mut self, device: &DeviceRow, action: SlotAction) {
        let port = self.port.clone();
        let limit = self.ctx.config.operation_timeout;
        let lock = caps(device);
        let id = device.device_id;
        let now = self.ctx.now();
        tracing::debug!(node = device.node_id, ?action, "acting on the lock");
        let fut = async move {
            let result = super::ops::write(port.as_ref(), &lock, &action, limit, now).await;
            Done {
                device: id,
                op: Op::Write { action },
                result,
            }
        };
        self.push(id, Box::pin(fut));
    }

    fn start_watch(&mut self, device: &DeviceRow, read: Read) {
        let port = self.port.clone();
        let limit = self.ctx.config.operation_timeout;
        let lock = caps(device);
        let id = device.device_id;
        let fut = async move {
            let result = super::ops::read(port.as_ref(), &lock, &read, limit).await;
            Done {
                device: id,
                op: Op::Watch(read),
                result,
            }
        };
        self.push(id, Box::pin(fut));
    }

    fn on_request(&mut self, r: Request) {
        match r {
            Request::FullRead { device, attempt } => {
                let rt = self.locks.entry(device).or_default();
                rt.watch.full_read();
                rt.watch.sync_attempts.extend(attempt);
                rt.dirty = true;
            }
            Request::Bolt {
                device,
                locked,
                attempt: attempt_id,
            } => {
                let row = match self.ctx.repo.read(|tx| tx.device(&device)) {
                    Ok(Some(d)) => d,
                    Ok(None) => return,
                    Err(e) => return self.log_store("working the bolt", &e),
                };
                let port = self.port.clone();
                let limit = self.ctx.config.operation_timeout;
                let lock = caps(&row);
                // Not a slot write: it does not wait for the lock's queue of code work.
                self.inflight.push(Box::pin(async move {
                    let a = ops::attempt(limit, port.set_bolt(&lock, locked)).await;
                    Done {
                        device,
                        op: Op::Bolt {
                            attempt: attempt_id,
                            locked,
                        },
                        result: OpResult::Bolt(a),
                    }
                }));
            }
        }
    }

    fn on_done(&mut self, done: Done) {
        let Done { device, op, result } = done;
        let bolt = matches!(op, Op::Bolt { .. });
        if let Err(e) = self.commit_done(&device, op, result) {
            self.log_store("recording an outcome", &e);
        }
        if let Some(rt) = self.locks.get_mut(&device) {
            if !bolt {
                rt.busy = false;
            }
            rt.dirty = true;
        }
    }

    fn wait(&mut self, device: &Uuid, w: LockWait) {
        let Some(rt) = self.locks.get_mut(device) else {
            return;
        };
        match w {
            LockWait::None => {}
            LockWait::For(d) => rt.quiet_until = Some(Instant::now() + d),
            // The stick's return (Connected) wakes every lock; until then a slow poll.
            LockWait::Stick => rt.quiet_until = Some(Instant::now() + Duration::from_secs(5)),
        }
    }

    fn wait_for(&mut self, device: &Uuid, f: &Failure) {
        use crate::lock::ErrorClass;
        let w = match f.class() {
            ErrorClass::Unreachable { retry_after } => LockWait::For(retry_after),
            ErrorClass::NotConnected => LockWait::Stick,
            ErrorClass::Transient | ErrorClass::Permanent => LockWait::For(Duration::from_secs(10)),
        };
        self.wait(device, w);
    }

    fn commit_done(&mut self, device: &Uuid, op: Op, result: OpResult) -> Result<(), StoreError> {
        let ctx = self.ctx.clone();
        let now = ctx.now();
        let config = &ctx.config;
        match (op, result) {
            (Op::Write { action }, OpResult::Probe(r)) => {
                let slot = action.slot();
                match r {
                    Ok(reading) => {
                        let (state, pin) = observe::slot_state(&reading.content);
                        ctx.repo.write(|tx| {
                            tx.observe_slot(device, slot, state, pin, &now).map(|_| ())
                        })?;
                    }
                    Err(f) => {
                        self.wait_for(device, &f);
                        let events = ctx.repo.write(|tx| {
                            let code = action.code();
                            let r = apply::finish(
                                tx,
                                config,
                                &code,
                                slot,
                                None,
                                Write::Probe,
                                &Attempt::Failed(f),
                                &now,
                            )?;
                            if let Some((kind, msg)) = &r.gave_up {
                                attempts::fail(tx, &code, kind, msg, &now)?;
                            }
                            Ok::<_, StoreError>(r.events)
                        })?;
                        ctx.publish(events);
                    }
                }
            }
            (
                Op::Write { action },
                OpResult::Write {
                    attempt,
                    schedule_cleared,
                    old_cleared,
                },
            ) => {
                let code = action.code();
                let slot = action.slot();
                if matches!(attempt, Attempt::Failed(_)) {
                    ctx.reconcile_failures
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
                let finished = ctx.repo.write(|tx| {
                    let (pin, write) = match &action {
                        SlotAction::Set { pin, native, .. } => (
                            Some(pin.as_str()),
                            Write::Set {
                                native: native.is_some(),
                            },
                        ),
                        _ => (None, Write::Clear),
                    };
                    let r = apply::finish(tx, config, &code, slot, pin, write, &attempt, &now)?;
                    if schedule_cleared {
                        schedule::mark_slot(tx, device, slot, false)?;
                    }
                    if old_cleared {
                        if let Some(mut c) = tx.code(&code)? {
                            c.programmed_code = None;
                            c.is_scheduled_on_device = false;
                            tx.put_code(&c)?;
                        }
                        tx.observe_slot(device, slot, crate::store::SlotState::Empty, None, &now)?;
                    }
                    if let Some((kind, msg)) = &r.gave_up {
                        attempts::fail(tx, &code, kind, msg, &now)?;
                    }
                    if matches!(attempt, Attempt::Done(_)) {
                        settle(&ctx, tx, &code, &action, &now)?;
                    }
                    if let (SlotAction::Clear { then, .. }, Attempt::Done(_)) = (&action, &attempt)
                    {
                        apply::removed(tx, &code, *then, &now)?;
                    }
                    Ok::<_, StoreError>(r)
                })?;
                ctx.publish(finished.events);
                self.wait(device, finished.wait);
                if let Some(rt) = self.locks.get_mut(device) {
                    if !matches!(attempt, Attempt::Failed(_)) {
                        rt.watch.forget_checksum();
                    }
                }
            }
            (
                Op::Watch(_),
                OpResult::Slots {
                    readings,
                    unread,
                    error,
                },
            ) => {
                self.observe(device, &readings, &now)?;
                if let Some(f) = error {
                    if let Some(rt) = self.locks.get_mut(device) {
                        rt.watch.want(unread);
                    }
                    self.wait_for(device, &f);
                } else {
                    let expected = ctx.repo.read(|tx| {
                        let done = tx.state(&full_read_key(device))?.is_some();
                        Ok::<_, StoreError>(watch::expected_checksum(&tx.slots(device)?, done))
                    })?;
                    if let Some(rt) = self.locks.get_mut(device) {
                        rt.watch.reads_done(expected);
                    }
                }
            }
            (Op::Watch(Read::Page(_)), OpResult::Page(r)) => match r {
                Ok(page) => {
                    self.observe(device, &page.readings, &now)?;
                    let Some(rt) = self.locks.get_mut(device) else {
                        return Ok(());
                    };
                    rt.watch.full_read_next = page.next;
                    let done = page.next.is_none();
                    let read_to = page.readings.iter().map(|r| r.slot).max().unwrap_or(0);
                    // Tell waiting clients how far the read is (at most once a second, and
                    // always at the end).
                    let attempts = rt.watch.sync_attempts.clone();
                    let due = rt
                        .progress_at
                        .is_none_or(|t| t.elapsed() >= Duration::from_secs(1));
                    if !attempts.is_empty() && (due || done) {
                        rt.progress_at = Some(Instant::now());
                        let total = ctx.repo.read(|tx| tx.device(device))?.map(|d| d.slot_count);
                        let read = if done {
                            total.unwrap_or(read_to)
                        } else {
                            read_to
                        };
                        for a in &attempts {
                            ctx.record(
                                "action_attempt.progress",
                                Some(device),
                                None,
                                json!({
                                    "action_attempt_id": a,
                                    "action_type": "SYNC_ACCESS_CODES",
                                    "done": read,
                                    "total": total,
                                    "unit": "slots",
                                }),
                            )?;
                        }
                    }
                    if done {
                        let Some(rt) = self.locks.get_mut(device) else {
                            return Ok(());
                        };
                        rt.watch.verify = Verify::Done;
                        let attempts = std::mem::take(&mut rt.watch.sync_attempts);
                        ctx.repo.write(|tx| {
                            tx.set_state(&full_read_key(device), &now.to_rfc3339())?;
                            // What the read found.
                            let slots = tx.slots(device)?;
                            let total = tx.device(device)?.map(|d| d.slot_count).unwrap_or(0);
                            let held: std::collections::BTreeSet<u16> = tx
                                .device_codes(device)?
                                .iter()
                                .filter_map(|c| c.slot)
                                .collect();
                            let unmanaged = slots
                                .iter()
                                .filter(|s| s.state.holds_code() && !held.contains(&s.slot))
                                .count();
                            let result = json!({
                                "slots_read": total,
                                "slots_total": total,
                                "codes_found": slots.iter().filter(|s| s.state.holds_code()).count(),
                                "unmanaged_found": unmanaged,
                            });
                            for a in &attempts {
                                if let Some(mut row) = tx.attempt(a)? {
                                    row.status = "success".into();
                                    row.result = Some(result.clone());
                                    row.updated_at = now;
                                    tx.put_attempt(&row)?;
                                }
                            }
                            Ok::<_, StoreError>(())
                        })?;
                        tracing::info!(%device, "full read of the lock done");
                    }
                }
                Err(f) => self.wait_for(device, &f),
            },
            (Op::Watch(_), OpResult::Checksum(r)) => match r {
                Ok(Some(cs)) => {
                    let (expected, row, managed) = ctx.repo.read(|tx| {
                        let done = tx.state(&full_read_key(device))?.is_some();
                        let slots = tx.slots(device)?;
                        let managed: Vec<u16> = tx
                            .device_codes(device)?
                            .iter()
                            .filter(|c| c.programmed_code.is_some())
                            .filter_map(|c| c.slot)
                            .collect();
                        Ok::<_, StoreError>((
                            watch::expected_checksum(&slots, done),
                            tx.device(device)?,
                            managed,
                        ))
                    })?;
                    let Some(rt) = self.locks.get_mut(device) else {
                        return Ok(());
                    };
                    if rt.watch.on_checksum(cs, expected) {
                        tracing::info!(%device, "checksum differs: reading the codes");
                        if row.is_some_and(|d| d.facts.supports_bulk_reports) {
                            rt.watch.full_read();
                        } else {
                            // The managed slots first; the whole lock if they do not explain it.
                            rt.watch.want(managed);
                            rt.watch.explain(cs);
                        }
                    }
                }
                Ok(None) => {
                    if let Some(rt) = self.locks.get_mut(device) {
                        rt.watch.checksum_unavailable();
                    }
                }
                Err(f) => {
                    if let Some(rt) = self.locks.get_mut(device) {
                        rt.watch.checksum_unavailable();
                    }
                    self.wait_for(device, &f);
                }
            },
            (
                Op::Bolt {
                    attempt: id,
                    locked,
                },
                OpResult::Bolt(a),
            ) => {
                let (status, result, error) = match &a {
                    Attempt::Done(w) => (
                        "success",
                        Some(json!({ "was_confirmed_by_device": *w == Written::Confirmed })),
                        None,
                    ),
                    Attempt::Refused(r) => (
                        "error",
                        None,
                        Some(json!({ "type": "lock_refused", "message": r.to_string() })),
                    ),
                    Attempt::Failed(f) => (
                        "error",
                        None,
                        Some(json!({
                            "type": match f.class() {
                                crate::lock::ErrorClass::NotConnected => "hub_disconnected",
                                crate::lock::ErrorClass::Unreachable { .. } => "device_disconnected",
                                _ => "failed",
                            },
                            "message": f.to_string(),
                        })),
                    ),
                };
                let ok = status == "success";
                ctx.repo.write(|tx| {
                    if let Some(mut row) = tx.attempt(&id)? {
                        row.status = status.into();
                        row.result = result;
                        row.error = error;
                        row.updated_at = now;
                        tx.put_attempt(&row)?;
                    }
                    if ok {
                        tx.set_device_state(device, None, Some(locked))?;
                    }
                    Ok::<_, StoreError>(())
                })?;
                if ok {
                    ctx.record(
                        if locked {
                            "lock.locked"
                        } else {
                            "lock.unlocked"
                        },
                        Some(device),
                        None,
                        json!({ "method": "remote", "action_attempt_id": id }),
                    )?;
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// Record readings; wake the lock when a code needs putting back.
    fn observe(
        &mut self,
        device: &Uuid,
        readings: &[SlotReading],
        at: &chrono::DateTime<Utc>,
    ) -> Result<(), StoreError> {
        if readings.is_empty() {
            return Ok(());
        }
        let (events, put_back) = self
            .ctx
            .repo
            .write(|tx| observe::observe(tx, device, readings, at))?;
        self.ctx.publish(events);
        if let Some(rt) = self.locks.get_mut(device) {
            if put_back {
                rt.watch.forget_checksum();
            }
            rt.dirty = true;
        }
        Ok(())
    }

    fn on_event(&mut self, ev: PortEvent) {
        let effects = match super::inbox::handle(&self.ctx, ev) {
            Ok(e) => e,
            Err(e) => return self.log_store("recording what a lock said", &e),
        };
        for effect in effects {
            self.apply_effect(effect);
        }
    }

    fn apply_effect(&mut self, effect: Effect) {
        match effect {
            Effect::Look(d) => self.locks.entry(d).or_default().dirty = true,
            Effect::Read(d, slots) => {
                let rt = self.locks.entry(d).or_default();
                rt.watch.want(slots);
                rt.dirty = true;
            }
            Effect::ReadSoon(d, slots) => {
                let at = Instant::now() + REPORT_GRACE;
                let rt = self.locks.entry(d).or_default();
                rt.watch.want_after(slots, at);
                rt.wake_at = Some(rt.wake_at.map_or(at, |w| w.min(at)));
            }
            Effect::Reported(d, slots) => {
                self.locks.entry(d).or_default().watch.reported(slots);
            }
            Effect::Changed(d) => {
                let rt = self.locks.entry(d).or_default();
                rt.watch.forget_checksum();
                rt.dirty = true;
            }
            Effect::Answers(d) => {
                let rt = self.locks.entry(d).or_default();
                rt.quiet_until = None;
                rt.dirty = true;
            }
            Effect::StickBack => {
                for rt in self.locks.values_mut() {
                    rt.quiet_until = None;
                    rt.dirty = true;
                }
            }
            Effect::Gone(d) => {
                self.locks.remove(&d);
            }
        }
    }
}

/// The lock has what a code's action asked: its mutations settle and its pending attempts
/// succeed, with the code as it now is.
fn settle(
    ctx: &Ctx,
    tx: &crate::store::Tx<'_>,
    code: &Uuid,
    action: &SlotAction,
    now: &chrono::DateTime<Utc>,
) -> Result<(), StoreError> {
    use crate::store::MutationKind;
    let Some(mut row) = tx.code(code)? else {
        // Forgotten (deleted): the delete is done.
        attempts::succeed(tx, code, &[attempts::DELETE], &json!({}), now)?;
        return Ok(());
    };
    let types: &[&str] = match action {
        SlotAction::Set { .. } => &[attempts::CREATE, attempts::UPDATE],
        // Off the lock and waiting (a window moved later, a one-time code used).
        SlotAction::Clear { .. } => &[attempts::UPDATE],
        SlotAction::Probe { .. } => return Ok(()),
    };
    row.settle(&[MutationKind::UpdatingCode, MutationKind::UpdatingTimeFrame]);
    tx.put_code(&row)?;
    succeed_with_code(ctx, tx, &row, types, now)?;
    if matches!(action, SlotAction::Clear { .. }) {
        attempts::succeed(tx, code, &[attempts::DELETE], &json!({}), now)?;
    }
    Ok(())
}

/// The code's pending attempts of `types` succeed, with the code as it now is.
fn succeed_with_code(
    ctx: &Ctx,
    tx: &crate::store::Tx<'_>,
    row: &crate::store::CodeRow,
    types: &[&str],
    now: &chrono::DateTime<Utc>,
) -> Result<(), StoreError> {
    let result = json!({ "access_code": super::render::render(ctx, tx, row)? });
    attempts::succeed(tx, &row.access_code_id, types, &result, now)?;
    Ok(())
}

/// What a plan's bookkeeping means for the codes' pending attempts.
fn settle_changes(
    ctx: &Ctx,
    tx: &crate::store::Tx<'_>,
    changes: &[planner::Change],
    now: &chrono::DateTime<Utc>,
) -> Result<(), StoreError> {
    use planner::Change;
    for change in changes {
        match change {
            // (Only when the bookkeeping went through: a code is forgotten only if still gone.)
            Change::Forget { code, .. } if tx.code(code)?.is_some() => {}
            Change::Forget { code, ended: false } => {
                attempts::succeed(tx, code, &[attempts::DELETE], &json!({}), now)?;
            }
            Change::Forget { code, ended: true } => {
                attempts::fail(
                    tx,
                    code,
                    "access_code_ended",
                    "the code's window ended before it reached the lock",
                    now,
                )?;
            }
            Change::Unslot { code } | Change::OpenedOnLock { code } => {
                if let Some(row) = tx.code(code)? {
                    succeed_with_code(ctx, tx, &row, &[attempts::CREATE, attempts::UPDATE], now)?;
                }
            }
            Change::NoSpace { code, slots } => {
                attempts::fail(
                    tx,
                    code,
                    crate::codes::model::error_code::NO_SPACE_FOR_ACCESS_CODE_ON_DEVICE,
                    &format!("all {slots} slots of the lock are in use; the code is placed as soon as one frees"),
                    now,
                )?;
            }
            Change::Assign { .. } | Change::SpaceFound { .. } | Change::Hold { .. } => {}
        }
    }
    Ok(())
}
