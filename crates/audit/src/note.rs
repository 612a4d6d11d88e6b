//! C2SP signed notes (Ed25519, type 0x01), the C2SP Ed25519 cosignature with a timestamp
//! (type 0x04) that gives each checkpoint a signed time, and verifier key strings
//! (`name+hexid+base64(type || key)`).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};

const ED25519: u8 = 0x01;
const COSIGNATURE_V1: u8 = 0x04;
/// U+2014 EM DASH, then a space: how every signature line starts.
const SIGNATURE_PREFIX: &str = "\u{2014} ";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoteError {
    #[error("malformed note: {0}")]
    Malformed(&'static str),
    #[error("malformed key: {0}")]
    MalformedKey(&'static str),
    #[error("no signature by a trusted key")]
    Unverified,
    #[error("the signature by {0} does not verify")]
    BadSignature(String),
}

/// Key ids: the first four bytes of SHA-256(name || "\n" || type || public key).
fn key_id(name: &str, key_type: u8, public: &[u8; 32]) -> [u8; 4] {
    let mut hasher = Sha256::new();
    hasher.update(name.as_bytes());
    hasher.update(b"\n");
    hasher.update([key_type]);
    hasher.update(public);
    let digest = hasher.finalize();
    [digest[0], digest[1], digest[2], digest[3]]
}

/// Key names: non-empty, no whitespace, no `+`.
fn valid_name(name: &str) -> bool {
    !name.is_empty() && !name.chars().any(|c| c.is_whitespace() || c == '+')
}

use crate::to_hex as hex;

/// A private key that signs notes as `name`.
#[derive(Clone)]
pub struct NoteSigner {
    name: String,
    key: SigningKey,
    key_type: u8,
}

impl std::fmt::Debug for NoteSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NoteSigner")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl NoteSigner {
    /// A log key (signed-note type 0x01).
    pub fn new(name: &str, seed: [u8; 32]) -> Result<Self, NoteError> {
        Self::of_type(name, seed, ED25519)
    }

    /// A cosigner key that adds a signed timestamp (type 0x04).
    pub fn cosigner(name: &str, seed: [u8; 32]) -> Result<Self, NoteError> {
        Self::of_type(name, seed, COSIGNATURE_V1)
    }

    fn of_type(name: &str, seed: [u8; 32], key_type: u8) -> Result<Self, NoteError> {
        if !valid_name(name) {
            return Err(NoteError::MalformedKey(
                "a key name is non-empty, without spaces or +",
            ));
        }
        Ok(Self {
            name: name.to_owned(),
            key: SigningKey::from_bytes(&seed),
            key_type,
        })
    }

    pub fn generate(name: &str, cosigner: bool) -> Result<Self, NoteError> {
        let mut seed = [0_u8; 32];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut seed);
        if cosigner {
            Self::cosigner(name, seed)
        } else {
            Self::new(name, seed)
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The same key under another name (one install's key signs each tenant's log under
    /// that log's origin).
    pub fn renamed(&self, name: &str) -> Result<Self, NoteError> {
        Self::of_type(name, self.seed(), self.key_type)
    }

    pub fn seed(&self) -> [u8; 32] {
        self.key.to_bytes()
    }

    pub fn is_cosigner(&self) -> bool {
        self.key_type == COSIGNATURE_V1
    }

    pub fn verifier(&self) -> NoteVerifier {
        let public = self.key.verifying_key();
        NoteVerifier {
            name: self.name.clone(),
            id: key_id(&self.name, self.key_type, public.as_bytes()),
            key: public,
            key_type: self.key_type,
        }
    }

    /// The private key as a string (`PRIVATE+KEY+name+hexid+base64(type || seed)`), for key
    /// files.
    pub fn to_key_string(&self) -> String {
        let verifier = self.verifier();
        let mut bytes = vec![self.key_type];
        bytes.extend_from_slice(&self.seed());
        format!(
            "PRIVATE+KEY+{}+{}+{}",
            self.name,
            hex(&verifier.id),
            STANDARD.encode(bytes)
        )
    }

    pub fn from_key_string(text: &str) -> Result<Self, NoteError> {
        let rest = text
            .trim()
            .strip_prefix("PRIVATE+KEY+")
            .ok_or(NoteError::MalformedKey(
                "a private key starts with PRIVATE+KEY+",
            ))?;
        let KeyParts {
            name,
            id,
            key_type,
            key,
        } = split_key(rest)?;
        let seed: [u8; 32] = key
            .try_into()
            .map_err(|_| NoteError::MalformedKey("an Ed25519 seed is 32 bytes"))?;
        let signer = Self::of_type(name, seed, key_type)?;
        if signer.verifier().id != id {
            return Err(NoteError::MalformedKey("the key id does not match the key"));
        }
        Ok(signer)
    }

    /// One signature line for `text` (the note text, ending in a newline).
    fn signature_line(&self, text: &str, timestamp: u64) -> String {
        let id = self.verifier().id;
        let mut blob = id.to_vec();
        if self.key_type == COSIGNATURE_V1 {
            let message = cosigned_message(text, timestamp);
            blob.extend_from_slice(&timestamp.to_be_bytes());
            blob.extend_from_slice(&self.key.sign(message.as_bytes()).to_bytes());
        } else {
            blob.extend_from_slice(&self.key.sign(text.as_bytes()).to_bytes());
        }
        format!(
            "{SIGNATURE_PREFIX}{} {}\n",
            self.name,
            STANDARD.encode(blob)
        )
    }
}

/// What a timestamped cosignature signs: a header naming the version and time, then the
/// checkpoint text.
fn cosigned_message(text: &str, timestamp: u64) -> String {
    format!("cosignature/v1\ntime {timestamp}\n{text}")
}

/// A key string's parts: name, key id, key type, key bytes.
struct KeyParts<'a> {
    name: &'a str,
    id: [u8; 4],
    key_type: u8,
    key: Vec<u8>,
}

fn split_key(text: &str) -> Result<KeyParts<'_>, NoteError> {
    let mut parts = text.splitn(3, '+');
    let (Some(name), Some(id), Some(key)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(NoteError::MalformedKey("a key is name+id+key"));
    };
    if !valid_name(name) || id.len() != 8 {
        return Err(NoteError::MalformedKey("a key is name+8-hex-digit-id+key"));
    }
    let id_value = u32::from_str_radix(id, 16)
        .map_err(|_| NoteError::MalformedKey("the key id is not hex"))?;
    if id.chars().any(|c| c.is_ascii_uppercase()) {
        return Err(NoteError::MalformedKey("the key id is lower-case hex"));
    }
    let decoded = STANDARD
        .decode(key)
        .map_err(|_| NoteError::MalformedKey("the key is not base64"))?;
    let Some((&key_type, key)) = decoded.split_first() else {
        return Err(NoteError::MalformedKey("the key is empty"));
    };
    if key_type != ED25519 && key_type != COSIGNATURE_V1 {
        return Err(NoteError::MalformedKey("unknown key type"));
    }
    Ok(KeyParts {
        name,
        id: id_value.to_be_bytes(),
        key_type,
        key: key.to_vec(),
    })
}

/// A public key that verifies notes signed as `name`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NoteVerifier {
    name: String,
    id: [u8; 4],
    key: VerifyingKey,
    key_type: u8,
}

