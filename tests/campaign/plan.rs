//! The campaign's plan: a seeded sequence of steps (what a user, a person at the door and the
//! world do), drawn before the run from one generator so a seed always gives the same plan.
//!
//! Each step is drawn from the generator in turn and never looks at the total, so the plan of
//! `n` steps is a prefix of the plan of `n + 1` steps: shortening `ZWLOCK_CAMPAIGN_OPS` keeps
//! the start of a failing run. Targets are raw numbers; the runner maps them onto what exists
//! at that point of the run (`target % candidates`), so a plan never names a code that is gone.

use serde_json::{json, Value};

/// SplitMix64: tiny, fast, and good enough to pick test actions.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        mix(self.0)
    }

    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }

    pub fn chance(&mut self, p: f64) -> bool {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64 > 1.0 - p
    }
}

/// SplitMix64's finaliser: derives independent seeds (the simulator's, PINs) from one.
pub fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A time-bound window relative to the moment the step runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// Seconds from now to the start (negative: already started).
    pub start_s: i64,
    pub len_s: i64,
}

/// Link faults of the simulated stick, each a probability (see `zwlock::sim::Faults`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LinkFaults {
    pub fields: Vec<(&'static str, f64)>,
    pub callback_delay_ms: u64,
}

impl LinkFaults {
    pub fn to_json(&self) -> Value {
        let mut o = serde_json::Map::new();
        for (k, v) in &self.fields {
            o.insert((*k).to_string(), json!(v));
        }
        if self.callback_delay_ms > 0 {
            o.insert("callback_delay_ms".into(), json!(self.callback_delay_ms));
        }
        Value::Object(o)
    }
}

/// One thing that happens.
#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    /// POST /access_codes/create.
    Create {
        lock: u64,
        pin: u64,
        len: usize,
        window: Option<Window>,
        allow_ext: bool,
        name: Option<u64>,
    },
    /// PATCH /access_codes/update with a new PIN.
    UpdatePin { target: u64, pin: u64, len: usize },
    /// ... with a new name (or none).
    UpdateName { target: u64, name: Option<u64> },
    /// ... with a new window (None: ongoing).
    UpdateWindow { target: u64, window: Option<Window> },
    /// DELETE /access_codes/delete.
    Delete { target: u64 },
    /// A person programs an unmanaged code at the keypad, in a slot zwlock does not use.
    KeypadAdd { lock: u64, slot: u64, pin: u64 },
    /// ... deletes one of those.
    KeypadRemove { target: u64 },
    /// ... overwrites (or deletes) a managed code's slot.
    Tamper { target: u64, delete: bool, pin: u64 },
    /// ... types a PIN.
    Enter { lock: u64, target: u64 },
    /// SIGKILL the daemon `after_ms` from now (the run goes on meanwhile); start it again
    /// `down_ms` after that.
    Kill { after_ms: u64, down_ms: u64 },
    /// Link faults for a while.
    LinkFaults { faults: LinkFaults, ms: u64 },
    /// The stick jams (every SendData "not accepted") for a while, where the simulator can.
    Jam { ms: u64 },
    /// The stick is pulled out, and plugged back in.
    Unplug { ms: u64 },
    /// A lock goes out of radio range, and comes back.
    OutOfRange { lock: u64, ms: u64 },
}

impl Op {
    pub fn kind(&self) -> &'static str {
        match self {
            Op::Create { .. } => "create",
            Op::UpdatePin { .. } => "update_pin",
            Op::UpdateName { .. } => "update_name",
            Op::UpdateWindow { .. } => "update_window",
            Op::Delete { .. } => "delete",
            Op::KeypadAdd { .. } => "keypad_add",
            Op::KeypadRemove { .. } => "keypad_remove",
            Op::Tamper { .. } => "tamper",
            Op::Enter { .. } => "enter",
            Op::Kill { .. } => "kill",
            Op::LinkFaults { .. } => "link_faults",
            Op::Jam { .. } => "jam",
            Op::Unplug { .. } => "unplug",
            Op::OutOfRange { .. } => "out_of_range",
        }
    }
}

/// A step: wait, then act.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    pub gap_ms: u64,
    pub op: Op,
}

/// Relative weights of the operations (out of 100).
const WEIGHTS: [(&str, u64); 14] = [
    ("create", 20),
    ("update_pin", 8),
    ("update_name", 3),
    ("update_window", 6),
    ("delete", 12),
    ("keypad_add", 4),
    ("keypad_remove", 2),
    ("tamper", 7),
    ("enter", 3),
    ("kill", 7),
    ("link_faults", 13),
    ("jam", 4),
    ("unplug", 5),
    ("out_of_range", 6),
];

fn window(rng: &mut Rng) -> Window {
    Window {
        start_s: rng.range(0, 17) as i64 - 3,
        len_s: rng.range(5, 22) as i64,
    }
}

