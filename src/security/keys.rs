//! The network keys: one per security class, generated from the OS RNG on first start, kept
//! in a file only the daemon's user can read, never logged.
//!
//! The file (and `zwlock keys import`) uses zwave-js's names, one key per line:
//! `S2_AccessControl = "0123…"`. An import also accepts `NAME: hex`, `NAME=hex`, the names
//! Home Assistant's Z-Wave JS add-on uses (`s2_access_control_key: hex`), and zwave-js's own
//! JSON: a `securityKeys` object, alone or inside a whole Z-Wave JS UI settings.json (under
//! `zwave`). Long Range keys (`securityKeysLongRange`, `lr_…`) are not used by zwlock and are
//! left out.
//!
//! The file takes the owner of its directory: `zwlock keys import` run as root writes a file
//! the service's user can read.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use rand_core::{OsRng, RngCore};
use zeroize::{Zeroize, ZeroizeOnDrop};

use super::primitives::Key;
use super::SecurityClass;

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("{path}: {reason}")]
    Io { path: PathBuf, reason: String },
    #[error("{path}: readable by group or others; the keys are secret (chmod 600)")]
    Permissions { path: PathBuf },
    #[error("network keys: {0}")]
    Parse(String),
    #[error(transparent)]
    Owner(#[from] crate::util::owner::WrongOwner),
}

/// A class by any of the names zwave-js and its front ends give it.
fn class_named(name: &str) -> Option<SecurityClass> {
    let n = name.to_ascii_lowercase();
    SecurityClass::ALL.into_iter().find(|c| {
        let alias = match c {
            SecurityClass::S0Legacy => "s0_legacy_key",
            SecurityClass::S2Unauthenticated => "s2_unauthenticated_key",
            SecurityClass::S2Authenticated => "s2_authenticated_key",
            SecurityClass::S2AccessControl => "s2_access_control_key",
        };
        c.zwave_js_name().eq_ignore_ascii_case(&n) || n == alias
    })
}

/// A Long Range key's name (Home Assistant's `lr_…_key`): skipped, not refused.
fn is_long_range(name: &str) -> bool {
    name.to_ascii_lowercase().starts_with("lr_")
}

/// The four network keys.
#[derive(Clone, PartialEq, Eq, Zeroize, ZeroizeOnDrop)]
pub struct NetworkKeys {
    keys: [Key; 4],
}

impl std::fmt::Debug for NetworkKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NetworkKeys(..)")
    }
}

fn index(class: SecurityClass) -> usize {
    SecurityClass::ALL
        .iter()
        .position(|c| *c == class)
        .expect("every class is listed")
}

impl NetworkKeys {
    /// Fresh random keys from the OS RNG.
    pub fn generate() -> NetworkKeys {
        let mut keys = [[0u8; 16]; 4];
        for k in keys.iter_mut() {
            OsRng.fill_bytes(k);
        }
        NetworkKeys { keys }
    }

    pub fn get(&self, class: SecurityClass) -> &Key {
        &self.keys[index(class)]
    }

    /// Parse keys as zwave-js lists them. Classes not given get fresh random keys; returns
    /// the keys and the classes that were given.
    pub fn import(text: &str) -> Result<(NetworkKeys, Vec<SecurityClass>), KeyError> {
        if let Ok(serde_json::Value::Object(root)) = serde_json::from_str(text) {
            return NetworkKeys::import_json(&root);
        }
        let mut keys = NetworkKeys::generate();
        let mut given = Vec::new();
        let uncommented: String = text
            .lines()
            .map(|l| l.split('#').next().unwrap_or(""))
            .collect::<Vec<_>>()
            .join("\n");
        let cleaned: String = uncommented
            .chars()
            .map(|c| {
                if matches!(c, '{' | '}' | ',' | '"' | '\'') {
                    '\n'
                } else {
                    c
                }
            })
            .collect();
        let mut tokens = cleaned
            .split(|c: char| c.is_whitespace() || c == ':' || c == '=')
            .filter(|t| !t.is_empty());
        while let Some(name) = tokens.next() {
            if is_long_range(name) {
                tokens.next();
                continue;
            }
            let Some(class) = class_named(name) else {
                // The token is not echoed: it may be a key typed in the wrong place.
                return Err(KeyError::Parse(
                    "expected key names S0_Legacy, S2_Unauthenticated, S2_Authenticated or S2_AccessControl, each followed by its key".into(),
                ));
            };
            let value = tokens.next().ok_or_else(|| {
                KeyError::Parse(format!("{} has no value", class.zwave_js_name()))
            })?;
            keys.take(class, value, &mut given)?;
        }
        if given.is_empty() {
            return Err(KeyError::Parse("no keys found".into()));
        }
        Ok((keys, given))
    }

