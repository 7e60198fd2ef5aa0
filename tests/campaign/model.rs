//! What the campaign knows it asked for, and the invariants checked against what the daemon
//! and the locks show.
//!
//! The model only counts what was acknowledged: a create or update answered 200 is declared,
//! a delete answered 200 is deleted. A request whose answer was lost (the daemon was killed
//! while it ran) is *uncertain* until the daemon is started again; then the store decides
//! whether it happened, and either outcome is fine, as long as it converges. A refused request
//! (any other status) must have changed nothing.
//!
//! Everything here is pure: the runner gathers [`LockView`]s and calls [`Model::check`].

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use chrono::{DateTime, Utc};

/// Statuses that mean "the engine is busy with this code".
pub const TRANSITIONAL: [&str; 2] = ["setting", "removing"];

/// A time-bound window, as sent to the API.
pub type Span = (DateTime<Utc>, DateTime<Utc>);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodeState {
    Active,
    /// An acknowledged delete.
    Deleted,
    /// Deleted at the keypad while external modification was allowed: zwlock must let it go.
    Released,
}

/// A change whose acknowledgement was lost.
#[derive(Debug, Clone, PartialEq)]
pub enum Uncertain {
    Update(Change),
    Delete,
}

/// Fields an update sets (None: left alone).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Change {
    pub pin: Option<String>,
    pub name: Option<Option<String>>,
    pub window: Option<Option<Span>>,
}

/// A managed code the campaign declared.
#[derive(Debug, Clone)]
pub struct Code {
    pub id: String,
    pub lock: usize,
    /// The PIN the lock must hold: the declared one, or a keypad change zwlock must accept.
    pub pin: String,
    /// The PIN the API last acknowledged.
    pub acked_pin: String,
    /// PINs it had before; none may stay on the lock.
    pub old_pins: Vec<String>,
    pub name: Option<String>,
    pub window: Option<Span>,
    pub allow_ext: bool,
    pub state: CodeState,
    /// False when adopted from a create whose answer was lost.
    pub acked: bool,
    /// The PIN was changed at the keypad with external modification allowed.
    pub adopted: bool,
    pub uncertain: Option<Uncertain>,
    /// Deleted, and the API no longer lists it.
    pub gone: bool,
    /// What happened to it at the keypad, with the circumstances, for reports.
    pub history: Vec<String>,
}

/// A create whose answer was lost.
#[derive(Debug, Clone)]
pub struct PendingCreate {
    pub lock: usize,
    pub pin: String,
    pub name: Option<String>,
    pub window: Option<Span>,
    pub allow_ext: bool,
}

/// An unmanaged code: on the lock before zwlock, or programmed at the keypad.
#[derive(Debug, Clone)]
pub struct Unmanaged {
    pub lock: usize,
    pub slot: u16,
    pub pin: String,
    /// Deleted again at the keypad.
    pub removed: bool,
    pub context: String,
}

/// A keypad change of a managed code that zwlock must undo.
#[derive(Debug, Clone)]
pub struct Tampered {
    pub lock: usize,
    pub slot: u16,
    /// The PIN typed in (None: the slot was deleted).
    pub pin: Option<String>,
    pub code_id: String,
    pub context: String,
}

/// One managed code as the API lists it.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiCode {
    pub id: String,
    pub pin: Option<String>,
    pub status: String,
    pub slot: Option<u16>,
    pub name: Option<String>,
    pub window: Option<Span>,
    pub errors: Vec<String>,
}

/// One occupied slot of a simulated lock.
#[derive(Debug, Clone, PartialEq)]
pub struct SlotView {
    pub pin: String,
    pub enabled: bool,
}

/// A lock as the API and the simulator show it at one moment.
#[derive(Debug, Clone, Default)]
pub struct LockView {
    pub api: Vec<ApiCode>,
    pub slots: BTreeMap<u16, SlotView>,
}

