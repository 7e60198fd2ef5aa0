//! Running a plan: each step against the daemon's API or the simulator's control socket, the
//! model kept in step with what was acknowledged, fault periods switched on and off on time,
//! the daemon killed and started again. Then the quiet phase: every fault stops, and the
//! invariants must hold within a bound.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use zwlock::cli::client::ClientError;

use super::harness::Harness;
use super::model::{
    self, ApiCode, Change, Code, CodeState, Expect, Invariant, LockView, Model, PendingCreate,
    Span, Tampered, Uncertain, Unmanaged, Violation,
};
use super::plan::{self, LinkFaults, Op, Step, Window};

/// Slots per simulated lock.
pub const SLOTS: u16 = 20;
/// The top slots are the keypad's: unmanaged codes go there, and the campaign keeps few enough
/// managed codes that the engine (lowest free slot first) never needs them.
pub const KEYPAD_SLOTS: u16 = 4;
/// Codes per lock that may hold a slot at once (declared, or deleted and not yet gone).
const CAP: usize = 10;
const NETWORK: &str = "campaign";

/// What a run is asked to do.
#[derive(Debug, Clone)]
pub struct Settings {
    pub seed: u64,
    pub ops: usize,
    pub locks: usize,
    /// How long convergence may take once every fault has stopped (and the last window
    /// boundary has passed).
    pub converge: Duration,
    pub log_level: String,
    pub keep: bool,
}

impl Settings {
    pub fn repro(&self) -> String {
        format!(
            "ZWLOCK_CAMPAIGN_SEED={} ZWLOCK_CAMPAIGN_OPS={} ZWLOCK_CAMPAIGN_LOCKS={} cargo test --test campaign",
            self.seed, self.ops, self.locks
        )
    }
}

/// The simulated network, like the demo's: locks alternate between a current one (User Code
/// v2, checksum, Supervision, Notification v8) and an old one (v1, Alarm reports, no
/// Supervision). The first two are FLiRS with a 1000 ms beam, as most locks are (so radio
/// exchanges take long enough for kills and faults to land inside them); then a 250 ms one and
/// a mains-powered one, in turn. Each starts with one code of its owner in slot 1.
pub fn sim_toml(seed: u64, locks: usize, initial: &[String]) -> String {
    let mut s = format!(
        "[[network]]\nname = \"{NETWORK}\"\nseed = {}\n",
        plan::mix(seed ^ 0x51u64) >> 1
    );
    for (i, pin) in initial.iter().enumerate().take(locks) {
        let v2 = i % 2 == 0;
        s.push_str(&format!(
            "[[network.lock]]\nnode_id = {}\nname = \"lock {i}\"\nlistening = \"{}\"\nslots = {SLOTS}\n\
             user_code_version = {}\nsupervision = {v2}\nnotification = \"{}\"\n\
             initial_codes = [{{ slot = 1, code = \"{pin}\" }}]\n",
            5 + i,
            ["flirs1000", "flirs1000", "flirs250", "always"][i % 4],
            if v2 { 2 } else { 1 },
            if v2 { "v8" } else { "alarm" },
        ));
    }
    s
}

/// Counters for the figures.
#[derive(Debug, Default)]
pub struct Stats {
    /// Per kind of step: (done, acknowledged or carried out, refused, answer lost, skipped).
    pub ops: BTreeMap<&'static str, [u64; 5]>,
    pub kills: u64,
    pub restarts: u64,
    pub faults: BTreeMap<&'static str, u64>,
}

const DONE: usize = 0;
const OK: usize = 1;
const REFUSED: usize = 2;
const LOST: usize = 3;
const SKIPPED: usize = 4;

/// What a run found.
pub struct Outcome {
    pub violations: Vec<Violation>,
    pub figures: String,
    pub trace: Vec<String>,
    pub log_tail: String,
    pub kept: Option<std::path::PathBuf>,
}

struct Run {
    h: Harness,
    m: Model,
    s: Settings,
    t0: Instant,
    stats: Stats,
    trace: Vec<String>,
    violations: Vec<Violation>,
    /// The latest API view of each lock.
    views: Vec<Vec<ApiCode>>,
    link: Option<(Instant, LinkFaults)>,
    jam: Option<Instant>,
    jam_field: Option<(String, Value)>,
    unplugged: Option<Instant>,
    out_of_range: Vec<Option<Instant>>,
    restart_at: Option<Instant>,
    last_fault_end: Instant,
    last_boundary: DateTime<Utc>,
}

