//! What `zwlock decode` says about a frame's contents: the Serial API message and the node
//! command inside it, as JSON fields. PINs are shown as `****` (and as `2a` bytes in hex)
//! unless the caller asks for them.

use serde::Serialize;
use serde_json::{json, Map, Value};

use crate::cc::notification::NotificationCommand;
use crate::cc::redact::redact_bytes;
use crate::cc::user_code::{UserCodeCommand, UserCodeEntry};
use crate::cc::{CodeBytes, CodeView, Command, SupervisionCommand};
use crate::serial::DataFrame;
use crate::serialapi::{HostRequest, Message, NodeIdType, Origin, StickRequest};
use crate::util::hex;

/// How to describe.
#[derive(Debug, Clone, Copy, Default)]
pub struct DescribeOptions {
    pub show_codes: bool,
    pub node_id_type: NodeIdType,
}

/// A node command, described.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CommandDescription {
    pub command_class_id: u8,
    pub command_class: &'static str,
    pub command: &'static str,
    pub fields: Value,
    /// The command inside a Supervision Get.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub encapsulated: Option<Box<CommandDescription>>,
    /// S0/S2 encapsulation: the inner command is ciphertext and is not guessed at.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub encrypted: Option<bool>,
}

/// A frame's contents, described.
#[derive(Debug, Clone, Default)]
pub struct FrameDescription {
    pub node_id: Option<u16>,
    pub command: Option<CommandDescription>,
    /// Serial API fields when the frame carries no node command.
    pub fields: Option<Value>,
    /// The frame payload with every code replaced by `*` bytes (same length).
    pub redacted_payload: Option<Vec<u8>>,
    pub error: Option<String>,
}

/// Describe a node command (`class | command | payload`).
pub fn describe_command(
    bytes: &[u8],
    opts: &DescribeOptions,
) -> Result<CommandDescription, String> {
    let cmd = Command::parse(bytes).map_err(|e| e.to_string())?;
    let mut fields = cmd.fields();
    let mut encapsulated = None;
    let mut encrypted = None;
    match &cmd {
        Command::UserCode(u) => add_code_fields(u, &mut fields, opts.show_codes),
        Command::Notification(NotificationCommand::Report(r)) => {
            if let Some(obj) = fields.as_object_mut() {
                if let Some(uid) = r.user_id() {
                    obj.insert("user_id".into(), json!(uid));
                }
                if let Some(d) = &r.details {
                    let p = if opts.show_codes {
                        d.params.clone()
                    } else {
                        redact_bytes(&d.params)
                    };
                    obj.insert("params".into(), json!(hex::encode(&p)));
                }
            }
        }
        Command::Supervision(SupervisionCommand::Get {
            encapsulated: e, ..
        }) => {
            encapsulated = describe_command(&e.0, opts).ok().map(Box::new);
        }
        Command::Security(s) if s.name().starts_with("MessageEncapsulation") => {
            encrypted = Some(true)
        }
        Command::Security2(s) if s.name() == "MessageEncapsulation" => encrypted = Some(true),
        _ => {}
    }
    Ok(CommandDescription {
        command_class_id: cmd.class_id(),
        command_class: cmd.class_name(),
        command: cmd.command_name(),
        fields,
        encapsulated,
        encrypted,
    })
}

fn code_text(code: &CodeBytes, show: bool) -> Value {
    if !show {
        return json!(if code.is_empty() { "" } else { "****" });
    }
    match code.view() {
        CodeView::Empty => json!(""),
        CodeView::Pin(p) => json!(p),
        CodeView::Masked => json!(String::from_utf8_lossy(code.as_bytes())
            .trim_end_matches('\0')
            .to_string()),
        CodeView::Unreadable => json!(hex::encode(code.as_bytes())),
    }
}

fn add_code_fields(u: &UserCodeCommand, fields: &mut Value, show: bool) {
    let Some(obj) = fields.as_object_mut() else {
        return;
    };
    let entry_obj = |e: &UserCodeEntry| {
        json!({
            "user_id": e.user_id,
            "user_id_status": e.user_id_status,
            "user_code": code_text(&e.user_code, show),
            "masked": e.user_id_status.is_occupied() && e.user_code.is_hidden(),
        })
    };
    match u {
        UserCodeCommand::Set {
            user_id_status,
            user_code,
            ..
        }
        | UserCodeCommand::Report {
            user_id_status,
            user_code,
            ..
        } => {
            obj.insert("user_code".into(), code_text(user_code, show));
            obj.insert(
                "masked".into(),
                json!(user_id_status.is_occupied() && user_code.is_hidden()),
            );
        }
        UserCodeCommand::ExtendedUserCodeSet { entries }
        | UserCodeCommand::ExtendedUserCodeReport { entries, .. } => {
            obj.insert(
                "entries".into(),
                Value::Array(entries.iter().map(entry_obj).collect()),
            );
        }
        UserCodeCommand::AdminCodeSet { admin_code }
        | UserCodeCommand::AdminCodeReport { admin_code } => {
            obj.insert("admin_code".into(), code_text(admin_code, show));
        }
        _ => {}
    }
}

