//! Where a hostile value goes: each slot is one place of an envelope (a
//! field, a msgpack structure inside a field, a `T` inside a `Sign`), with a
//! builder that makes a fresh valid envelope, hands the slot's valid bytes to
//! the case, and puts whatever the case returns in their place, everything
//! around it made consistent again (hashes recomputed, signatures made over
//! the new value). So the one thing wrong with the envelope is the case's,
//! and the code the node answers is the code of that thing.

use crate::common::envelopes::{invitation_body, object_with_container, sign_with_raw_timestamp};
use crate::common::TestNode;
use pm_models::client::{self, random_bytes, ContentParts, Invitation};
use pm_models::codec::{b64, hash_text, to_msgpack, unb64};
use pm_models::content::{
    dossier_hash, KeyProof, MessageContent, RegistrationBody, BODY_INVITATION, BODY_REGISTRATION,
};
use pm_models::envelope::{Envelope, ObjectEntry};
use pm_models::keys::PersonaKey;
use pm_models::sealed_box;
use pm_models::signed_timestamp::SignedTimestamp;
use pm_models::timestamped_signature::TimestampedSignature;
use pm_models::MessageType;

/// Every slot the data files name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Slot {
    /// The packed content of a public message (its `message`).
    Content,
    /// An invitation's `messageBody`.
    InvitationBody,
    /// A registration's `messageBody`.
    RegistrationBody,
    /// `messageSign` (an `S`).
    MessageSign,
    /// The `T` inside `messageSign`.
    MessageSignT,
    /// The content's `signature` (an `S`).
    ContentSignature,
    /// The `T` inside the content's `signature`.
    ContentSignatureT,
    /// A container's `containerSign` (an `S`).
    ContainerSign,
    /// The `T` inside `containerSign`.
    ContainerSignT,
    /// The plaintext of a registration's `keyProof` (as bytes), or the
    /// `keyProof` text itself (as text).
    KeyProof,
    /// A registration's sealed `inviteName` text.
    SealedInviteName,
    /// A registration's `inviteMsgID`.
    InviteMsgId,
    DossierSalt,
    /// The `message` of a private message.
    PrivateMessage,
    ObjectContainer,
    MessageHash,
    BodyHash,
    DossierHash,
    ObjectHash,
    MetaHash,
    ContainerHash,
    Sender,
    AclReader,
}

impl Slot {
    pub fn from_name(name: &str) -> Slot {
        match name {
            "content" => Slot::Content,
            "invitation-body" => Slot::InvitationBody,
            "registration-body" => Slot::RegistrationBody,
            "message-sign" => Slot::MessageSign,
            "message-sign-t" => Slot::MessageSignT,
            "content-signature" => Slot::ContentSignature,
            "content-signature-t" => Slot::ContentSignatureT,
            "container-sign" => Slot::ContainerSign,
            "container-sign-t" => Slot::ContainerSignT,
            "key-proof" => Slot::KeyProof,
            "sealed-invite-name" => Slot::SealedInviteName,
            "invite-msg-id" => Slot::InviteMsgId,
            "dossier-salt" => Slot::DossierSalt,
            "private-message" => Slot::PrivateMessage,
            "object-container" => Slot::ObjectContainer,
            "message-hash" => Slot::MessageHash,
            "body-hash" => Slot::BodyHash,
            "dossier-hash" => Slot::DossierHash,
            "object-hash" => Slot::ObjectHash,
            "meta-hash" => Slot::MetaHash,
            "container-hash" => Slot::ContainerHash,
            "sender" => Slot::Sender,
            "acl-reader" => Slot::AclReader,
            other => panic!("no slot is called {other:?}"),
        }
    }

    /// Registrations need an invitation (and a fresh one when accepted).
    pub fn is_registration(self) -> bool {
        matches!(self, Slot::RegistrationBody | Slot::KeyProof | Slot::SealedInviteName | Slot::InviteMsgId)
    }
}

/// What a case puts in a slot.
pub enum Fill {
    /// Bytes, carried as base64 (sealed to the node first for `KeyProof`).
    Bytes(Vec<u8>),
    /// The slot's exact text.
    Text(String),
}

/// An envelope ready to send, with what must not be stored if it is refused.
pub struct Built {
    pub envelope: Envelope,
    /// The address a refused registration must not have become.
    pub registering: Option<String>,
}

/// A fresh node `T`, taken again when it gets old, and what registrations need.
pub struct Ctx<'a> {
    pub node: &'a TestNode,
    t: SignedTimestamp,
    fetched: std::time::Instant,
    /// The invitation refused registrations answer (a refusal never uses it up).
    pub invitation: Invitation,
}

