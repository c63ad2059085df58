//! Private keys: Ed25519 signing keys kept as PKCS#8 PEM files with mode 0600
//! (PROTOCOL.md section 2). A key never appears in a log: [`PersonaKey`]'s
//! `Debug` shows only its address.

use crate::address::Address;
use crate::public_key::PublicKeyPem;
use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey};
use ed25519_dalek::{Signer, SigningKey};

/// An Ed25519 public key, re-exported so services need not name the crate.
pub use ed25519_dalek::VerifyingKey;
use std::fmt;
use std::io::Write;
use std::path::Path;

/// An Ed25519 key pair with its public key text.
#[derive(Clone)]
pub struct PersonaKey {
    signing: SigningKey,
    public: PublicKeyPem,
}

#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    #[error("key file {path} already exists; refusing to overwrite it")]
    Exists { path: String },
    #[error("cannot read key file {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("cannot write key file {path}: {source}")]
    Write { path: String, source: std::io::Error },
    #[error("key file {path} is not a PKCS#8 Ed25519 private key")]
    NotEd25519 { path: String },
}

impl PersonaKey {
    pub fn generate() -> Self {
        Self::from_signing(SigningKey::generate(&mut rand::rngs::OsRng))
    }

    pub fn from_seed(seed: [u8; 32]) -> Self {
        Self::from_signing(SigningKey::from_bytes(&seed))
    }

    fn from_signing(signing: SigningKey) -> Self {
        let public = PublicKeyPem::from_key(signing.verifying_key());
        Self { signing, public }
    }

    pub fn from_pkcs8_pem(text: &str) -> Option<Self> {
        SigningKey::from_pkcs8_pem(text).ok().map(Self::from_signing)
    }

    pub fn to_pkcs8_pem(&self) -> String {
        self.signing.to_pkcs8_pem(LineEnding::LF).expect("an Ed25519 key always encodes as PKCS#8").to_string()
    }

    pub fn load(path: &Path) -> Result<Self, KeyFileError> {
        let shown = path.display().to_string();
        let text =
            std::fs::read_to_string(path).map_err(|source| KeyFileError::Read { path: shown.clone(), source })?;
        Self::from_pkcs8_pem(&text).ok_or(KeyFileError::NotEd25519 { path: shown })
    }

    /// Writes a new key file with mode 0600; never replaces an existing file.
    pub fn save_new(&self, path: &Path) -> Result<(), KeyFileError> {
        let shown = path.display().to_string();
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut file = options.open(path).map_err(|source| match source.kind() {
            std::io::ErrorKind::AlreadyExists => KeyFileError::Exists { path: shown.clone() },
            _ => KeyFileError::Write { path: shown.clone(), source },
        })?;
        file.write_all(self.to_pkcs8_pem().as_bytes())
            .and_then(|()| file.sync_all())
            .map_err(|source| KeyFileError::Write { path: shown, source })
    }

    /// Loads the key at `path`, or creates it there (mode 0600) if absent.
    pub fn load_or_create(path: &Path) -> Result<(Self, bool), KeyFileError> {
        if path.exists() {
            return Ok((Self::load(path)?, false));
        }
        let key = Self::generate();
        match key.save_new(path) {
            Ok(()) => Ok((key, true)),
            // Another process created it first: use theirs.
            Err(KeyFileError::Exists { .. }) => Ok((Self::load(path)?, false)),
            Err(e) => Err(e),
        }
    }

    pub fn sign(&self, bytes: &[u8]) -> [u8; 64] {
        self.signing.sign(bytes).to_bytes()
    }

    pub fn public(&self) -> &PublicKeyPem {
        &self.public
    }

    pub fn address(&self) -> Address {
        self.public.address()
    }

    /// The X25519 secret that opens sealed boxes to this key: the scalar bytes
    /// libsodium's `crypto_sign_ed25519_sk_to_curve25519` derives.
    pub fn x25519_secret(&self) -> [u8; 32] {
        self.signing.to_scalar_bytes()
    }
}

impl fmt::Debug for PersonaKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PersonaKey({})", self.address())
    }
}