/// Run the campaign of `s`.
pub fn run(s: &Settings) -> Outcome {
    let initial: Vec<String> = (0..s.locks)
        .map(|i| {
            plan::pin(
                plan::mix(s.seed ^ (0xA110 + i as u64)),
                8,
                0..=0,
                &Default::default(),
            )
        })
        .collect();
    let nodes = (0..s.locks).map(|i| 5 + i as u8).collect();
    let h = Harness::start(
        NETWORK,
        &sim_toml(s.seed, s.locks, &initial),
        nodes,
        &s.log_level,
    );
    let mut m = Model::default();
    for (i, pin) in initial.iter().enumerate() {
        m.used.insert(pin.clone());
        m.unmanaged.push(Unmanaged {
            lock: i,
            slot: 1,
            pin: pin.clone(),
            removed: false,
            context: "on the lock before zwlock".into(),
        });
    }
    let mut r = Run {
        h,
        m,
        s: s.clone(),
        t0: Instant::now(),
        stats: Stats::default(),
        trace: Vec::new(),
        violations: Vec::new(),
        views: vec![Vec::new(); s.locks],
        link: None,
        jam: None,
        jam_field: None,
        unplugged: None,
        out_of_range: vec![None; s.locks],
        restart_at: None,
        last_fault_end: Instant::now(),
        last_boundary: Utc::now(),
    };
    r.jam_field = r.h.jam_field();
    r.note(match &r.jam_field {
        Some((f, v)) => format!("the simulator jams the stick with {f} = {v}"),
        None => "the simulator has no jammed-stick fault yet: jam steps are skipped".into(),
    });
    if let Err(e) = r.h.start_daemon() {
        panic!("the first daemon start failed: {e}");
    }
    if let Err(e) = r.h.wait_for_locks(Duration::from_secs(90)) {
        panic!("{e}");
    }
    r.t0 = Instant::now();
    for (i, step) in plan::plan(s.seed, s.ops).into_iter().enumerate() {
        r.step(i, step);
    }
    r.quiet()
}

impl Run {
    fn elapsed(&self) -> f64 {
        self.t0.elapsed().as_secs_f64()
    }

    fn note(&mut self, line: String) {
        let l = format!("{:7.2}s {line}", self.elapsed());
        self.trace.push(l);
    }

    fn count(&mut self, kind: &'static str, what: usize) {
        let c = self.stats.ops.entry(kind).or_default();
        c[what] += 1;
    }

    /// The circumstances of a keypad action, for reports.
    fn context(&self, lock: usize) -> String {
        let mut c = vec![format!("at {:.1}s", self.elapsed())];
        if !self.daemon_up() {
            c.push("daemon down".into());
        }
        if self.unplugged.is_some() {
            c.push("stick unplugged".into());
        }
        if self.out_of_range[lock].is_some() {
            c.push("lock out of range".into());
        }
        if self.link.is_some() {
            c.push("link faults".into());
        }
        if self.jam.is_some() {
            c.push("stick jammed".into());
        }
        c.join(", ")
    }

    fn daemon_up(&self) -> bool {
        self.restart_at.is_none()
    }

    /// Wait `ms`, switching faults off and restarting the daemon when they are due.
    fn wait(&mut self, ms: u64) {
        let until = Instant::now() + Duration::from_millis(ms);
        loop {
            self.service();
            let now = Instant::now();
            if now >= until {
                return;
            }
            std::thread::sleep((until - now).min(Duration::from_millis(50)));
        }
    }

    fn service(&mut self) {
        let now = Instant::now();
        let mut faults_changed = false;
        if self.link.as_ref().is_some_and(|(t, _)| *t <= now) {
            self.link = None;
            faults_changed = true;
        }
        if self.jam.is_some_and(|t| t <= now) {
            self.jam = None;
            faults_changed = true;
        }
        if faults_changed {
            self.apply_faults();
            self.last_fault_end = now;
        }
        if self.unplugged.is_some_and(|t| t <= now) {
            self.unplugged = None;
            self.sim("plug", None);
            self.last_fault_end = now;
        }
        for i in 0..self.s.locks {
            if self.out_of_range[i].is_some_and(|t| t <= now) {
                self.out_of_range[i] = None;
                self.sim("in_range", Some(i));
                self.last_fault_end = now;
            }
        }
        if let Some(exit) = self.h.daemon_exit() {
            self.violations.push(Violation::new(
                Invariant::DaemonHealth,
                format!(
                    "the daemon exited by itself at {:.1}s: {exit}",
                    self.elapsed()
                ),
            ));
            self.restart_at = Some(now);
        }
        if self.restart_at.is_some_and(|t| t <= now) {
            self.restart();
        }
    }