impl NoteVerifier {
    pub fn parse(text: &str) -> Result<Self, NoteError> {
        let KeyParts {
            name,
            id,
            key_type,
            key,
        } = split_key(text.trim())?;
        let public: [u8; 32] = key
            .try_into()
            .map_err(|_| NoteError::MalformedKey("an Ed25519 public key is 32 bytes"))?;
        if key_id(name, key_type, &public) != id {
            return Err(NoteError::MalformedKey("the key id does not match the key"));
        }
        let key = VerifyingKey::from_bytes(&public)
            .map_err(|_| NoteError::MalformedKey("not an Ed25519 public key"))?;
        Ok(Self {
            name: name.to_owned(),
            id,
            key,
            key_type,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn is_cosigner(&self) -> bool {
        self.key_type == COSIGNATURE_V1
    }

    /// The same public key under another name.
    pub fn renamed(&self, name: &str) -> Result<Self, NoteError> {
        if !valid_name(name) {
            return Err(NoteError::MalformedKey(
                "a key name is non-empty, without spaces or +",
            ));
        }
        Ok(Self {
            name: name.to_owned(),
            id: key_id(name, self.key_type, self.key.as_bytes()),
            key: self.key,
            key_type: self.key_type,
        })
    }

    /// `name+hexid+base64(type || key)`.
    pub fn to_key_string(&self) -> String {
        let mut bytes = vec![self.key_type];
        bytes.extend_from_slice(self.key.as_bytes());
        format!("{}+{}+{}", self.name, hex(&self.id), STANDARD.encode(bytes))
    }
}

/// A signature on a note, as parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NoteSignature {
    pub name: String,
    pub id: [u8; 4],
    /// The signature bytes after the key id (a cosignature: timestamp then signature).
    pub blob: Vec<u8>,
}

/// A note: text and signatures.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Note {
    pub text: String,
    pub signatures: Vec<NoteSignature>,
}

/// What verification established.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verified {
    /// Names of the trusted keys whose signature verified.
    pub signed_by: Vec<String>,
    /// The newest timestamp a trusted cosigner vouched for (Unix seconds).
    pub timestamp: Option<u64>,
}

fn valid_text(text: &str) -> bool {
    text.ends_with('\n')
        && text
            .chars()
            .all(|c| c == '\n' || !(c.is_control() || c == '\u{7f}'))
}

/// Sign `text` (which must end in a newline and hold no control characters) with every
/// signer; cosigners stamp `timestamp`.
pub fn sign(text: &str, signers: &[&NoteSigner], timestamp: u64) -> Result<String, NoteError> {
    if !valid_text(text) {
        return Err(NoteError::Malformed(
            "the text must end in a newline and hold no control characters",
        ));
    }
    let mut note = format!("{text}\n");
    for signer in signers {
        note.push_str(&signer.signature_line(text, timestamp));
    }
    Ok(note)
}

