//! JSON in its RFC 8785 (JCS) form, encoded once and shared.
//!
//! An audit record is its canonical bytes, and a gate decision's record holds the rules' whole
//! input. A burst of checks about one run shares that input (and the rules' findings), so it is
//! encoded once, here, and every decision row and audit record that carries it copies bytes
//! instead of walking, encoding and dropping the same tree of values again — work the single
//! decision writer would otherwise do for each of them.
//!
//! Records refuse floats (they have no single canonical spelling across producers) and
//! integers outside ±(2^53−1) (not every consumer reads them exactly); so does this type.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_json::value::RawValue;

/// The largest integer every JSON consumer reads exactly (2^53 − 1).
pub const MAX_SAFE_INTEGER: u64 = (1 << 53) - 1;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CanonicalError {
    #[error("{path} holds a floating-point number; records carry decimals as strings")]
    Float { path: String },
    #[error("{path} holds an integer outside ±(2^53−1)")]
    IntegerRange { path: String },
    #[error("not canonical JSON: {0}")]
    Encoding(String),
}

/// A JSON value as RFC 8785 writes it. Cloning shares the bytes; serializing it with
/// `serde_json` copies them as they are.
#[derive(Clone)]
pub struct CanonicalJson(Arc<RawValue>);

/// A member of an object built by [`CanonicalJson::object`].
#[derive(Clone, Copy, Debug)]
pub enum Member<'a> {
    Value(&'a Value),
    Encoded(&'a CanonicalJson),
}

impl Serialize for Member<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Member::Value(value) => value.serialize(serializer),
            Member::Encoded(encoded) => encoded.serialize(serializer),
        }
    }
}

impl CanonicalJson {
    /// The canonical form of `value`.
    pub fn new(value: &Value) -> Result<Self, CanonicalError> {
        Self::of(&Shape::Value(value))
    }

    /// An object of `members` (values and already encoded parts), in canonical form. Members
    /// named twice keep the last.
    pub fn object<'a>(
        members: impl IntoIterator<Item = (&'a str, Member<'a>)>,
    ) -> Result<Self, CanonicalError> {
        Self::of(&Shape::Object(&sorted(members)))
    }

    fn of(shape: &Shape<'_>) -> Result<Self, CanonicalError> {
        let raw = if shape.checked()? {
            serde_json::value::to_raw_value(shape)
        } else {
            RawValue::from_string(shape.through_the_canonicalizer()?)
        }
        .map_err(|error| CanonicalError::Encoding(error.to_string()))?;
        Ok(Self(Arc::from(raw)))
    }

    /// The canonical text.
    pub fn as_str(&self) -> &str {
        self.0.get()
    }

    /// The value, parsed again (for readers; the writers use the bytes).
    pub fn to_value(&self) -> Result<Value, CanonicalError> {
        serde_json::from_str(self.as_str())
            .map_err(|error| CanonicalError::Encoding(error.to_string()))
    }
}

/// The canonical text of an object of `members` (what an audit record's bytes are built
/// with: the fields a draft brings, some already encoded, and those the log assigns).
pub fn canonical_object_text<'a>(
    members: impl IntoIterator<Item = (&'a str, Member<'a>)>,
) -> Result<String, CanonicalError> {
    let members = sorted(members);
    let shape = Shape::Object(&members);
    if shape.checked()? {
        serde_json::to_string(&shape).map_err(|error| CanonicalError::Encoding(error.to_string()))
    } else {
        shape.through_the_canonicalizer()
    }
}

