//! Step 6 for private messages (PROTOCOL.md section 5): the ACL, then the
//! objects. The node cannot read the content, so it checks only what it can:
//! every reader is registered, and every container's hash and signature.

use crate::node::NodeIdentity;
use crate::rejections::unavailable;
use crate::AuthorizerBackends;
use pm_models::codec::hash_text;
use pm_models::envelope::Envelope;
use pm_models::keys::VerifyingKey;
use pm_models::timestamped_signature::TimestampedSignature;
use pm_models::{Address, Rejection, RejectionCode};

pub async fn check_acl(readers: &[Address], backends: &AuthorizerBackends) -> Result<(), Rejection> {
    if readers.is_empty() {
        return Err(Rejection::malformed("ACL must name at least one reader for a private message"));
    }
    let found = backends.store.personas(readers).await.map_err(unavailable)?;
    match readers.iter().zip(&found).find(|(_, persona)| persona.is_none()) {
        Some((reader, _)) => Err(Rejection::new(
            RejectionCode::UnknownAclReader,
            format!("ACL reader {reader} is not a registered persona"),
        )),
        None => Ok(()),
    }
}

pub fn check_objects(envelope: &Envelope, sender_key: &VerifyingKey, node: &NodeIdentity) -> Result<(), Rejection> {
    for (index, object) in envelope.objects.iter().enumerate() {
        let Some(container) = &object.container else { continue };
        let bad = |what: &str| Rejection::new(RejectionCode::BadObject, format!("objects[{index}].container: {what}"));
        if hash_text(&container.object_container) != container.container_hash {
            return Err(bad("containerHash is not the hash of objectContainer"));
        }
        let sign = TimestampedSignature::parse(&container.container_sign)
            .map_err(|_| bad("containerSign is not a timestamped signature"))?;
        sign.timestamp()
            .and_then(|t| node.verify_timestamp(&t))
            .map_err(|_| bad("containerSign's timestamp is not signed by this node"))?;
        sign.verify_signature(&container.container_hash, sender_key)
            .map_err(|_| bad("containerSign does not verify"))?;
    }
    Ok(())
}
