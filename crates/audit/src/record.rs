//! Records in the v1 schema (docs/AUDIT.md): built from a draft's fields plus what the
//! sequencer assigns, checked (no floats, integers within ±(2^53−1), at most 32 KiB), and
//! turned into their leaf: the RFC 8785 (JCS) bytes and SHA-256(0x00 || bytes).

use std::collections::BTreeMap;

use serde_json::{Map, Value};
use time::OffsetDateTime;

use tollgate_domain::json::{self, CanonicalError, CanonicalJson, Member};

use crate::merkle::{self, Hash};

pub const SCHEMA: &str = "tollgate/v1";

/// The largest canonical record: one record always fits a Splunk HEC event and a Logs
/// Ingestion row.
pub const MAX_RECORD_BYTES: usize = 32 * 1024;

/// Reserved record types.
pub mod types {
    pub const GENESIS: &str = "log.genesis";
    pub const KEY_ROTATION: &str = "log.key_rotation";
    pub const RETENTION: &str = "log.retention";
    pub const ADO_AUDIT: &str = "ado.audit";
    pub const INTEGRITY_ALERT: &str = "integrity.alert";
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    #[error("{path} holds a floating-point number; records carry decimals as strings")]
    Float { path: String },
    #[error("{path} holds an integer outside ±(2^53−1)")]
    IntegerRange { path: String },
    #[error("the record is {size} bytes in canonical form, more than {MAX_RECORD_BYTES}")]
    TooLarge { size: usize },
    #[error("field {0:?} is assigned by the log and cannot be given")]
    Reserved(String),
    #[error("the record is not canonical JSON: {0}")]
    NotCanonical(String),
    #[error("time {0} cannot be written")]
    Time(String),
    #[error("field {0:?} is given twice")]
    Twice(String),
}

impl From<CanonicalError> for RecordError {
    fn from(error: CanonicalError) -> Self {
        match error {
            CanonicalError::Float { path } => RecordError::Float { path },
            CanonicalError::IntegerRange { path } => RecordError::IntegerRange { path },
            CanonicalError::Encoding(message) => RecordError::NotCanonical(message),
        }
    }
}

/// A time as records write it: RFC 3339 UTC with exactly six decimals.
pub fn format_time(time: OffsetDateTime) -> Result<String, RecordError> {
    let utc = time.to_offset(time::UtcOffset::UTC);
    if !(0..=9999).contains(&utc.year()) {
        return Err(RecordError::Time(time.to_string()));
    }
    Ok(format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
        utc.year(),
        u8::from(utc.month()),
        utc.day(),
        utc.hour(),
        utc.minute(),
        utc.second(),
        utc.microsecond()
    ))
}

/// Everything the log assigns to a record.
#[derive(Clone, Debug)]
pub struct Placement<'a> {
    pub origin: &'a str,
    pub seq: u64,
    pub id: &'a str,
    pub logged: OffsetDateTime,
}

/// A record's leaf: its canonical bytes and their leaf hash.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Leaf {
    pub bytes: Vec<u8>,
    pub hash: Hash,
}

/// Build the v1 record of `fields` (event, actor, target, change, source, details, …) at
/// `placement`, happened at `time`, and make it a leaf.
pub fn build_leaf(
    placement: &Placement<'_>,
    time: OffsetDateTime,
    fields: &Map<String, Value>,
) -> Result<Leaf, RecordError> {
    build_leaf_with(placement, time, fields, &BTreeMap::new())
}

/// [`build_leaf`] with some fields already in canonical form (`encoded`): their bytes are
/// copied as they are, so a part many records share (a gate decision's input) is encoded once.
pub fn build_leaf_with(
    placement: &Placement<'_>,
    time: OffsetDateTime,
    fields: &Map<String, Value>,
    encoded: &BTreeMap<String, CanonicalJson>,
) -> Result<Leaf, RecordError> {
    for reserved in ["schema", "origin", "seq", "id", "time", "logged"] {
        if fields.contains_key(reserved) || encoded.contains_key(reserved) {
            return Err(RecordError::Reserved(reserved.to_owned()));
        }
    }
    if let Some(twice) = encoded
        .keys()
        .find(|name| fields.contains_key(name.as_str()))
    {
        return Err(RecordError::Twice(twice.clone()));
    }
    let assigned = [
        ("schema", Value::from(SCHEMA)),
        ("origin", Value::from(placement.origin)),
        ("seq", Value::from(placement.seq)),
        ("id", Value::from(placement.id)),
        ("time", Value::from(format_time(time)?)),
        ("logged", Value::from(format_time(placement.logged)?)),
    ];
    let members = assigned
        .iter()
        .map(|(name, value)| (*name, Member::Value(value)))
        .chain(
            fields
                .iter()
                .map(|(name, value)| (name.as_str(), Member::Value(value))),
        )
        .chain(
            encoded
                .iter()
                .map(|(name, value)| (name.as_str(), Member::Encoded(value))),
        );
    let bytes = json::canonical_object_text(members)?.into_bytes();
    if bytes.len() > MAX_RECORD_BYTES {
        return Err(RecordError::TooLarge { size: bytes.len() });
    }
    let hash = merkle::leaf_hash(&bytes);
    Ok(Leaf { bytes, hash })
}

