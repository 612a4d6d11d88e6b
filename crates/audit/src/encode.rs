//! SIEM encodings of records and checkpoints: CEF (escaping exactly as ArcSight specifies),
//! syslog (RFC 5424, framed with RFC 6587 octet counting), Splunk HEC event envelopes, and
//! Azure Monitor Logs Ingestion rows — with the size caps each transport has.
//!
//! Every encoding carries the record id, its position (`seq`), its leaf hash and the log's
//! origin, so a SIEM copy can be checked against the log.

use serde_json::{Value, json};

/// Severity renderings (audit-siem.md §11.7): CEF 0–10 and syslog severity.
pub fn cef_severity(severity: &str) -> u8 {
    match severity {
        "critical" => 10,
        "high" => 8,
        "medium" => 5,
        "low" => 3,
        _ => 1,
    }
}

pub fn syslog_severity(severity: &str) -> u8 {
    match severity {
        "critical" => 2,
        "high" => 3,
        "medium" => 4,
        "low" => 5,
        _ => 6,
    }
}

/// A CEF header field: `\` and `|` escaped; CR and LF, which headers cannot hold, become
/// spaces.
pub fn cef_header(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.push_str("\\\\"),
            '|' => out.push_str("\\|"),
            '\r' => {
                if chars.peek() == Some(&'\n') {
                    chars.next();
                }
                out.push(' ');
            }
            '\n' => out.push(' '),
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// A CEF extension key: only `[A-Za-z0-9]` survives.
pub fn cef_key(text: &str) -> String {
    text.chars().filter(char::is_ascii_alphanumeric).collect()
}

/// A CEF extension value: `\` and `=` escaped, CR and LF as `\r` and `\n` (losslessly;
/// other control characters, which some parsers treat as separators, become spaces).
pub fn cef_value(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '=' => out.push_str("\\="),
            '\r' => out.push_str("\\r"),
            '\n' => out.push_str("\\n"),
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    // A trailing space would be stripped by some parsers from the last value.
    out.trim_end_matches(' ').to_owned()
}

/// Who we are in every SIEM line.
#[derive(Clone, Debug)]
pub struct Device<'a> {
    pub vendor: &'a str,
    pub product: &'a str,
    pub version: &'a str,
}

fn text<'a>(value: &'a Value, path: &[&str]) -> Option<&'a str> {
    path.iter()
        .try_fold(value, |value, key| value.get(*key))
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

fn unix_millis(rfc3339: &str) -> Option<i128> {
    time::OffsetDateTime::parse(rfc3339, &time::format_description::well_known::Rfc3339)
        .ok()
        .map(|t| t.unix_timestamp_nanos() / 1_000_000)
}

/// One record as a CEF line (without a syslog prefix).
pub fn cef_record(device: &Device<'_>, record: &Value, leaf_hash: &str) -> String {
    let event_type = text(record, &["event", "type"]).unwrap_or("unknown");
    let severity = text(record, &["event", "severity"]).unwrap_or("informational");
    let name = text(record, &["event", "reason"])
        .map(|reason| reason.chars().take(200).collect::<String>())
        .unwrap_or_else(|| event_type.to_owned());
    let mut extension: Vec<(&str, String)> = Vec::new();
    if let Some(millis) = text(record, &["time"]).and_then(unix_millis) {
        extension.push(("rt", millis.to_string()));
    }
    for (key, path) in [
        ("act", &["event", "action"][..]),
        ("outcome", &["event", "outcome"]),
        ("cat", &["event", "category"]),
        ("suser", &["actor", "name"]),
        ("suid", &["actor", "id"]),
        ("src", &["actor", "ip"]),
        ("msg", &["event", "reason"]),
        ("externalId", &["id"]),
    ] {
        if let Some(value) = text(record, path) {
            extension.push((key, value.to_owned()));
        }
    }
    let target = match (
        text(record, &["target", "kind"]),
        text(record, &["target", "id"]),
    ) {
        (Some(kind), Some(id)) => Some(format!("{kind}:{id}")),
        _ => None,
    };
    let labelled = [
        (
            "cs2",
            "project",
            text(record, &["target", "project"]).map(str::to_owned),
        ),
        ("cs3", "target", target),
        ("cs5", "leafSha256", Some(leaf_hash.to_owned())),
        (
            "cs6",
            "logOrigin",
            text(record, &["origin"]).map(str::to_owned),
        ),
        (
            "cn1",
            "logIndex",
            record["seq"].as_u64().map(|seq| seq.to_string()),
        ),
    ];
    let mut line = format!(
        "CEF:0|{}|{}|{}|{}|{}|{}|",
        cef_header(device.vendor),
        cef_header(device.product),
        cef_header(device.version),
        cef_header(event_type),
        cef_header(&name),
        cef_severity(severity)
    );
    let mut pairs: Vec<String> = extension
        .into_iter()
        .map(|(key, value)| format!("{}={}", cef_key(key), cef_value(&value)))
        .collect();
    for (key, label, value) in labelled {
        if let Some(value) = value {
            pairs.push(format!("{key}Label={label}"));
            pairs.push(format!("{key}={}", cef_value(&value)));
        }
    }
    line.push_str(&pairs.join(" "));
    line
}

