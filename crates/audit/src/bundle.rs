//! Export bundles and their offline verification.
//!
//! A bundle is a directory:
//! - `manifest.json`: `{"format": "tollgate-audit-bundle/1", "origin": …, "size": N}`;
//! - `leaves.jsonl`: line i is leaf i's record, its exact canonical bytes; a leaf whose
//!   payload retention withheld is `{"withheld":true,"seq":i}`;
//! - `leaf_hashes.txt`: line i is leaf i's hash in hex, as the log stored it (untrusted,
//!   like everything in the bundle: it only lets the verifier name the exact leaf whose
//!   bytes changed, and carries the hashes of withheld leaves);
//! - `checkpoints.jsonl`: one `{"note": "<signed checkpoint>"}` per line, oldest first.
//!
//! Trust comes only from the signed checkpoints, checked with keys the verifier already
//! holds. The verifier streams: memory is O(log n) in the number of leaves.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::canonical::{self, Scan};
use crate::checkpoint::Checkpoint;
use crate::merkle::{self, Frontier, Hash};
use crate::note::{self, NoteError, NoteVerifier};
use crate::record;

pub const FORMAT: &str = "tollgate-audit-bundle/1";
/// No record is larger (32 KiB) — a longer line is refused before it is parsed.
const MAX_LINE: usize = 64 * 1024;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: String,
    pub origin: String,
    pub size: u64,
}

/// What verification found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Report {
    /// Every leaf up to the newest checkpoint is where it belongs and unchanged.
    Verified {
        size: u64,
        checkpoints: usize,
        withheld: u64,
        /// The newest timestamp a trusted cosigner vouched for.
        timestamp: Option<u64>,
    },
    /// Evidence of tampering: the first bad leaf index and why.
    Tamper { index: u64, reason: String },
    /// Verification could not finish: files missing, no trusted checkpoint, …
    Incomplete { reason: String },
}

impl Report {
    /// 0 verified, 1 tamper evidence, 2 incomplete.
    pub fn exit_code(&self) -> i32 {
        match self {
            Self::Verified { .. } => 0,
            Self::Tamper { .. } => 1,
            Self::Incomplete { .. } => 2,
        }
    }
}

use crate::to_hex as hex;

fn unhex(text: &str) -> Option<Hash> {
    if text.len() != 64 || !text.is_ascii() {
        return None;
    }
    let nibble = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    let digits = text.as_bytes();
    let mut hash = [0_u8; 32];
    for (i, byte) in hash.iter_mut().enumerate() {
        *byte = nibble(digits[2 * i])? << 4 | nibble(digits[2 * i + 1])?;
    }
    Some(hash)
}

/// Writes a bundle, leaf by leaf.
pub struct BundleWriter {
    dir: std::path::PathBuf,
    origin: String,
    leaves: std::io::BufWriter<std::fs::File>,
    hashes: std::io::BufWriter<std::fs::File>,
    checkpoints: std::io::BufWriter<std::fs::File>,
    size: u64,
}

impl BundleWriter {
    /// Create the bundle's files in `dir` (created if missing; existing bundle files are
    /// refused, so an export never mixes with an older one).
    pub fn create(dir: &Path, origin: &str) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let create = |name: &str| {
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(dir.join(name))
                .map(std::io::BufWriter::new)
        };
        Ok(Self {
            dir: dir.to_owned(),
            origin: origin.to_owned(),
            leaves: create("leaves.jsonl")?,
            hashes: create("leaf_hashes.txt")?,
            checkpoints: create("checkpoints.jsonl")?,
            size: 0,
        })
    }

    /// The next leaf: its bytes (`None` when withheld) and stored hash.
    pub fn leaf(&mut self, bytes: Option<&[u8]>, hash: &Hash) -> std::io::Result<()> {
        match bytes {
            Some(bytes) => self.leaves.write_all(bytes)?,
            None => write!(self.leaves, r#"{{"withheld":true,"seq":{}}}"#, self.size)?,
        }
        self.leaves.write_all(b"\n")?;
        writeln!(self.hashes, "{}", hex(hash))?;
        self.size += 1;
        Ok(())
    }

    pub fn checkpoint(&mut self, signed_note: &str) -> std::io::Result<()> {
        let line = serde_json::json!({ "note": signed_note }).to_string();
        writeln!(self.checkpoints, "{line}")
    }

    /// Flush everything and write the manifest last, so a bundle with a manifest is whole.
    pub fn finish(mut self) -> std::io::Result<Manifest> {
        self.leaves.flush()?;
        self.hashes.flush()?;
        self.checkpoints.flush()?;
        let manifest = Manifest {
            format: FORMAT.to_owned(),
            origin: self.origin.clone(),
            size: self.size,
        };
        let text = serde_json::to_string_pretty(&manifest).map_err(std::io::Error::other)?;
        std::fs::write(self.dir.join("manifest.json"), text)?;
        Ok(manifest)
    }
}

