//! Message types of PROTOCOL.md section 6: an enum name in JSON and GraphQL,
//! an integer on the queue and in storage.

use std::fmt;

#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum MessageType {
    System = 0,
    Registration = 1,
    Assertion = 2,
    Attestation = 3,
    Service = 4,
    Delegation = 5,
}

impl MessageType {
    pub const ALL: [MessageType; 6] =
        [Self::System, Self::Registration, Self::Assertion, Self::Attestation, Self::Service, Self::Delegation];

    pub fn code(self) -> u8 {
        self as u8
    }

    pub fn from_code(code: u64) -> Option<Self> {
        Self::ALL.into_iter().find(|t| u64::from(t.code()) == code)
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::System => "SYSTEM",
            Self::Registration => "REGISTRATION",
            Self::Assertion => "ASSERTION",
            Self::Attestation => "ATTESTATION",
            Self::Service => "SERVICE",
            Self::Delegation => "DELEGATION",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.name() == name)
    }

    /// Public messages carry a content the node decodes and checks.
    pub fn is_public(self) -> bool {
        matches!(self, Self::Registration)
    }
}

impl fmt::Display for MessageType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