/// The invariants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Invariant {
    /// Every acknowledged declared code (in its window) is `set` ...
    DeclaredNotSet,
    /// ... and its PIN is on its lock, in its slot.
    DeclaredNotOnLock,
    /// Every acknowledged delete is gone from the lock.
    DeleteNotDone,
    /// Every ended window is gone from the lock.
    EndedNotRemoved,
    /// A code is not on the lock before its window.
    OnBeforeWindow,
    /// No lock holds a code nobody declared.
    UndeclaredOnLock,
    /// The store holds no code nobody declared.
    UndeclaredInStore,
    /// Unmanaged codes are untouched.
    UnmanagedTouched,
    /// A keypad change of a code that allows it stands, and zwlock knows it.
    ExternalChangeNotAccepted,
    /// Nothing stays `setting` or `removing` once faults stop.
    Transitional,
    /// An acknowledged write is in the store after every restart.
    WriteLost,
    /// The daemon answers, starts and stops.
    DaemonHealth,
    /// No PIN in the daemon's logs.
    PinInLog,
    /// The database passes `PRAGMA integrity_check`.
    Integrity,
}

/// One violated invariant, with where.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Violation {
    pub invariant: Invariant,
    pub lock: Option<usize>,
    pub slot: Option<u16>,
    pub code: Option<String>,
    pub detail: String,
}

impl Violation {
    pub fn new(invariant: Invariant, detail: impl Into<String>) -> Self {
        Violation {
            invariant,
            lock: None,
            slot: None,
            code: None,
            detail: detail.into(),
        }
    }

    pub fn lock(mut self, lock: usize) -> Self {
        self.lock = Some(lock);
        self
    }

    pub fn slot(mut self, slot: Option<u16>) -> Self {
        self.slot = slot;
        self
    }

    pub fn code(mut self, id: &str) -> Self {
        self.code = Some(id.to_string());
        self
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}:", self.invariant)?;
        if let Some(l) = self.lock {
            write!(f, " lock {l}")?;
        }
        if let Some(s) = self.slot {
            write!(f, " slot {s}")?;
        }
        if let Some(c) = &self.code {
            write!(f, " code {c}")?;
        }
        write!(f, ": {}", self.detail)
    }
}

/// Where a code should be at a moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    On,
    NotStarted,
    Ended,
    Deleted,
    Released,
}

impl Code {
    pub fn expect(&self, now: DateTime<Utc>) -> Expect {
        match (self.state, self.window) {
            (CodeState::Deleted, _) => Expect::Deleted,
            (CodeState::Released, _) => Expect::Released,
            (CodeState::Active, Some((_, e))) if now >= e => Expect::Ended,
            (CodeState::Active, Some((s, _))) if now < s => Expect::NotStarted,
            (CodeState::Active, _) => Expect::On,
        }
    }

    /// The last things that happened to it, for a report.
    fn story(&self) -> String {
        let mut s = format!("PIN {}", self.pin);
        if !self.old_pins.is_empty() {
            s.push_str(&format!(" (before: {})", self.old_pins.join(", ")));
        }
        if let Some((a, b)) = self.window {
            s.push_str(&format!(
                ", window {}..{}",
                a.format("%T%.3f"),
                b.format("%T%.3f")
            ));
        }
        if self.allow_ext {
            s.push_str(", external modification allowed");
        }
        if !self.acked {
            s.push_str(", its create was never answered");
        }
        let n = self.history.len();
        if n > 0 {
            s.push_str("; ");
            s.push_str(&self.history[n.saturating_sub(3)..].join("; "));
        }
        s
    }
}

/// Everything the campaign declared and did.
#[derive(Debug, Default)]
pub struct Model {
    pub codes: Vec<Code>,
    pub pending: Vec<PendingCreate>,
    pub unmanaged: Vec<Unmanaged>,
    pub tampered: Vec<Tampered>,
    /// Every PIN used so far (PINs are never reused, so any PIN names its story).
    pub used: BTreeSet<String>,
}

impl Model {
    /// Every PIN the test ever handed out (for the log check).
    pub fn all_pins(&self) -> impl Iterator<Item = &String> {
        self.used.iter()
    }

