//! Store rows into the objects the API returns: a code with its live errors and warnings and
//! the condition of its lock and stick copied onto it.

use std::collections::HashMap;

use uuid::Uuid;

use super::ctx::Ctx;
use super::model::{AccessCode, DeviceCondition};
use crate::store::{CodeRow, DeviceRow, StoreError, Tx};

/// The lock's and the stick's condition, as copied onto codes.
pub(crate) fn condition(ctx: &Ctx, device: &DeviceRow) -> DeviceCondition {
    DeviceCondition {
        hub_connected: ctx.hub_connected(),
        device_online: device.online,
        since: Some(device.updated_at),
        secure_inclusion_failed: device.facts.security_failure.is_some(),
    }
}

/// The API object of a code row.
pub(crate) fn render(ctx: &Ctx, tx: &Tx<'_>, row: &CodeRow) -> Result<AccessCode, StoreError> {
    let mut v = render_all(ctx, tx, std::slice::from_ref(row))?;
    Ok(v.pop().expect("one row in, one code out"))
}

/// The API objects of code rows; what they share per lock is looked up once.
pub(crate) fn render_all(
    ctx: &Ctx,
    tx: &Tx<'_>,
    rows: &[CodeRow],
) -> Result<Vec<AccessCode>, StoreError> {
    let now = ctx.now();
    let mut per_device: HashMap<Uuid, (DeviceCondition, bool)> = HashMap::new();
    let mut out = Vec::with_capacity(rows.len());
    let ids: Vec<Uuid> = rows.iter().map(|r| r.access_code_id).collect();
    let mut issues_of = tx.issues_of(&ids)?;
    for row in rows {
        let (cond, backup) = match per_device.get(&row.device_id) {
            Some(v) => *v,
            None => {
                let facts = match tx.device(&row.device_id)? {
                    Some(d) => {
                        let backup =
                            d.backup_pool_size > 0 && super::backup::available(tx, &row.device_id)?;
                        (condition(ctx, &d), backup)
                    }
                    None => (DeviceCondition::default(), false),
                };
                per_device.insert(row.device_id, facts);
                facts
            }
        };
        let issues: Vec<_> = issues_of
            .remove(&row.access_code_id)
            .unwrap_or_default()
            .into_iter()
            .filter(|i| i.expires_at.is_none_or(|t| t > now))
            .collect();
        out.push(AccessCode::from_rows(
            row,
            &issues,
            cond,
            backup && !row.is_backup,
        ));
    }
    Ok(out)
}