    fn restart(&mut self) {
        self.h.reap_daemon();
        self.restart_at = None;
        self.stats.restarts += 1;
        self.note("daemon started again".into());
        if let Err(e) = self.h.start_daemon() {
            self.violations
                .push(Violation::new(Invariant::DaemonHealth, e.clone()));
            panic!("the daemon could not be started again: {e}");
        }
        self.last_fault_end = Instant::now();
        self.resolve(true);
    }

    /// Read every lock's codes from the API and settle the model with them.
    fn resolve(&mut self, settled: bool) {
        for i in 0..self.s.locks {
            match self.h.list(i) {
                Ok(api) => {
                    let v = self.m.resolve(i, &api, Utc::now(), settled);
                    self.violations.extend(v);
                    self.views[i] = api;
                }
                Err(e) => self.note(format!("list lock {i}: {e}")),
            }
        }
    }

    fn refresh(&mut self, lock: usize) -> bool {
        match self.h.list(lock) {
            Ok(api) => {
                self.views[lock] = api;
                true
            }
            Err(_) => false,
        }
    }

    fn sim(&mut self, action: &str, lock: Option<usize>) {
        let node = lock.map(|i| self.h.nodes[i]);
        if let Err(e) = self.h.control(node, action, |_| {}) {
            panic!("simulator control failed: {e}");
        }
    }

    fn apply_faults(&mut self) {
        let mut f = self
            .link
            .as_ref()
            .map_or_else(|| json!({}), |(_, l)| l.to_json());
        if let (Some(_), Some((field, v))) = (self.jam, &self.jam_field) {
            f[field.as_str()] = v.clone();
        }
        if let Err(e) = self.h.set_faults(f) {
            panic!("setting faults failed: {e}");
        }
    }

    /// Before an API call: a daemon that is dead must be up again first. One whose SIGKILL
    /// is still on its way is called anyway: that is how kills land inside requests.
    fn ensure_api(&mut self) {
        self.service();
        if let Some(t) = self.restart_at {
            if self.h.killed() || !self.h.daemon_alive() {
                let now = Instant::now();
                if t > now {
                    self.wait((t - now).as_millis() as u64);
                }
                if self.restart_at.is_some() {
                    self.restart();
                }
            }
        }
    }

    fn window(&mut self, w: &Window) -> Span {
        let now = Utc::now();
        let ms = |s: i64| chrono::Duration::milliseconds(s * 1000);
        let start = now + ms(w.start_s);
        let end = start + ms(w.len_s);
        let trunc = |t: DateTime<Utc>| {
            DateTime::from_timestamp_millis(t.timestamp_millis()).expect("in range")
        };
        let span = (trunc(start), trunc(end));
        self.last_boundary = self.last_boundary.max(span.1);
        span
    }

    /// Codes a user can act on: declared, on `lock` if given, not waiting for a lost answer,
    /// and not about to end.
    fn targets(&self, pred: impl Fn(&Code) -> bool) -> Vec<usize> {
        let soon = Utc::now() + chrono::Duration::seconds(2);
        self.m
            .codes
            .iter()
            .enumerate()
            .filter(|(_, c)| {
                c.uncertain.is_none() && c.window.is_none_or(|(_, e)| e > soon) && pred(c)
            })
            .map(|(i, _)| i)
            .collect()
    }

    fn holders(&self, lock: usize) -> usize {
        self.m
            .codes
            .iter()
            .filter(|c| c.lock == lock && !c.gone)
            .filter(|c| {
                c.state != CodeState::Deleted || self.views[lock].iter().any(|a| a.id == c.id)
            })
            .count()
            + self.m.pending.iter().filter(|p| p.lock == lock).count()
    }

