//! Simulated networks as they are described in TOML: the stick, its locks, their quirks and
//! the faults to inject.
//!
//! ```toml
//! [[network]]
//! name = "demo"
//! home_id = 0xC0FFEE01
//!
//! [[network.lock]]
//! node_id = 5
//! name = "Front door"
//! user_code_version = 2
//! slots = 30
//! initial_codes = [{ slot = 1, code = "1234" }]
//! ```

use std::collections::BTreeSet;

use serde::Deserialize;

/// A file of simulated networks (`fixtures/sim/*.toml`, or the `[sim]` table of a config).
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SimConfig {
    #[serde(default)]
    pub network: Vec<NetworkModel>,
}

/// One controller stick and the nodes it knows.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct NetworkModel {
    pub name: String,
    #[serde(default = "default_home_id")]
    pub home_id: u32,
    /// The stick's own node id.
    #[serde(default = "default_controller_id")]
    pub controller_node_id: u8,
    /// "Z-Wave 7.19" etc.
    #[serde(default = "default_library")]
    pub library: String,
    /// Whether the stick supports SerialApiSetup (TX status reports, 16-bit ids).
    #[serde(default = "yes")]
    pub serial_api_setup: bool,
    /// Append a TX status report to SendData callbacks once the host enables them.
    #[serde(default = "yes")]
    pub tx_reports: bool,
    /// Radio time of one SendData to a listening node; FLiRS nodes add their beam.
    #[serde(default = "default_radio_ms")]
    pub radio_ms: u64,
    /// Seed of every random choice (faults); the same seed gives the same bytes.
    #[serde(default)]
    pub seed: u64,
    #[serde(default)]
    pub faults: Faults,
    #[serde(default, rename = "lock")]
    pub locks: Vec<LockModel>,
}

fn default_home_id() -> u32 {
    0xC0FF_EE01
}
fn default_controller_id() -> u8 {
    1
}
fn default_library() -> String {
    "Z-Wave 7.19".into()
}
fn default_radio_ms() -> u64 {
    20
}
fn yes() -> bool {
    true
}

/// How a node listens.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum Listening {
    /// Frequently listening, woken by a 1000 ms beam (most locks).
    #[default]
    Flirs1000,
    /// Frequently listening, 250 ms beam.
    Flirs250,
    /// Mains powered, always listening.
    Always,
}

/// How a lock reports keypad events.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum NotificationKind {
    /// Notification CC v8, Access Control events.
    #[default]
    V8,
    /// Legacy Alarm v1 type/level reports (older Kwikset, Yale, Schlage).
    Alarm,
    /// The lock says nothing.
    None,
}

/// How an Access Control event names the user.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum UserIdForm {
    /// A nested User Code Report (`63 03 id status code`).
    #[default]
    Report,
    /// A bare one-byte user id.
    Byte,
}

/// How a simulated lock was included.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum LockSecurity {
    #[default]
    None,
    S2AccessControl,
    /// Security 0 only (older locks).
    S0,
}

impl LockModel {
    /// The lock's network key, when it is secure.
    pub fn secure_key(&self) -> Option<(crate::security::SecurityClass, [u8; 16])> {
        let class = match self.security {
            LockSecurity::None => return None,
            LockSecurity::S2AccessControl => crate::security::SecurityClass::S2AccessControl,
            LockSecurity::S0 => crate::security::SecurityClass::S0Legacy,
        };
        let key = crate::util::hex::decode(self.network_key.as_deref()?).ok()?;
        Some((class, key.try_into().ok()?))
    }
}

/// A code on the lock when the simulation starts.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct InitialCode {
    pub slot: u16,
    pub code: String,
    /// "enabled" (default) or "disabled".
    #[serde(default)]
    pub disabled: bool,
}