    /// Settle what the store says about `lock` after a restart: lost answers are resolved
    /// (either outcome stands), creates whose answer was lost are adopted when the store has
    /// them, and every acknowledged write must be there.
    pub fn resolve(
        &mut self,
        lock: usize,
        api: &[ApiCode],
        now: DateTime<Utc>,
        settled: bool,
    ) -> Vec<Violation> {
        let mut out = Vec::new();
        let by_id: BTreeMap<&str, &ApiCode> = api.iter().map(|a| (a.id.as_str(), a)).collect();
        for c in self.codes.iter_mut().filter(|c| c.lock == lock) {
            let listed = by_id.get(c.id.as_str()).copied();
            match c.uncertain.take() {
                Some(u) if !settled => c.uncertain = Some(u),
                Some(Uncertain::Delete) if listed.is_none_or(|a| a.status == "removing") => {
                    c.state = CodeState::Deleted;
                    c.history
                        .push("its delete was never answered; the store has it".into());
                }
                Some(Uncertain::Update(ch)) if listed.is_some_and(|a| matches_change(a, &ch)) => {
                    apply(c, &ch);
                    c.history
                        .push("its update was never answered; the store has it".into());
                }
                // Not in the store: it never happened.
                Some(_) | None => {}
            }
            if c.uncertain.is_some() {
                continue;
            }
            match (c.state, listed) {
                (CodeState::Active, None) if c.acked && c.expect(now) != Expect::Ended => {
                    out.push(
                        Violation::new(
                            Invariant::WriteLost,
                            format!("acknowledged code missing from the store ({})", c.story()),
                        )
                        .lock(lock)
                        .code(&c.id),
                    );
                }
                (CodeState::Active, Some(a)) if c.acked => {
                    let pin_ok = a.pin.as_deref() == Some(c.acked_pin.as_str())
                        || a.pin.as_deref() == Some(c.pin.as_str());
                    if !pin_ok {
                        out.push(
                            Violation::new(
                                Invariant::WriteLost,
                                format!(
                                    "the store has PIN {:?}, acknowledged {} ({})",
                                    a.pin,
                                    c.acked_pin,
                                    c.story()
                                ),
                            )
                            .lock(lock)
                            .code(&c.id),
                        );
                    }
                    if a.name != c.name || a.window != c.window {
                        out.push(
                            Violation::new(
                                Invariant::WriteLost,
                                format!(
                                    "the store has name {:?} window {:?}, acknowledged {:?} {:?}",
                                    a.name, a.window, c.name, c.window
                                ),
                            )
                            .lock(lock)
                            .code(&c.id),
                        );
                    }
                }
                (CodeState::Deleted, Some(a)) if a.status != "removing" => {
                    out.push(
                        Violation::new(
                            Invariant::WriteLost,
                            format!(
                                "acknowledged delete lost: listed as {} ({})",
                                a.status,
                                c.story()
                            ),
                        )
                        .lock(lock)
                        .slot(a.slot)
                        .code(&c.id),
                    );
                }
                (CodeState::Deleted, None) => c.gone = true,
                _ => {}
            }
        }
        // Codes the store has and the model does not: a create whose answer was lost, or
        // nobody's.
        for a in api {
            if self.codes.iter().any(|c| c.id == a.id) {
                continue;
            }
            let found = self
                .pending
                .iter()
                .position(|p| p.lock == lock && a.pin.as_deref() == Some(p.pin.as_str()));
            match found {
                Some(i) => {
                    let p = self.pending.remove(i);
                    self.codes.push(Code {
                        id: a.id.clone(),
                        lock,
                        pin: p.pin.clone(),
                        acked_pin: p.pin,
                        old_pins: Vec::new(),
                        name: p.name,
                        window: p.window,
                        allow_ext: p.allow_ext,
                        state: CodeState::Active,
                        acked: false,
                        adopted: false,
                        uncertain: None,
                        gone: false,
                        history: vec!["adopted: its create was never answered".into()],
                    });
                }
                None if settled || self.pending.iter().all(|p| p.lock != lock) => out.push(
                    Violation::new(
                        Invariant::UndeclaredInStore,
                        format!(
                            "the store has a code nobody declared (PIN {:?}, status {})",
                            a.pin, a.status
                        ),
                    )
                    .lock(lock)
                    .slot(a.slot)
                    .code(&a.id),
                ),
                None => {}
            }
        }
        if settled {
            // Creates the store does not have never happened.
            self.pending.retain(|p| p.lock != lock);
        }
        out
    }