    fn step(&mut self, i: usize, step: Step) {
        self.wait(step.gap_ms);
        let kind = step.op.kind();
        self.count(kind, DONE);
        let result = self.act(&step.op);
        let what = match &result {
            Ok(_) => OK,
            Err(Fail::Refused(_)) => REFUSED,
            Err(Fail::Lost(_)) => LOST,
            Err(Fail::Skipped(_)) => SKIPPED,
        };
        self.count(kind, what);
        let said = match result {
            Ok(s) => s,
            Err(Fail::Refused(s)) => format!("refused: {s}"),
            Err(Fail::Lost(s)) => format!("answer lost: {s}"),
            Err(Fail::Skipped(s)) => format!("skipped: {s}"),
        };
        self.note(format!("#{i} {kind}: {said}"));
    }

    fn act(&mut self, op: &Op) -> Result<String, Fail> {
        let locks = self.s.locks as u64;
        match op {
            Op::Create {
                lock,
                pin,
                len,
                window,
                allow_ext,
                name,
            } => {
                let lock = (*lock % locks) as usize;
                if self.daemon_up() && !self.h.kill_pending() {
                    self.refresh(lock);
                }
                if self.holders(lock) >= CAP {
                    return Err(Fail::Skipped(format!("lock {lock} has {CAP} codes")));
                }
                self.ensure_api();
                let pin = plan::pin(*pin, *len, 1..=5, &self.m.used);
                self.m.used.insert(pin.clone());
                let window = window.as_ref().map(|w| self.window(w));
                let name = name.map(|n| format!("guest {n}"));
                let mut body = json!({
                    "device_id": self.h.devices[lock],
                    "code": pin,
                    "allow_external_modification": allow_ext,
                });
                if let Some(n) = &name {
                    body["name"] = json!(n);
                }
                if let Some((s, e)) = window {
                    body["starts_at"] = json!(model_ts(s));
                    body["ends_at"] = json!(model_ts(e));
                }
                let desc = format!("lock {lock} PIN {pin} window {window:?} ext {allow_ext}");
                match self.h.call("POST", "/access_codes/create", Some(&body)) {
                    Ok(r) if r.status == 200 => {
                        let id = r.body["access_code"]["access_code_id"]
                            .as_str()
                            .unwrap_or_default()
                            .to_string();
                        self.m.codes.push(Code {
                            id: id.clone(),
                            lock,
                            pin: pin.clone(),
                            acked_pin: pin,
                            old_pins: Vec::new(),
                            name,
                            window,
                            allow_ext: *allow_ext,
                            state: CodeState::Active,
                            acked: true,
                            adopted: false,
                            uncertain: None,
                            gone: false,
                            history: Vec::new(),
                        });
                        Ok(format!("{desc} → {id}"))
                    }
                    Ok(r) => Err(Fail::Refused(format!("{desc}: {}", r.error_message()))),
                    Err(e) if not_sent(&e) => Err(Fail::Refused(format!("{desc}: {e}"))),
                    Err(e) => {
                        self.m.pending.push(PendingCreate {
                            lock,
                            pin,
                            name,
                            window,
                            allow_ext: *allow_ext,
                        });
                        Err(Fail::Lost(format!("{desc}: {e}")))
                    }
                }
            }
            Op::UpdatePin { target, pin, len } => {
                let pin = plan::pin(*pin, *len, 1..=5, &self.m.used);
                self.m.used.insert(pin.clone());
                self.update(
                    *target,
                    Change {
                        pin: Some(pin),
                        ..Default::default()
                    },
                )
            }
            Op::UpdateName { target, name } => self.update(
                *target,
                Change {
                    name: Some(name.map(|n| format!("guest {n}"))),
                    ..Default::default()
                },
            ),
            Op::UpdateWindow { target, window } => {
                let w = window.as_ref().map(|w| self.window(w));
                self.update(
                    *target,
                    Change {
                        window: Some(w),
                        ..Default::default()
                    },
                )
            }
            Op::Delete { target } => {
                let t = self.targets(|c| c.state != CodeState::Deleted);
                if t.is_empty() {
                    return Err(Fail::Skipped("no code".into()));
                }
                self.ensure_api();
                let i = t[(*target % t.len() as u64) as usize];
                let id = self.m.codes[i].id.clone();
                match self.h.call(
                    "DELETE",
                    &format!("/access_codes/delete?access_code_id={id}"),
                    None,
                ) {
                    Ok(r) if r.status == 200 => {
                        self.m.codes[i].state = CodeState::Deleted;
                        Ok(id)
                    }
                    Ok(r) => Err(Fail::Refused(format!("{id}: {}", r.error_message()))),
                    Err(e) if not_sent(&e) => Err(Fail::Refused(format!("{id}: {e}"))),
                    Err(e) => {
                        self.m.codes[i].uncertain = Some(Uncertain::Delete);
                        Err(Fail::Lost(format!("{id}: {e}")))
                    }
                }
            }
            Op::KeypadAdd { lock, slot, pin } => {
                let lock = (*lock % locks) as usize;
                let on = self.h.show(lock).map_err(Fail::Refused)?;
                let claimed: Vec<u16> = self.views[lock].iter().filter_map(|a| a.slot).collect();
                let free: Vec<u16> = (SLOTS - KEYPAD_SLOTS + 1..=SLOTS)
                    .filter(|s| !on.contains_key(s) && !claimed.contains(s))
                    .collect();
                if free.is_empty() {
                    return Err(Fail::Skipped(format!("lock {lock}: keypad slots full")));
                }
                let slot = free[(*slot % free.len() as u64) as usize];
                let pin = plan::pin(*pin, 7 + (*pin % 2) as usize, 6..=7, &self.m.used);
                self.m.used.insert(pin.clone());
                let context = self.context(lock);
                let node = self.h.nodes[lock];
                self.h
                    .control(Some(node), "program", |r| {
                        r.slot = Some(slot);
                        r.pin = Some(pin.clone());
                    })
                    .map_err(Fail::Refused)?;
                self.m.unmanaged.push(Unmanaged {
                    lock,
                    slot,
                    pin: pin.clone(),
                    removed: false,
                    context: format!("programmed at the keypad {context}"),
                });
                Ok(format!("lock {lock} slot {slot} PIN {pin} ({context})"))
            }
            Op::KeypadRemove { target } => {
                let t: Vec<usize> = (0..self.m.unmanaged.len())
                    .filter(|i| !self.m.unmanaged[*i].removed && self.m.unmanaged[*i].slot != 1)
                    .collect();
                if t.is_empty() {
                    return Err(Fail::Skipped("no keypad code".into()));
                }
                let u = t[(*target % t.len() as u64) as usize];
                let (lock, slot) = (self.m.unmanaged[u].lock, self.m.unmanaged[u].slot);
                let node = self.h.nodes[lock];
                self.h
                    .control(Some(node), "delete", |r| r.slot = Some(slot))
                    .map_err(Fail::Refused)?;
                self.m.unmanaged[u].removed = true;
                Ok(format!("lock {lock} slot {slot} ({})", self.context(lock)))
            }
            Op::Tamper {
                target,
                delete,
                pin,
            } => self.tamper(*target, *delete, *pin),
            Op::Enter { lock, target } => {
                let lock = (*lock % locks) as usize;
                let pins: Vec<String> = self
                    .m
                    .codes
                    .iter()
                    .filter(|c| c.lock == lock)
                    .map(|c| c.pin.clone())
                    .chain(
                        self.m
                            .unmanaged
                            .iter()
                            .filter(|u| u.lock == lock)
                            .map(|u| u.pin.clone()),
                    )
                    .collect();
                if pins.is_empty() {
                    return Err(Fail::Skipped("no PIN".into()));
                }
                let pin = pins[(*target % pins.len() as u64) as usize].clone();
                let node = self.h.nodes[lock];
                let v = self
                    .h
                    .control(Some(node), "enter", |r| r.pin = Some(pin.clone()))
                    .map_err(Fail::Refused)?;
                Ok(format!("lock {lock} PIN {pin}: unlocked {}", v["unlocked"]))
            }
            Op::Kill { after_ms, down_ms } => {
                if self.h.kill_pending() || !self.daemon_up() {
                    return Err(Fail::Skipped("the daemon is already down".into()));
                }
                self.h.kill_later(Duration::from_millis(*after_ms));
                self.restart_at = Some(Instant::now() + Duration::from_millis(after_ms + down_ms));
                self.stats.kills += 1;
                Ok(format!(
                    "SIGKILL in {after_ms} ms, start again {down_ms} ms later"
                ))
            }
            Op::LinkFaults { faults, ms } => {
                self.link = Some((Instant::now() + Duration::from_millis(*ms), faults.clone()));
                self.apply_faults();
                *self.stats.faults.entry("link").or_default() += 1;
                Ok(format!("{} for {ms} ms", faults.to_json()))
            }
            Op::Jam { ms } => {
                if self.jam_field.is_none() {
                    return Err(Fail::Skipped("the simulator cannot jam the stick".into()));
                }
                self.jam = Some(Instant::now() + Duration::from_millis(*ms));
                self.apply_faults();
                *self.stats.faults.entry("jam").or_default() += 1;
                Ok(format!("for {ms} ms"))
            }
            Op::Unplug { ms } => {
                if self.unplugged.is_none() {
                    self.sim("unplug", None);
                }
                self.unplugged = Some(Instant::now() + Duration::from_millis(*ms));
                *self.stats.faults.entry("unplug").or_default() += 1;
                Ok(format!("for {ms} ms"))
            }
            Op::OutOfRange { lock, ms } => {
                let lock = (*lock % locks) as usize;
                if self.out_of_range[lock].is_none() {
                    self.sim("out_of_range", Some(lock));
                }
                self.out_of_range[lock] = Some(Instant::now() + Duration::from_millis(*ms));
                *self.stats.faults.entry("out_of_range").or_default() += 1;
                Ok(format!("lock {lock} for {ms} ms"))
            }
        }
    }