/// A signed checkpoint as a CEF line (class `log.checkpoint`), so the SIEM holds the
/// external copies the verifier checks against.
pub fn cef_checkpoint(
    device: &Device<'_>,
    origin: &str,
    size: u64,
    root_hex: &str,
    note: &str,
) -> String {
    format!(
        "CEF:0|{}|{}|{}|log.checkpoint|Audit log checkpoint|1|cs6Label=logOrigin cs6={} cn2Label=treeSize cn2={size} cs4Label=rootSha256 cs4={} msg={}",
        cef_header(device.vendor),
        cef_header(device.product),
        cef_header(device.version),
        cef_value(origin),
        cef_value(root_hex),
        cef_value(note)
    )
}

/// One structured-data element of RFC 5424.
pub struct StructuredData<'a> {
    pub id: &'a str,
    pub params: Vec<(&'a str, String)>,
}

/// An SD-PARAM value: `"`, `\` and `]` escaped with a backslash (RFC 5424 §6.3.3).
pub fn sd_value(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '"' | '\\' | ']') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// RFC 5424 header fields are printable US-ASCII without spaces; `-` when empty.
fn header_field(text: &str, max: usize) -> String {
    let field: String = text
        .chars()
        .filter(|c| c.is_ascii_graphic())
        .take(max)
        .collect();
    if field.is_empty() {
        "-".to_owned()
    } else {
        field
    }
}

/// Syslog message parts.
pub struct SyslogMessage<'a> {
    /// 0–23 (e.g. 13 user, 4 auth, 10 authpriv, 16–23 local0–7).
    pub facility: u8,
    /// 0 emergency … 7 debug.
    pub severity: u8,
    /// RFC 3339 time.
    pub timestamp: &'a str,
    pub hostname: &'a str,
    pub app_name: &'a str,
    pub proc_id: &'a str,
    pub msg_id: &'a str,
    pub structured: &'a [StructuredData<'a>],
    pub message: &'a str,
}

/// An RFC 5424 message; the MSG is UTF-8 with a BOM, as the RFC asks for Unicode text.
pub fn syslog_5424(message: &SyslogMessage<'_>) -> String {
    let priority = u16::from(message.facility.min(23)) * 8 + u16::from(message.severity.min(7));
    let structured = if message.structured.is_empty() {
        "-".to_owned()
    } else {
        message
            .structured
            .iter()
            .map(|element| {
                let params: String = element
                    .params
                    .iter()
                    .map(|(name, value)| {
                        format!(" {}=\"{}\"", header_field(name, 32), sd_value(value))
                    })
                    .collect();
                format!("[{}{params}]", header_field(element.id, 32))
            })
            .collect()
    };
    format!(
        "<{priority}>1 {} {} {} {} {} {structured} \u{feff}{}",
        header_field(message.timestamp, 64),
        header_field(message.hostname, 255),
        header_field(message.app_name, 48),
        header_field(message.proc_id, 128),
        header_field(message.msg_id, 32),
        message.message
    )
}