/// Members in RFC 8785 order (by their names' UTF-16 code units); of a name given twice, the
/// last.
fn sorted<'a>(
    members: impl IntoIterator<Item = (&'a str, Member<'a>)>,
) -> Vec<(&'a str, Member<'a>)> {
    let mut sorted: Vec<(&str, Member<'_>)> = members.into_iter().collect();
    sorted.sort_by(|(a, _), (b, _)| a.encode_utf16().cmp(b.encode_utf16()));
    sorted.dedup_by(|later, earlier| {
        let same = later.0 == earlier.0;
        if same {
            std::mem::swap(later, earlier);
        }
        same
    });
    sorted
}

/// What is being encoded: one value, or an object of sorted members.
enum Shape<'a> {
    Value(&'a Value),
    Object(&'a [(&'a str, Member<'a>)]),
}

impl Shape<'_> {
    /// Refuses floats and unsafe integers; true when serde_json writes the canonical form
    /// (every key ASCII), false when only the canonicalizer does.
    fn checked(&self) -> Result<bool, CanonicalError> {
        let mut ascii_keys = true;
        let is_plain = match self {
            Shape::Value(value) => plain(value, &mut ascii_keys),
            Shape::Object(members) => members.iter().all(|(name, member)| {
                ascii_keys &= name.is_ascii();
                match member {
                    Member::Value(value) => plain(value, &mut ascii_keys),
                    Member::Encoded(_) => true,
                }
            }),
        };
        if !is_plain {
            // Find where, for the message (the slow path: only for a value refused anyway).
            match self {
                Shape::Value(value) => check_numbers(value, "$")?,
                Shape::Object(members) => {
                    for (name, member) in *members {
                        if let Member::Value(value) = member {
                            check_numbers(value, &format!("$.{name}"))?;
                        }
                    }
                }
            }
        }
        // Without floats and with ASCII keys only, RFC 8785 is what serde_json writes: its maps
        // are sorted by key (UTF-16 and UTF-8 order agree on ASCII), integers are plain
        // decimals, and both escape exactly `"`, `\` and control characters (short forms for
        // \b \t \n \f \r, else \u00xx in lower case) — see
        // `serde_json_agrees_with_the_canonicalizer_on_plain_values`.
        Ok(ascii_keys)
    }

    fn through_the_canonicalizer(&self) -> Result<String, CanonicalError> {
        let owned = match self {
            Shape::Value(value) => (*value).clone(),
            Shape::Object(members) => {
                let mut map = serde_json::Map::new();
                for (name, member) in *members {
                    let value = match member {
                        Member::Value(value) => (*value).clone(),
                        Member::Encoded(encoded) => encoded.to_value()?,
                    };
                    map.insert((*name).to_owned(), value);
                }
                Value::Object(map)
            }
        };
        serde_json_canonicalizer::to_string(&owned)
            .map_err(|error| CanonicalError::Encoding(error.to_string()))
    }
}

impl Serialize for Shape<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Shape::Value(value) => value.serialize(serializer),
            Shape::Object(members) => Members(members).serialize(serializer),
        }
    }
}

/// Members already in canonical order, written as one object.
struct Members<'a, 'b>(&'a [(&'b str, Member<'b>)]);

impl Serialize for Members<'_, '_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap as _;
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (name, member) in self.0 {
            map.serialize_entry(name, member)?;
        }
        map.end()
    }
}