    fn update(&mut self, target: u64, ch: Change) -> Result<String, Fail> {
        let t = self.targets(|c| c.state == CodeState::Active);
        if t.is_empty() {
            return Err(Fail::Skipped("no code".into()));
        }
        self.ensure_api();
        let i = t[(target % t.len() as u64) as usize];
        let id = self.m.codes[i].id.clone();
        let mut body = json!({ "access_code_id": id });
        if let Some(p) = &ch.pin {
            body["code"] = json!(p);
        }
        if let Some(n) = &ch.name {
            body["name"] = json!(n);
        }
        if let Some(w) = &ch.window {
            body["starts_at"] = json!(w.map(|w| model_ts(w.0)));
            body["ends_at"] = json!(w.map(|w| model_ts(w.1)));
        }
        let desc = format!("{id} {}", body_summary(&body));
        match self.h.call("PATCH", "/access_codes/update", Some(&body)) {
            Ok(r) if r.status == 200 => {
                model::apply(&mut self.m.codes[i], &ch);
                Ok(desc)
            }
            Ok(r) => Err(Fail::Refused(format!("{desc}: {}", r.error_message()))),
            Err(e) if not_sent(&e) => Err(Fail::Refused(format!("{desc}: {e}"))),
            Err(e) => {
                self.m.codes[i].uncertain = Some(Uncertain::Update(ch));
                Err(Fail::Lost(format!("{desc}: {e}")))
            }
        }
    }

