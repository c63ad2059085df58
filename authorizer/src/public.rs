//! Step 6 for public messages (PROTOCOL.md sections 5, 6): `bodyHash`,
//! `dossierSalt`, `dossierHash`, the content signature, then the rules of
//! the invitation and registration bodies.

use crate::node::NodeIdentity;
use crate::rejections::{conflict_rejection, timestamp_rejection, unavailable};
use crate::AuthorizerBackends;
use pm_backends::ClaimKey;
use pm_models::codec::{from_msgpack, hash_text, unb64};
use pm_models::content::{
    dossier_hash, nickname_key, BodyMap, DecodedContent, KeyProof, Registration, BODY_INVITATION, DOSSIER_SALT_LEN,
    NODE_NICKNAME,
};
use pm_models::envelope::Envelope;
use pm_models::keys::VerifyingKey;
use pm_models::timestamped_signature::TimestampedSignature;
use pm_models::{invite_name, sealed_box, MessageHash, MessageType, Rejection, RejectionCode};

/// The keys every invitation body must carry as non-empty strings.
const INVITATION_KEYS: [&str; 6] =
    ["bootstrapNode", "bootstrapAddr", "offeringAddr", "serviceAnnouncementMessage", "serviceOfferingID", "inviteName"];

pub fn check_content(
    envelope: &Envelope,
    decoded: &DecodedContent,
    sender_key: &VerifyingKey,
    node: &NodeIdentity,
) -> Result<(), Rejection> {
    let content = &decoded.content;
    if hash_text(&content.message_body) != envelope.body_hash {
        return Err(Rejection::new(RejectionCode::BodyHashMismatch, "bodyHash is not the hash of messageBody"));
    }
    let salt = unb64(&content.dossier_salt).map_err(|_| Rejection::malformed("dossierSalt is not strict base64"))?;
    if salt.len() != DOSSIER_SALT_LEN {
        return Err(Rejection::new(RejectionCode::BadDossierSalt, "dossierSalt is not 40 bytes"));
    }
    if dossier_hash(&salt, &decoded.packed) != envelope.dossier_hash {
        return Err(Rejection::new(RejectionCode::DossierHashMismatch, "dossierHash is not the HMAC of the content"));
    }
    let signature = TimestampedSignature::parse(&content.signature)
        .map_err(|_| Rejection::malformed("content signature is not a timestamped signature"))?;
    signature.timestamp().and_then(|t| node.verify_timestamp(&t)).map_err(timestamp_rejection)?;
    signature.verify_signature(&envelope.body_hash, sender_key).map_err(|_| {
        Rejection::new(RejectionCode::BadSignature, "content signature does not verify with the sender's key")
    })
}

pub fn check_invitation(body: &BodyMap) -> Result<(), Rejection> {
    match INVITATION_KEYS.iter().find(|key| body.non_empty_str(key).is_none()) {
        Some(key) => Err(Rejection::new(RejectionCode::InvalidInvite, format!("invitation body lacks {key}"))),
        None => Ok(()),
    }
}

/// What a valid registration claims beyond its message hash.
pub struct RegistrationClaims {
    pub claims: Vec<ClaimKey>,
    /// The address that sent the invitation.
    pub inviter: String,
}

fn key_proof_error(what: &str) -> Rejection {
    Rejection::new(RejectionCode::InvalidKeyProof, what.to_owned())
}

pub async fn check_registration(
    body: &Registration,
    node: &NodeIdentity,
    backends: &AuthorizerBackends,
) -> Result<RegistrationClaims, Rejection> {
    let not_found = || Rejection::new(RejectionCode::InviteNotFound, "inviteMsgID is not a stored invitation");
    let invite_hash = MessageHash::parse(&body.invite_msg_id).map_err(|_| not_found())?;
    let invitation = backends.store.message(&invite_hash).await.map_err(unavailable)?.ok_or_else(not_found)?;
    let invitation_content = invitation
        .public_content()
        .filter(|c| invitation.kind() == Some(MessageType::Registration) && c.body_type == BODY_INVITATION)
        .ok_or_else(not_found)?;
    let invitation_name = BodyMap::decode(&invitation_content.message_body)
        .ok()
        .and_then(|b| b.non_empty_str("inviteName").and_then(|n| unb64(n).ok()))
        .ok_or_else(not_found)?;

    let proof = unb64(&body.key_proof)
        .ok()
        .and_then(|sealed| sealed_box::open(node.key(), &sealed))
        .ok_or_else(|| key_proof_error("keyProof does not open with the node key"))?;
    let invite_key = from_msgpack::<KeyProof>(&proof)
        .ok()
        .and_then(|p| unb64(&p.key).ok())
        .filter(|k| k.len() == 32)
        .ok_or_else(|| key_proof_error("keyProof does not hold a 32-byte invite key"))?;
    let claimed_name = unb64(&body.invite_name)
        .ok()
        .and_then(|sealed| sealed_box::open(node.key(), &sealed))
        .ok_or_else(|| key_proof_error("inviteName does not open with the node key"))?;
    let invited_name = invite_name::decrypt(&invite_key, &invitation_name)
        .ok_or_else(|| key_proof_error("the invite key does not decrypt the invitation's inviteName"))?;
    if claimed_name != invited_name {
        return Err(Rejection::new(RejectionCode::InvalidInvite, "inviteName differs from the invitation's"));
    }

    let address = body.public_key.address();
    let registered = backends.store.persona(&address).await.map_err(unavailable)?.is_some();
    let key_claim = ClaimKey::Key(address);
    if registered || backends.claims.holder(&key_claim).await.map_err(unavailable)?.is_some() {
        return Err(conflict_rejection(&key_claim));
    }
    // Uniqueness holds over claims and over what is stored: rows written
    // before claims existed (or by other means) hold no claim.
    let nickname = nickname_key(&body.nickname);
    let nick_claim = ClaimKey::Nickname(nickname.clone());
    if nickname == nickname_key(NODE_NICKNAME)
        || backends.claims.holder(&nick_claim).await.map_err(unavailable)?.is_some()
        || backends.index.persona_by_nickname(&nickname).await.map_err(unavailable)?.is_some()
    {
        return Err(conflict_rejection(&nick_claim));
    }
    let redeemed = backends.index.invitation_redeemed(&invite_hash).await.map_err(unavailable)?;
    let invite_claim = ClaimKey::Invite(invite_hash);
    if redeemed || backends.claims.holder(&invite_claim).await.map_err(unavailable)?.is_some() {
        return Err(conflict_rejection(&invite_claim));
    }
    Ok(RegistrationClaims { claims: vec![key_claim, nick_claim, invite_claim], inviter: invitation.persona_sender })
}
