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

use chrono::{DateTime, Utc};

use crate::invariants::{Invariant, Violation};

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
    pub fn story(&self) -> String {
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

/// Small models and views for the unit tests of the model and the invariants.
#[cfg(test)]
pub mod fixtures {
    use super::*;
    use crate::invariants::{Invariant, Violation};

    pub fn t(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + s, 0).unwrap()
    }

    pub fn code(id: &str, pin: &str) -> Code {
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

    pub fn listed(id: &str, pin: &str, status: &str, slot: u16) -> ApiCode {
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

    pub fn slots(s: &[(u16, &str)]) -> BTreeMap<u16, SlotView> {
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

    pub fn kinds(v: &[Violation]) -> Vec<Invariant> {
        let mut k: Vec<Invariant> = v.iter().map(|v| v.invariant).collect();
        k.sort();
        k.dedup();
        k
    }

    pub fn model() -> Model {
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
}

#[cfg(test)]
mod tests {
    use super::fixtures::*;
    use super::*;

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
}