    /// A person changes (or deletes) a managed code's slot at the keypad. Only a code that is
    /// on its lock, and not being worked on, is a fair target: while the engine writes a slot
    /// the lock cannot tell a keypad change from the write it is waiting for.
    fn tamper(&mut self, target: u64, delete: bool, pin: u64) -> Result<String, Fail> {
        let t = self.targets(|c| c.state == CodeState::Active);
        if t.is_empty() {
            return Err(Fail::Skipped("no code".into()));
        }
        let i = t[(target % t.len() as u64) as usize];
        let lock = self.m.codes[i].lock;
        if self.out_of_range[lock].is_some() {
            // Its notification would be lost and nothing tells the engine to look: only the
            // periodic watch (minutes to hours, by design) could find it, not a bounded wait.
            // A stick unplugged or a daemon down are different: the engine knows, and must
            // verify once it is back.
            return Err(Fail::Skipped("lock out of range".into()));
        }
        let up = self.daemon_up() && !self.h.kill_pending();
        let fresh = up && self.refresh(lock);
        if self.m.codes[i].allow_ext && !fresh {
            return Err(Fail::Skipped(
                "external changes allowed, daemon not up".into(),
            ));
        }
        let c = &self.m.codes[i];
        let Some(a) = self.views[lock].iter().find(|a| a.id == c.id) else {
            return Err(Fail::Skipped("not listed".into()));
        };
        let Some(slot) = a.slot.filter(|_| a.status == "set" || !c.allow_ext) else {
            return Err(Fail::Skipped(format!("status {}", a.status)));
        };
        let on = self.h.show(lock).map_err(Fail::Refused)?;
        if on.get(&slot).is_none_or(|s| s.pin != c.pin) {
            return Err(Fail::Skipped("not on its lock".into()));
        }
        let context = self.context(lock);
        let node = self.h.nodes[lock];
        let new_pin = (!delete).then(|| plan::pin(pin, 8, 8..=9, &self.m.used));
        match &new_pin {
            Some(p) => {
                self.m.used.insert(p.clone());
                self.h.control(Some(node), "program", |r| {
                    r.slot = Some(slot);
                    r.pin = Some(p.clone());
                })
            }
            None => self
                .h
                .control(Some(node), "delete", |r| r.slot = Some(slot)),
        }
        .map_err(Fail::Refused)?;
        let c = &mut self.m.codes[i];
        let how = match &new_pin {
            Some(p) => format!("keypad changed it to {p}"),
            None => "keypad deleted it".into(),
        };
        c.history.push(format!("{how} in slot {slot} ({context})"));
        match (c.allow_ext, new_pin.clone()) {
            (true, Some(p)) => {
                c.old_pins.push(std::mem::replace(&mut c.pin, p));
                c.adopted = true;
            }
            (true, None) => c.state = CodeState::Released,
            (false, pin) => self.m.tampered.push(Tampered {
                lock,
                slot,
                pin,
                code_id: c.id.clone(),
                context: context.clone(),
            }),
        }
        Ok(format!(
            "{} lock {lock}: {how} in slot {slot} ({context})",
            self.m.codes[i].id
        ))
    }

