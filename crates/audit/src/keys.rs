//! The log's keys on disk. The key file holds two private keys, one per line: the log key
//! that signs checkpoints (named as the origin) and the clock key whose cosignature dates
//! them. It is created on first use with mode 0600 and never overwritten. The public key
//! file beside it (`….pub`) lists the verifier keys: what `audit verify --trusted-keys`
//! reads, and what an auditor keeps.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use crate::note::{NoteError, NoteSigner, NoteVerifier};

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Key { path: PathBuf, source: NoteError },
    #[error("{path}: {reason}")]
    Invalid { path: PathBuf, reason: String },
}

/// The log key and the clock key.
#[derive(Clone, Debug)]
pub struct LogKeys {
    pub log: NoteSigner,
    pub clock: NoteSigner,
}

impl LogKeys {
    pub fn generate(origin: &str) -> Result<Self, NoteError> {
        Ok(Self {
            log: NoteSigner::generate(origin, false)?,
            clock: NoteSigner::generate(&format!("{origin}-clock"), true)?,
        })
    }

    pub fn verifiers(&self) -> Vec<NoteVerifier> {
        vec![self.log.verifier(), self.clock.verifier()]
    }

    /// Load the key file at `path`, or create it (and its `.pub`) for `origin` when missing.
    pub fn load_or_create(path: &Path, origin: &str) -> Result<Self, KeyError> {
        match std::fs::read_to_string(path) {
            Ok(text) => Self::parse(path, &text),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                let keys = Self::generate(origin).map_err(|source| KeyError::Key {
                    path: path.to_owned(),
                    source,
                })?;
                keys.save(path)?;
                Ok(keys)
            }
            Err(source) => Err(KeyError::Io {
                path: path.to_owned(),
                source,
            }),
        }
    }

    fn parse(path: &Path, text: &str) -> Result<Self, KeyError> {
        let lines = private_key_lines(path, text)?;
        let [log, clock] = lines.as_slice() else {
            return Err(KeyError::Invalid {
                path: path.to_owned(),
                reason: "a key file holds two PRIVATE+KEY lines: the log key, then the clock key"
                    .to_owned(),
            });
        };
        let parse = |line: &str| {
            NoteSigner::from_key_string(line).map_err(|source| KeyError::Key {
                path: path.to_owned(),
                source,
            })
        };
        let keys = Self {
            log: parse(log)?,
            clock: parse(clock)?,
        };
        if keys.log.is_cosigner() || !keys.clock.is_cosigner() {
            return Err(KeyError::Invalid {
                path: path.to_owned(),
                reason: "the first key must be a log key (type 1), the second a clock key (type 4)"
                    .to_owned(),
            });
        }
        Ok(keys)
    }

    fn save(&self, path: &Path) -> Result<(), KeyError> {
        let io = |source| KeyError::Io {
            path: path.to_owned(),
            source,
        };
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(io)?;
        }
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt as _;
            options.mode(0o600);
        }
        let mut file = options.open(path).map_err(io)?;
        writeln!(
            file,
            "# tollgate audit log keys: keep secret. Public keys: {}",
            public_path(path).display()
        )
        .and_then(|()| writeln!(file, "{}", self.log.to_key_string()))
        .and_then(|()| writeln!(file, "{}", self.clock.to_key_string()))
        .and_then(|()| file.sync_all())
        .map_err(io)?;
        let public = public_path(path);
        std::fs::write(&public, public_keys_text(&self.verifiers())).map_err(|source| {
            KeyError::Io {
                path: public.clone(),
                source,
            }
        })
    }
}

impl LogKeys {
    /// Replace the key file at `path` with `new` keys: the old file is kept beside it as
    /// `….retired-<unix time>` (0600), and the public key file keeps the old verifier keys
    /// and gains the new ones, so checkpoints signed before and after both verify.
    pub fn replace_file(path: &Path, new: &LogKeys) -> Result<PathBuf, KeyError> {
        let io = |source| KeyError::Io {
            path: path.to_owned(),
            source,
        };
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let mut retired = path.as_os_str().to_owned();
        retired.push(format!(".retired-{stamp}"));
        let retired = PathBuf::from(retired);
        std::fs::rename(path, &retired).map_err(io)?;
        let public = public_path(path);
        let previous = std::fs::read_to_string(&public).unwrap_or_default();
        // save() writes the key file and a fresh public file; the old public keys go back in.
        let _ = std::fs::remove_file(&public);
        new.save(path)?;
        let mut text = previous;
        for verifier in new.verifiers() {
            text.push_str(&verifier.to_key_string());
            text.push('\n');
        }
        std::fs::write(&public, text).map_err(|source| KeyError::Io {
            path: public.clone(),
            source,
        })?;
        Ok(retired)
    }
}

/// `key.file` → `key.file.pub`.
pub fn public_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".pub");
    PathBuf::from(name)
}

pub fn public_keys_text(verifiers: &[NoteVerifier]) -> String {
    let mut text = String::from("# tollgate audit log verifier keys (log key, clock key)\n");
    for verifier in verifiers {
        text.push_str(&verifier.to_key_string());
        text.push('\n');
    }
    text
}

/// Read a trusted-keys file: one verifier key per line, `#` comments.
pub fn read_trusted(path: &Path) -> Result<Vec<NoteVerifier>, KeyError> {
    let text = std::fs::read_to_string(path).map_err(|source| KeyError::Io {
        path: path.to_owned(),
        source,
    })?;
    let keys: Vec<NoteVerifier> = text
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(|line| {
            NoteVerifier::parse(line).map_err(|source| KeyError::Key {
                path: path.to_owned(),
                source,
            })
        })
        .collect::<Result<_, _>>()?;
    if keys.is_empty() {
        return Err(KeyError::Invalid {
            path: path.to_owned(),
            reason: "no verifier key in the file".to_owned(),
        });
    }
    Ok(keys)
}

/// A private key file others can read is refused: whoever reads it can sign history.
/// The lines of the key file at `path` whose `text` was read, without comments (`#`) and
/// blank lines, once it is known that only its owner can read it: how tollgate keeps every
/// private key file (this log's keys, the gate's job token key).
pub fn private_key_lines<'a>(path: &Path, text: &'a str) -> Result<Vec<&'a str>, KeyError> {
    check_private(path)?;
    Ok(text
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .collect())
}

fn check_private(path: &Path) -> Result<(), KeyError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(path)
            .map_err(|source| KeyError::Io {
                path: path.to_owned(),
                source,
            })?
            .permissions()
            .mode();
        if mode & 0o077 != 0 {
            return Err(KeyError::Invalid {
                path: path.to_owned(),
                reason: format!(
                    "the key file is readable by others (mode {:o}); chmod 600 it",
                    mode & 0o777
                ),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "a test reports failure by panicking")]

    use super::*;

    #[test]
    fn keys_are_created_private_reloaded_and_their_public_half_trusted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.key");
        let created = LogKeys::load_or_create(&path, "tollgate.test/acme").unwrap();
        let loaded = LogKeys::load_or_create(&path, "ignored").unwrap();
        assert_eq!(created.verifiers(), loaded.verifiers());
        assert_eq!(
            read_trusted(&public_path(&path)).unwrap(),
            created.verifiers()
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
            assert!(LogKeys::load_or_create(&path, "x").is_err());
        }
        std::fs::write(dir.path().join("bad.key"), "nonsense\n").unwrap();
        assert!(read_trusted(&dir.path().join("bad.key")).is_err());
    }
}