/// RFC 6587 octet counting: `LEN SP MSG`, LEN the byte length of MSG.
pub fn octet_counted(message: &str) -> Vec<u8> {
    let mut frame = format!("{} ", message.len()).into_bytes();
    frame.extend_from_slice(message.as_bytes());
    frame
}

/// A Splunk HEC event envelope for a record (`event` is the record itself, so `_raw` can
/// be canonicalised again and checked against the leaf hash).
pub fn hec_record(record: &Value, leaf_hash: &str, host: &str, index: Option<&str>) -> Value {
    let origin = text(record, &["origin"]).unwrap_or_default();
    let mut envelope = json!({
        "time": text(record, &["time"]).and_then(unix_millis).map(|ms| format!("{}.{:03}", ms / 1000, ms % 1000)),
        "host": host,
        "source": format!("tollgate:{origin}"),
        "sourcetype": "tollgate:record:v1",
        "event": record,
        "fields": {
            "origin": origin,
            "event_type": text(record, &["event", "type"]),
            "log_index": record["seq"],
            "leaf_sha256": leaf_hash,
        },
    });
    if let Some(index) = index {
        envelope["index"] = json!(index);
    }
    envelope
}

pub fn hec_checkpoint(origin: &str, size: u64, root_hex: &str, note: &str, host: &str) -> Value {
    json!({
        "host": host,
        "source": format!("tollgate:{origin}"),
        "sourcetype": "tollgate:checkpoint",
        "event": {"origin": origin, "size": size, "root": root_hex, "note": note},
    })
}

/// An Azure Monitor Logs Ingestion row (stream `Custom-Tollgate`, table `Tollgate_CL`).
pub fn azure_row(record: &Value, leaf_hash: &str, record_jcs: &str) -> Value {
    json!({
        "TimeGenerated": text(record, &["time"]),
        "RecordId": text(record, &["id"]),
        "LogIndex": record["seq"],
        "LeafSha256": leaf_hash,
        "Origin": text(record, &["origin"]),
        "EventType": text(record, &["event", "type"]),
        "Operation": text(record, &["event", "action"]),
        "Outcome": text(record, &["event", "outcome"]),
        "Severity": text(record, &["event", "severity"]),
        "ActorUpn": text(record, &["actor", "upn"]).or_else(|| text(record, &["actor", "name"])),
        "ActorId": text(record, &["actor", "id"]),
        "SrcIpAddr": text(record, &["actor", "ip"]),
        "TargetType": text(record, &["target", "kind"]),
        "TargetId": text(record, &["target", "id"]),
        "TargetName": text(record, &["target", "name"]),
        "AdoProject": text(record, &["target", "project"]),
        "Record": record,
        "RecordJcs": record_jcs,
    })
}

/// Splunk HEC batches: events concatenated, each batch at most `max_bytes` (an event larger
/// than that travels alone).
pub fn hec_batches(events: &[Value], max_bytes: usize) -> Vec<Vec<u8>> {
    let mut batches = Vec::new();
    let mut current: Vec<u8> = Vec::new();
    for event in events {
        let encoded = event.to_string();
        if !current.is_empty() && current.len() + encoded.len() > max_bytes {
            batches.push(std::mem::take(&mut current));
        }
        current.extend_from_slice(encoded.as_bytes());
    }
    if !current.is_empty() {
        batches.push(current);
    }
    batches
}

