//! Payloads packed to fit SQLite's pages (docs/adr/0014). A gate decision's document and its
//! audit record are ≈ 2.2 KB of JSON each. On 4 KB pages two such rows never share a page, so
//! each cost a whole page of the database file and of the write-ahead log. In the audit log,
//! a table without rowids, only ≈ 1 KB of a row even stays on its page; the rest took an
//! overflow page of its own. zstd at level 1 packs these payloads to ≈ 950 bytes (JSON
//! repeats its member names), so three or four share a page.
//!
//! Packing is a storage form only: what a reader gets back is the payload as written, byte
//! for byte (an audit leaf's hash is over those bytes). Readers tell the forms apart by the
//! first bytes: JSON text starts with `{` and never with zstd's magic number, so rows
//! written before packing, and payloads too small to pack, are read as they are.
//! PostgreSQL stores the same rows inline and plain (its migration 12 says why).

use std::cell::RefCell;

use sqlx::encode::IsNull;
use sqlx::error::BoxDynError;
use sqlx::sqlite::{SqliteArgumentsBuffer, SqliteTypeInfo};
use sqlx::{Encode, Sqlite, Type};

use crate::StoreError;

/// Smaller payloads are stored plain: a few hundred bytes already share a page with others,
/// and packing them would cost the writer's time for little.
const PACK_FROM_BYTES: usize = 1_024;

/// zstd's fastest level that still finds JSON's repeats; higher levels save a few percent
/// more for several times the time, on the single writer's path.
const LEVEL: i32 = 1;

/// The first four bytes of every zstd frame (RFC 8878 §3.1.1).
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xB5, 0x2F, 0xFD];

/// The most a packed payload may unpack to: far above any record or document we write, and
/// low enough that a damaged frame cannot make a reader allocate without bound.
const UNPACKED_LIMIT_BYTES: usize = 64 << 20;

thread_local! {
    // One compression context per thread, reused: creating one per payload costs about as
    // much as packing a 2 KB payload.
    static COMPRESSOR: RefCell<Option<zstd::bulk::Compressor<'static>>> =
        const { RefCell::new(None) };
    // Likewise for reading: an export or a SIEM sink unpacks thousands of records in a row.
    static DECOMPRESSOR: RefCell<Option<zstd::bulk::Decompressor<'static>>> =
        const { RefCell::new(None) };
}

/// The payload of a zstd frame, bounded by `UNPACKED_LIMIT_BYTES`.
fn decompressed(frame: &[u8]) -> std::io::Result<Vec<u8>> {
    DECOMPRESSOR.with(|cell| {
        let mut slot = cell.borrow_mut();
        let mut decompressor = match slot.take() {
            Some(decompressor) => decompressor,
            None => zstd::bulk::Decompressor::new()?,
        };
        let payload = decompressor.decompress(frame, UNPACKED_LIMIT_BYTES);
        *slot = Some(decompressor);
        payload
    })
}

/// `payload` packed, when it is large enough to be worth it and packing makes it smaller.
/// A payload that cannot be packed (zstd out of memory) is stored plain: packing is a saving,
/// never a reason to lose a write.
fn packed(payload: &[u8]) -> Option<Vec<u8>> {
    if payload.len() < PACK_FROM_BYTES {
        return None;
    }
    COMPRESSOR
        .with(|cell| {
            let mut slot = cell.borrow_mut();
            if slot.is_none() {
                *slot = zstd::bulk::Compressor::new(LEVEL).ok();
            }
            slot.as_mut()
                .and_then(|compressor| compressor.compress(payload).ok())
        })
        .filter(|packed| packed.len() < payload.len())
}

/// The form to store a binary payload in (a BLOB column): packed, or the payload itself.
pub(crate) fn pack(payload: Vec<u8>) -> Vec<u8> {
    packed(&payload).unwrap_or(payload)
}

/// A JSON document in the form it is stored in: text while it is small (so it stays readable
/// with the `sqlite3` shell), a packed BLOB when large. Binds as either.
#[derive(Debug)]
pub(crate) enum StoredText {
    Plain(String),
    Packed(Vec<u8>),
}

pub(crate) fn pack_text(text: String) -> StoredText {
    match packed(text.as_bytes()) {
        Some(packed) => StoredText::Packed(packed),
        None => StoredText::Plain(text),
    }
}