/// Describe a data frame written by `origin` (or guess the origin when unknown).
pub fn describe_frame(
    frame: &DataFrame,
    origin: Option<Origin>,
    opts: &DescribeOptions,
) -> FrameDescription {
    let ty = opts.node_id_type;
    let msg = match origin {
        Some(o) => Message::parse(frame, o, ty),
        None => guess(frame, ty),
    };
    let msg = match msg {
        Ok(m) => m,
        Err(e) => {
            return FrameDescription {
                error: Some(e.to_string()),
                ..Default::default()
            }
        }
    };
    let node_command: Option<(u16, &[u8])> = match &msg {
        Message::HostRequest(HostRequest::SendData(r)) => Some((r.node_id.0, &r.command)),
        Message::HostRequest(HostRequest::SendDataBridge(r)) => Some((r.destination.0, &r.command)),
        Message::StickRequest(s) => s.node_command().map(|(n, c)| (n.0, c)),
        _ => None,
    };
    let mut out = FrameDescription::default();
    if let Some((node, cmd)) = node_command {
        out.node_id = Some(node);
        match describe_command(cmd, opts) {
            Ok(d) => out.command = Some(d),
            Err(e) => out.error = Some(e),
        }
        if !opts.show_codes {
            let red = redact_bytes(cmd);
            if red != cmd {
                out.redacted_payload = Some(replace_subslice(&frame.payload, cmd, &red));
            }
        }
        return out;
    }
    out.fields = Some(message_fields(&msg));
    out.node_id = match &msg {
        Message::HostRequest(
            HostRequest::GetNodeProtocolInfo { node_id }
            | HostRequest::RequestNodeInfo { node_id }
            | HostRequest::IsFailedNode { node_id }
            | HostRequest::RemoveFailedNode { node_id, .. },
        ) => Some(node_id.0),
        Message::StickRequest(StickRequest::ApplicationUpdate(u)) => Some(u.node_id.0),
        _ => None,
    };
    out
}

fn guess(frame: &DataFrame, ty: NodeIdType) -> Result<Message, crate::serialapi::SerialApiError> {
    use crate::serialapi::FunctionId as F;
    let stick_only = matches!(
        crate::serialapi::FunctionId::from_byte(frame.function),
        F::ApplicationCommandHandler
            | F::BridgeApplicationCommandHandler
            | F::ApplicationUpdate
            | F::SerialApiStarted
    );
    if stick_only {
        return Message::parse(frame, Origin::Stick, ty)
            .or_else(|_| Message::parse(frame, Origin::Host, ty));
    }
    // SendData requests and callbacks share function id and frame type: a request uses every
    // byte of its payload for a non-empty command; anything else is the callback.
    match Message::parse(frame, Origin::Host, ty) {
        Ok(Message::HostRequest(HostRequest::SendData(r)))
            if r.command.is_empty()
                || frame.payload.len() != ty.width() + 1 + r.command.len() + 2 =>
        {
            Message::parse(frame, Origin::Stick, ty)
        }
        Ok(Message::HostRequest(HostRequest::SendDataBridge(r))) if r.command.is_empty() => {
            Message::parse(frame, Origin::Stick, ty)
        }
        Ok(m) => Ok(m),
        Err(_) => Message::parse(frame, Origin::Stick, ty),
    }
}

fn message_fields(msg: &Message) -> Value {
    let v = match msg {
        Message::Response(r) => serde_json::to_value(r).unwrap_or(Value::Null),
        Message::StickRequest(s) => match s {
            StickRequest::SendDataCallback(c) | StickRequest::SendDataBridgeCallback(c) => {
                serde_json::to_value(c).unwrap_or(Value::Null)
            }
            StickRequest::SerialApiStarted(s) => serde_json::to_value(s).unwrap_or(Value::Null),
            StickRequest::ApplicationUpdate(u) => serde_json::to_value(u).unwrap_or(Value::Null),
            StickRequest::AddNodeStatus(s) | StickRequest::RemoveNodeStatus(s) => {
                serde_json::to_value(s).unwrap_or(Value::Null)
            }
            StickRequest::RemoveFailedNodeStatus(s) => {
                serde_json::to_value(s).unwrap_or(Value::Null)
            }
            _ => Value::Null,
        },
        Message::HostRequest(h) => match h {
            HostRequest::SerialApiSetup(s) => serde_json::to_value(s).unwrap_or(Value::Null),
            HostRequest::GetNodeProtocolInfo { node_id }
            | HostRequest::RequestNodeInfo { node_id }
            | HostRequest::IsFailedNode { node_id } => json!({ "node_id": node_id }),
            HostRequest::RemoveFailedNode {
                node_id,
                callback_id,
            } => json!({ "node_id": node_id, "callback_id": callback_id }),
            HostRequest::AddNodeToNetwork(r) | HostRequest::RemoveNodeFromNetwork(r) => {
                serde_json::to_value(r).unwrap_or(Value::Null)
            }
            _ => Value::Null,
        },
    };
    match v {
        Value::Object(m) => Value::Object(m),
        _ => Value::Object(Map::new()),
    }
}

fn replace_subslice(hay: &[u8], needle: &[u8], with: &[u8]) -> Vec<u8> {
    if needle.is_empty() || needle.len() != with.len() {
        return hay.to_vec();
    }
    match hay.windows(needle.len()).position(|w| w == needle) {
        Some(pos) => {
            let mut out = hay.to_vec();
            out[pos..pos + needle.len()].copy_from_slice(with);
            out
        }
        None => hay.to_vec(),
    }
}
