//! Choosing the stick: zwlock never takes one by surprise. The packaged configuration names
//! no port; until it does, the daemon waits (ready, with a status line saying what to set) and
//! takes the stick on the next reload that names one. `zwlock setup` finds the sticks under
//! /dev/serial/by-id/ (stable names that survive replugging), says which program holds one
//! open (Z-Wave JS, say: zwlock needs the stick to itself), and writes `serial.port`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::signal::unix::{signal, SignalKind};

use crate::config::Config;
use crate::service::Notifier;

/// Where udev puts stable names for USB serial devices.
pub const BY_ID: &str = "/dev/serial/by-id";

/// A serial device found under [`BY_ID`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Stick {
    /// The stable path (`/dev/serial/by-id/usb-…`): what goes into serial.port.
    pub path: PathBuf,
    /// What it points at now (`/dev/ttyACM0`).
    pub device: PathBuf,
    /// Processes that have it open: (pid, command name).
    pub held_by: Vec<(u32, String)>,
}

/// The sticks under `dir`, by name; none when the directory does not exist (no USB serial
/// device is plugged in).
pub fn find_sticks(dir: &Path) -> std::io::Result<Vec<Stick>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut sticks = Vec::new();
    for entry in entries {
        let path = entry?.path();
        let device = std::fs::canonicalize(&path).unwrap_or_else(|_| path.clone());
        let held_by = holders(&device);
        sticks.push(Stick {
            path,
            device,
            held_by,
        });
    }
    sticks.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(sticks)
}

/// Processes with `device` open, as far as /proc lets us see (all of them as root).
pub fn holders(device: &Path) -> Vec<(u32, String)> {
    let mut out = Vec::new();
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return out;
    };
    for p in procs.flatten() {
        let Some(pid) = p.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        if pid == std::process::id() {
            continue;
        }
        let Ok(fds) = std::fs::read_dir(p.path().join("fd")) else {
            continue;
        };
        if fds
            .flatten()
            .any(|fd| std::fs::read_link(fd.path()).is_ok_and(|t| t == device))
        {
            let comm = std::fs::read_to_string(p.path().join("comm")).unwrap_or_default();
            out.push((pid, comm.trim().to_string()));
        }
    }
    out
}

/// Why a configuration file could not be given a port.
#[derive(Debug, thiserror::Error)]
pub enum SetPortError {
    #[error("the result would not be a usable configuration: {0}")]
    Invalid(#[from] crate::config::ConfigError),
}

/// `text` with `serial.port = port`: an existing `port =` line of the [serial] table (or the
/// commented-out one the packaged file has) is replaced, else one is added to the table
/// (which is created when missing). Everything else, comments included, stays as it was; the
/// result is checked as a whole.
pub fn set_port(text: &str, port: &str, origin: &str) -> Result<String, SetPortError> {
    let value = toml::Value::String(port.to_string()).to_string();
    let line = format!("port = {value}");
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let is_table = |l: &str| l.trim_start().starts_with('[');
    let serial = lines.iter().position(|l| l.trim() == "[serial]");
    match serial {
        Some(start) => {
            let end = lines[start + 1..]
                .iter()
                .position(|l| is_table(l))
                .map_or(lines.len(), |i| start + 1 + i);
            let is_port = |l: &str, commented: bool| {
                let l = l.trim_start();
                let l = if commented {
                    l.trim_start_matches('#').trim_start()
                } else {
                    l
                };
                l.strip_prefix("port")
                    .is_some_and(|r| r.trim_start().starts_with('='))
            };
            let at = (start + 1..end)
                .find(|&i| is_port(&lines[i], false))
                .or_else(|| (start + 1..end).find(|&i| is_port(&lines[i], true)));
            match at {
                Some(i) => lines[i] = line,
                None => lines.insert(start + 1, line),
            }
        }
        None => {
            // A new table at the top: keys before the first table header belong to the root.
            let first_table = lines
                .iter()
                .position(|l| is_table(l))
                .unwrap_or(lines.len());
            lines.insert(first_table, String::new());
            lines.insert(first_table, line);
            lines.insert(first_table, "[serial]".into());
        }
    }
    let mut out = lines.join("\n");
    out.push('\n');
    Config::parse(&out, origin)?;
    Ok(out)
}

/// The status line and log message while no port is configured.
pub fn unconfigured_status(config_path: &Path) -> String {
    format!(
        "no stick configured: set serial.port in {} (zwlock setup finds the sticks), then reload",
        config_path.display()
    )
}

/// Hold the daemon until the configuration names a port: ready, with a status saying what to
/// set, feeding the watchdog; a SIGHUP reads the file again. `Some(config)` once it names one
/// (at once when it already does), `None` when stopped while waiting.
pub async fn until_a_stick_is_configured(
    config: Config,
    config_path: &Path,
    notifier: &Notifier,
) -> std::io::Result<Option<Config>> {
    if config.serial.port.is_some() {
        return Ok(Some(config));
    }
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut hup = signal(SignalKind::hangup())?;
    let status = unconfigured_status(config_path);
    tracing::warn!("{status}");
    notifier.ready(&status);
    let watchdog = notifier.watchdog_interval();
    let mut feed = tokio::time::interval(watchdog.unwrap_or(Duration::from_secs(3600)));
    loop {
        tokio::select! {
            _ = term.recv() => { tracing::info!("SIGTERM: stopping"); break; }
            _ = int.recv() => { tracing::info!("SIGINT: stopping"); break; }
            _ = feed.tick(), if watchdog.is_some() => notifier.watchdog(),
            _ = hup.recv() => {
                notifier.reloading();
                match Config::load(config_path) {
                    Ok(c) if c.serial.port.is_some() => {
                        tracing::info!(port = c.serial.port.as_deref().unwrap_or(""), "SIGHUP: a stick is configured; starting");
                        notifier.status("starting");
                        return Ok(Some(c));
                    }
                    Ok(_) => {
                        tracing::warn!("SIGHUP: {status}");
                        notifier.reloaded(&status);
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "SIGHUP: the configuration has errors; still waiting");
                        notifier.reloaded(&status);
                    }
                }
            }
        }
    }
    notifier.stopping(Duration::from_millis(500));
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PACKAGED: &str = include_str!("../config/zwlock.toml");

