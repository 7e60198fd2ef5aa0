//! `/metrics`: Prometheus text format.

use std::fmt::Write;

use crate::codes::Engine;

/// The metrics page.
pub async fn render(engine: &Engine) -> ([(axum::http::HeaderName, &'static str); 1], String) {
    let mut out = String::new();
    let driver = engine.driver();
    let stats = match &driver {
        Some(d) => d.stats().await.unwrap_or_default(),
        None => Default::default(),
    };
    let mut metric = |name: &str, help: &str, kind: &str, lines: Vec<(String, u64)>| {
        let _ = writeln!(
            out,
            "# HELP zwlock_{name} {help}\n# TYPE zwlock_{name} {kind}"
        );
        for (labels, v) in lines {
            let _ = writeln!(out, "zwlock_{name}{labels} {v}");
        }
    };
    let link = stats.link.clone().unwrap_or_default();
    metric(
        "frames_sent_total",
        "Data frames written to the stick.",
        "counter",
        vec![(String::new(), link.frames_sent)],
    );
    metric(
        "frames_received_total",
        "Data frames read from the stick.",
        "counter",
        vec![(String::new(), link.frames_received)],
    );
    metric(
        "retransmissions_total",
        "Frames sent again after NAK, CAN or no ACK.",
        "counter",
        vec![(String::new(), link.retransmissions)],
    );
    metric(
        "link_refusals_total",
        "NAK and CAN received from the stick.",
        "counter",
        vec![
            ("{kind=\"nak\"}".into(), link.naks_received),
            ("{kind=\"can\"}".into(), link.cans_received),
        ],
    );
    metric(
        "naks_sent_total",
        "Damaged frames from the stick answered with NAK.",
        "counter",
        vec![(String::new(), link.naks_sent)],
    );
    metric(
        "callbacks_failed_total",
        "SendData callbacks that reported a failure, by status.",
        "counter",
        stats
            .callbacks_failed
            .iter()
            .map(|(k, v)| (format!("{{status=\"{k}\"}}"), *v))
            .collect(),
    );
    metric(
        "transactions_total",
        "Transactions run by the driver.",
        "counter",
        vec![(String::new(), stats.transactions)],
    );
    metric(
        "reconnects_total",
        "Times the stick was lost and reconnected.",
        "counter",
        vec![(String::new(), stats.reconnects)],
    );
    metric(
        "stick_recovery_steps_total",
        "Steps of the stick recovery ladder taken: SendDataAbort for a lost callback, soft reset of a jammed stick, port closed and reopened.",
        "counter",
        vec![
            ("{step=\"abort\"}".into(), stats.stick_aborts),
            ("{step=\"soft_reset\"}".into(), stats.stick_soft_resets),
            ("{step=\"reopen\"}".into(), stats.stick_reopens),
        ],
    );
    metric(
        "stick_connected",
        "1 when the stick is connected.",
        "gauge",
        vec![(String::new(), u64::from(engine.hub_connected()))],
    );
    let depths = match &driver {
        Some(d) => d.queue_depths().await.unwrap_or_default(),
        None => Vec::new(),
    };
    metric(
        "queue_depth",
        "Jobs waiting per lock.",
        "gauge",
        depths
            .iter()
            .map(|(n, d)| (format!("{{node=\"{n}\"}}"), *d as u64))
            .collect(),
    );
    let devices = engine.devices().unwrap_or_default();
    metric(
        "lock_last_contact_seconds",
        "Unix time of the last frame from each lock.",
        "gauge",
        devices
            .iter()
            .filter_map(|d| {
                d.last_contact_at.map(|t| {
                    (
                        format!("{{node=\"{}\"}}", d.node_id),
                        t.timestamp().max(0) as u64,
                    )
                })
            })
            .collect(),
    );
    metric(
        "lock_online",
        "1 when the lock answers.",
        "gauge",
        devices
            .iter()
            .map(|d| (format!("{{node=\"{}\"}}", d.node_id), u64::from(d.online)))
            .collect(),
    );
    let by_status = engine.codes_by_status().unwrap_or_default();
    metric(
        "access_codes",
        "Managed access codes by status.",
        "gauge",
        by_status
            .iter()
            .map(|(s, n)| (format!("{{status=\"{s}\"}}"), *n))
            .collect(),
    );
    metric(
        "reconcile_errors_total",
        "Failed attempts to set or remove a code.",
        "counter",
        vec![(String::new(), engine.reconcile_failures())],
    );
    metric(
        "process_resident_memory_bytes",
        "Resident memory of the daemon.",
        "gauge",
        vec![(String::new(), rss_bytes())],
    );
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4",
        )],
        out,
    )
}

/// Resident set size, from /proc.
pub fn rss_bytes() -> u64 {
    let pages = std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| {
            s.split_whitespace()
                .nth(1)
                .and_then(|v| v.parse::<u64>().ok())
        })
        .unwrap_or(0);
    pages * 4096
}
