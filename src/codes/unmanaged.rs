//! Codes on a lock that no managed code owns: take them over, or remove them.

use serde_json::{json, Value};
use uuid::Uuid;

use super::engine::{Engine, EngineError};
use super::model::{self, status, AccessCode};
use crate::store::{CodeRow, SlotState, Store, StoreError};

impl Engine {
    /// Make an unmanaged code managed: it keeps its slot and PIN, and is kept true from now on.
    pub fn convert_to_managed(
        &self,
        unmanaged_id: &Uuid,
        allow_external_modification: bool,
    ) -> Result<AccessCode, EngineError> {
        let now = self.now();
        let (row, events) = {
            let mut guard = self.inner.store.lock().unwrap_or_else(|e| e.into_inner());
            let tx = guard.conn_mut_tx()?;
            let slot = Self::unmanaged_slot(&tx, unmanaged_id)?;
            if slot.state != SlotState::Occupied || slot.code.is_none() {
                return Err(EngineError::Unsupported(
                    "the lock hides this code's PIN, so it cannot be managed; delete it and create a new one".into(),
                ));
            }
            let pin = slot.code.clone().expect("checked");
            let row = CodeRow {
                access_code_id: *unmanaged_id,
                status: status::SET.into(),
                slot: Some(slot.slot),
                programmed_code: Some(pin.clone()),
                allow_external_modification,
                ..CodeRow::new(slot.device_id, pin, now)
            };
            Store::put_code(&tx, &row)?;
            let ev = Store::add_event(
                &tx,
                "access_code.unmanaged.converted_to_managed",
                Some(&row.device_id),
                Some(&row.access_code_id),
                &now,
                json!({}),
            )?;
            tx.commit().map_err(StoreError::from)?;
            (row, vec![ev])
        };
        self.publish(events);
        self.wake(row.device_id);
        self.get(&row.access_code_id)
    }

    /// Remove an unmanaged code from its lock. Returns the action attempt.
    pub fn delete_unmanaged(&self, unmanaged_id: &Uuid) -> Result<Value, EngineError> {
        let now = self.now();
        let (device_id, attempt) = {
            let mut guard = self.inner.store.lock().unwrap_or_else(|e| e.into_inner());
            let tx = guard.conn_mut_tx()?;
            let slot = Self::unmanaged_slot(&tx, unmanaged_id)?;
            // A transient managed record that the reconciler removes and then forgets.
            let pin = slot.code.clone().unwrap_or_default();
            let row = CodeRow {
                access_code_id: *unmanaged_id,
                status: status::REMOVING.into(),
                desired: "deleted".into(),
                slot: Some(slot.slot),
                programmed_code: Some(pin.clone()),
                pending_since: Some(now),
                ..CodeRow::new(slot.device_id, pin, now)
            };
            Store::put_code(&tx, &row)?;
            let attempt =
                Self::attempt(&tx, "DELETE_ACCESS_CODE", "success", Some(json!({})), &now)?;
            tx.commit().map_err(StoreError::from)?;
            (row.device_id, attempt)
        };
        self.record(
            "access_code.unmanaged.removed",
            Some(&device_id),
            Some(unmanaged_id),
            json!({}),
        )?;
        self.wake(device_id);
        Ok(model::attempt_json(&attempt))
    }

    fn unmanaged_slot(
        conn: &rusqlite::Connection,
        id: &Uuid,
    ) -> Result<crate::store::SlotRow, EngineError> {
        let not_found = || EngineError::NotFound {
            what: "unmanaged access code",
            id: id.to_string(),
        };
        let slot = Store::slot_by_unmanaged_id(conn, id)?.ok_or_else(not_found)?;
        let (_, unmanaged) = Self::pins_in_use(conn, &slot.device_id)?;
        if !unmanaged.iter().any(|u| u.unmanaged_id == *id) {
            return Err(not_found());
        }
        Ok(slot)
    }
}