impl std::fmt::Debug for CanonicalJson {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Equal when the canonical texts are: one value has one canonical form.
impl PartialEq for CanonicalJson {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for CanonicalJson {}

impl Serialize for CanonicalJson {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

/// Read back from any JSON (PostgreSQL's `jsonb` gives its own spacing and key order) and
/// made canonical again.
impl<'de> Deserialize<'de> for CanonicalJson {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        CanonicalJson::new(&value).map_err(serde::de::Error::custom)
    }
}

/// True when `value` holds no float and no integer outside ±(2^53−1) (what
/// [`check_numbers`] refuses); clears `ascii_keys` on meeting a key that is not ASCII.
pub fn plain(value: &Value, ascii_keys: &mut bool) -> bool {
    match value {
        Value::Number(number) => {
            !number.is_f64()
                && (number.as_u64().is_some_and(|n| n <= MAX_SAFE_INTEGER)
                    || number
                        .as_i64()
                        .is_some_and(|n| n.unsigned_abs() <= MAX_SAFE_INTEGER))
        }
        Value::Array(items) => items.iter().all(|item| plain(item, ascii_keys)),
        Value::Object(map) => map.iter().all(|(key, item)| {
            if !key.is_ascii() {
                *ascii_keys = false;
            }
            plain(item, ascii_keys)
        }),
        _ => true,
    }
}

/// Refuses floats and integers outside ±(2^53−1), naming where (`path` is where `value` is).
pub fn check_numbers(value: &Value, path: &str) -> Result<(), CanonicalError> {
    match value {
        Value::Number(number) => {
            if number.is_f64() {
                return Err(CanonicalError::Float {
                    path: path.to_owned(),
                });
            }
            let within = number
                .as_u64()
                .map(|n| n <= MAX_SAFE_INTEGER)
                .or_else(|| {
                    number
                        .as_i64()
                        .map(|n| n.unsigned_abs() <= MAX_SAFE_INTEGER)
                })
                .unwrap_or(false);
            if within {
                Ok(())
            } else {
                Err(CanonicalError::IntegerRange {
                    path: path.to_owned(),
                })
            }
        }
        Value::Array(items) => items
            .iter()
            .enumerate()
            .try_for_each(|(i, item)| check_numbers(item, &format!("{path}[{i}]"))),
        Value::Object(map) => map
            .iter()
            .try_for_each(|(key, item)| check_numbers(item, &format!("{path}.{key}"))),
        _ => Ok(()),
    }
}

/// RFC 8785 bytes of any JSON value (floats included), through the canonicalizer.
pub fn canonical_bytes(value: &Value) -> Result<Vec<u8>, CanonicalError> {
    serde_json_canonicalizer::to_vec(value)
        .map_err(|error| CanonicalError::Encoding(error.to_string()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]

    use serde_json::json;

    use super::*;

    fn through_the_canonicalizer(value: &Value) -> String {
        String::from_utf8(canonical_bytes(value).unwrap()).unwrap()
    }

    #[test]
    fn serde_json_agrees_with_the_canonicalizer_on_plain_values() {
        let tricky = "quote \" backslash \\ slash / nul \u{0} bell \u{7} bs \u{8} tab \t \
                      nl \n vt \u{b} ff \u{c} cr \r esc \u{1b} us \u{1f} del \u{7f} \
                      é ü ß 中文 \u{2028} \u{2029} \u{feff} 😀 \u{10ffff}";
        let cases = [
            json!({"text": tricky}),
            json!({
                "ints": [0, 1, -1, 9_007_199_254_740_991_u64, -9_007_199_254_740_991_i64],
                "nested": [[], {}, [{"b": null, "a": true, "A": false, "_": "x", "~": "y"}]],
                "keys": {"Z": 1, "a": 2, "aa": 3, "a b": 4, "a\"b": 5, "a\\b": 6, "a\nb": 7, "": 8},
            }),
            // Not ASCII keys: the canonicalizer's way, the same result.
            json!({"é": 1, "z": 2, "\u{e000}": 3, "😀": 4}),
            json!([1, "two", null]),
        ];
        for case in cases {
            assert_eq!(
                CanonicalJson::new(&case).unwrap().as_str(),
                through_the_canonicalizer(&case)
            );
        }
    }

    #[test]
    fn an_object_of_members_is_the_canonical_object() {
        let input = json!({"run": {"id": 7, "name": "ci"}, "alerts": []});
        let encoded = CanonicalJson::new(&input).unwrap();
        let verdict = json!("allow");
        let keys = json!({"é": 1, "e": 2});
        let built = CanonicalJson::object([
            ("verdict", Member::Value(&verdict)),
            ("input", Member::Encoded(&encoded)),
            ("zz", Member::Value(&keys)),
            ("\u{e000}", Member::Value(&verdict)),
            ("😀", Member::Value(&verdict)),
        ])
        .unwrap();
        let whole = json!({"verdict": "allow", "input": input, "zz": keys,
                           "\u{e000}": "allow", "😀": "allow"});
        assert_eq!(built.as_str(), through_the_canonicalizer(&whole));
        // Names are UTF-16 ordered: U+1F600 (a surrogate pair, 0xD83D…) before U+E000.
        assert!(built.as_str().find('😀') < built.as_str().find('\u{e000}'));
        assert_eq!(built.to_value().unwrap(), whole);
    }

    /// The serde_json way with an encoded member: every name outside ASCII is inside the
    /// already canonical part, which is copied as it is.
    #[test]
    fn ascii_members_around_an_encoded_part_are_the_canonical_object() {
        let input = json!({"é": {"z": 1, "a": [true, null]}, "\u{e000}": 3, "😀": 4, "b": "\u{1}"});
        let encoded = CanonicalJson::new(&input).unwrap();
        let decision = json!("gd_1");
        let built = CanonicalJson::object([
            ("input", Member::Encoded(&encoded)),
            ("decision", Member::Value(&decision)),
        ])
        .unwrap();
        let whole = json!({"input": input, "decision": "gd_1"});
        assert_eq!(built.as_str(), through_the_canonicalizer(&whole));
        let text = canonical_object_text([
            ("decision", Member::Value(&decision)),
            ("input", Member::Encoded(&encoded)),
        ])
        .unwrap();
        assert_eq!(text, built.as_str());
    }

    #[test]
    fn floats_and_unsafe_integers_are_refused_where_they_are() {
        assert_eq!(
            CanonicalJson::new(&json!({"a": [1, {"b": 0.5}]})),
            Err(CanonicalError::Float {
                path: "$.a[1].b".to_owned()
            })
        );
        let big = json!(9_007_199_254_740_992_u64);
        assert_eq!(
            CanonicalJson::object([("n", Member::Value(&big))]),
            Err(CanonicalError::IntegerRange {
                path: "$.n".to_owned()
            })
        );
    }

    #[test]
    fn it_reads_back_from_any_spacing_and_writes_its_bytes() {
        let read: CanonicalJson = serde_json::from_str(r#"{ "b": [1, 2], "a": "x" }"#).unwrap();
        assert_eq!(read.as_str(), r#"{"a":"x","b":[1,2]}"#);
        #[derive(Serialize)]
        struct Holder {
            input: CanonicalJson,
        }
        let text = serde_json::to_string(&Holder {
            input: read.clone(),
        })
        .unwrap();
        assert_eq!(text, r#"{"input":{"a":"x","b":[1,2]}}"#);
        assert_eq!(
            serde_json::to_value(Holder { input: read }).unwrap(),
            json!({"input": {"a": "x", "b": [1, 2]}})
        );
    }
}