    /// Every fault stops; the daemon runs; the invariants must hold within the bound.
    fn quiet(mut self) -> Outcome {
        self.ensure_api();
        if self.h.kill_pending() {
            // A kill may still land: let it, and start again.
            self.h.reap_daemon();
            self.restart_at = Some(Instant::now());
            self.service();
        }
        let had_faults = self.link.is_some()
            || self.jam.is_some()
            || self.unplugged.is_some()
            || self.out_of_range.iter().any(Option::is_some);
        self.link = None;
        self.jam = None;
        self.apply_faults();
        if self.unplugged.take().is_some() {
            self.sim("plug", None);
        }
        for i in 0..self.s.locks {
            if self.out_of_range[i].take().is_some() {
                self.sim("in_range", Some(i));
            }
        }
        let quiet = if had_faults {
            Instant::now()
        } else {
            self.last_fault_end
        };
        self.note("all faults stopped".into());
        let boundary_wait = (self.last_boundary - Utc::now())
            .to_std()
            .unwrap_or_default();
        let deadline = Instant::now() + boundary_wait + self.s.converge;
        let mut first_pass: Option<Instant> = None;
        let mut last: Vec<Violation>;
        let converged = loop {
            let now = Utc::now();
            last = Vec::new();
            let mut views = Vec::new();
            for i in 0..self.s.locks {
                let api = match self.h.list(i) {
                    Ok(a) => a,
                    Err(e) => {
                        last.push(
                            Violation::new(Invariant::DaemonHealth, format!("API: {e}")).lock(i),
                        );
                        Vec::new()
                    }
                };
                let slots = self.h.show(i).unwrap_or_else(|e| panic!("{e}"));
                views.push(LockView { api, slots });
            }
            let after = Utc::now();
            for (i, v) in views.iter().enumerate() {
                let settle = self.m.resolve(i, &v.api, after, true);
                self.violations.extend(settle);
                last.extend(self.m.check(i, v, after));
            }
            // A window boundary inside the reading makes it inconclusive.
            let straddles = self.m.codes.iter().any(|c| {
                c.window.is_some_and(|(s, e)| {
                    [s, e]
                        .iter()
                        .any(|b| *b >= now - chrono::Duration::milliseconds(500) && *b <= after)
                })
            });
            if last.is_empty() && !straddles {
                match first_pass {
                    Some(t) if t.elapsed() >= Duration::from_secs(2) => break Some(t),
                    Some(_) => {}
                    None => first_pass = Some(Instant::now()),
                }
            } else {
                first_pass = None;
            }
            if Instant::now() > deadline {
                break None;
            }
            std::thread::sleep(Duration::from_millis(700));
        };
        let converge_s = converged.map(|t| t.saturating_duration_since(quiet).as_secs_f64());
        self.note(match converge_s {
            Some(s) => format!("converged {s:.1}s after the last fault"),
            None => format!(
                "not converged {:.0}s after the last fault",
                quiet.elapsed().as_secs_f64()
            ),
        });
        self.violations.extend(last);
        // A clean stop, then the store and the logs.
        match self.h.stop_daemon() {
            Ok(_) => {}
            Err(e) => self
                .violations
                .push(Violation::new(Invariant::DaemonHealth, e)),
        }
        match self.h.integrity() {
            Ok(rows) if rows == ["ok"] => {}
            Ok(rows) => self.violations.push(Violation::new(
                Invariant::Integrity,
                format!("PRAGMA integrity_check: {}", rows.join("; ")),
            )),
            Err(e) => self
                .violations
                .push(Violation::new(Invariant::Integrity, e)),
        }
        let log = self.h.log_text();
        let index = model::LogIndex::new(&log);
        for pin in self.m.all_pins() {
            if let Some(line) = index.find(pin) {
                self.violations.push(Violation::new(
                    Invariant::PinInLog,
                    format!("PIN {pin} in the daemon's log: {}", clip(line, 300)),
                ));
            }
        }
        self.violations.sort();
        self.violations.dedup();
        let figures = self.figures(converge_s, log.lines().count());
        let log_tail = self.h.log_tail(60);
        if let Some(d) = self.h.dir() {
            let _ = std::fs::write(d.join("steps.txt"), self.trace.join("\n"));
        }
        let kept = if self.s.keep { self.h.keep() } else { None };
        Outcome {
            violations: self.violations,
            figures,
            trace: self.trace,
            log_tail,
            kept,
        }
    }