/// Field behaviour of some lock firmware.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Quirks {
    /// Reports hide codes as `**********`.
    #[serde(default)]
    pub masked_reports: bool,
    /// Empty slots read back with status 0xFE instead of 0x00.
    #[serde(default)]
    pub empty_status_fe: bool,
    /// A code already on another slot is refused (Access Control event 15).
    #[serde(default)]
    pub reject_duplicates: bool,
    /// The lock holds at most this many codes, whatever its slot count says.
    #[serde(default)]
    pub capacity: Option<u16>,
    /// Sets are acknowledged but not stored (the slot reads back as available).
    #[serde(default)]
    pub set_reads_back_available: bool,
    /// Extra delay before each report the lock sends.
    #[serde(default)]
    pub slow_response_ms: u64,
    /// Zero-pad code fields in reports to 10 bytes.
    #[serde(default)]
    pub zero_padded_reports: bool,
    /// Send notifications inside Supervision Get (and expect a Supervision Report back).
    #[serde(default)]
    pub supervised_notifications: bool,
    /// After the notification of a code added or deleted at the keypad, also send the User
    /// Code Report of the slot (as many locks do).
    #[serde(default)]
    pub report_after_notification: bool,
}

/// A simulated keypad lock.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LockModel {
    pub node_id: u8,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub listening: Listening,
    /// User Code CC version: 1 or 2.
    #[serde(default = "default_uc_version")]
    pub user_code_version: u8,
    /// Number of user ids (slots).
    #[serde(default = "default_slots")]
    pub slots: u16,
    #[serde(default = "default_min_len")]
    pub min_code_length: u8,
    #[serde(default = "default_max_len")]
    pub max_code_length: u8,
    #[serde(default = "yes")]
    pub supervision: bool,
    #[serde(default)]
    pub notification: NotificationKind,
    #[serde(default)]
    pub user_id_form: UserIdForm,
    /// v2 only: User Code Checksum support.
    #[serde(default = "yes")]
    pub checksum: bool,
    /// v2 only: Extended Get returns several codes per report.
    #[serde(default = "yes")]
    pub bulk_reports: bool,
    #[serde(default = "yes")]
    pub door_lock: bool,
    #[serde(default = "yes")]
    pub battery: bool,
    #[serde(default)]
    pub schedule_entry_lock: bool,
    #[serde(default = "default_battery")]
    pub battery_level: u8,
    #[serde(default = "default_manufacturer")]
    pub manufacturer_id: u16,
    #[serde(default = "default_product_type")]
    pub product_type: u16,
    #[serde(default = "default_product_id")]
    pub product_id: u16,
    #[serde(default)]
    pub initial_codes: Vec<InitialCode>,
    /// Security the lock was included with: "none" (default), "s2_access_control" or "s0"; its
    /// secure command classes then work only inside S2.
    #[serde(default)]
    pub security: LockSecurity,
    /// The network key of that class, 32 hex digits (the controller must hold the same).
    #[serde(default)]
    pub network_key: Option<String>,
    /// In the network from the start (default). `false`: the lock waits beside the network
    /// until included (its inclusion button pressed while the stick is in add mode); a secure
    /// one then gets its keys through S2 bootstrapping.
    #[serde(default = "yes")]
    pub included: bool,
    #[serde(default)]
    pub quirks: Quirks,
}

fn default_uc_version() -> u8 {
    2
}
fn default_slots() -> u16 {
    30
}
fn default_min_len() -> u8 {
    4
}
fn default_max_len() -> u8 {
    8
}
fn default_battery() -> u8 {
    90
}
// Neutral ids by default: no real lock's, so no other controller's device database (and its
// compatibility flags for that lock) applies to a simulated one. 0xFFFF is "not defined".
fn default_manufacturer() -> u16 {
    0xFFFF
}
fn default_product_type() -> u16 {
    0x0001
}
fn default_product_id() -> u16 {
    0x0001
}

