//! The job tokens ADO's checks hand the gate (`AuthToken`), sealed while they wait for their
//! callback (ADR 0015).
//!
//! A job token is a live credential: the pipeline's build identity for up to 48 hours. The gate
//! keeps it only until it has posted the check's result, and in between it is stored sealed
//! with XChaCha20-Poly1305 under a key that lives in a file, never in the database: a copy of
//! the database (a backup, a stolen disk) holds no usable token. The associated data binds each
//! sealed token to its tenant and decision, so a sealed value copied to another row or tenant
//! does not open.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, anyhow};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chacha20poly1305::aead::{Aead as _, Payload};
use chacha20poly1305::{KeyInit as _, XChaCha20Poly1305, XNonce};
use rand::RngCore as _;
use sha2::{Digest as _, Sha256};
use tollgate_domain::{SecretString, TenantId};
use zeroize::Zeroizing;

/// What a sealed token starts with: the format's version. A stored token without it was
/// written in clear by a release before sealing (still read, so an upgrade does not strand the
/// callbacks in flight; such a token is at most 48 hours old).
const SEALED_PREFIX: &str = "tg1.";

const KEY_BYTES: usize = 32;
const NONCE_BYTES: usize = 24;
/// Poly1305's tag, after the ciphertext.
const TAG_BYTES: usize = 16;

/// Why a stored token does not open.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// Sealed under another key: another replica's, or this one's before its key file changed.
    /// Worth trying again (elsewhere, or once the key file is put back); the token is kept.
    #[error(
        "the job token of decision {decision} was sealed under key {sealed_with}, and this \
         process has key {have} (every replica needs the same gate.token_key_file)"
    )]
    OtherKey {
        decision: String,
        sealed_with: String,
        have: String,
    },
    /// Damaged, or moved from another decision or tenant: no key opens it.
    #[error("the sealed job token of decision {decision} does not open: {why}")]
    Damaged { decision: String, why: &'static str },
}

/// The key tokens are sealed with, and a short id of it (8 hex digits of a hash of the key)
/// written beside each sealed token, so a token sealed under another key is named as such
/// instead of failing as damaged.
pub struct JobTokenSealer {
    cipher: XChaCha20Poly1305,
    key_id: String,
}

impl std::fmt::Debug for JobTokenSealer {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("JobTokenSealer")
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

impl JobTokenSealer {
    pub fn new(key: &[u8; KEY_BYTES]) -> Self {
        // A hash of its own, not the key's bare SHA-256 (the key id is stored with every token).
        let digest = Sha256::new()
            .chain_update(b"tollgate job token key id\0")
            .chain_update(key)
            .finalize();
        Self {
            cipher: XChaCha20Poly1305::new(key.into()),
            key_id: tollgate_audit::to_hex(&digest[..4]),
        }
    }

    /// A sealer with a random key that is never written down.
    #[cfg(test)]
    pub fn ephemeral() -> Self {
        let mut key = Zeroizing::new([0u8; KEY_BYTES]);
        rand::rngs::OsRng.fill_bytes(key.as_mut_slice());
        Self::new(&key)
    }

    /// Load the key file at `path`, or create it (mode 0600, a random key) when missing.
    /// Creation is atomic — written aside, then linked into place — so two processes starting
    /// together end up with the one key, whichever linked first: the file is read after it.
    pub fn load_or_create(path: &Path) -> Result<Self> {
        let reading = || format!("reading the job token key {}", path.display());
        let created = !path.try_exists().with_context(reading)? && create_key_file(path)?;
        // The key's text, like the key, is wiped when dropped (Zeroizing).
        let text = std::fs::read_to_string(path)
            .map(Zeroizing::new)
            .with_context(reading)?;
        let sealer = Self::parse(path, &text)?;
        if created {
            tracing::info!(path = %path.display(), key = sealer.key_id(),
                "created the gate's job token key; every replica needs this same file");
        }
        Ok(sealer)
    }

