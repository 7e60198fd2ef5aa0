//! The model-based fault campaign (issue 13, part 4): the product's one promise — the locks
//! hold exactly the codes that were declared — checked through everything that goes wrong at
//! once.
//!
//! A seeded plan of steps runs against the real daemon and `zwlock sim serve` in its own
//! process (so lock state outlives every daemon): creates, PIN/name/window updates and deletes
//! over the API, time-bound windows that start and end during the run, codes programmed,
//! changed and deleted at the keypad, SIGKILLs of the daemon at random points (then a start
//! on the same store), link faults (lost and damaged bytes, NAK/CAN, lost and duplicated
//! callbacks, a busy or jammed stick), the stick unplugged and locks out of range. The model
//! records what was acknowledged. Then every fault stops, and within a bound:
//!
//! - every acknowledged declared code in its window is `set` and its PIN is on its lock;
//! - every acknowledged delete, and every ended window, is gone from the lock;
//! - no lock holds a code nobody declared, and unmanaged codes are untouched (keypad changes
//!   of managed codes are put back, or accepted where external modification is allowed);
//! - nothing stays `setting` or `removing`;
//! - every acknowledged write survived every restart, the store passes
//!   `PRAGMA integrity_check`, and no PIN appears in the daemon's log (run at debug level).
//!
//! The seed is printed at the start and on failure; the same seed gives the same steps and
//! the same fault schedule (the simulator's own random faults are seeded from it too):
//!
//! ```text
//! ZWLOCK_CAMPAIGN_SEED=n        reproduce a run (decimal or 0x hex; default: a new one)
//! ZWLOCK_CAMPAIGN_OPS=2000      steps (default 40; a shorter run is a prefix of a longer one)
//! ZWLOCK_CAMPAIGN_LOCKS=4       locks (default 2)
//! ZWLOCK_CAMPAIGN_CONVERGE=120  seconds allowed to converge after the last fault (default 120)
//! ZWLOCK_CAMPAIGN_LOG=debug     the daemon's log level (default debug)
//! ZWLOCK_CAMPAIGN_KEEP=1        keep the run's directory (store, logs)
//! ```

mod common;

#[path = "campaign/harness.rs"]
mod harness;
#[path = "campaign/invariants.rs"]
mod invariants;
#[path = "campaign/logscan.rs"]
mod logscan;
#[path = "campaign/model.rs"]
mod model;
#[path = "campaign/plan.rs"]
mod plan;
#[path = "campaign/runner.rs"]
mod runner;
#[path = "campaign/steps.rs"]
mod steps;

use std::time::Duration;

use runner::Settings;

fn env_num(name: &str) -> Option<u64> {
    let v = std::env::var(name).ok()?;
    let v = v.trim();
    let parsed = match v.strip_prefix("0x") {
        Some(h) => u64::from_str_radix(h, 16),
        None => v.parse(),
    };
    Some(parsed.unwrap_or_else(|_| panic!("{name}={v}: not a number")))
}

fn settings() -> Settings {
    let seed = env_num("ZWLOCK_CAMPAIGN_SEED").unwrap_or_else(|| {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        plan::mix(t.as_nanos() as u64 ^ u64::from(std::process::id())) % 1_000_000_000
    });
    let locks = env_num("ZWLOCK_CAMPAIGN_LOCKS").unwrap_or(2) as usize;
    assert!((1..=8).contains(&locks), "ZWLOCK_CAMPAIGN_LOCKS: 1-8");
    Settings {
        seed,
        ops: env_num("ZWLOCK_CAMPAIGN_OPS").unwrap_or(40) as usize,
        locks,
        converge: Duration::from_secs(env_num("ZWLOCK_CAMPAIGN_CONVERGE").unwrap_or(120)),
        log_level: std::env::var("ZWLOCK_CAMPAIGN_LOG").unwrap_or_else(|_| "debug".into()),
        keep: std::env::var_os("ZWLOCK_CAMPAIGN_KEEP").is_some(),
    }
}

/// Says the seed again if the run panics (a harness failure, not an invariant).
struct SeedNote(String);

impl Drop for SeedNote {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("campaign failed; reproduce with: {}", self.0);
        }
    }
}

#[test]
fn declared_codes_converge_through_faults_kills_and_keypad_changes() {
    let s = settings();
    eprintln!(
        "campaign: seed {} ({} steps, {} locks); reproduce with: {}",
        s.seed,
        s.ops,
        s.locks,
        s.repro()
    );
    let _note = SeedNote(s.repro());
    let out = runner::run(&s);
    eprintln!("{}", out.figures);
    if let Some(dir) = &out.kept {
        eprintln!("campaign: run kept in {}", dir.display());
    }
    if out.violations.is_empty() {
        return;
    }
    let n = out.trace.len();
    let trace = out.trace[n.saturating_sub(150)..].join("\n");
    let list: Vec<String> = out.violations.iter().map(|v| format!("  - {v}")).collect();
    panic!(
        "campaign seed {}: {} invariant violations:\n{}\n\n{}\nsteps (last 150):\n{trace}\n\ndaemon log (last 60 lines):\n{}\n\nreproduce with: {}",
        s.seed,
        out.violations.len(),
        list.join("\n"),
        out.figures,
        out.log_tail,
        s.repro()
    );
}

/// The harness cleans up after itself even when a run panics: every process it started is
/// gone (killed and reaped, by PID) and no socket is left.
#[test]
fn the_harness_reaps_its_processes_and_removes_its_sockets_on_panic() {
    let seen = std::sync::Mutex::new((Vec::new(), Vec::new()));
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let toml = runner::sim_toml(1, 1, &["01234567".to_string()]);
        let mut h = harness::Harness::start("campaign", &toml, vec![5], "warn");
        h.start_daemon().expect("daemon");
        {
            let mut s = seen.lock().unwrap();
            s.0 = h.pids.clone();
            s.1 = vec![h.socket.clone(), h.control.clone()];
            s.1.push(h.dir().unwrap().to_path_buf());
        }
        assert!(h.socket.exists() && h.control.exists());
        // The simulator answers on loopback only.
        assert!(std::net::TcpStream::connect(("127.0.0.1", h.port)).is_ok());
        panic!("a run fails here");
    }));
    assert!(result.is_err());
    let (pids, paths) = seen.into_inner().unwrap();
    assert_eq!(pids.len(), 2, "the simulator and a daemon were started");
    for pid in pids {
        assert!(
            !std::path::Path::new(&format!("/proc/{pid}")).exists(),
            "process {pid} is still there"
        );
    }
    for p in paths {
        assert!(!p.exists(), "{} was left behind", p.display());
    }
}
