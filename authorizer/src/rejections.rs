//! The refusals the checks share: a backend that is down, a `T` that fails
//! its check, and a claim another message holds. Each maps to the code of
//! PROTOCOL.md section 7 here, once.

use pm_backends::{BackendError, ClaimKey};
use pm_models::signed_timestamp::TimestampError;
use pm_models::{Rejection, RejectionCode};

/// A backend needed for the decision failed: `UNAVAILABLE` for the client,
/// the cause for the log.
pub(crate) fn unavailable(error: BackendError) -> Rejection {
    tracing::warn!(%error, "backend unavailable");
    Rejection::unavailable()
}

pub(crate) fn timestamp_rejection(e: TimestampError) -> Rejection {
    match e {
        TimestampError::Malformed => Rejection::new(RejectionCode::BadTimestamp, "signed timestamp is malformed"),
        TimestampError::NotNodeSigned => {
            Rejection::new(RejectionCode::BadTimestamp, "signed timestamp is not signed by this node")
        }
        TimestampError::Expired => Rejection::new(RejectionCode::TimestampExpired, "messageSign timestamp is too old"),
        TimestampError::InFuture => {
            Rejection::new(RejectionCode::TimestampInFuture, "messageSign timestamp is in the future")
        }
    }
}

/// The refusal of an envelope whose claim `key` is held by another message.
pub(crate) fn conflict_rejection(key: &ClaimKey) -> Rejection {
    match key {
        ClaimKey::Message(_) => {
            Rejection::new(RejectionCode::DuplicateMessage, "messageHash is already stored or claimed")
        }
        ClaimKey::Key(_) => Rejection::new(RejectionCode::PersonaExists, "publicKey is already registered"),
        ClaimKey::Nickname(_) => Rejection::new(RejectionCode::NicknameTaken, "publicNickname is taken"),
        ClaimKey::Invite(_) => {
            Rejection::new(RejectionCode::InviteAlreadyUsed, "inviteMsgID was already used by a registration")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_claim_conflict_has_the_code_of_its_rule() {
        let hash = pm_models::MessageHash::of_message("m");
        let address = pm_models::keys::PersonaKey::from_seed([1; 32]).address();
        let codes: Vec<RejectionCode> = [
            ClaimKey::Message(hash.clone()),
            ClaimKey::Key(address),
            ClaimKey::Nickname("alice".into()),
            ClaimKey::Invite(hash),
        ]
        .iter()
        .map(|key| conflict_rejection(key).code)
        .collect();
        use RejectionCode::*;
        assert_eq!(codes, [DuplicateMessage, PersonaExists, NicknameTaken, InviteAlreadyUsed]);
    }

    #[test]
    fn a_timestamp_failure_is_bad_or_stale_as_the_contract_says() {
        assert_eq!(timestamp_rejection(TimestampError::Malformed).code, RejectionCode::BadTimestamp);
        assert_eq!(timestamp_rejection(TimestampError::NotNodeSigned).code, RejectionCode::BadTimestamp);
        assert_eq!(timestamp_rejection(TimestampError::Expired).code, RejectionCode::TimestampExpired);
        assert_eq!(timestamp_rejection(TimestampError::InFuture).code, RejectionCode::TimestampInFuture);
    }
}
