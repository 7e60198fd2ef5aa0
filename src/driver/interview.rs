//! The node interview: what a lock is and what it can do. Steps already done (fields already
//! known) are skipped, so an interview cut short by a silent lock resumes where it stopped.
//! Security comes first: the class the node was granted and its secure command list, so the
//! rest of the interview reads the classes a secure lock lists only under security.
//!
//! Then the manufacturer and product ids, which name the lock's model: what a model can do
//! (versions, User Code capabilities, notifications) comes from the [`model`] cache when an
//! earlier lock of it was interviewed, and is learnt and kept otherwise. Only the versions
//! zwlock uses are asked ([`model::version_wanted`]: User Code and Notification); the lock's
//! battery and bolt are asked of every lock. A v1 lock takes six Gets (Manufacturer
//! Specific, two Version Command Class Gets, Users Number, Battery, Door Lock Operation), a v2
//! lock one more (User Code Capabilities), and a lock whose model is known three
//! (Manufacturer Specific, Battery, Door Lock Operation).

use super::model;
use super::node::{Manufacturer, NodeInfo, SecurityFailure};
use super::{DriverError, DriverHandle, Priority};
use crate::cc::{
    battery, door_lock, manufacturer_specific, security0, security2, user_code, version,
    BatteryCommand, Command, DoorLockCommand, ManufacturerSpecificCommand, UserCodeCommand,
    VersionCommand,
};
use crate::security::SecurityClass;

/// Interview `info.node_id`, continuing from what `info` already holds. Returns what is known
/// afterwards and, when a step failed, why.
pub async fn run(driver: &DriverHandle, mut info: NodeInfo) -> (NodeInfo, Option<DriverError>) {
    match steps(driver, &mut info).await {
        Ok(()) => {
            info.interviewed = true;
            (info, None)
        }
        Err(e) => (info, Some(e)),
    }
}

async fn steps(driver: &DriverHandle, info: &mut NodeInfo) -> Result<(), DriverError> {
    let node = info.node_id;
    let p = Priority::Background;
    if info.command_classes.is_none() {
        let nif = driver.request_node_info(node).await?;
        info.command_classes = Some(nif.supported());
    }
    security(driver, info).await?;
    if info.manufacturer.is_none() && info.supports(manufacturer_specific::ID) {
        if let Command::ManufacturerSpecific(ManufacturerSpecificCommand::Report {
            manufacturer_id,
            product_type,
            product_id,
        }) = driver
            .get(
                node,
                Command::ManufacturerSpecific(ManufacturerSpecificCommand::Get),
                p,
            )
            .await?
        {
            info.manufacturer = Some(Manufacturer {
                manufacturer_id,
                product_type,
                product_id,
            });
        }
    }
    // What the lock's model can do: from an earlier lock of it, or learnt here and kept for
    // the next (an interview cut short drops `learning`, and the next lock learns it).
    let mut learning = None;
    if let (Some(models), Some(key)) = (driver.models(), model::key_of(info)) {
        if model::facts_of(info).is_none() {
            match models.lookup(&key).await {
                model::Lookup::Known(facts) => {
                    tracing::debug!(%node, ?key, "model known: its versions and capabilities are not asked");
                    model::apply(info, &facts);
                }
                model::Lookup::Learn(l) => learning = Some(l),
            }
        }
    }
    let has_version = info.supports(version::ID);
    let wanted: Vec<u8> = info
        .command_classes
        .iter()
        .flatten()
        .copied()
        .filter(|cc| model::version_wanted(*cc) && !info.versions.contains_key(cc))
        .collect();
    for cc in wanted {
        let v = if has_version {
            match driver
                .get(
                    node,
                    Command::Version(VersionCommand::CommandClassGet {
                        requested_class: cc,
                    }),
                    p,
                )
                .await?
            {
                Command::Version(VersionCommand::CommandClassReport { version, .. }) => version,
                _ => 1,
            }
        } else {
            1
        };
        info.versions.insert(cc, v);
    }
    if info.user_code.is_none() && info.supports(user_code::ID) {
        let users = driver
            .get(node, Command::UserCode(UserCodeCommand::UsersNumberGet), p)
            .await?;
        let slots = match &users {
            Command::UserCode(u) => u.users_number().unwrap_or(0),
            _ => 0,
        };
        let caps = if info.version(user_code::ID) >= 2 {
            match driver
                .get(node, Command::UserCode(UserCodeCommand::CapabilitiesGet), p)
                .await?
            {
                Command::UserCode(UserCodeCommand::CapabilitiesReport(c)) => Some(c),
                _ => None,
            }
        } else {
            None
        };
        info.set_user_code(slots, caps.as_ref());
    }
    if info.notification.is_none() {
        info.derive_notification();
    }
    if let (Some(l), Some(facts)) = (learning, model::facts_of(info)) {
        tracing::debug!(%node, "model learnt");
        l.done(facts);
    }
    // The lock's own state, asked of every lock.
    if info.battery_level.is_none() && info.supports(battery::ID) {
        if let Command::Battery(b) = driver
            .get(node, Command::Battery(BatteryCommand::Get), p)
            .await?
        {
            info.battery_level = b.percent();
        }
    }
    if info.door_locked.is_none() && info.supports(door_lock::ID) {
        if let Command::DoorLock(DoorLockCommand::OperationReport(r)) = driver
            .get(node, Command::DoorLock(DoorLockCommand::OperationGet), p)
            .await?
        {
            info.door_locked = r.is_locked();
        }
    }
    Ok(())
}

