//! Progress of long work (a full slot read, an inclusion) while the CLI waits for it: the
//! daemon's `action_attempt.progress` events on `/events/stream` drawn as a bar on a terminal
//! (indicatif), and as an occasional line on stderr otherwise.
//!
//! The event the CLI reads (SSE event name `action_attempt.progress`), data:
//! `{"event_type": "action_attempt.progress", "action_attempt_id": ID, "action_type": …,
//! "device_id": …, "done": N, "total": M or null, "unit": "slots", "created_at": …}`.
//! Events of other attempts, other types or without `done` are ignored, so a daemon that
//! sends none leaves a spinner, and the wait works as before.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::Value;

use super::client::Client;

/// The SSE event name of progress reports.
pub const PROGRESS_EVENT: &str = "action_attempt.progress";

/// How far an attempt got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Progress {
    pub done: u64,
    pub total: Option<u64>,
    pub unit: String,
}

/// The progress `data` reports for `attempt_id`, if it is such an event.
pub fn parse_progress(event: &str, data: &str, attempt_id: &str) -> Option<Progress> {
    if event != PROGRESS_EVENT {
        return None;
    }
    let v: Value = serde_json::from_str(data).ok()?;
    if v["action_attempt_id"].as_str()? != attempt_id {
        return None;
    }
    let done = v["done"].as_u64()?;
    let total = v["total"].as_u64().filter(|t| *t > 0);
    Some(Progress {
        done: total.map_or(done, |t| done.min(t)),
        total,
        unit: v["unit"].as_str().unwrap_or("steps").to_string(),
    })
}

/// The line printed off a terminal.
pub fn progress_line(what: &str, p: &Progress) -> String {
    match p.total {
        Some(t) => format!("{what}: {}/{t} {}", p.done, p.unit),
        None => format!("{what}: {} {}", p.done, p.unit),
    }
}

/// Lines off a terminal: at most one per this interval, besides the last one.
const LINE_EVERY: Duration = Duration::from_secs(5);

/// Shows one attempt's progress until dropped.
pub struct Watch {
    bar: ProgressBar,
    stop: Arc<AtomicBool>,
}

impl Watch {
    /// Follow `attempt_id`'s progress events (a thread of its own, on a connection of its
    /// own); `what` names the work ("reading slots").
    pub fn start(client: &Client, attempt_id: &str, what: &str) -> Watch {
        let terminal = std::io::stderr().is_terminal();
        let bar = if terminal {
            ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr())
        } else {
            ProgressBar::hidden()
        };
        // A spinner until the daemon says how much there is to do, then a bar.
        bar.set_style(
            ProgressStyle::with_template("{spinner} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        bar.set_message(what.to_string());
        bar.enable_steady_tick(Duration::from_millis(200));
        let stop = Arc::new(AtomicBool::new(false));
        let (client, id, what, b, s) = (
            client.clone(),
            attempt_id.to_string(),
            what.to_string(),
            bar.clone(),
            stop.clone(),
        );
        let _ = std::thread::Builder::new()
            .name("progress".into())
            .spawn(move || {
                let mut last_line: Option<Instant> = None;
                let _ = client.follow("/events/stream", |event, data| {
                    if s.load(Ordering::Relaxed) {
                        return false;
                    }
                    let Some(p) = parse_progress(event, data, &id) else {
                        return true;
                    };
                    if let Some(t) = p.total {
                        if b.length() != Some(t) {
                            b.set_style(
                                ProgressStyle::with_template(
                                    "{spinner} {msg} {wide_bar} {pos}/{len} {prefix}",
                                )
                                .unwrap_or_else(|_| ProgressStyle::default_bar()),
                            );
                            b.set_prefix(p.unit.clone());
                        }
                        b.set_length(t);
                    }
                    b.set_position(p.done);
                    let finished = p.total == Some(p.done);
                    if !terminal
                        && (finished || last_line.is_none_or(|t| t.elapsed() >= LINE_EVERY))
                    {
                        eprintln!("{}", progress_line(&what, &p));
                        last_line = Some(Instant::now());
                    }
                    true
                });
            });
        Watch { bar, stop }
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        self.bar.finish_and_clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_of_this_attempt_only() {
        let data = r#"{"event_type":"action_attempt.progress","action_attempt_id":"a1","done":12,"total":30,"unit":"slots"}"#;
        assert_eq!(
            parse_progress(PROGRESS_EVENT, data, "a1"),
            Some(Progress {
                done: 12,
                total: Some(30),
                unit: "slots".into()
            })
        );
        assert_eq!(parse_progress(PROGRESS_EVENT, data, "a2"), None);
        assert_eq!(parse_progress("access_code.created", data, "a1"), None);
        assert_eq!(parse_progress(PROGRESS_EVENT, "{not json", "a1"), None);
        let no_done = r#"{"action_attempt_id":"a1","total":30}"#;
        assert_eq!(parse_progress(PROGRESS_EVENT, no_done, "a1"), None);
        // Past the total is shown at the total; an unknown total stays unknown.
        let over = r#"{"action_attempt_id":"a1","done":31,"total":30}"#;
        assert_eq!(parse_progress(PROGRESS_EVENT, over, "a1").unwrap().done, 30);
        let open = r#"{"action_attempt_id":"a1","done":3,"total":null}"#;
        let p = parse_progress(PROGRESS_EVENT, open, "a1").unwrap();
        assert_eq!(p.total, None);
        assert_eq!(progress_line("reading slots", &p), "reading slots: 3 steps");
        let p = parse_progress(PROGRESS_EVENT, data, "a1").unwrap();
        assert_eq!(
            progress_line("reading slots", &p),
            "reading slots: 12/30 slots"
        );
    }
}