impl<'a> Ctx<'a> {
    pub async fn new(node: &'a TestNode) -> Ctx<'a> {
        let invitation = node.invite(&node.genesis, "an invitation the hostile corpus answers").await;
        Ctx { node, t: node.timestamp().await, fetched: std::time::Instant::now(), invitation }
    }

    /// A `T` at most a minute old (the node accepts 420 s).
    pub async fn t(&mut self) -> SignedTimestamp {
        if self.fetched.elapsed() > std::time::Duration::from_secs(60) {
            self.t = self.node.timestamp().await;
            self.fetched = std::time::Instant::now();
        }
        self.t.clone()
    }

    fn genesis(&self) -> &PersonaKey {
        &self.node.genesis
    }

    /// Builds a fresh envelope with `slot` filled by `fill` (given the slot's
    /// valid bytes when it has some). Registrations answer `invitation`.
    pub async fn build(
        &mut self,
        slot: Slot,
        invitation: Option<&Invitation>,
        fill: &dyn Fn(Option<&[u8]>) -> Fill,
    ) -> Built {
        let t = self.t().await;
        let genesis = self.genesis().clone();
        let node_vk = *self.node.node_public.verifying_key();
        let text = |valid: Option<&[u8]>| match fill(valid) {
            Fill::Text(text) => text,
            Fill::Bytes(bytes) if slot == Slot::KeyProof => b64(sealed_box::seal(&node_vk, &bytes)),
            Fill::Bytes(bytes) => b64(bytes),
        };
        let assertion = || crate::common::envelopes::assertion(&genesis, &[genesis.public()], vec![], &t);
        let mut registering = None;
        let envelope = match slot {
            Slot::Content => {
                let (content, salt) = invitation_content(&genesis, &self.node.node_public.address(), &t, None);
                let message = text(Some(&content.pack()));
                let packed = unb64(&message).unwrap_or_default();
                let body_hash = hash_text(&content.message_body);
                public_envelope(&genesis, message, body_hash, dossier_hash(&salt, &packed), &t)
            }
            Slot::InvitationBody | Slot::ContentSignature | Slot::ContentSignatureT | Slot::DossierSalt => {
                let (mut content, salt) = invitation_content(&genesis, &self.node.node_public.address(), &t, None);
                let mut salt = salt.to_vec();
                match slot {
                    Slot::InvitationBody => {
                        content.message_body = text(Some(&unb64(&content.message_body).expect("base64")));
                        let body_hash = hash_text(&content.message_body);
                        content.signature = TimestampedSignature::sign(&genesis, &body_hash, &t).as_str().to_owned();
                    }
                    Slot::ContentSignature => {
                        content.signature = text(Some(&unb64(&content.signature).expect("base64")));
                    }
                    Slot::ContentSignatureT => {
                        let t_text = text(Some(&unb64(t.as_str()).expect("base64")));
                        content.signature =
                            sign_with_raw_timestamp(&genesis, &hash_text(&content.message_body), &t_text);
                    }
                    _ => {
                        content.dossier_salt = text(Some(&salt));
                        salt = unb64(&content.dossier_salt).unwrap_or_default();
                    }
                }
                let packed = content.pack();
                let body_hash = hash_text(&content.message_body);
                public_envelope(&genesis, b64(&packed), body_hash, dossier_hash(&salt, &packed), &t)
            }
            Slot::RegistrationBody | Slot::KeyProof | Slot::SealedInviteName | Slot::InviteMsgId => {
                let invitation = invitation.unwrap_or(&self.invitation);
                let key = PersonaKey::generate();
                registering = Some(key.address().to_string());
                let proof = to_msgpack(&KeyProof { key: b64(invitation.invite_key) });
                let mut body = RegistrationBody {
                    public_key: key.public().as_str().to_owned(),
                    public_nickname: format!("hostile {}", hex::encode(random_bytes::<6>())),
                    invite_msg_id: invitation.envelope.message_hash.clone(),
                    key_proof: b64(sealed_box::seal(&node_vk, &proof)),
                    invite_name: b64(sealed_box::seal(&node_vk, invitation.name.as_bytes())),
                };
                let body_bytes = match slot {
                    Slot::RegistrationBody => {
                        let text = text(Some(&to_msgpack(&body)));
                        unb64(&text).map_err(|_| text)
                    }
                    Slot::KeyProof => {
                        body.key_proof = text(Some(&proof));
                        Ok(to_msgpack(&body))
                    }
                    Slot::SealedInviteName => {
                        body.invite_name = text(None);
                        Ok(to_msgpack(&body))
                    }
                    _ => {
                        body.invite_msg_id = text(None);
                        Ok(to_msgpack(&body))
                    }
                };
                match body_bytes {
                    Ok(bytes) => client::public_envelope(
                        &key,
                        &ContentParts { body_type: BODY_REGISTRATION, body: bytes, dossier_salt: random_bytes() },
                        &t,
                    ),
                    // A messageBody that is not base64: built by hand.
                    Err(message_body) => {
                        let salt = random_bytes::<40>();
                        let body_hash = hash_text(&message_body);
                        let content = MessageContent {
                            body_type: BODY_REGISTRATION,
                            dossier_salt: b64(salt),
                            signature: TimestampedSignature::sign(&key, &body_hash, &t).as_str().to_owned(),
                            message_body,
                        };
                        let packed = content.pack();
                        public_envelope(&key, b64(&packed), body_hash, dossier_hash(&salt, &packed), &t)
                    }
                }
            }
            Slot::MessageSign => {
                let mut e = assertion();
                e.message_sign = text(Some(&unb64(&e.message_sign).expect("base64")));
                e
            }
            Slot::MessageSignT => {
                let mut e = assertion();
                let t_text = text(Some(&unb64(t.as_str()).expect("base64")));
                e.message_sign = sign_with_raw_timestamp(&genesis, &e.message_hash, &t_text);
                e
            }
            Slot::ContainerSign | Slot::ContainerSignT | Slot::ObjectContainer | Slot::ContainerHash => {
                let mut object = object_with_container(&genesis, &random_bytes::<64>(), &t);
                let container = object.container.as_mut().expect("a container");
                match slot {
                    Slot::ContainerSign => {
                        container.container_sign = text(Some(&unb64(&container.container_sign).expect("base64")))
                    }
                    Slot::ContainerSignT => {
                        let t_text = text(Some(&unb64(t.as_str()).expect("base64")));
                        container.container_sign =
                            sign_with_raw_timestamp(&genesis, &container.container_hash, &t_text);
                    }
                    Slot::ObjectContainer => {
                        container.object_container = text(None);
                        container.container_hash = hash_text(&container.object_container);
                        container.container_sign =
                            TimestampedSignature::sign(&genesis, &container.container_hash, &t).as_str().to_owned();
                    }
                    _ => {
                        container.container_hash = text(None);
                        container.container_sign =
                            TimestampedSignature::sign(&genesis, &container.container_hash, &t).as_str().to_owned();
                    }
                }
                crate::common::envelopes::assertion(&genesis, &[genesis.public()], vec![object], &t)
            }
            Slot::PrivateMessage => {
                let mut e = assertion();
                e.message = text(None);
                e.message_hash = hash_text(&e.message);
                e.message_sign = TimestampedSignature::sign(&genesis, &e.message_hash, &t).as_str().to_owned();
                e
            }
            Slot::MessageHash => {
                let mut e = assertion();
                e.message_hash = text(None);
                e.message_sign = TimestampedSignature::sign(&genesis, &e.message_hash, &t).as_str().to_owned();
                e
            }
            Slot::BodyHash => Envelope { body_hash: text(None), ..assertion() },
            Slot::DossierHash => Envelope { dossier_hash: text(None), ..assertion() },
            Slot::ObjectHash | Slot::MetaHash => {
                let mut object =
                    ObjectEntry { object_hash: b64(random_bytes::<32>()), meta_hashes: vec![], container: None };
                match slot {
                    Slot::ObjectHash => object.object_hash = text(None),
                    _ => object.meta_hashes = vec![b64(random_bytes::<32>()), text(None)],
                }
                crate::common::envelopes::assertion(&genesis, &[genesis.public()], vec![object], &t)
            }
            Slot::Sender => Envelope { sender: text(None), ..assertion() },
            Slot::AclReader => {
                let mut e = assertion();
                e.acl[0].reader = text(None);
                e
            }
        };
        Built { envelope, registering }
    }
}

/// A valid invitation content from `inviter` and its salt.
pub fn invitation_content(
    inviter: &PersonaKey,
    node_address: &pm_models::Address,
    t: &SignedTimestamp,
    body: Option<Vec<u8>>,
) -> (MessageContent, [u8; 40]) {
    let body = body.unwrap_or_else(|| to_msgpack(&invitation_body(inviter, node_address, &random_bytes(), "a name")));
    let salt = random_bytes::<40>();
    let message_body = b64(&body);
    let body_hash = hash_text(&message_body);
    let content = MessageContent {
        body_type: BODY_INVITATION,
        dossier_salt: b64(salt),
        message_body,
        signature: TimestampedSignature::sign(inviter, &body_hash, t).as_str().to_owned(),
    };
    (content, salt)
}

/// A `REGISTRATION`-family envelope around `message`, with the hashes given
/// and `messageSign` by `sender` over the hash of `message`.
pub fn public_envelope(
    sender: &PersonaKey,
    message: String,
    body_hash: String,
    dossier_hash: String,
    t: &SignedTimestamp,
) -> Envelope {
    let message_hash = hash_text(&message);
    Envelope {
        sender: sender.address().to_string(),
        message_type: MessageType::Registration,
        message_sign: TimestampedSignature::sign(sender, &message_hash, t).as_str().to_owned(),
        message_hash,
        dossier_hash,
        body_hash,
        acl: vec![],
        objects: vec![],
        message,
    }
}