    /// The invariants of one lock at `now`.
    pub fn check(&self, lock: usize, view: &LockView, now: DateTime<Utc>) -> Vec<Violation> {
        let mut out = Vec::new();
        let api: BTreeMap<&str, &ApiCode> = view.api.iter().map(|a| (a.id.as_str(), a)).collect();
        let codes: Vec<&Code> = self.codes.iter().filter(|c| c.lock == lock).collect();
        let v = |inv: Invariant, detail: String| Violation::new(inv, detail).lock(lock);
        for a in &view.api {
            if TRANSITIONAL.contains(&a.status.as_str()) {
                let story = codes
                    .iter()
                    .find(|c| c.id == a.id)
                    .map_or_else(|| "not in the model".to_string(), |c| c.story());
                out.push(
                    v(
                        Invariant::Transitional,
                        format!("still {} (errors {:?}; {story})", a.status, a.errors),
                    )
                    .slot(a.slot)
                    .code(&a.id),
                );
            }
            if !codes.iter().any(|c| c.id == a.id) {
                out.push(
                    v(
                        Invariant::UndeclaredInStore,
                        format!("the store has a code nobody declared (PIN {:?})", a.pin),
                    )
                    .slot(a.slot)
                    .code(&a.id),
                );
            }
        }
        // Every code where it should be.
        for c in &codes {
            let listed = api.get(c.id.as_str()).copied();
            match (c.expect(now), listed) {
                (Expect::On, None) => out.push(
                    v(
                        Invariant::DeclaredNotSet,
                        format!("not listed by the API ({})", c.story()),
                    )
                    .code(&c.id),
                ),
                (Expect::On, Some(a)) => {
                    if a.status != "set" {
                        out.push(
                            v(
                                Invariant::DeclaredNotSet,
                                format!(
                                    "status {} (errors {:?}; {})",
                                    a.status,
                                    a.errors,
                                    c.story()
                                ),
                            )
                            .slot(a.slot)
                            .code(&c.id),
                        );
                    }
                    if a.pin.as_deref() != Some(c.pin.as_str()) {
                        let inv = if c.adopted {
                            Invariant::ExternalChangeNotAccepted
                        } else {
                            Invariant::DeclaredNotSet
                        };
                        out.push(
                            v(inv, format!("the API says PIN {:?} ({})", a.pin, c.story()))
                                .slot(a.slot)
                                .code(&c.id),
                        );
                    }
                    let on = a.slot.and_then(|s| view.slots.get(&s));
                    if on.is_none_or(|s| s.pin != c.pin || !s.enabled) {
                        let elsewhere: Vec<u16> = view
                            .slots
                            .iter()
                            .filter(|(_, s)| s.pin == c.pin)
                            .map(|(n, _)| *n)
                            .collect();
                        out.push(
                            v(
                                Invariant::DeclaredNotOnLock,
                                format!(
                                    "the slot holds {:?}; the PIN is in slots {elsewhere:?} ({})",
                                    on,
                                    c.story()
                                ),
                            )
                            .slot(a.slot)
                            .code(&c.id),
                        );
                    }
                }
                (Expect::NotStarted, Some(a)) if a.status == "set" => out.push(
                    v(
                        Invariant::OnBeforeWindow,
                        format!("status set before its window ({})", c.story()),
                    )
                    .slot(a.slot)
                    .code(&c.id),
                ),
                (e @ (Expect::Deleted | Expect::Ended | Expect::Released), Some(a))
                    if a.status == "set" =>
                {
                    out.push(
                        v(
                            match e {
                                Expect::Deleted => Invariant::DeleteNotDone,
                                Expect::Ended => Invariant::EndedNotRemoved,
                                _ => Invariant::ExternalChangeNotAccepted,
                            },
                            format!("still listed as set ({:?}; {})", e, c.story()),
                        )
                        .slot(a.slot)
                        .code(&c.id),
                    )
                }
                _ => {}
            }
        }
        // Every occupied slot is somebody's.
        for (slot, s) in &view.slots {
            if let Some(v) = self.whose(lock, *slot, &s.pin, &codes, &api, now) {
                out.push(v.lock(lock).slot(Some(*slot)));
            }
        }
        // Unmanaged codes untouched.
        for u in self
            .unmanaged
            .iter()
            .filter(|u| u.lock == lock && !u.removed)
        {
            let on = view.slots.get(&u.slot);
            if on.is_none_or(|s| s.pin != u.pin) {
                out.push(
                    v(
                        Invariant::UnmanagedTouched,
                        format!("unmanaged PIN {} ({}) now reads {:?}", u.pin, u.context, on),
                    )
                    .slot(Some(u.slot)),
                );
            }
        }
        out
    }

