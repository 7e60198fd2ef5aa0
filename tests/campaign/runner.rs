//! Running a plan: each step against the daemon's API or the simulator's control socket, the
//! model kept in step with what was acknowledged, fault periods switched on and off on time,
//! the daemon killed and started again. Then the quiet phase: every fault stops, and the
//! invariants must hold within a bound.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use crate::harness::Harness;
use crate::invariants::{Invariant, Violation};
use crate::logscan::LogIndex;
use crate::model::{ApiCode, Code, CodeState, Expect, LockView, Model, Span, Unmanaged};
use crate::plan::{self, LinkFaults, Step, Window};
use crate::steps::Fail;

/// Slots per simulated lock.
pub const SLOTS: u16 = 20;
/// The top slots are the keypad's: unmanaged codes go there, and the campaign keeps few enough
/// managed codes that the engine (lowest free slot first) never needs them.
pub const KEYPAD_SLOTS: u16 = 4;
/// Codes per lock that may hold a slot at once (declared, or deleted and not yet gone).
pub(crate) const CAP: usize = 10;
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

pub(crate) const DONE: usize = 0;
pub(crate) const OK: usize = 1;
pub(crate) const REFUSED: usize = 2;
pub(crate) const LOST: usize = 3;
pub(crate) const SKIPPED: usize = 4;

/// What a run found.
pub struct Outcome {
    pub violations: Vec<Violation>,
    pub figures: String,
    pub trace: Vec<String>,
    pub log_tail: String,
    pub kept: Option<std::path::PathBuf>,
}

pub(crate) struct Run {
    pub(crate) h: Harness,
    pub(crate) m: Model,
    pub(crate) s: Settings,
    t0: Instant,
    pub(crate) stats: Stats,
    pub(crate) trace: Vec<String>,
    pub(crate) violations: Vec<Violation>,
    /// The latest API view of each lock.
    pub(crate) views: Vec<Vec<ApiCode>>,
    pub(crate) link: Option<(Instant, LinkFaults)>,
    pub(crate) jam: Option<Instant>,
    pub(crate) jam_field: Option<(String, Value)>,
    pub(crate) unplugged: Option<Instant>,
    pub(crate) out_of_range: Vec<Option<Instant>>,
    pub(crate) restart_at: Option<Instant>,
    pub(crate) last_fault_end: Instant,
    pub(crate) last_boundary: DateTime<Utc>,
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
    pub(crate) fn elapsed(&self) -> f64 {
        self.t0.elapsed().as_secs_f64()
    }

    pub(crate) fn note(&mut self, line: String) {
        let l = format!("{:7.2}s {line}", self.elapsed());
        self.trace.push(l);
    }

    fn count(&mut self, kind: &'static str, what: usize) {
        let c = self.stats.ops.entry(kind).or_default();
        c[what] += 1;
    }

    /// The circumstances of a keypad action, for reports.
    pub(crate) fn context(&self, lock: usize) -> String {
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

    pub(crate) fn daemon_up(&self) -> bool {
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

    pub(crate) fn refresh(&mut self, lock: usize) -> bool {
        match self.h.list(lock) {
            Ok(api) => {
                self.views[lock] = api;
                true
            }
            Err(_) => false,
        }
    }

    pub(crate) fn sim(&mut self, action: &str, lock: Option<usize>) {
        let node = lock.map(|i| self.h.nodes[i]);
        if let Err(e) = self.h.control(node, action, |_| {}) {
            panic!("simulator control failed: {e}");
        }
    }

    pub(crate) fn apply_faults(&mut self) {
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
    pub(crate) fn ensure_api(&mut self) {
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

    pub(crate) fn window(&mut self, w: &Window) -> Span {
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
    pub(crate) fn targets(&self, pred: impl Fn(&Code) -> bool) -> Vec<usize> {
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

    pub(crate) fn holders(&self, lock: usize) -> usize {
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
        let index = LogIndex::new(&log);
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
