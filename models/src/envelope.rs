//! Envelopes of PROTOCOL.md section 5: the JSON/GraphQL form (message type
//! by name; ACL and objects may be null or omitted) and the queue payload
//! (`msgpack(envelope)` with the type as an integer, keys in contract order).

use crate::codec::{from_msgpack, to_msgpack, CodecError};
use crate::message_type::MessageType;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AclRule {
    pub reader: String,
    pub key: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Container {
    pub container_hash: String,
    pub container_sign: String,
    pub object_container: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ObjectEntry {
    pub object_hash: String,
    pub meta_hashes: Vec<String>,
    #[serde(default)]
    pub container: Option<Container>,
}

/// A complete envelope, not yet validated beyond its structure.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Envelope {
    pub sender: String,
    pub message_type: MessageType,
    pub message_hash: String,
    pub message_sign: String,
    pub dossier_hash: String,
    pub body_hash: String,
    pub acl: Vec<AclRule>,
    pub objects: Vec<ObjectEntry>,
    pub message: String,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields, bound(deserialize = "T: Deserialize<'de>, L: Deserialize<'de> + Default"))]
struct Wire<T, L> {
    sender: String,
    #[serde(rename = "messageType")]
    message_type: T,
    #[serde(rename = "messageHash")]
    message_hash: String,
    #[serde(rename = "messageSign")]
    message_sign: String,
    #[serde(rename = "dossierHash")]
    dossier_hash: String,
    #[serde(rename = "bodyHash")]
    body_hash: String,
    #[serde(rename = "ACL", default)]
    acl: L,
    #[serde(default)]
    objects: Option<Vec<ObjectEntry>>,
    message: String,
}

impl Envelope {
    /// Reads the JSON form; `messageType` is the enum name.
    pub fn from_json_value(value: serde_json::Value) -> Result<Self, String> {
        let wire: Wire<String, Option<Vec<AclRule>>> = serde_json::from_value(value).map_err(|e| e.to_string())?;
        let message_type = MessageType::from_name(&wire.message_type)
            .ok_or_else(|| format!("messageType {:?} is not a message type", wire.message_type))?;
        Ok(Self::from_wire(wire, message_type))
    }

    pub fn to_json_value(&self) -> serde_json::Value {
        serde_json::to_value(self.to_wire(self.message_type.name())).expect("an envelope always serializes to JSON")
    }

    /// The queue payload of section 8.
    pub fn to_queue_payload(&self) -> Vec<u8> {
        to_msgpack(&self.to_wire(self.message_type.code()))
    }

    pub fn from_queue_payload(bytes: &[u8]) -> Result<Self, CodecError> {
        let wire: Wire<u64, Option<Vec<AclRule>>> = from_msgpack(bytes)?;
        let message_type = MessageType::from_code(wire.message_type).ok_or(CodecError::Msgpack)?;
        Ok(Self::from_wire(wire, message_type))
    }

    fn from_wire<T>(wire: Wire<T, Option<Vec<AclRule>>>, message_type: MessageType) -> Self {
        Self {
            sender: wire.sender,
            message_type,
            message_hash: wire.message_hash,
            message_sign: wire.message_sign,
            dossier_hash: wire.dossier_hash,
            body_hash: wire.body_hash,
            acl: wire.acl.unwrap_or_default(),
            objects: wire.objects.unwrap_or_default(),
            message: wire.message,
        }
    }

    fn to_wire<T>(&self, message_type: T) -> Wire<T, Vec<AclRule>> {
        Wire {
            sender: self.sender.clone(),
            message_type,
            message_hash: self.message_hash.clone(),
            message_sign: self.message_sign.clone(),
            dossier_hash: self.dossier_hash.clone(),
            body_hash: self.body_hash.clone(),
            acl: self.acl.clone(),
            objects: Some(self.objects.clone()),
            message: self.message.clone(),
        }
    }
}
