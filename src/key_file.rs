//! Key files (PROTOCOL.md section 2): private keys as PKCS#8 PEM files with
//! mode 0600, never overwritten. A key file that other users may read is
//! still loaded, with a warning, as ssh does.

use pm_models::keys::PersonaKey;
use std::io::Write;
use std::path::Path;

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

/// Reads the key at `path`.
pub fn load(path: &Path) -> Result<PersonaKey, KeyFileError> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| KeyFileError::Read { path: shown.clone(), source })?;
    warn_if_exposed(path);
    PersonaKey::from_pkcs8_pem(&text).ok_or(KeyFileError::NotEd25519 { path: shown })
}

/// Writes a new key file with mode 0600; never replaces an existing file.
pub fn save_new(key: &PersonaKey, path: &Path) -> Result<(), KeyFileError> {
    save_secret_new(path, &key.to_pkcs8_pem())
}

/// Writes `text` to a new file with mode 0600 (a key, an invite key);
/// never replaces an existing file.
pub fn save_secret_new(path: &Path, text: &str) -> Result<(), KeyFileError> {
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
    file.write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|source| KeyFileError::Write { path: shown, source })
}

/// Loads the key at `path`, or creates it there (mode 0600) if absent; true
/// when it was created.
pub fn load_or_create(path: &Path) -> Result<(PersonaKey, bool), KeyFileError> {
    if path.exists() {
        return Ok((load(path)?, false));
    }
    let key = PersonaKey::generate();
    match save_new(&key, path) {
        Ok(()) => Ok((key, true)),
        // Another process created it first: use theirs.
        Err(KeyFileError::Exists { .. }) => Ok((load(path)?, false)),
        Err(e) => Err(e),
    }
}

/// The permission bits of `path` that let others than its owner read or
/// write it, if any (0o077 of the mode).
pub fn exposed_bits(path: &Path) -> Option<u32> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path).ok()?.permissions().mode();
        let exposed = mode & 0o077;
        (exposed != 0).then_some(exposed)
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        None
    }
}

fn warn_if_exposed(path: &Path) {
    if let Some(bits) = exposed_bits(path) {
        let message =
            format!("key file {} is accessible by others (mode bits {bits:03o}); run chmod 600 on it", path.display());
        tracing::warn!(path = %path.display(), mode = format!("{bits:03o}"), "key file is accessible by others; run chmod 600 on it");
        // The CLI may run without a log subscriber: say it on stderr too.
        if !tracing::dispatcher::has_been_set() {
            eprintln!("warning: {message}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_key_file_has_mode_0600_and_is_never_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.key");
        let key = PersonaKey::generate();
        save_new(&key, &path).unwrap();
        assert_eq!(exposed_bits(&path), None);
        assert!(matches!(save_new(&PersonaKey::generate(), &path), Err(KeyFileError::Exists { .. })));
        assert_eq!(load(&path).unwrap().address(), key.address());
        assert!(!load_or_create(&path).unwrap().1, "an existing key is loaded, not created");
    }

    #[cfg(unix)]
    #[test]
    fn a_key_file_readable_by_others_is_reported() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.key");
        save_new(&PersonaKey::generate(), &path).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert_eq!(exposed_bits(&path), Some(0o044));
        assert!(load(&path).is_ok(), "a loose key still loads, with a warning");
    }
}