/// Faults to inject, each a probability from 0.0 to 1.0 unless said otherwise.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Faults {
    /// Bytes from the stick to the host that are lost.
    #[serde(default)]
    pub drop_byte: f64,
    /// Bytes from the stick to the host that arrive with a bit flipped.
    #[serde(default)]
    pub corrupt_byte: f64,
    /// Host frames answered with NAK (as if damaged) instead of ACK.
    #[serde(default)]
    pub nak_host_frame: f64,
    /// Host frames answered with CAN (a collision) instead of ACK.
    #[serde(default)]
    pub can_host_frame: f64,
    /// SendData callbacks that never come.
    #[serde(default)]
    pub drop_callback: f64,
    /// SendData callbacks sent twice.
    #[serde(default)]
    pub duplicate_callback: f64,
    /// Extra delay of every SendData callback, in ms.
    #[serde(default)]
    pub callback_delay_ms: u64,
    /// SendData refused with RES "not accepted" (the stick is busy).
    #[serde(default)]
    pub busy_send_data: f64,
    /// The stick is jammed from now on, as 700/800-series sticks can be after a lost callback:
    /// it answers every SendData with RES "not accepted" (`13 00`) until what
    /// `jam_cleared_by` names clears it. Read when the faults are set (at start, or by
    /// `set_faults`, where `false` clears a jam); clearing the jam leaves the setting alone.
    #[serde(default)]
    pub jammed: bool,
    /// A lost callback (`drop_callback`) jams the stick with this probability.
    #[serde(default)]
    pub jam_on_lost_callback: f64,
    /// What clears a jam.
    #[serde(default)]
    pub jam_cleared_by: JamClearedBy,
}

/// What clears a jammed simulated stick.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum JamClearedBy {
    /// A soft reset (FUNC_ID_SERIAL_API_SOFT_RESET, 0x08).
    #[default]
    SoftReset,
    /// Not a soft reset: only the port closing (the host reopens it; the device starts afresh).
    Reopen,
    /// Nothing the host can do; only setting the faults again with `jammed = false`.
    Nothing,
}

/// Why a simulation description is unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ModelError {
    #[error("{0}")]
    Toml(String),
    #[error("network '{network}': {reason}")]
    Invalid { network: String, reason: String },
}

impl SimConfig {
    pub fn from_toml(text: &str) -> Result<Self, ModelError> {
        let c: SimConfig = toml::from_str(text).map_err(|e| ModelError::Toml(e.to_string()))?;
        c.validate()?;
        Ok(c)
    }

    pub fn validate(&self) -> Result<(), ModelError> {
        let mut names = BTreeSet::new();
        for n in &self.network {
            let bad = |reason: String| ModelError::Invalid {
                network: n.name.clone(),
                reason,
            };
            if !names.insert(n.name.clone()) {
                return Err(bad("defined twice".into()));
            }
            let mut ids = BTreeSet::from([n.controller_node_id]);
            for l in &n.locks {
                if l.node_id == 0 || l.node_id > 232 {
                    return Err(bad(format!("lock node id {} is not 1-232", l.node_id)));
                }
                if !ids.insert(l.node_id) {
                    return Err(bad(format!("node id {} used twice", l.node_id)));
                }
                if !(1..=2).contains(&l.user_code_version) {
                    return Err(bad(format!(
                        "node {}: user_code_version must be 1 or 2",
                        l.node_id
                    )));
                }
                if l.slots == 0 || (l.user_code_version == 1 && l.slots > 255) {
                    return Err(bad(format!(
                        "node {}: slots must be 1-255 for v1, 1-65535 for v2",
                        l.node_id
                    )));
                }
                if l.min_code_length < 4
                    || l.max_code_length > 10
                    || l.min_code_length > l.max_code_length
                {
                    return Err(bad(format!(
                        "node {}: code lengths must be within 4-10",
                        l.node_id
                    )));
                }
                if l.security != LockSecurity::None && l.included && l.secure_key().is_none() {
                    return Err(bad(format!(
                        "node {}: a secure lock that is included needs network_key, 32 hex digits",
                        l.node_id
                    )));
                }
                for c in &l.initial_codes {
                    if c.slot == 0 || c.slot > l.slots {
                        return Err(bad(format!(
                            "node {}: initial code in slot {} out of range",
                            l.node_id, c.slot
                        )));
                    }
                    if c.code.is_empty() || c.code.len() > 10 {
                        return Err(bad(format!(
                            "node {}: initial code of slot {} must be 1-10 characters",
                            l.node_id, c.slot
                        )));
                    }
                }
            }
            for (name, p) in [
                ("drop_byte", n.faults.drop_byte),
                ("corrupt_byte", n.faults.corrupt_byte),
                ("nak_host_frame", n.faults.nak_host_frame),
                ("can_host_frame", n.faults.can_host_frame),
                ("drop_callback", n.faults.drop_callback),
                ("duplicate_callback", n.faults.duplicate_callback),
                ("busy_send_data", n.faults.busy_send_data),
                ("jam_on_lost_callback", n.faults.jam_on_lost_callback),
            ] {
                if !(0.0..=1.0).contains(&p) {
                    return Err(bad(format!("fault {name} must be between 0 and 1")));
                }
            }
        }
        Ok(())
    }

