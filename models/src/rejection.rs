//! The rejection codes of PROTOCOL.md section 7 and their HTTP statuses, in
//! one table: every service maps a refusal to HTTP and to GraphQL
//! `extensions.code` through [`RejectionCode::http_status`] and
//! [`RejectionCode::as_str`], nowhere else.

use serde::{Deserialize, Serialize};
use std::fmt;

#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RejectionCode {
    MalformedEnvelope,
    PayloadTooLarge,
    UnsupportedMessageType,
    DuplicateMessage,
    UnknownSender,
    SenderAddressMismatch,
    MessageHashMismatch,
    BodyHashMismatch,
    DossierHashMismatch,
    BadDossierSalt,
    BadTimestamp,
    TimestampExpired,
    TimestampInFuture,
    BadSignature,
    UnknownAclReader,
    BadObject,
    InvalidInvite,
    InviteNotFound,
    InviteAlreadyUsed,
    InvalidKeyProof,
    PersonaExists,
    NicknameTaken,
    Unavailable,
    BadQuery,
}

impl RejectionCode {
    pub const ALL: [RejectionCode; 24] = [
        Self::MalformedEnvelope,
        Self::PayloadTooLarge,
        Self::UnsupportedMessageType,
        Self::DuplicateMessage,
        Self::UnknownSender,
        Self::SenderAddressMismatch,
        Self::MessageHashMismatch,
        Self::BodyHashMismatch,
        Self::DossierHashMismatch,
        Self::BadDossierSalt,
        Self::BadTimestamp,
        Self::TimestampExpired,
        Self::TimestampInFuture,
        Self::BadSignature,
        Self::UnknownAclReader,
        Self::BadObject,
        Self::InvalidInvite,
        Self::InviteNotFound,
        Self::InviteAlreadyUsed,
        Self::InvalidKeyProof,
        Self::PersonaExists,
        Self::NicknameTaken,
        Self::Unavailable,
        Self::BadQuery,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::MalformedEnvelope => "MALFORMED_ENVELOPE",
            Self::PayloadTooLarge => "PAYLOAD_TOO_LARGE",
            Self::UnsupportedMessageType => "UNSUPPORTED_MESSAGE_TYPE",
            Self::DuplicateMessage => "DUPLICATE_MESSAGE",
            Self::UnknownSender => "UNKNOWN_SENDER",
            Self::SenderAddressMismatch => "SENDER_ADDRESS_MISMATCH",
            Self::MessageHashMismatch => "MESSAGE_HASH_MISMATCH",
            Self::BodyHashMismatch => "BODY_HASH_MISMATCH",
            Self::DossierHashMismatch => "DOSSIER_HASH_MISMATCH",
            Self::BadDossierSalt => "BAD_DOSSIER_SALT",
            Self::BadTimestamp => "BAD_TIMESTAMP",
            Self::TimestampExpired => "TIMESTAMP_EXPIRED",
            Self::TimestampInFuture => "TIMESTAMP_IN_FUTURE",
            Self::BadSignature => "BAD_SIGNATURE",
            Self::UnknownAclReader => "UNKNOWN_ACL_READER",
            Self::BadObject => "BAD_OBJECT",
            Self::InvalidInvite => "INVALID_INVITE",
            Self::InviteNotFound => "INVITE_NOT_FOUND",
            Self::InviteAlreadyUsed => "INVITE_ALREADY_USED",
            Self::InvalidKeyProof => "INVALID_KEY_PROOF",
            Self::PersonaExists => "PERSONA_EXISTS",
            Self::NicknameTaken => "NICKNAME_TAKEN",
            Self::Unavailable => "UNAVAILABLE",
            Self::BadQuery => "BAD_QUERY",
        }
    }

    pub fn parse(code: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == code)
    }

    /// The HTTP status of section 7's table.
    pub fn http_status(self) -> u16 {
        match self {
            Self::MalformedEnvelope | Self::BadQuery => 400,
            Self::PayloadTooLarge => 413,
            Self::DuplicateMessage | Self::PersonaExists | Self::NicknameTaken => 409,
            Self::Unavailable => 503,
            _ => 422,
        }
    }
}

impl fmt::Display for RejectionCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A refusal: a stable code and a sentence naming the field, for the client.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize, thiserror::Error)]
#[error("{code}: {error}")]
pub struct Rejection {
    pub error: String,
    pub code: RejectionCode,
}

impl Rejection {
    pub fn new(code: RejectionCode, error: impl Into<String>) -> Self {
        Self { code, error: error.into() }
    }

    pub fn malformed(error: impl Into<String>) -> Self {
        Self::new(RejectionCode::MalformedEnvelope, error)
    }

    pub fn bad_query(error: impl Into<String>) -> Self {
        Self::new(RejectionCode::BadQuery, error)
    }

    /// A backend needed for the decision is down. The sentence is the same
    /// whatever the cause: the cause belongs in the caller's log, not in the
    /// answer to a client.
    pub fn unavailable() -> Self {
        Self::new(RejectionCode::Unavailable, "a backend is unavailable; retry later")
    }
}