    /// Whether a PIN found in a slot belongs there; if not, which invariant it breaks.
    fn whose(
        &self,
        lock: usize,
        slot: u16,
        pin: &str,
        codes: &[&Code],
        api: &BTreeMap<&str, &ApiCode>,
        now: DateTime<Utc>,
    ) -> Option<Violation> {
        if self
            .unmanaged
            .iter()
            .any(|u| u.lock == lock && !u.removed && u.slot == slot && u.pin == pin)
        {
            return None;
        }
        if let Some(c) = codes.iter().find(|c| c.pin == pin) {
            let api_slot = api.get(c.id.as_str()).and_then(|a| a.slot);
            let (inv, what) = match c.expect(now) {
                Expect::On if api_slot == Some(slot) => return None,
                Expect::On => (
                    Invariant::UndeclaredOnLock,
                    format!("PIN of code in another slot (API: {api_slot:?})"),
                ),
                Expect::Deleted => (Invariant::DeleteNotDone, "PIN of a deleted code".into()),
                Expect::Ended => (
                    Invariant::EndedNotRemoved,
                    "PIN of a code whose window ended".into(),
                ),
                Expect::NotStarted => (
                    Invariant::OnBeforeWindow,
                    "PIN of a code whose window has not started".into(),
                ),
                Expect::Released => (
                    Invariant::ExternalChangeNotAccepted,
                    "PIN of a code deleted at the keypad (external changes allowed) is back".into(),
                ),
            };
            return Some(Violation::new(inv, format!("{what} ({})", c.story())).code(&c.id));
        }
        let what = if let Some(c) = codes.iter().find(|c| c.old_pins.iter().any(|p| p == pin)) {
            return Some(
                Violation::new(
                    Invariant::UndeclaredOnLock,
                    format!("an old PIN of a code, replaced since ({})", c.story()),
                )
                .code(&c.id),
            );
        } else if let Some(t) = self
            .tampered
            .iter()
            .find(|t| t.lock == lock && t.pin.as_deref() == Some(pin))
        {
            return Some(
                Violation::new(
                    Invariant::UndeclaredOnLock,
                    format!(
                        "keypad change of a managed code not put back (slot {}, {})",
                        t.slot, t.context
                    ),
                )
                .code(&t.code_id),
            );
        } else if let Some(u) = self
            .unmanaged
            .iter()
            .find(|u| u.lock == lock && u.pin == pin)
        {
            if u.removed {
                format!("unmanaged PIN {pin} deleted at the keypad is back")
            } else {
                format!("unmanaged PIN {pin} moved from slot {}", u.slot)
            }
        } else if self.pending.iter().any(|p| p.pin == pin) {
            format!("PIN {pin} of a create never answered and not in the store")
        } else {
            format!("PIN {pin} nobody declared")
        };
        Some(Violation::new(Invariant::UndeclaredOnLock, what))
    }
}

fn matches_change(a: &ApiCode, ch: &Change) -> bool {
    ch.pin.as_ref().is_none_or(|p| a.pin.as_ref() == Some(p))
        && ch.name.as_ref().is_none_or(|n| &a.name == n)
        && ch.window.as_ref().is_none_or(|w| &a.window == w)
}

/// Apply an acknowledged change to a code.
pub fn apply(c: &mut Code, ch: &Change) {
    if let Some(p) = &ch.pin {
        if *p != c.pin {
            c.old_pins.push(std::mem::replace(&mut c.pin, p.clone()));
        }
        c.acked_pin = p.clone();
        c.adopted = false;
    }
    if let Some(n) = &ch.name {
        c.name = n.clone();
    }
    if let Some(w) = &ch.window {
        c.window = *w;
    }
}

/// The numbers a log contains, to look PINs up in one pass however long the log is: every
/// maximal run of digits, and every digit string spelled as ASCII hex (`3132…`, plain or
/// spaced, either case), with the line it is on.
pub struct LogIndex {
    digits: BTreeMap<String, usize>,
    hex: Vec<(String, usize)>,
    lines: Vec<String>,
}