/// Logs Ingestion batches: JSON arrays of rows, each at most `max_bytes` (1 MB per call).
pub fn json_array_batches(rows: &[Value], max_bytes: usize) -> Vec<Vec<u8>> {
    let mut batches = Vec::new();
    let mut current: Vec<String> = Vec::new();
    let mut size = 2;
    for row in rows {
        let encoded = row.to_string();
        if !current.is_empty() && size + encoded.len() + 1 > max_bytes {
            batches.push(format!("[{}]", current.join(",")).into_bytes());
            current.clear();
            size = 2;
        }
        size += encoded.len() + 1;
        current.push(encoded);
    }
    if !current.is_empty() {
        batches.push(format!("[{}]", current.join(",")).into_bytes());
    }
    batches
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> Value {
        json!({
            "schema": "tollgate/v1", "origin": "audit.contoso.example/fabrikam", "seq": 48213,
            "id": "0196a1b2-7c3d-7e4f-8a9b-0c1d2e3f4a5b", "time": "2026-01-02T03:04:05.123456Z",
            "logged": "2026-01-02T03:04:05.401233Z",
            "event": {"type": "waiver.created", "category": "policy", "action": "create",
                      "outcome": "success", "severity": "medium",
                      "reason": "Minimum reviewers changed (policy=Require reviewers)\nfrom 2 to 1 | urgent"},
            "actor": {"kind": "user", "id": "aad:7d1c", "name": "alice@contoso.com", "ip": "203.0.113.7"},
            "target": {"kind": "waiver", "id": "BP-02:*", "project": "Payments"},
        })
    }

    #[test]
    fn a_cef_line_escapes_header_and_extension_as_specified() {
        let device = Device {
            vendor: "Contoso",
            product: "tollgate",
            version: "0.1.0",
        };
        let line = cef_record(&device, &record(), "9f2c");
        assert!(line.starts_with(
            "CEF:0|Contoso|tollgate|0.1.0|waiver.created|Minimum reviewers changed (policy=Require reviewers) from 2 to 1 \\| urgent|5|rt=1767323045123 act=create outcome=success cat=policy suser=alice@contoso.com suid=aad:7d1c src=203.0.113.7 msg=Minimum reviewers changed (policy\\=Require reviewers)\\nfrom 2 to 1 | urgent externalId=0196a1b2-7c3d-7e4f-8a9b-0c1d2e3f4a5b"
        ), "{line}");
        assert!(line.ends_with("cs5Label=leafSha256 cs5=9f2c cs6Label=logOrigin cs6=audit.contoso.example/fabrikam cn1Label=logIndex cn1=48213"), "{line}");
        assert!(!line.contains('\n') && !line.contains('\r'));
    }

    #[test]
    fn syslog_frames_are_rfc_5424_with_octet_counting() {
        let message = syslog_5424(&SyslogMessage {
            facility: 10,
            severity: 4,
            timestamp: "2026-01-02T03:04:05.123456Z",
            hostname: "tollgate-1",
            app_name: "tollgate",
            proc_id: "",
            msg_id: "waiver.created",
            structured: &[StructuredData {
                id: "tollgate@32473",
                params: vec![
                    ("seq", "7".to_owned()),
                    ("note", "a \"quoted\" ] \\ value".to_owned()),
                ],
            }],
            message: "CEF:0|x",
        });
        assert_eq!(
            message,
            "<84>1 2026-01-02T03:04:05.123456Z tollgate-1 tollgate - waiver.created [tollgate@32473 seq=\"7\" note=\"a \\\"quoted\\\" \\] \\\\ value\"] \u{feff}CEF:0|x"
        );
        let frame = octet_counted(&message);
        let text = String::from_utf8(frame).unwrap_or_default();
        let (length, rest) = text.split_once(' ').unwrap_or_default();
        assert_eq!(length.parse::<usize>().ok(), Some(rest.len()));
    }

    #[test]
    fn batches_respect_their_caps() {
        let events: Vec<Value> = (0..100)
            .map(|i| json!({"event": "x".repeat(100), "i": i}))
            .collect();
        let batches = hec_batches(&events, 1_000);
        assert!(batches.iter().all(|b| b.len() <= 1_000));
        assert_eq!(
            batches.iter().map(Vec::len).sum::<usize>(),
            events.iter().map(|e| e.to_string().len()).sum::<usize>()
        );
        let arrays = json_array_batches(&events, 1_000);
        let rows: usize = arrays
            .iter()
            .map(|b| {
                assert!(b.len() <= 1_000);
                serde_json::from_slice::<Vec<Value>>(b)
                    .map(|v| v.len())
                    .unwrap_or(0)
            })
            .sum();
        assert_eq!(rows, 100);
    }
}
