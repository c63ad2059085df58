//! `pm keygen`, `pm pubkey` and `pm address`: new Ed25519 keys as PKCS#8
//! PEM files with mode 0600, the public key text of a key, and the address
//! of a key (PROTOCOL.md section 2).

use crate::bootstrap::read_public_key;
use pm_models::keys::PersonaKey;
use std::path::Path;

pub fn keygen(out: &Path) -> anyhow::Result<()> {
    let key = PersonaKey::generate();
    crate::key_file::save_new(&key, out)?;
    println!("{}", key.address());
    Ok(())
}

pub fn address(path: &Path) -> anyhow::Result<()> {
    println!("{}", read_public_key(path)?.address());
    Ok(())
}

pub fn pubkey(path: &Path) -> anyhow::Result<()> {
    println!("{}", read_public_key(path)?.as_str());
    Ok(())
}