fn link_faults(rng: &mut Rng) -> LinkFaults {
    let mut f = LinkFaults::default();
    for (name, max) in [
        ("drop_byte", 0.01),
        ("corrupt_byte", 0.01),
        ("nak_host_frame", 0.15),
        ("can_host_frame", 0.15),
        ("drop_callback", 0.25),
        ("duplicate_callback", 0.25),
        ("busy_send_data", 0.4),
    ] {
        if rng.chance(0.5) {
            let p = max * (rng.range(1, 100) as f64 / 100.0);
            f.fields.push((name, (p * 10_000.0).round() / 10_000.0));
        }
    }
    if rng.chance(0.3) {
        f.callback_delay_ms = rng.range(50, 400);
    }
    if f.fields.is_empty() && f.callback_delay_ms == 0 {
        f.fields.push(("drop_callback", 0.1));
    }
    f
}

fn op(rng: &mut Rng) -> Op {
    let total: u64 = WEIGHTS.iter().map(|(_, w)| w).sum();
    let mut pick = rng.below(total);
    let kind = WEIGHTS
        .iter()
        .find(|(_, w)| {
            if pick < *w {
                true
            } else {
                pick -= w;
                false
            }
        })
        .map(|(k, _)| *k)
        .expect("weights cover the range");
    let len = |rng: &mut Rng| 7 + rng.below(2) as usize;
    match kind {
        "create" => Op::Create {
            lock: rng.next_u64(),
            pin: rng.next_u64(),
            len: len(rng),
            window: rng.chance(0.35).then(|| window(rng)),
            allow_ext: rng.chance(0.25),
            name: rng.chance(0.7).then(|| rng.below(1000)),
        },
        "update_pin" => Op::UpdatePin {
            target: rng.next_u64(),
            pin: rng.next_u64(),
            len: len(rng),
        },
        "update_name" => Op::UpdateName {
            target: rng.next_u64(),
            name: rng.chance(0.8).then(|| rng.below(1000)),
        },
        "update_window" => Op::UpdateWindow {
            target: rng.next_u64(),
            window: rng.chance(0.75).then(|| window(rng)),
        },
        "delete" => Op::Delete {
            target: rng.next_u64(),
        },
        "keypad_add" => Op::KeypadAdd {
            lock: rng.next_u64(),
            slot: rng.next_u64(),
            pin: rng.next_u64(),
        },
        "keypad_remove" => Op::KeypadRemove {
            target: rng.next_u64(),
        },
        "tamper" => Op::Tamper {
            target: rng.next_u64(),
            delete: rng.chance(0.4),
            pin: rng.next_u64(),
        },
        "enter" => Op::Enter {
            lock: rng.next_u64(),
            target: rng.next_u64(),
        },
        "kill" => Op::Kill {
            after_ms: rng.below(600),
            down_ms: rng.range(200, 2500),
        },
        "link_faults" => Op::LinkFaults {
            faults: link_faults(rng),
            ms: rng.range(1000, 8000),
        },
        "jam" => Op::Jam {
            ms: rng.range(1000, 6000),
        },
        "unplug" => Op::Unplug {
            ms: rng.range(500, 4000),
        },
        "out_of_range" => Op::OutOfRange {
            lock: rng.next_u64(),
            ms: rng.range(1000, 10_000),
        },
        other => unreachable!("no operation {other}"),
    }
}

/// The first `n` steps of the plan of `seed`.
pub fn plan(seed: u64, n: usize) -> Vec<Step> {
    let mut rng = Rng::new(mix(seed ^ 0x005E_ED0F_C4A1_9A16));
    (0..n)
        .map(|_| Step {
            gap_ms: rng.range(100, 1500),
            op: op(&mut rng),
        })
        .collect()
}

/// A PIN of `len` digits whose first digit is in `first` (each kind of code has its own
/// first digits, so a PIN found on a lock tells whose it is), unlike any in `used`.
pub fn pin(
    raw: u64,
    len: usize,
    first: std::ops::RangeInclusive<u8>,
    used: &std::collections::BTreeSet<String>,
) -> String {
    let mut rng = Rng::new(raw);
    loop {
        let span = u64::from(first.end() - first.start()) + 1;
        let mut p = String::with_capacity(len);
        p.push(char::from(b'0' + first.start() + rng.below(span) as u8));
        while p.len() < len {
            p.push(char::from(b'0' + rng.below(10) as u8));
        }
        if !used.contains(&p) {
            return p;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seed_gives_one_plan_and_shorter_plans_are_prefixes() {
        let long = plan(42, 300);
        assert_eq!(long, plan(42, 300));
        assert_eq!(plan(42, 40), long[..40].to_vec());
        assert_ne!(plan(43, 40), long[..40].to_vec());
    }

    #[test]
    fn every_kind_of_step_is_drawn() {
        let kinds: std::collections::BTreeSet<&str> =
            plan(7, 2000).iter().map(|s| s.op.kind()).collect();
        assert_eq!(kinds.len(), WEIGHTS.len(), "{kinds:?}");
    }

    #[test]
    fn pins_have_their_kind_s_first_digit_and_are_new() {
        let mut used = std::collections::BTreeSet::new();
        for raw in 0..500 {
            let p = pin(raw % 7, 7, 6..=7, &used);
            assert_eq!(p.len(), 7);
            assert!(matches!(p.as_bytes()[0], b'6' | b'7'), "{p}");
            assert!(used.insert(p), "a PIN was given twice");
        }
    }
}