/// Split a signed note into text and signatures, strictly: a blank line separates them,
/// every signature line is well formed and ends in a newline, nothing follows.
pub fn parse(note: &str) -> Result<Note, NoteError> {
    if note.len() > 1 << 20 {
        return Err(NoteError::Malformed("larger than 1 MiB"));
    }
    let split = note
        .rfind("\n\n")
        .ok_or(NoteError::Malformed("no blank line before the signatures"))?;
    let (text, signatures) = note.split_at(split + 1);
    let signatures = &signatures[1..];
    if !valid_text(text) {
        return Err(NoteError::Malformed("the text holds control characters"));
    }
    if signatures.is_empty() || !signatures.ends_with('\n') {
        return Err(NoteError::Malformed(
            "the signature block is empty or not newline-terminated",
        ));
    }
    let mut parsed = Vec::new();
    for line in signatures[..signatures.len() - 1].split('\n') {
        let rest = line
            .strip_prefix(SIGNATURE_PREFIX)
            .ok_or(NoteError::Malformed(
                "a signature line starts with an em dash and a space",
            ))?;
        let (name, blob) = rest.split_once(' ').ok_or(NoteError::Malformed(
            "a signature line is name, space, base64",
        ))?;
        if !valid_name(name) {
            return Err(NoteError::Malformed("a signature's key name is invalid"));
        }
        let blob = STANDARD
            .decode(blob)
            .map_err(|_| NoteError::Malformed("a signature is not base64"))?;
        if blob.len() < 5 {
            return Err(NoteError::Malformed("a signature is too short"));
        }
        parsed.push(NoteSignature {
            name: name.to_owned(),
            id: [blob[0], blob[1], blob[2], blob[3]],
            blob: blob[4..].to_vec(),
        });
    }
    if parsed.len() > 100 {
        return Err(NoteError::Malformed("more than 100 signatures"));
    }
    Ok(Note {
        text: text.to_owned(),
        signatures: parsed,
    })
}

/// Verify `note` against trusted keys: at least one trusted log key (type 0x01) must have
/// signed it; a signature by a trusted key that does not verify is an error; signatures by
/// unknown keys are ignored (others may witness the same checkpoint).
pub fn open(note: &str, trusted: &[NoteVerifier]) -> Result<(Note, Verified), NoteError> {
    let parsed = parse(note)?;
    let mut verified = Verified {
        signed_by: Vec::new(),
        timestamp: None,
    };
    for signature in &parsed.signatures {
        let Some(key) = trusted
            .iter()
            .find(|key| key.name == signature.name && key.id == signature.id)
        else {
            continue;
        };
        let bad = || NoteError::BadSignature(signature.name.clone());
        if key.key_type == COSIGNATURE_V1 {
            if signature.blob.len() != 8 + 64 {
                return Err(bad());
            }
            let mut stamp = [0_u8; 8];
            stamp.copy_from_slice(&signature.blob[..8]);
            let timestamp = u64::from_be_bytes(stamp);
            let sig = Signature::from_slice(&signature.blob[8..]).map_err(|_| bad())?;
            key.key
                .verify_strict(cosigned_message(&parsed.text, timestamp).as_bytes(), &sig)
                .map_err(|_| bad())?;
            verified.timestamp = verified.timestamp.max(Some(timestamp));
        } else {
            let sig = Signature::from_slice(&signature.blob).map_err(|_| bad())?;
            key.key
                .verify_strict(parsed.text.as_bytes(), &sig)
                .map_err(|_| bad())?;
            verified.signed_by.push(key.name.clone());
        }
    }
    if verified.signed_by.is_empty() {
        return Err(NoteError::Unverified);
    }
    Ok((parsed, verified))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signed_and_cosigned_note_opens_with_its_keys_only() {
        let log = NoteSigner::new("tollgate.example/acme", [7; 32]).unwrap();
        let clock = NoteSigner::cosigner("tollgate.example/acme-clock", [8; 32]).unwrap();
        let note = sign(
            "tollgate.example/acme\n3\nAAAA\n",
            &[&log, &clock],
            1_700_000_000,
        )
        .unwrap();
        let (parsed, verified) = open(&note, &[log.verifier(), clock.verifier()]).unwrap();
        assert_eq!(parsed.text, "tollgate.example/acme\n3\nAAAA\n");
        assert_eq!(verified.signed_by, ["tollgate.example/acme"]);
        assert_eq!(verified.timestamp, Some(1_700_000_000));
        // The clock alone is not the log.
        assert_eq!(open(&note, &[clock.verifier()]), Err(NoteError::Unverified));
        // A changed text fails every signature.
        let forged = note.replacen("\n3\n", "\n4\n", 1);
        assert!(matches!(
            open(&forged, &[log.verifier()]),
            Err(NoteError::BadSignature(_))
        ));
        // Keys survive their string forms.
        let again = NoteSigner::from_key_string(&log.to_key_string()).unwrap();
        assert_eq!(again.verifier(), log.verifier());
        assert_eq!(
            NoteVerifier::parse(&clock.verifier().to_key_string()).unwrap(),
            clock.verifier()
        );
    }
}