/// Which class the node was granted, and the command classes it lists only under it (a
/// real S2 lock lists User Code and Door Lock only there): probed for a node included
/// elsewhere, asked at the granted class for one zwlock included. A node that must be
/// reached securely and answers under none of our keys stops here with
/// [`DriverError::SecurityRequired`]: nothing more is asked of it, in clear or otherwise.
async fn security(driver: &DriverHandle, info: &mut NodeInfo) -> Result<(), DriverError> {
    if info.security_class.is_none() && info.supports(security2::ID) {
        probe_s2(driver, info).await?;
    }
    if info.security_class.is_none()
        && info.supports(security0::ID)
        && !driver.s2_classes().is_empty()
    {
        probe_s0(driver, info).await?;
    }
    match info.security_class {
        Some(class) => {
            // From here on, the node's commands are sealed at its class.
            driver.interview_progress(info).await?;
            if info.secure_command_classes.is_none() {
                secure_list(driver, info, class).await?;
            }
            info.security_failure = None;
            driver.interview_progress(info).await
        }
        None if info.security_required() => {
            let failure = *info.security_failure.get_or_insert(SecurityFailure::NoKey);
            tracing::warn!(node = %info.node_id, ?failure, "a lock that must be reached securely holds none of our keys: nothing is sent to it; exclude it and include it again (or import the network keys it was included with)");
            Err(DriverError::SecurityRequired {
                node: info.node_id,
                command: "the interview",
            })
        }
        None => Ok(()),
    }
}

/// The node's secure command classes, asked under the class it was granted.
async fn secure_list(
    driver: &DriverHandle,
    info: &mut NodeInfo,
    class: SecurityClass,
) -> Result<(), DriverError> {
    let node = info.node_id;
    let p = Priority::Background;
    if class == SecurityClass::S0Legacy {
        let get = Command::Security(crate::cc::Security0Command::CommandsSupportedGet);
        if let Command::Security(crate::cc::Security0Command::CommandsSupportedReport { raw }) =
            driver.get(node, get, p).await?
        {
            merge_classes(info, raw.0.get(1..).unwrap_or_default());
        }
    } else {
        let get = Command::Security2(crate::cc::Security2Command::CommandsSupportedGet);
        if let Command::Security2(crate::cc::Security2Command::CommandsSupportedReport { raw }) =
            driver.get(node, get, p).await?
        {
            merge_classes(info, &raw.0);
        }
    }
    tracing::info!(%node, ?class, secure = ?info.secure_command_classes, "secure command classes");
    Ok(())
}

/// Which S2 class the node was granted: the highest one under which it answers S2 Commands
/// Supported Get (a node that cannot decrypt answers with a Nonce Report instead). Its
/// secure command classes join the ones its node information frame lists.
async fn probe_s2(driver: &DriverHandle, info: &mut NodeInfo) -> Result<(), DriverError> {
    let node = info.node_id;
    for class in driver.s2_classes() {
        let get = Command::Security2(crate::cc::Security2Command::CommandsSupportedGet);
        match driver.get_at(node, get, class).await {
            Ok(Command::Security2(crate::cc::Security2Command::CommandsSupportedReport {
                raw,
            })) => {
                tracing::info!(%node, ?class, "S2 class found");
                info.security_class = Some(class);
                merge_classes(info, &raw.0);
                return Ok(());
            }
            Ok(_) => {}
            Err(DriverError::Security { .. }) | Err(DriverError::NoReport { .. }) => {
                tracing::debug!(%node, ?class, "not granted (or another key)");
            }
            Err(e) => return Err(e),
        }
    }
    tracing::warn!(%node, "an S2 node that answers under none of our keys: import the network keys it was included with");
    Ok(())
}

/// Record the secure command classes of a Commands Supported Report and add them to the
/// node's classes.
fn merge_classes(info: &mut NodeInfo, raw: &[u8]) {
    // Only command classes: the S0 report ends with a mark and the controlled classes.
    let secure: Vec<u8> = raw.iter().copied().take_while(|cc| *cc != 0xEF).collect();
    let classes = info.command_classes.get_or_insert_with(Vec::new);
    for cc in &secure {
        if !classes.contains(cc) {
            classes.push(*cc);
        }
    }
    info.secure_command_classes = Some(secure);
}

/// Whether the node was included with S0: it answers Security Commands Supported Get under
/// the S0 key (a node that cannot decrypt stays silent).
async fn probe_s0(driver: &DriverHandle, info: &mut NodeInfo) -> Result<(), DriverError> {
    let node = info.node_id;
    let get = Command::Security(crate::cc::Security0Command::CommandsSupportedGet);
    match driver
        .get_at(node, get, crate::security::SecurityClass::S0Legacy)
        .await
    {
        Ok(Command::Security(crate::cc::Security0Command::CommandsSupportedReport { raw })) => {
            tracing::info!(%node, "S0 found");
            info.security_class = Some(crate::security::SecurityClass::S0Legacy);
            // The report starts with the number of reports to follow.
            merge_classes(info, raw.0.get(1..).unwrap_or_default());
            Ok(())
        }
        Ok(_) | Err(DriverError::Security { .. }) | Err(DriverError::NoReport { .. }) => {
            tracing::warn!(%node, "an S0 node that answers under none of our keys: import the network keys it was included with");
            Ok(())
        }
        Err(e) => Err(e),
    }
}