/// Verify the bundle in `dir` with `trusted` keys.
pub fn verify_dir(dir: &Path, trusted: &[NoteVerifier]) -> Report {
    let open = |name: &str| {
        std::fs::File::open(dir.join(name)).map(|file| BufReader::with_capacity(1 << 16, file))
    };
    let manifest = match std::fs::read_to_string(dir.join("manifest.json")) {
        Ok(text) => text,
        Err(error) => {
            return Report::Incomplete {
                reason: format!("manifest.json: {error}"),
            };
        }
    };
    match (
        open("leaves.jsonl"),
        open("leaf_hashes.txt"),
        open("checkpoints.jsonl"),
    ) {
        (Ok(leaves), Ok(hashes), Ok(checkpoints)) => {
            verify(&manifest, leaves, hashes, checkpoints, trusted)
        }
        (Err(error), _, _) | (_, Err(error), _) | (_, _, Err(error)) => Report::Incomplete {
            reason: format!("a bundle file is missing: {error}"),
        },
    }
}

/// The trusted keys that may sign `origin`'s checkpoints, named as they sign them: a key
/// named as the origin (or `{origin}-clock`), or an install's key named by a prefix of the
/// origin (`prefix` for `prefix/tenant`, `prefix-clock` for its clock), bound to this log.
pub fn bind_to_origin(trusted: &[NoteVerifier], origin: &str) -> Vec<NoteVerifier> {
    let clock = format!("{origin}-clock");
    trusted
        .iter()
        .filter_map(|key| {
            let (name, wanted) = if key.is_cosigner() {
                (key.name().strip_suffix("-clock")?, clock.as_str())
            } else {
                (key.name(), origin)
            };
            if key.name() == wanted {
                Some(key.clone())
            } else if origin.strip_prefix(name)?.starts_with('/') {
                key.renamed(wanted).ok()
            } else {
                None
            }
        })
        .collect()
}

/// Leaves checked in parallel per chunk.
const CHUNK: usize = 4_096;

/// What checking one leaf on its own established.
enum Checked {
    Withheld,
    Record { hash: Hash, logged: Vec<u8> },
}

/// The checks one leaf passes on its own: canonical form, its position, its log; its hash.
fn check_leaf(line: &[u8], index: u64, origin: &str) -> Result<Checked, String> {
    // The fast path: bytes already canonical, fields read while checking. Anything it cannot
    // decide (and withheld markers) takes the full parse.
    if let Scan::Canonical(fields) = canonical::scan(line)
        && fields.schema
        && !fields.escaped
    {
        if fields.seq != Some(index) {
            return Err(format!(
                "the record at position {index} says seq {} (deleted, inserted or reordered records)",
                fields
                    .seq
                    .map_or_else(|| "nothing".to_owned(), |seq| seq.to_string())
            ));
        }
        if fields.origin != Some(origin.as_bytes()) {
            return Err("the record is of another log".to_owned());
        }
        let logged = fields.logged.ok_or("the record has no logged time")?;
        return Ok(Checked::Record {
            hash: merkle::leaf_hash(line),
            logged: logged.to_vec(),
        });
    }
    let value: Value =
        serde_json::from_slice(line).map_err(|error| format!("the leaf is not JSON: {error}"))?;
    if value.get("withheld") == Some(&Value::Bool(true)) && value.get("schema").is_none() {
        if value["seq"].as_u64() != Some(index) {
            return Err(format!("a withheld leaf says seq {}", value["seq"]));
        }
        return Ok(Checked::Withheld);
    }
    match record::canonical(&value) {
        Ok(canonical) if canonical == line => {}
        _ => return Err("the leaf is not in canonical (RFC 8785) form".to_owned()),
    }
    if value["seq"].as_u64() != Some(index) {
        return Err(format!(
            "the record at position {index} says seq {} (deleted, inserted or reordered records)",
            value["seq"]
        ));
    }
    if value["origin"].as_str() != Some(origin) {
        return Err(format!("the record is of log {}", value["origin"]));
    }
    let logged = value["logged"]
        .as_str()
        .ok_or("the record has no logged time")?;
    Ok(Checked::Record {
        hash: merkle::leaf_hash(line),
        logged: logged.as_bytes().to_vec(),
    })
}