impl LogIndex {
    pub fn new(log: &str) -> Self {
        let mut digits = BTreeMap::new();
        let mut hex = Vec::new();
        let mut lines = Vec::new();
        for (n, line) in log.lines().enumerate() {
            for run in line.split(|c: char| !c.is_ascii_digit()) {
                if run.len() >= 4 {
                    digits.entry(run.to_string()).or_insert(n);
                }
            }
            let squeezed: Vec<u8> = line
                .bytes()
                .filter(|b| *b != b' ')
                .map(|b| b.to_ascii_lowercase())
                .collect();
            let mut i = 0;
            while i + 1 < squeezed.len() {
                let mut j = i;
                let mut decoded = String::new();
                while j + 1 < squeezed.len()
                    && squeezed[j] == b'3'
                    && squeezed[j + 1].is_ascii_digit()
                {
                    decoded.push(char::from(squeezed[j + 1]));
                    j += 2;
                }
                if decoded.len() >= 4 {
                    hex.push((decoded, n));
                    i = j;
                } else {
                    i += 1;
                }
            }
            lines.push(line.to_string());
        }
        LogIndex { digits, hex, lines }
    }

    /// The first line that shows `pin`, if any.
    pub fn find(&self, pin: &str) -> Option<&str> {
        let n = self.digits.get(pin).copied().or_else(|| {
            self.hex
                .iter()
                .find(|(d, _)| d.contains(pin))
                .map(|(_, n)| *n)
        })?;
        Some(&self.lines[n])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + s, 0).unwrap()
    }

    fn code(id: &str, pin: &str) -> Code {
        Code {
            id: id.into(),
            lock: 0,
            pin: pin.into(),
            acked_pin: pin.into(),
            old_pins: Vec::new(),
            name: None,
            window: None,
            allow_ext: false,
            state: CodeState::Active,
            acked: true,
            adopted: false,
            uncertain: None,
            gone: false,
            history: Vec::new(),
        }
    }

    fn listed(id: &str, pin: &str, status: &str, slot: u16) -> ApiCode {
        ApiCode {
            id: id.into(),
            pin: Some(pin.into()),
            status: status.into(),
            slot: Some(slot),
            name: None,
            window: None,
            errors: Vec::new(),
        }
    }

    fn slots(s: &[(u16, &str)]) -> BTreeMap<u16, SlotView> {
        s.iter()
            .map(|(n, p)| {
                (
                    *n,
                    SlotView {
                        pin: p.to_string(),
                        enabled: true,
                    },
                )
            })
            .collect()
    }

    fn kinds(v: &[Violation]) -> Vec<Invariant> {
        let mut k: Vec<Invariant> = v.iter().map(|v| v.invariant).collect();
        k.sort();
        k.dedup();
        k
    }

    fn model() -> Model {
        Model {
            codes: vec![code("a", "1111111"), code("b", "2222222")],
            unmanaged: vec![Unmanaged {
                lock: 0,
                slot: 1,
                pin: "01234567".into(),
                removed: false,
                context: "initial".into(),
            }],
            ..Default::default()
        }
    }

    #[test]
    fn a_converged_lock_passes() {
        let m = model();
        let view = LockView {
            api: vec![
                listed("a", "1111111", "set", 2),
                listed("b", "2222222", "set", 3),
            ],
            slots: slots(&[(1, "01234567"), (2, "1111111"), (3, "2222222")]),
        };
        assert_eq!(m.check(0, &view, t(0)), vec![]);
    }

    #[test]
    fn each_broken_promise_is_named() {
        let mut m = model();
        m.codes[1].state = CodeState::Deleted;
        m.codes.push(Code {
            window: Some((t(-20), t(-10))),
            ..code("c", "3333333")
        });
        m.codes.push(Code {
            window: Some((t(10), t(20))),
            ..code("d", "4444444")
        });
        let view = LockView {
            api: vec![
                listed("a", "1111111", "setting", 2),
                listed("b", "2222222", "removing", 3),
                listed("x", "5555555", "set", 6),
            ],
            slots: slots(&[
                (1, "09999999"),
                (3, "2222222"),
                (4, "3333333"),
                (5, "4444444"),
                (6, "5555555"),
            ]),
        };
        let v = m.check(0, &view, t(0));
        assert_eq!(
            kinds(&v),
            vec![
                Invariant::DeclaredNotSet,
                Invariant::DeclaredNotOnLock,
                Invariant::DeleteNotDone,
                Invariant::EndedNotRemoved,
                Invariant::OnBeforeWindow,
                Invariant::UndeclaredOnLock,
                Invariant::UndeclaredInStore,
                Invariant::UnmanagedTouched,
                Invariant::Transitional,
            ],
            "{v:#?}"
        );
        let undeclared = v
            .iter()
            .filter(|v| v.invariant == Invariant::UndeclaredOnLock)
            .count();
        assert_eq!(undeclared, 2, "slot 1's stranger and slot 6's: {v:#?}");
    }

    #[test]
    fn keypad_changes_must_be_undone_or_accepted() {
        let mut m = model();
        m.tampered.push(Tampered {
            lock: 0,
            slot: 2,
            pin: Some("88888888".into()),
            code_id: "a".into(),
            context: "daemon down".into(),
        });
        // Code b allows external changes: its keypad PIN stands, and the API must know it.
        m.codes[1].allow_ext = true;
        m.codes[1].old_pins.push("2222222".into());
        m.codes[1].pin = "99999999".into();
        m.codes[1].adopted = true;
        let view = LockView {
            api: vec![
                listed("a", "1111111", "set", 2),
                listed("b", "2222222", "set", 3),
            ],
            slots: slots(&[(1, "01234567"), (2, "88888888"), (3, "99999999")]),
        };
        let v = m.check(0, &view, t(0));
        assert_eq!(
            kinds(&v),
            vec![
                Invariant::DeclaredNotOnLock,
                Invariant::UndeclaredOnLock,
                Invariant::ExternalChangeNotAccepted,
            ],
            "{v:#?}"
        );
        assert!(v.iter().any(|v| v.detail.contains("not put back")));
    }

    #[test]
    fn restarts_resolve_lost_answers_and_find_lost_writes() {
        let mut m = model();
        m.codes[0].uncertain = Some(Uncertain::Delete);
        m.codes[1].uncertain = Some(Uncertain::Update(Change {
            pin: Some("2323232".into()),
            ..Default::default()
        }));
        m.codes.push(code("c", "3333333"));
        m.pending.push(PendingCreate {
            lock: 0,
            pin: "4444444".into(),
            name: None,
            window: None,
            allow_ext: false,
        });
        let api = vec![
            listed("a", "1111111", "removing", 2),
            listed("b", "2323232", "unset", 3),
            listed("n", "4444444", "unset", 0),
        ];
        let v = m.resolve(0, &api, t(0), true);
        // Code c was acknowledged and is gone from the store.
        assert_eq!(kinds(&v), vec![Invariant::WriteLost], "{v:#?}");
        assert_eq!(v[0].code.as_deref(), Some("c"));
        assert_eq!(m.codes[0].state, CodeState::Deleted);
        assert_eq!(m.codes[1].pin, "2323232");
        assert_eq!(m.codes[1].old_pins, vec!["2222222".to_string()]);
        assert!(m.codes.iter().any(|c| c.id == "n" && !c.acked));
        assert!(m.pending.is_empty());
        // A code nobody declared, once nothing is pending.
        let v = m.resolve(0, &[listed("z", "7777777", "set", 5)], t(0), true);
        assert!(kinds(&v).contains(&Invariant::UndeclaredInStore), "{v:#?}");
    }

    #[test]
    fn pins_are_found_in_logs_as_text_or_hex_but_not_inside_longer_numbers() {
        let pin = "4821937";
        let found = |log: &str| LogIndex::new(log).find(pin).map(str::to_string);
        assert_eq!(
            found("a\ncode=4821937 set\nb").as_deref(),
            Some("code=4821937 set")
        );
        assert!(found("frame 63 01 05 01 34 38 32 31 39 33 37").is_some());
        assert!(found("payload 6301050134383231393337ff").is_some());
        assert!(found("PAYLOAD 34383231393337").is_some());
        assert!(found("at 20:58:36.148219370Z").is_none());
        assert!(found("nothing here 1234 0x3132").is_none());
    }
}
