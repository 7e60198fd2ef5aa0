//! Reads for the API: codes (paginated), unmanaged codes, devices, events, action attempts.
//! They run on the read-only connection, so they never wait behind the engine's writes.

use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use uuid::Uuid;

use super::engine::{Engine, EngineError};
use super::model::{self, rfc3339, AccessCode, UnmanagedAccessCode};
use crate::driver::NodeInfo;
use crate::store::{CodeFilter, DeviceRow, EventFilter, EventRow, Store};

/// A page of results and the cursor of the next one.
#[derive(Debug, Clone)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

/// Cursors are opaque to clients: `created_at~id` of the last item of a page.
fn encode_cursor(t: &DateTime<Utc>, id: &Uuid) -> String {
    format!("{}~{id}", rfc3339(t))
}

fn decode_cursor(c: &str) -> Result<(DateTime<Utc>, Uuid), EngineError> {
    let bad = || {
        EngineError::Invalid(vec![super::validate::FieldError::new(
            "page_cursor",
            "not a cursor this server gave",
        )])
    };
    let (t, id) = c.split_once('~').ok_or_else(bad)?;
    let t = DateTime::parse_from_rfc3339(t)
        .map_err(|_| bad())?
        .with_timezone(&Utc);
    let id = Uuid::parse_str(id).map_err(|_| bad())?;
    Ok((t, id))
}

impl Engine {
    /// A managed code, by id (also while it is being removed after a delete).
    pub fn get(&self, access_code_id: &Uuid) -> Result<AccessCode, EngineError> {
        self.read(|c| {
            Store::code(c, access_code_id)?
                .map(|row| self.render(c, &row))
                .transpose()
        })?
        .ok_or_else(|| EngineError::NotFound {
            what: "access code",
            id: access_code_id.to_string(),
        })
    }

    /// A managed code, by lock and PIN.
    pub fn get_by_code(&self, device_id: &Uuid, code: &str) -> Result<AccessCode, EngineError> {
        self.read(|c| {
            let rows = Store::device_codes(c, device_id)?;
            rows.iter()
                .find(|r| {
                    r.code == code && (!r.is_backup || r.pulled_backup_access_code_id.is_some())
                })
                .map(|row| self.render(c, row))
                .transpose()
        })?
        .ok_or_else(|| EngineError::NotFound {
            what: "access code",
            id: format!("device {device_id}, code ****"),
        })
    }

    /// Managed codes of a device (all of them).
    pub fn list(&self, device_id: &Uuid) -> Result<Vec<AccessCode>, EngineError> {
        Ok(self
            .list_page(
                CodeFilter {
                    device_id: Some(*device_id),
                    ..Default::default()
                },
                None,
                None,
            )?
            .items)
    }

    /// A page of managed codes matching `filter`.
    pub fn list_page(
        &self,
        mut filter: CodeFilter,
        limit: Option<usize>,
        cursor: Option<&str>,
    ) -> Result<Page<AccessCode>, EngineError> {
        if let Some(c) = cursor.filter(|c| !c.is_empty()) {
            filter.after = Some(decode_cursor(c)?);
        }
        let limit = limit.unwrap_or(55_000).clamp(1, 55_000);
        filter.limit = Some(limit + 1);
        let (mut items, more) = self.read(|c| {
            let mut rows = Store::list_codes(c, &filter)?;
            let more = rows.len() > limit;
            rows.truncate(limit);
            let items = self
                .render_all(c, &rows)?
                .into_iter()
                .zip(&rows)
                .map(|(a, r)| (a, r.created_at, r.access_code_id))
                .collect::<Vec<_>>();
            Ok((items, more))
        })?;
        let next_cursor = if more {
            items.last().map(|(_, t, id)| encode_cursor(t, id))
        } else {
            None
        };
        Ok(Page {
            items: items.drain(..).map(|(a, _, _)| a).collect(),
            next_cursor,
        })
    }

    /// Unmanaged codes of a device: occupied slots no managed code owns.
    pub fn unmanaged(&self, device_id: &Uuid) -> Result<Vec<UnmanagedAccessCode>, EngineError> {
        Ok(self.read(|c| {
            let Some(device) = Store::device(c, device_id)? else {
                return Ok(Vec::new());
            };
            let (_, unmanaged) = Self::pins_in_use(c, device_id)?;
            Ok(unmanaged
                .iter()
                .map(|slot| UnmanagedAccessCode::from_slot(slot, &device))
                .collect())
        })?)
    }