/// A trusted, parsed checkpoint.
struct Trusted {
    checkpoint: Checkpoint,
    timestamp: Option<u64>,
}

fn read_line(reader: &mut impl BufRead, line: &mut Vec<u8>) -> Result<bool, String> {
    line.clear();
    let read = std::io::Read::take(&mut *reader, MAX_LINE as u64 + 1)
        .read_until(b'\n', line)
        .map_err(|error| error.to_string())?;
    if read == 0 {
        return Ok(false);
    }
    if line.len() > MAX_LINE {
        return Err(format!("a line is longer than {MAX_LINE} bytes"));
    }
    if line.last() == Some(&b'\n') {
        line.pop();
    } else {
        return Err("the last line is cut short".to_owned());
    }
    Ok(true)
}

/// Verify a bundle given as readers (what the fuzz target drives).
pub fn verify(
    manifest: &str,
    mut leaves: impl BufRead,
    mut hashes: impl BufRead,
    mut checkpoints: impl BufRead,
    trusted: &[NoteVerifier],
) -> Report {
    let incomplete = |reason: String| Report::Incomplete { reason };
    let manifest: Manifest = match serde_json::from_str(manifest) {
        Ok(manifest) => manifest,
        Err(error) => return incomplete(format!("manifest.json is not a manifest: {error}")),
    };
    if manifest.format != FORMAT {
        return incomplete(format!("unknown bundle format {:?}", manifest.format));
    }

    // 1. Checkpoints: each must be signed by a trusted log key named as the origin.
    let mut signed: Vec<Trusted> = Vec::new();
    let mut line = Vec::new();
    loop {
        match read_line(&mut checkpoints, &mut line) {
            Ok(true) => {}
            Ok(false) => break,
            Err(error) => return incomplete(format!("checkpoints.jsonl: {error}")),
        }
        let Some(text) = serde_json::from_slice::<Value>(&line)
            .ok()
            .and_then(|value| value["note"].as_str().map(str::to_owned))
        else {
            return incomplete("checkpoints.jsonl: a line is not {\"note\": …}".to_owned());
        };
        let origin_keys = bind_to_origin(trusted, &manifest.origin);
        let (note, verified) = match note::open(&text, &origin_keys) {
            Ok(opened) => opened,
            Err(NoteError::Unverified) => {
                return incomplete(format!(
                    "a checkpoint is signed by no trusted key named {:?}",
                    manifest.origin
                ));
            }
            Err(error @ NoteError::BadSignature(_)) => {
                return Report::Tamper {
                    index: 0,
                    reason: format!("a checkpoint's signature does not verify: {error}"),
                };
            }
            Err(error) => return incomplete(format!("a checkpoint cannot be read: {error}")),
        };
        let checkpoint = match Checkpoint::parse(&note.text) {
            Ok(checkpoint) => checkpoint,
            Err(error) => return incomplete(format!("a signed checkpoint: {error}")),
        };
        if checkpoint.origin != manifest.origin {
            return incomplete(format!(
                "a checkpoint is of log {:?}, the bundle of {:?}",
                checkpoint.origin, manifest.origin
            ));
        }
        signed.push(Trusted {
            checkpoint,
            timestamp: verified.timestamp,
        });
    }
    signed.sort_by_key(|trusted| trusted.checkpoint.size);
    // Two signed roots for one size are a fork: someone signed two histories.
    for pair in signed.windows(2) {
        if pair[0].checkpoint.size == pair[1].checkpoint.size
            && pair[0].checkpoint.root != pair[1].checkpoint.root
        {
            return Report::Tamper {
                index: pair[0].checkpoint.size.saturating_sub(1),
                reason: format!(
                    "two signed checkpoints of size {} have different roots (a fork)",
                    pair[0].checkpoint.size
                ),
            };
        }
    }
    let Some(latest) = signed.last().map(|t| t.checkpoint.size) else {
        return incomplete("the bundle has no trusted checkpoint".to_owned());
    };
    let timestamp = signed.iter().filter_map(|t| t.timestamp).max();

    // 2. Leaves, streamed: each where it belongs, canonical, of this log, its hash as
    //    stored, and the roots at every checkpoint size as signed.
    let mut frontier = Frontier::new();
    let mut next_checkpoint = signed.iter().peekable();
    while next_checkpoint
        .peek()
        .is_some_and(|t| t.checkpoint.size == 0)
    {
        next_checkpoint.next();
    }
    let mut verified_up_to = 0_u64;
    // The previous record's `logged`, kept in one buffer (compared as text: fixed-width UTC).
    let mut last_logged: Option<Vec<u8>> = None;
    let mut withheld = 0_u64;
    let mut hash_line = Vec::new();
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get().min(8));
    while frontier.size() < latest {
        // Read a chunk of leaves; what makes the chunk end early (a short or broken file) is
        // reported after the leaves before it, so the first bad index stays the first.
        let first = frontier.size();
        let mut chunk: Vec<(Vec<u8>, Option<Hash>)> = Vec::with_capacity(CHUNK);
        let mut ended: Option<Report> = None;
        while chunk.len() < CHUNK && first + (chunk.len() as u64) < latest {
            let index = first + chunk.len() as u64;
            match read_line(&mut leaves, &mut line) {
                Ok(true) => {}
                Ok(false) => {
                    ended = Some(Report::Tamper {
                        index,
                        reason: format!(
                            "the log ends at {index} leaves but a signed checkpoint covers {latest}"
                        ),
                    });
                    break;
                }
                Err(error) => {
                    ended = Some(Report::Tamper {
                        index,
                        reason: format!("leaves.jsonl: {error}"),
                    });
                    break;
                }
            }
            let stored = match read_line(&mut hashes, &mut hash_line) {
                Ok(true) => std::str::from_utf8(&hash_line).ok().and_then(unhex),
                _ => None,
            };
            chunk.push((std::mem::take(&mut line), stored));
        }
        // The per-leaf checks (canonical form, position, origin, hashing) on every core.
        let origin = manifest.origin.as_str();
        let results: Vec<Result<Checked, String>> = if workers > 1 && chunk.len() > 64 {
            let per_worker = chunk.len().div_ceil(workers);
            std::thread::scope(|scope| {
                let handles: Vec<_> = chunk
                    .chunks(per_worker)
                    .enumerate()
                    .map(|(n, part)| {
                        let start = first + (n * per_worker) as u64;
                        scope.spawn(move || {
                            part.iter()
                                .enumerate()
                                .map(|(i, (leaf, _))| check_leaf(leaf, start + i as u64, origin))
                                .collect::<Vec<_>>()
                        })
                    })
                    .collect();
                handles
                    .into_iter()
                    .flat_map(|handle| {
                        handle
                            .join()
                            .unwrap_or_else(|_| vec![Err("the verifier failed".to_owned())])
                    })
                    .collect()
            })
        } else {
            chunk
                .iter()
                .enumerate()
                .map(|(i, (leaf, _))| check_leaf(leaf, first + i as u64, origin))
                .collect()
        };
        for ((_, stored), result) in chunk.iter().zip(results) {
            let index = frontier.size();
            let tamper = |reason: String| Report::Tamper { index, reason };
            let Some(stored) = stored else {
                return incomplete(format!("leaf_hashes.txt has no hash for leaf {index}"));
            };
            let checked = match result {
                Ok(checked) => checked,
                Err(reason) => return tamper(reason),
            };
            let hash = match checked {
                Checked::Withheld => {
                    withheld += 1;
                    *stored
                }
                Checked::Record { hash, logged } => {
                    if last_logged
                        .as_deref()
                        .is_some_and(|last| last > logged.as_slice())
                    {
                        return tamper(
                            "the record was logged before the one preceding it".to_owned(),
                        );
                    }
                    last_logged = Some(logged);
                    if hash != *stored {
                        return tamper(
                            "the record's bytes do not match its stored leaf hash".to_owned(),
                        );
                    }
                    hash
                }
            };
            frontier.push(hash);
            while let Some(trusted) = next_checkpoint.peek() {
                if trusted.checkpoint.size != frontier.size() {
                    break;
                }
                if frontier.root() != trusted.checkpoint.root {
                    return Report::Tamper {
                        index: verified_up_to,
                        reason: format!(
                            "the root of the first {} leaves differs from the signed checkpoint: a leaf from {verified_up_to} on was changed",
                            trusted.checkpoint.size
                        ),
                    };
                }
                verified_up_to = trusted.checkpoint.size;
                next_checkpoint.next();
            }
        }
        if let Some(report) = ended {
            return report;
        }
    }
    if manifest.size > latest {
        return incomplete(format!(
            "records {latest}..{} are covered by no trusted checkpoint (export again to sign one)",
            manifest.size
        ));
    }
    Report::Verified {
        size: latest,
        checkpoints: signed.len(),
        withheld,
        timestamp,
    }
}