    fn figures(&self, converge_s: Option<f64>, log_lines: usize) -> String {
        let mut f = String::new();
        let total: u64 = self.stats.ops.values().map(|c| c[DONE]).sum();
        f.push_str(&format!(
            "campaign seed {}: {} steps over {} locks in {:.0}s; {} kills, {} daemon starts\n",
            self.s.seed,
            total,
            self.s.locks,
            self.elapsed(),
            self.stats.kills,
            self.stats.restarts + 1
        ));
        f.push_str("  step            done    ok  refused  lost  skipped\n");
        for (k, c) in &self.stats.ops {
            f.push_str(&format!(
                "  {k:<14} {:>5} {:>5} {:>8} {:>5} {:>8}\n",
                c[DONE], c[OK], c[REFUSED], c[LOST], c[SKIPPED]
            ));
        }
        let faults: Vec<String> = self
            .stats
            .faults
            .iter()
            .map(|(k, n)| format!("{k} {n}"))
            .collect();
        f.push_str(&format!(
            "  faults injected: {} (and {} kills)\n",
            if faults.is_empty() {
                "none".into()
            } else {
                faults.join(", ")
            },
            self.stats.kills
        ));
        let declared = self.m.codes.len();
        let deleted = self
            .m
            .codes
            .iter()
            .filter(|c| c.state == CodeState::Deleted)
            .count();
        let windows = self.m.codes.iter().filter(|c| c.window.is_some()).count();
        let on = self
            .m
            .codes
            .iter()
            .filter(|c| c.expect(Utc::now()) == Expect::On)
            .count();
        f.push_str(&format!(
            "  codes: {declared} declared ({windows} time-bound), {deleted} deleted, {on} due on locks at the end; {} keypad changes of managed codes, {} unmanaged codes\n",
            self.m.codes.iter().map(|c| c.history.iter().filter(|h| h.starts_with("keypad")).count()).sum::<usize>(),
            self.m.unmanaged.len()
        ));
        f.push_str(&match converge_s {
            Some(s) => format!("  time from the last fault to full convergence: {s:.1}s\n"),
            None => format!(
                "  NOT converged within {:.0}s after the last fault (and the last window boundary)\n",
                self.s.converge.as_secs_f64()
            ),
        });
        f.push_str(&format!(
            "  daemon log: {log_lines} lines at {}\n",
            self.s.log_level
        ));
        f
    }
}

enum Fail {
    /// The daemon answered no (or was not reached): nothing changed.
    Refused(String),
    /// Sent, and the answer never came: it may or may not have happened.
    Lost(String),
    /// Nothing to do it on.
    Skipped(String),
}

/// A request that never reached the daemon.
fn not_sent(e: &ClientError) -> bool {
    matches!(e, ClientError::Connect { .. })
}

fn model_ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn body_summary(b: &Value) -> String {
    let mut o = b.clone();
    if let Some(m) = o.as_object_mut() {
        m.remove("access_code_id");
    }
    o.to_string()
}

fn clip(s: &str, n: usize) -> String {
    if s.len() <= n {
        s.to_string()
    } else {
        let mut end = n;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}…", &s[..end])
    }
}