    fn parse(path: &Path, text: &str) -> Result<Self> {
        let lines = tollgate_audit::keys::private_key_lines(path, text)?;
        let key = match lines.as_slice() {
            [line] => decode_key(line),
            _ => None,
        }
        .ok_or_else(|| {
            anyhow!(
                "{}: a job token key file holds one line of {} hex digits (e.g. `openssl rand \
                 -hex 32`)",
                path.display(),
                KEY_BYTES * 2
            )
        })?;
        Ok(Self::new(&key))
    }

    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// `token` sealed for `decision` of `tenant`: `tg1.{key id}.{nonce and ciphertext, base64url}`.
    pub fn seal(&self, tenant: &TenantId, decision: &str, token: &SecretString) -> Result<String> {
        let mut nonce = [0u8; NONCE_BYTES];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let aad = associated_data(tenant, decision, &self.key_id);
        let sealed = self
            .cipher
            .encrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: token.expose().as_bytes(),
                    aad: &aad,
                },
            )
            .map_err(|_| anyhow!("sealing the job token of decision {decision} failed"))?;
        let mut body = Vec::with_capacity(NONCE_BYTES + sealed.len());
        body.extend_from_slice(&nonce);
        body.extend_from_slice(&sealed);
        Ok(format!(
            "{SEALED_PREFIX}{}.{}",
            self.key_id,
            URL_SAFE_NO_PAD.encode(body)
        ))
    }

    /// The token `stored` for `decision` of `tenant`: opened when sealed, as it is when stored
    /// in clear by an earlier release.
    pub fn open(
        &self,
        tenant: &TenantId,
        decision: &str,
        stored: &str,
    ) -> Result<SecretString, TokenError> {
        let damaged = |why| TokenError::Damaged {
            decision: decision.to_owned(),
            why,
        };
        let Some(sealed) = stored.strip_prefix(SEALED_PREFIX) else {
            return Ok(SecretString::new(stored));
        };
        let (key_id, body) = sealed.split_once('.').ok_or(damaged("no key id"))?;
        if key_id != self.key_id {
            return Err(TokenError::OtherKey {
                decision: decision.to_owned(),
                sealed_with: key_id.to_owned(),
                have: self.key_id.clone(),
            });
        }
        let body = URL_SAFE_NO_PAD
            .decode(body)
            .ok()
            .filter(|body| body.len() >= NONCE_BYTES + TAG_BYTES)
            .ok_or(damaged("not a nonce and a sealed value"))?;
        let (nonce, sealed) = body.split_at(NONCE_BYTES);
        let nonce: [u8; NONCE_BYTES] = nonce
            .try_into()
            .map_err(|_| damaged("not a nonce and a sealed value"))?;
        let aad = associated_data(tenant, decision, key_id);
        let token = self
            .cipher
            .decrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: sealed,
                    aad: &aad,
                },
            )
            .map_err(|_| damaged("damaged, or sealed for another decision or tenant"))?;
        let token = String::from_utf8(token).map_err(|_| damaged("not text"))?;
        Ok(SecretString::new(token))
    }
}

/// What a sealed token is bound to. Each part is preceded by its length, so no two different
/// (tenant, decision) pairs give the same bytes.
fn associated_data(tenant: &TenantId, decision: &str, key_id: &str) -> Vec<u8> {
    let mut aad = b"tollgate job token v1".to_vec();
    for part in [tenant.as_str(), decision, key_id] {
        aad.extend_from_slice(&(part.len() as u64).to_be_bytes());
        aad.extend_from_slice(part.as_bytes());
    }
    aad
}

fn decode_key(line: &str) -> Option<Zeroizing<[u8; KEY_BYTES]>> {
    if line.len() != KEY_BYTES * 2 {
        return None;
    }
    let digits: Zeroizing<Vec<u32>> = Zeroizing::new(
        line.chars()
            .map(|digit| digit.to_digit(16))
            .collect::<Option<_>>()?,
    );
    let mut key = Zeroizing::new([0u8; KEY_BYTES]);
    for (byte, pair) in key.iter_mut().zip(digits.chunks_exact(2)) {
        *byte = u8::try_from(pair[0] << 4 | pair[1]).ok()?;
    }
    Some(key)
}

