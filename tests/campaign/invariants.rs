//! The invariants, and the check of one lock against them: what the API lists and what
//! the simulated lock holds, at one moment, against what the model says should be there.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Utc};

use crate::model::{ApiCode, Code, Expect, LockView, Model, TRANSITIONAL};

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

impl Model {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::fixtures::*;
    use crate::model::{CodeState, Tampered};

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
}