/// RFC 8785 canonical bytes of a JSON value.
pub fn canonical(value: &Value) -> Result<Vec<u8>, RecordError> {
    Ok(json::canonical_bytes(value)?)
}

/// A fresh UUIDv7-shaped id (48-bit Unix milliseconds, version 7, random rest): ordered by
/// time, unique enough to be a SIEM's dedupe key.
pub fn new_record_id(at: OffsetDateTime) -> String {
    use rand::RngCore as _;
    let millis = u64::try_from(at.unix_timestamp_nanos() / 1_000_000).unwrap_or(0);
    let mut random = [0_u8; 10];
    rand::thread_rng().fill_bytes(&mut random);
    let mut bytes = [0_u8; 16];
    bytes[..6].copy_from_slice(&millis.to_be_bytes()[2..]);
    bytes[6..].copy_from_slice(&random);
    bytes[6] = 0x70 | (bytes[6] & 0x0f);
    bytes[8] = 0x80 | (bytes[8] & 0x3f);
    let hex = crate::to_hex(&bytes);
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use time::macros::datetime;
    use tollgate_domain::json::plain;

    use super::*;

    fn fields(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(map) => map,
            _ => Map::new(),
        }
    }

    fn placement() -> Placement<'static> {
        Placement {
            origin: "tollgate.example/acme",
            seq: 7,
            id: "0196a1b2-7c3d-7e4f-8a9b-0c1d2e3f4a5b",
            logged: datetime!(2026-01-02 03:04:05.4012 UTC),
        }
    }

    #[test]
    fn a_leaf_is_the_canonical_record_and_its_hash() {
        let leaf = build_leaf(
            &placement(),
            datetime!(2026-01-02 03:04:05.123456 UTC),
            &fields(json!({"event": {"type": "waiver.created", "outcome": "success"}, "actor": {"id": "a"}})),
        )
        .unwrap();
        let text = String::from_utf8(leaf.bytes.clone()).unwrap();
        assert_eq!(
            text,
            r#"{"actor":{"id":"a"},"event":{"outcome":"success","type":"waiver.created"},"id":"0196a1b2-7c3d-7e4f-8a9b-0c1d2e3f4a5b","logged":"2026-01-02T03:04:05.401200Z","origin":"tollgate.example/acme","schema":"tollgate/v1","seq":7,"time":"2026-01-02T03:04:05.123456Z"}"#
        );
        assert_eq!(leaf.hash, merkle::leaf_hash(&leaf.bytes));
    }

    /// The record as RFC 8785 writes it, through the canonicalizer (what `build_leaf` skips
    /// for records without floats whose keys are ASCII).
    fn through_the_canonicalizer(at: OffsetDateTime, extra: &Map<String, Value>) -> Vec<u8> {
        let p = placement();
        let mut record = fields(json!({
            "schema": SCHEMA, "origin": p.origin, "seq": p.seq, "id": p.id,
            "time": format_time(at).unwrap(), "logged": format_time(p.logged).unwrap(),
        }));
        record.extend(extra.clone());
        canonical(&Value::Object(record)).unwrap()
    }

    #[test]
    fn jcs_agrees_on_plain_records() {
        let at = datetime!(2026-11-24 10:00:00.5 UTC);
        let tricky = "quote \" backslash \\ slash / nul \u{0} bell \u{7} bs \u{8} tab \t \
                      nl \n vt \u{b} ff \u{c} cr \r esc \u{1b} us \u{1f} del \u{7f} \
                      é ü ß 中文 \u{2028} \u{2029} \u{feff} 😀 \u{10ffff}";
        let cases = [
            json!({"event": {"type": "gate.decided"}, "details": {"text": tricky}}),
            json!({"details": {
                "ints": [0, 1, -1, 9_007_199_254_740_991_u64, -9_007_199_254_740_991_i64],
                "nested": [[], {}, [{"b": null, "a": true, "A": false, "_": "x", "~": "y"}]],
                "keys": {"Z": 1, "a": 2, "aa": 3, "a b": 4, "a\"b": 5, "a\\b": 6, "a\nb": 7, "": 8},
                "key \" \\ \u{1} \t \u{7f}": "an ASCII key with escapes",
            }}),
            // The shape of a gate decision's record: the rules' whole input.
            json!({"actor": {"id": "ado-check:p", "type": "service"},
                   "details": {"decision": "gd_1", "findings": [{"rule": "GATE-03",
                   "evidence": {"day": "Saturday"}, "message": "deployments to production are blocked on Saturday"}],
                   "input": {"run": {"id": 238, "pipeline": {"id": 237, "name": "checkout-pipeline-000"},
                   "requestedFor": "fatima@fabrikam.example"}, "pullRequests": [], "params": {"GATE-04":
                   {"start_hour": 9, "end_hour": 17, "environments": ["production", "prod-*"]}}}}}),
        ];
        for case in cases {
            let extra = fields(case);
            let mut ascii_keys = true;
            assert!(plain(&Value::Object(extra.clone()), &mut ascii_keys));
            assert!(ascii_keys, "the case takes the serde_json way");
            let leaf = build_leaf(&placement(), at, &extra).unwrap();
            assert_eq!(
                String::from_utf8(leaf.bytes).unwrap(),
                String::from_utf8(through_the_canonicalizer(at, &extra)).unwrap()
            );
        }
        // A key that is not ASCII takes the canonicalizer's way, with the same result.
        let extra = fields(json!({"details": {"é": 1, "z": 2, "\u{e000}": 3, "😀": 4}}));
        let leaf = build_leaf(&placement(), at, &extra).unwrap();
        assert_eq!(leaf.bytes, through_the_canonicalizer(at, &extra));
    }

    /// A gate decision's record: its details encoded once (with keys that are not ASCII inside)
    /// and spliced into the leaf give the bytes the same details as values give.
    #[test]
    fn encoded_fields_give_the_bytes_their_values_give() {
        let at = datetime!(2026-11-24 10:00:00.5 UTC);
        let details = json!({"decision": "gd_1", "input": {"run": {"id": 7}, "é": {"z": 1, "a": 2}},
                             "findings": [], "\u{e000}": "x", "😀": "y"});
        let actor = json!({"id": "ado-check:p", "kind": "ado"});
        let as_values = build_leaf(
            &placement(),
            at,
            &fields(json!({"actor": actor, "details": details})),
        )
        .unwrap();
        let mut encoded = BTreeMap::new();
        encoded.insert("details".to_owned(), CanonicalJson::new(&details).unwrap());
        let spliced =
            build_leaf_with(&placement(), at, &fields(json!({"actor": actor})), &encoded).unwrap();
        assert_eq!(
            String::from_utf8(spliced.bytes).unwrap(),
            String::from_utf8(as_values.bytes).unwrap()
        );
        assert_eq!(spliced.hash, as_values.hash);
        // A field given both ways, or a reserved one given encoded, is refused.
        assert_eq!(
            build_leaf_with(&placement(), at, &fields(json!({"details": {}})), &encoded),
            Err(RecordError::Twice("details".to_owned()))
        );
        let mut reserved = BTreeMap::new();
        reserved.insert("seq".to_owned(), CanonicalJson::new(&json!(1)).unwrap());
        assert_eq!(
            build_leaf_with(&placement(), at, &Map::new(), &reserved),
            Err(RecordError::Reserved("seq".to_owned()))
        );
    }

    #[test]
    fn floats_big_integers_reserved_fields_and_oversize_records_are_refused() {
        let at = datetime!(2026-01-02 03:04:05 UTC);
        let build = |value| build_leaf(&placement(), at, &fields(value));
        assert!(matches!(
            build(json!({"change": {"after": {"ratio": 0.5}}})),
            Err(RecordError::Float { path }) if path == "$.change.after.ratio"
        ));
        assert!(matches!(
            build(json!({"n": 9_007_199_254_740_992_u64})),
            Err(RecordError::IntegerRange { .. })
        ));
        assert!(build(json!({"n": 9_007_199_254_740_991_u64})).is_ok());
        assert!(matches!(
            build(json!({"seq": 1})),
            Err(RecordError::Reserved(_))
        ));
        assert!(matches!(
            build(json!({"blob": "x".repeat(MAX_RECORD_BYTES)})),
            Err(RecordError::TooLarge { .. })
        ));
    }

    #[test]
    fn record_ids_are_version_7_and_ordered_by_time() {
        let early = new_record_id(datetime!(2026-01-02 03:04:05 UTC));
        let late = new_record_id(datetime!(2026-01-02 03:04:06 UTC));
        assert_eq!(early.len(), 36);
        assert_eq!(&early[14..15], "7");
        assert!(matches!(&early[19..20], "8" | "9" | "a" | "b"));
        assert!(early < late);
    }
}