    /// Set `class` from hex `value` (never echoed in errors), once.
    fn take(
        &mut self,
        class: SecurityClass,
        value: &str,
        given: &mut Vec<SecurityClass>,
    ) -> Result<(), KeyError> {
        let value = value.trim();
        let value = value
            .strip_prefix("0x")
            .or_else(|| value.strip_prefix("0X"))
            .unwrap_or(value);
        let mut bytes = crate::util::hex::decode(value)
            .ok()
            .filter(|b| b.len() == 16)
            .ok_or_else(|| {
                KeyError::Parse(format!(
                    "{} must be 16 bytes as 32 hex digits",
                    class.zwave_js_name()
                ))
            })?;
        if given.contains(&class) {
            bytes.zeroize();
            return Err(KeyError::Parse(format!(
                "{} is given twice",
                class.zwave_js_name()
            )));
        }
        self.keys[index(class)].copy_from_slice(&bytes);
        bytes.zeroize();
        given.push(class);
        Ok(())
    }

    /// zwave-js's JSON: `{"securityKeys": {...}}`, Z-Wave JS UI's settings.json
    /// (`{"zwave": {"securityKeys": {...}, ...}, ...}`), or the keys object itself. Empty
    /// values (a class the other software never had a key for) are left to random keys.
    fn import_json(
        root: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<(NetworkKeys, Vec<SecurityClass>), KeyError> {
        let found = root
            .get("zwave")
            .and_then(|z| z.get("securityKeys"))
            .or_else(|| root.get("securityKeys"))
            .and_then(|v| v.as_object())
            .or_else(|| {
                root.keys()
                    .any(|k| class_named(k).is_some())
                    .then_some(root)
            });
        let Some(object) = found else {
            return Err(KeyError::Parse(
                "this JSON has no securityKeys object (Z-Wave JS UI's settings.json keeps them under zwave.securityKeys)".into(),
            ));
        };
        let mut keys = NetworkKeys::generate();
        let mut given = Vec::new();
        for (name, value) in object {
            if is_long_range(name) {
                continue;
            }
            let Some(class) = class_named(name) else {
                return Err(KeyError::Parse(format!(
                    "securityKeys.{name} is not a key name (S0_Legacy, S2_Unauthenticated, S2_Authenticated, S2_AccessControl)"
                )));
            };
            match value {
                serde_json::Value::String(v) if v.trim().is_empty() => {}
                serde_json::Value::Null => {}
                serde_json::Value::String(v) => keys.take(class, v, &mut given)?,
                _ => {
                    return Err(KeyError::Parse(format!(
                        "securityKeys.{name} must be a string of 32 hex digits"
                    )))
                }
            }
        }
        if given.is_empty() {
            return Err(KeyError::Parse("securityKeys holds no keys".into()));
        }
        Ok((keys, given))
    }

    /// The file's text.
    fn to_text(&self) -> String {
        let mut s =
            String::from("# zwlock network keys: secret, readable by the daemon's user only.\n");
        for class in SecurityClass::ALL {
            s.push_str(&format!(
                "{} = \"{}\"\n",
                class.zwave_js_name(),
                crate::util::hex::encode(self.get(class))
            ));
        }
        s
    }

    /// Read the keys file; it must not be readable by group or others.
    pub fn load(path: &Path) -> Result<NetworkKeys, KeyError> {
        let io = |e: std::io::Error| KeyError::Io {
            path: path.to_path_buf(),
            reason: e.to_string(),
        };
        let meta = std::fs::metadata(path).map_err(io)?;
        if meta.permissions().mode() & 0o077 != 0 {
            return Err(KeyError::Permissions {
                path: path.to_path_buf(),
            });
        }
        let mut text = std::fs::read_to_string(path).map_err(io)?;
        let parsed = NetworkKeys::import(&text);
        text.zeroize();
        let (keys, given) = parsed?;
        if given.len() != SecurityClass::ALL.len() {
            return Err(KeyError::Parse(format!(
                "{}: all four keys are required",
                path.display()
            )));
        }
        Ok(keys)
    }

    /// Write the keys file (mode 0600, replaced atomically), owned like its directory: as
    /// root in the service's state directory, the file is the service user's. Anyone else
    /// writing where the file would not be the directory owner's is refused.
    pub fn save(&self, path: &Path) -> Result<(), KeyError> {
        let io = |e: std::io::Error| KeyError::Io {
            path: path.to_path_buf(),
            reason: e.to_string(),
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let tmp = path.with_extension("tmp");
        let _ = std::fs::remove_file(&tmp);
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(io)?;
        let mut text = self.to_text();
        let written = f.write_all(text.as_bytes()).and_then(|_| f.sync_all());
        text.zeroize();
        if let Err(e) = written {
            let _ = std::fs::remove_file(&tmp);
            return Err(io(e));
        }
        let dir = match path.parent().filter(|d| !d.as_os_str().is_empty()) {
            Some(d) => d.to_path_buf(),
            None => PathBuf::from("."),
        };
        if let Err(e) = crate::util::owner::match_directory(&tmp, &dir) {
            let _ = std::fs::remove_file(&tmp);
            return Err(e.into());
        }
        std::fs::rename(&tmp, path).map_err(io)?;
        Ok(())
    }

    /// The keys in `path`, or new ones written there when it does not exist yet.
    pub fn load_or_create(path: &Path) -> Result<(NetworkKeys, bool), KeyError> {
        if path.exists() {
            return Ok((NetworkKeys::load(path)?, false));
        }
        let keys = NetworkKeys::generate();
        keys.save(path)?;
        Ok((keys, true))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_once_with_mode_0600_and_loaded_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state/keys");
        let (a, created) = NetworkKeys::load_or_create(&path).unwrap();
        assert!(created);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let (b, created) = NetworkKeys::load_or_create(&path).unwrap();
        assert!(!created);
        assert_eq!(a, b);
        assert_ne!(
            a.get(SecurityClass::S0Legacy),
            a.get(SecurityClass::S2AccessControl)
        );
        assert_eq!(format!("{a:?}"), "NetworkKeys(..)");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(
            NetworkKeys::load(&path),
            Err(KeyError::Permissions { .. })
        ));
    }

    #[test]
    fn imports_the_forms_zwave_js_users_have() {
        let k = "0102030405060708090a0b0c0d0e0f10";
        for text in [
            format!("S2_AccessControl = \"{k}\""),
            format!("S2_AccessControl: {k}"),
            format!("{{\"S2_AccessControl\": \"{k}\", }}"),
            format!("s2_accesscontrol=0x{}", k.to_uppercase()),
        ] {
            let (keys, given) = NetworkKeys::import(&text).unwrap();
            assert_eq!(given, vec![SecurityClass::S2AccessControl], "{text}");
            assert_eq!(
                crate::util::hex::encode(keys.get(SecurityClass::S2AccessControl)),
                k
            );
        }
        // Home Assistant's add-on names; its Long Range keys are skipped.
        let (keys, given) = NetworkKeys::import(&format!(
            "s2_access_control_key: {k}\nlr_s2_access_control_key: {k}\n"
        ))
        .unwrap();
        assert_eq!(given, vec![SecurityClass::S2AccessControl]);
        assert_eq!(
            crate::util::hex::encode(keys.get(SecurityClass::S2AccessControl)),
            k
        );
        for bad in ["", "S2_AccessControl = \"0102\"", "S3 = 00", "S0_Legacy"] {
            assert!(NetworkKeys::import(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn imports_zwave_js_ui_s_settings_json_whole() {
        let (a, b, c) = (
            "0102030405060708090a0b0c0d0e0f10",
            "A1A2A3A4A5A6A7A8A9AAABACADAEAFB0",
            "c1c2c3c4c5c6c7c8c9cacbcccdcecfd0",
        );
        let settings = format!(
            r#"{{
  "mqtt": {{ "name": "zwave-js-ui", "host": "localhost", "port": 1883 }},
  "gateway": {{ "type": 0, "plugins": [] }},
  "zwave": {{
    "port": "/dev/serial/by-id/usb-0658_0200-if00",
    "commandsTimeout": 30,
    "securityKeys": {{
      "S2_Unauthenticated": "{a}",
      "S2_Authenticated": "",
      "S2_AccessControl": "{b}",
      "S0_Legacy": "{c}"
    }},
    "securityKeysLongRange": {{ "S2_AccessControl": "{a}", "S2_Authenticated": "{b}" }},
    "deviceConfigPriorityDir": "/usr/src/app/store/config"
  }}
}}"#
        );
        let (keys, given) = NetworkKeys::import(&settings).unwrap();
        assert_eq!(given.len(), 3, "{given:?}");
        for class in [
            SecurityClass::S2Unauthenticated,
            SecurityClass::S2AccessControl,
            SecurityClass::S0Legacy,
        ] {
            assert!(given.contains(&class), "{class:?}");
        }
        let hex = |class| crate::util::hex::encode(keys.get(class));
        assert_eq!(hex(SecurityClass::S2Unauthenticated), a);
        assert_eq!(hex(SecurityClass::S2AccessControl), b.to_lowercase());
        assert_eq!(hex(SecurityClass::S0Legacy), c);
        // The securityKeys object alone, and the keys object itself, work too.
        let alone = format!(r#"{{"securityKeys": {{"S0_Legacy": "{c}"}}}}"#);
        assert_eq!(
            NetworkKeys::import(&alone).unwrap().1,
            vec![SecurityClass::S0Legacy]
        );
        let bare = format!(r#"{{"S0_Legacy": "{c}"}}"#);
        assert_eq!(
            NetworkKeys::import(&bare).unwrap().1,
            vec![SecurityClass::S0Legacy]
        );
        // Refused, naming the field (never the value).
        for (bad, field) in [
            (
                r#"{"zwave": {"port": "/dev/ttyACM0"}}"#.to_string(),
                "securityKeys",
            ),
            (
                format!(r#"{{"securityKeys": {{"S3": "{a}"}}}}"#),
                "securityKeys.S3",
            ),
            (
                format!(r#"{{"securityKeys": {{"S0_Legacy": "{a}ff"}}}}"#),
                "S0_Legacy",
            ),
            (
                r#"{"securityKeys": {"S0_Legacy": 5}}"#.to_string(),
                "S0_Legacy",
            ),
            (
                r#"{"securityKeys": {"S0_Legacy": ""}}"#.to_string(),
                "no keys",
            ),
        ] {
            let e = NetworkKeys::import(&bad).unwrap_err().to_string();
            assert!(e.contains(field), "{bad}: {e}");
            assert!(!e.contains(a), "{e}");
        }
    }

    #[test]
    fn errors_never_echo_a_key() {
        let secret = "a1b2c3d4e5f60718293a4b5c6d7e8f90";
        let e = NetworkKeys::import(&format!("Bogus{secret} = {secret}")).unwrap_err();
        assert!(!e.to_string().contains(&secret[..16]), "{e}");
        let e = NetworkKeys::import(&format!("S0_Legacy = {secret}ff")).unwrap_err();
        assert!(!e.to_string().contains(secret), "{e}");
    }
}