impl Type<Sqlite> for StoredText {
    fn type_info() -> SqliteTypeInfo {
        <Vec<u8> as Type<Sqlite>>::type_info()
    }

    fn compatible(ty: &SqliteTypeInfo) -> bool {
        <Vec<u8> as Type<Sqlite>>::compatible(ty)
    }
}

impl Encode<'_, Sqlite> for StoredText {
    fn encode_by_ref(&self, buffer: &mut SqliteArgumentsBuffer) -> Result<IsNull, BoxDynError> {
        match self {
            StoredText::Plain(text) => <String as Encode<Sqlite>>::encode_by_ref(text, buffer),
            StoredText::Packed(bytes) => <Vec<u8> as Encode<Sqlite>>::encode_by_ref(bytes, buffer),
        }
    }
}

/// The payload as written, from its stored form. `what` names it in the error.
pub(crate) fn unpack(stored: Vec<u8>, what: &str) -> Result<Vec<u8>, StoreError> {
    if !stored.starts_with(&ZSTD_MAGIC) {
        return Ok(stored);
    }
    decompressed(&stored)
        .map_err(|error| StoreError::Corrupt(format!("{what}: cannot unpack: {error}")))
}

/// The bytes of the audit record at `seq` from their stored form, or the stored bytes
/// themselves when they cannot be unpacked: a damaged record must not stop the log from being
/// read, exported or streamed; its hash no longer matches, which is how verification names it.
pub(crate) fn unpack_or_stored(stored: Vec<u8>, seq: u64) -> Vec<u8> {
    if !stored.starts_with(&ZSTD_MAGIC) {
        return stored;
    }
    match decompressed(&stored) {
        Ok(payload) => payload,
        Err(error) => {
            tracing::warn!(%error, seq, "an audit record cannot be unpacked; read as stored");
            stored
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json_payload(bytes: usize) -> Vec<u8> {
        let mut text = String::from("{\"items\":[");
        let mut index = 0;
        while text.len() < bytes {
            text.push_str(&format!(
                "{{\"environment\":\"production\",\"index\":{index}}},"
            ));
            index += 1;
        }
        text.push_str("0]}");
        text.into_bytes()
    }

    #[test]
    fn a_large_payload_is_packed_smaller_and_unpacks_to_the_same_bytes() {
        let payload = json_payload(2_200);
        let stored = pack(payload.clone());
        assert!(stored.starts_with(&ZSTD_MAGIC));
        assert!(stored.len() < payload.len() / 2, "{} bytes", stored.len());
        assert_eq!(unpack(stored, "a payload").unwrap(), payload);
    }

    #[test]
    fn a_small_payload_is_stored_plain() {
        let payload = json_payload(300);
        assert_eq!(pack(payload.clone()), payload);
        assert_eq!(unpack(payload.clone(), "a payload").unwrap(), payload);
    }

    #[test]
    fn a_payload_that_does_not_shrink_is_stored_plain() {
        // Bytes with no repeats (an xorshift stream) only grow by zstd's frame header.
        let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
        let payload: Vec<u8> = (0..4_096)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state.to_le_bytes()[0]
            })
            .collect();
        assert_eq!(pack(payload.clone()), payload);
    }

    #[test]
    fn rows_written_plain_before_packing_read_as_they_are() {
        let row = br#"{"id":"gd_1","verdict":"allow"}"#.to_vec();
        assert_eq!(unpack(row.clone(), "a decision").unwrap(), row);
    }

    #[test]
    fn a_damaged_record_reads_as_stored() {
        let payload = json_payload(2_200);
        assert_eq!(unpack_or_stored(pack(payload.clone()), 1), payload);
        let mut damaged = pack(payload);
        damaged.truncate(damaged.len() / 2);
        assert_eq!(unpack_or_stored(damaged.clone(), 1), damaged);
    }

    #[test]
    fn a_damaged_frame_is_an_error_that_names_the_payload() {
        let mut stored = pack(json_payload(2_200));
        stored.truncate(stored.len() / 2);
        let error = unpack(stored, "audit record 7").unwrap_err();
        assert!(
            error.to_string().contains("audit record 7: cannot unpack"),
            "{error}"
        );
    }
}
