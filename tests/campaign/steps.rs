//! The steps of a plan, carried out: API calls for what a user does, control requests for
//! what a person at the door and the world do, and the model updated with what was
//! acknowledged.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use zwlock::cli::client::ClientError;

use crate::model::{self, Change, Code, CodeState, PendingCreate, Tampered, Uncertain, Unmanaged};
use crate::plan::{self, Op};
use crate::runner::{Run, CAP, KEYPAD_SLOTS, SLOTS};

impl Run {
    pub(crate) fn act(&mut self, op: &Op) -> Result<String, Fail> {
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
}

pub(crate) enum Fail {
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