    #[test]
    fn the_packaged_config_names_no_port() {
        let c = Config::parse(PACKAGED, "zwlock.toml").unwrap();
        assert_eq!(c.serial.port, None);
    }

    #[test]
    fn set_port_replaces_the_commented_line_and_keeps_the_rest() {
        let p = "/dev/serial/by-id/usb-0658_0200-if00";
        let out = set_port(PACKAGED, p, "zwlock.toml").unwrap();
        let c = Config::parse(&out, "zwlock.toml").unwrap();
        assert_eq!(c.serial.port.as_deref(), Some(p));
        assert_eq!(out.lines().count(), PACKAGED.lines().count());
        let changed: Vec<_> = PACKAGED
            .lines()
            .zip(out.lines())
            .filter(|(a, b)| a != b)
            .collect();
        assert_eq!(changed.len(), 1, "{changed:?}");
        // Again: the line set now is the one replaced.
        let again = set_port(&out, "/dev/ttyACM1", "zwlock.toml").unwrap();
        let c = Config::parse(&again, "zwlock.toml").unwrap();
        assert_eq!(c.serial.port.as_deref(), Some("/dev/ttyACM1"));
    }

    #[test]
    fn set_port_adds_the_table_or_the_key() {
        let out = set_port("[log]\nlevel = \"info\"\n", "/dev/ttyACM0", "c").unwrap();
        let c = Config::parse(&out, "c").unwrap();
        assert_eq!(c.serial.port.as_deref(), Some("/dev/ttyACM0"));
        assert_eq!(c.log.level, "info");
        let out = set_port("[serial]\nsoft_reset = false\n[log]\n", "/dev/ttyACM0", "c").unwrap();
        let c = Config::parse(&out, "c").unwrap();
        assert_eq!(c.serial.port.as_deref(), Some("/dev/ttyACM0"));
        assert!(!c.serial.soft_reset);
        // Quotes and backslashes are escaped; a bad result is refused.
        let out = set_port("", "/dev/odd\"name", "c").unwrap();
        let c = Config::parse(&out, "c").unwrap();
        assert_eq!(c.serial.port.as_deref(), Some("/dev/odd\"name"));
        assert!(set_port("", "ftp://nope", "c").is_err());
    }

    #[test]
    fn sticks_are_found_by_id_with_what_they_point_at() {
        let dir = tempfile::tempdir().unwrap();
        assert!(find_sticks(&dir.path().join("none")).unwrap().is_empty());
        let dev = dir.path().join("ttyACM7");
        std::fs::write(&dev, "").unwrap();
        let by_id = dir.path().join("by-id");
        std::fs::create_dir(&by_id).unwrap();
        std::os::unix::fs::symlink(&dev, by_id.join("usb-Zooz_800-if00")).unwrap();
        let held = std::fs::File::open(&dev).unwrap();
        let sticks = find_sticks(&by_id).unwrap();
        assert_eq!(sticks.len(), 1);
        assert_eq!(sticks[0].path, by_id.join("usb-Zooz_800-if00"));
        assert_eq!(sticks[0].device, std::fs::canonicalize(&dev).unwrap());
        // This process holds it, but a process does not count itself.
        assert!(sticks[0].held_by.is_empty());
        drop(held);
    }
}