/// Write a new key file at `path`; whether this process's key is the one in place (false when
/// another process linked its own first).
fn create_key_file(path: &Path) -> Result<bool> {
    let context = || format!("creating the job token key {}", path.display());
    let directory = path
        .parent()
        .filter(|parent| !parent.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(directory).with_context(context)?;
    let mut key = Zeroizing::new([0u8; KEY_BYTES]);
    rand::rngs::OsRng.fill_bytes(key.as_mut_slice());
    let hex = Zeroizing::new(tollgate_audit::to_hex(key.as_slice()));
    let aside = PathBuf::from(format!(
        "{}.{}-{}",
        path.display(),
        std::process::id(),
        rand::rngs::OsRng.next_u32()
    ));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let written = options.open(&aside).and_then(|mut file| {
        writeln!(
            file,
            "# tollgate job token key: keep secret; every replica needs this same file"
        )?;
        writeln!(file, "{}", hex.as_str())?;
        file.sync_all()
    });
    // Linked into place only when whole; a process that lost the race reads the winner's.
    let linked = written.and_then(|()| match std::fs::hard_link(&aside, path) {
        Ok(()) => Ok(true),
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        Err(error) => Err(error),
    });
    let _ = std::fs::remove_file(&aside);
    let linked = linked.with_context(|| {
        format!(
            "{} (on a file system without hard links, write the key yourself: `openssl rand \
             -hex 32 > {}` and `chmod 600` it)",
            context(),
            path.display()
        )
    })?;
    // The link and the removal are directory entries: synced, so a crash cannot lose the key
    // that tokens are about to be sealed under.
    #[cfg(unix)]
    std::fs::File::open(directory)
        .and_then(|directory| directory.sync_all())
        .with_context(context)?;
    Ok(linked)
}

/// The gate's sealer, its key file read (or created) the first time a token is sealed or
/// opened: commands that never touch a callback's token (`gate check`, `backtest`, `deploy`,
/// MCP) neither need the key nor leave a key file behind. `tollgate serve` loads it at start
/// ([`JobTokens::load`]), so a key file it cannot use stops it there.
pub struct JobTokens {
    path: PathBuf,
    sealer: std::sync::OnceLock<JobTokenSealer>,
}

impl JobTokens {
    pub fn at(path: PathBuf) -> Self {
        Self {
            path,
            sealer: std::sync::OnceLock::new(),
        }
    }

    /// The sealer, loading or creating the key file on first use.
    pub fn load(&self) -> Result<&JobTokenSealer> {
        if let Some(sealer) = self.sealer.get() {
            return Ok(sealer);
        }
        let sealer = JobTokenSealer::load_or_create(&self.path)
            .with_context(|| format!("the gate's job token key ({})", self.path.display()))?;
        // Two first uses at once both read the same file; either result will do.
        Ok(self.sealer.get_or_init(|| sealer))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tenant(name: &str) -> TenantId {
        TenantId::parse(name).unwrap()
    }

    #[test]
    fn a_sealed_token_opens_for_its_decision_and_nowhere_else() {
        let sealer = JobTokenSealer::ephemeral();
        let token = SecretString::new("eyJ0eXAiOiJKV1QifQ.job-token");
        let sealed = sealer.seal(&tenant("contoso"), "gd_1", &token).unwrap();
        assert!(sealed.starts_with("tg1."), "{sealed}");
        assert!(!sealed.contains("job-token"), "{sealed}");
        assert_eq!(
            sealer
                .open(&tenant("contoso"), "gd_1", &sealed)
                .unwrap()
                .expose(),
            token.expose()
        );
        // Another decision, another tenant, another key, a flipped character: refused.
        assert!(sealer.open(&tenant("contoso"), "gd_2", &sealed).is_err());
        assert!(sealer.open(&tenant("fabrikam"), "gd_1", &sealed).is_err());
        let other = JobTokenSealer::ephemeral();
        let error = other.open(&tenant("contoso"), "gd_1", &sealed).unwrap_err();
        assert!(error.to_string().contains("sealed under key"), "{error}");
        let mut damaged = sealed.clone().into_bytes();
        let last = damaged.len() - 2;
        damaged[last] = if damaged[last] == b'A' { b'B' } else { b'A' };
        let damaged = String::from_utf8(damaged).unwrap();
        assert!(sealer.open(&tenant("contoso"), "gd_1", &damaged).is_err());
        assert!(
            sealer
                .open(&tenant("contoso"), "gd_1", "tg1.nodot")
                .is_err()
        );
        // Two seals of one token differ (a random nonce each).
        assert_ne!(
            sealer.seal(&tenant("contoso"), "gd_1", &token).unwrap(),
            sealed
        );
    }

    #[test]
    fn a_token_stored_in_clear_by_an_earlier_release_reads_as_it_is() {
        let sealer = JobTokenSealer::ephemeral();
        let opened = sealer
            .open(&tenant("contoso"), "gd_1", "eyJ0eXAiOiJKV1QifQ.old")
            .unwrap();
        assert_eq!(opened.expose(), "eyJ0eXAiOiJKV1QifQ.old");
    }

    #[test]
    fn the_key_file_is_created_private_once_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys/tollgate.token-key");
        let first = JobTokenSealer::load_or_create(&path).unwrap();
        let again = JobTokenSealer::load_or_create(&path).unwrap();
        assert_eq!(first.key_id(), again.key_id());
        let sealed = first
            .seal(&tenant("contoso"), "gd_1", &SecretString::new("t"))
            .unwrap();
        assert_eq!(
            again
                .open(&tenant("contoso"), "gd_1", &sealed)
                .unwrap()
                .expose(),
            "t"
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
            let error = JobTokenSealer::load_or_create(&path).unwrap_err();
            assert!(error.to_string().contains("chmod 600"), "{error}");
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        // Nothing was left beside it.
        let names: Vec<_> = std::fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|entry| entry.unwrap().file_name())
            .collect();
        assert_eq!(names, [std::ffi::OsString::from("tollgate.token-key")]);
    }

    #[test]
    fn a_key_file_that_is_not_one_key_is_refused_with_what_it_should_hold() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token-key");
        for text in [
            "",
            "abc\n",
            &"0".repeat(63),
            &format!("{}\n{}", "0".repeat(64), "1".repeat(64)),
            &"g".repeat(64),
            &"+f".repeat(32),
        ] {
            std::fs::write(&path, text).unwrap();
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt as _;
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
            }
            let error = JobTokenSealer::load_or_create(&path).unwrap_err();
            assert!(
                error.to_string().contains("64 hex digits"),
                "{text:?}: {error}"
            );
        }
        std::fs::write(&path, format!("# a comment\n{}\n", "ab".repeat(32))).unwrap();
        assert!(JobTokenSealer::load_or_create(&path).is_ok());
    }
}