    /// An unmanaged code by id, or by lock and PIN.
    pub fn unmanaged_get(
        &self,
        id: Option<&Uuid>,
        device_and_code: Option<(&Uuid, &str)>,
    ) -> Result<UnmanagedAccessCode, EngineError> {
        let found = self.read(|c| {
            let slot = match (id, device_and_code) {
                (Some(id), _) => Store::slot_by_unmanaged_id(c, id)?,
                (None, Some((d, code))) => Store::slots(c, d)?
                    .into_iter()
                    .find(|s| s.code.as_deref() == Some(code)),
                _ => None,
            };
            let Some(slot) = slot else { return Ok(None) };
            // Still unmanaged: occupied and no managed code holds the slot.
            let (_, unmanaged) = Self::pins_in_use(c, &slot.device_id)?;
            if !unmanaged
                .iter()
                .any(|u| u.unmanaged_id == slot.unmanaged_id)
            {
                return Ok(None);
            }
            let device = Store::device(c, &slot.device_id)?;
            Ok(device.map(|d| UnmanagedAccessCode::from_slot(&slot, &d)))
        })?;
        found.ok_or_else(|| EngineError::NotFound {
            what: "unmanaged access code",
            id: id.map(Uuid::to_string).unwrap_or_default(),
        })
    }

    pub fn device_by_node(&self, node: u16) -> Result<Option<DeviceRow>, EngineError> {
        Ok(self.read(|c| Store::device_by_node(c, node))?)
    }

    pub fn devices(&self) -> Result<Vec<DeviceRow>, EngineError> {
        Ok(self.read(Store::devices)?)
    }

    pub fn device_row(&self, id: &Uuid) -> Result<DeviceRow, EngineError> {
        self.read(|c| Store::device(c, id))?
            .ok_or_else(|| EngineError::NotFound {
                what: "device",
                id: id.to_string(),
            })
    }

    /// The device object of the API (Seam's shape, with a `zwave` section of our own).
    pub fn device_json(&self, d: &DeviceRow) -> Value {
        let info: Option<NodeInfo> = d
            .info_json
            .as_deref()
            .and_then(|j| serde_json::from_str(j).ok());
        let cond = self.condition(d);
        let errors: Vec<Value> = cond
            .errors()
            .into_iter()
            .map(|e| json!({ "error_code": e.error_code, "message": e.message, "created_at": e.created_at, "is_device_error": true }))
            .collect();
        let battery = d.battery_level.map(|b| f64::from(b.min(100)) / 100.0);
        let battery_status = d.battery_level.map(|b| match b {
            0..=10 => "critical",
            11..=25 => "low",
            26..=90 => "good",
            _ => "full",
        });
        let manufacturer = info.as_ref().and_then(|i| i.manufacturer);
        let manufacturer_name = manufacturer.map(|m| match m.manufacturer_id {
            0x0090 => "Kwikset".to_string(),
            0x003B => "Schlage".to_string(),
            0x0129 => "Yale".to_string(),
            other => format!("Z-Wave manufacturer 0x{other:04x}"),
        });
        json!({
            "device_id": d.device_id,
            "device_type": "zwave_lock",
            "display_name": d.name,
            "nickname": d.name,
            "workspace_id": model::workspace_id(),
            "connected_account_id": model::workspace_id(),
            "created_at": rfc3339(&d.created_at),
            "is_managed": true,
            "custom_metadata": {},
            "space_ids": [],
            "capabilities_supported": ["access_code", "lock", "battery"],
            "can_program_online_access_codes": true,
            "can_program_offline_access_codes": false,
            "can_remotely_lock": true,
            "can_remotely_unlock": true,
            "errors": errors,
            "warnings": [],
            "properties": {
                "online": d.online && cond.hub_connected,
                "name": d.name,
                "appearance": { "name": d.name },
                "model": {
                    "display_name": manufacturer.map(|m| format!("0x{:04x}/0x{:04x}", m.product_type, m.product_id)).unwrap_or_else(|| "Z-Wave keypad lock".into()),
                    "manufacturer_display_name": manufacturer_name,
                    "has_built_in_keypad": true,
                },
                "manufacturer": manufacturer_name,
                "locked": d.locked,
                "battery_level": battery,
                "battery": battery.map(|l| json!({ "level": l, "status": battery_status })),
                "supported_code_lengths": (d.min_code_length..=d.max_code_length).collect::<Vec<u8>>(),
                "max_active_codes_supported": d.slot_count,
                "code_constraints": [],
                "supports_backup_access_code_pool": true,
                "backup_access_code_pool_enabled": d.backup_pool_size > 0,
                "has_native_entry_events": true,
                "zwave": {
                    "node_id": d.node_id,
                    "slot_count": d.slot_count,
                    "reserved_slots": d.reserved_slots,
                    "code_characters": d.code_characters,
                    "last_contact_at": d.last_contact_at.as_ref().map(rfc3339),
                    "interview": info,
                },
            },
        })
    }

    /// Events matching `filter`.
    pub fn events(&self, filter: &EventFilter) -> Result<Vec<EventRow>, EngineError> {
        Ok(self.read(|c| Store::events(c, filter))?)
    }

    /// An action attempt as the API returns it.
    pub fn action_attempt(&self, id: &Uuid) -> Result<Value, EngineError> {
        self.read(|c| Store::attempt(c, id))?
            .map(|a| model::attempt_json(&a))
            .ok_or_else(|| EngineError::NotFound {
                what: "action attempt",
                id: id.to_string(),
            })
    }
}