    pub fn network(&self, name: &str) -> Option<&NetworkModel> {
        self.network.iter().find(|n| n.name == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_minimal_network_with_defaults() {
        let c = SimConfig::from_toml(
            r#"
            [[network]]
            name = "demo"
            [[network.lock]]
            node_id = 5
            initial_codes = [{ slot = 1, code = "1234" }]
            "#,
        )
        .unwrap();
        let n = c.network("demo").unwrap();
        assert_eq!(n.home_id, 0xC0FF_EE01);
        let l = &n.locks[0];
        assert_eq!(
            (l.user_code_version, l.slots, l.listening),
            (2, 30, Listening::Flirs1000)
        );
        assert!(l.supervision && l.checksum && l.bulk_reports);
    }

    #[test]
    fn faults_read_from_json_and_toml_with_defaults() {
        let f: Faults =
            serde_json::from_str(r#"{"jammed": true, "jam_cleared_by": "reopen"}"#).unwrap();
        assert!(f.jammed);
        assert_eq!(f.jam_cleared_by, JamClearedBy::Reopen);
        assert_eq!(f.drop_callback, 0.0);
        let f: Faults = serde_json::from_str("{}").unwrap();
        assert_eq!(f, Faults::default());
        assert_eq!(f.jam_cleared_by, JamClearedBy::SoftReset);
        let c = SimConfig::from_toml(
            "[[network]]\nname='a'\nfaults={jammed=true, jam_cleared_by='nothing'}",
        )
        .unwrap();
        assert_eq!(c.network[0].faults.jam_cleared_by, JamClearedBy::Nothing);
        let e = SimConfig::from_toml("[[network]]\nname='a'\nfaults={jam_on_lost_callback=1.5}")
            .unwrap_err()
            .to_string();
        assert!(e.contains("jam_on_lost_callback"), "{e}");
    }

    #[test]
    fn rejects_bad_models() {
        for (text, needle) in [
            ("[[network]]\nname='a'\n[[network.lock]]\nnode_id=0", "1-232"),
            ("[[network]]\nname='a'\n[[network.lock]]\nnode_id=1", "used twice"),
            ("[[network]]\nname='a'\n[[network.lock]]\nnode_id=5\nuser_code_version=3", "1 or 2"),
            ("[[network]]\nname='a'\n[[network.lock]]\nnode_id=5\nuser_code_version=1\nslots=300", "slots"),
            ("[[network]]\nname='a'\n[[network.lock]]\nnode_id=5\nmin_code_length=2", "4-10"),
            ("[[network]]\nname='a'\nfaults={drop_byte=2.0}", "between 0 and 1"),
            ("[[network]]\nname='a'\n[[network]]\nname='a'", "twice"),
            ("[[network]]\nname='a'\ncolour='red'", "unknown field"),
        ] {
            let e = SimConfig::from_toml(text).unwrap_err().to_string();
            assert!(e.contains(needle), "{text}: {e}");
        }
    }
}
