//! CEF escaping against the published cases: logstash-codec-cef's encoder expectations and
//! vendor documentation lines, and a round trip through a strict parser.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test reports failure by panicking"
)]

use std::path::Path;

use serde_json::Value;
use tollgate_audit::encode::{cef_header, cef_key, cef_value};

fn load(name: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/cef")
        .join(name);
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn every_logstash_encoder_case_holds_except_our_lossless_carriage_returns() {
    let cases = load("logstash-codec-cef-cases.json");
    let cases = cases["sanitize"].as_array().unwrap();
    assert_eq!(cases.len(), 22);
    for case in cases {
        let input = case["input"].as_str().unwrap();
        let expected = case["expected"].as_str().unwrap();
        let got = match case["function"].as_str().unwrap() {
            "sanitize_header_field" => cef_header(input),
            "sanitize_extension_key" => cef_key(input),
            "sanitize_extension_val" => cef_value(input),
            other => panic!("unknown case {other}"),
        };
        if case["function"] == "sanitize_extension_val" && input.contains('\r') {
            // logstash folds CR (and CRLF) into \n; the CEF rules (and we) keep CR as \r,
            // so the value survives a round trip.
            let lossless = input
                .replace('\\', "\\\\")
                .replace('\r', "\\r")
                .replace('\n', "\\n");
            assert_eq!(got, lossless, "{input:?}");
        } else {
            assert_eq!(got, expected, "{}({input:?})", case["function"]);
        }
    }
}

#[test]
fn published_lines_escape_as_we_do() {
    let examples = load("published-examples.json");
    let examples = examples["examples"].as_array().unwrap();
    let backslash = examples
        .iter()
        .find(|e| {
            e["line"]
                .as_str()
                .unwrap()
                .contains("detected a \\\\ in packet")
        })
        .unwrap();
    assert_eq!(
        cef_header(backslash["expected"]["name"].as_str().unwrap()),
        "detected a \\\\ in packet"
    );
    assert!(backslash["line"].as_str().unwrap().contains(&format!(
        "act={}",
        cef_value(backslash["expected"]["extension"]["act"].as_str().unwrap())
    )));
    let equals = examples
        .iter()
        .find(|e| e["line"].as_str().unwrap().starts_with("request="))
        .unwrap();
    assert_eq!(
        format!(
            "request={}",
            cef_value(equals["expected"]["extension"]["request"].as_str().unwrap())
        ),
        equals["line"].as_str().unwrap()
    );
}

/// A strict extension-value decoder: the escapes CEF defines, nothing else.
fn unescape_value(text: &str) -> Option<String> {
    let mut out = String::new();
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '=' {
            return None;
        }
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next()? {
            '\\' => out.push('\\'),
            '=' => out.push('='),
            'n' => out.push('\n'),
            'r' => out.push('\r'),
            _ => return None,
        }
    }
    Some(out)
}

#[test]
fn values_round_trip_through_a_strict_decoder() {
    let alphabet = [
        'a',
        ' ',
        '=',
        '\\',
        '|',
        '\n',
        '\r',
        'é',
        '\u{1F600}',
        'n',
        'r',
    ];
    let mut state: u64 = 0x2545_f491_4f6c_dd1d;
    for _ in 0..5_000 {
        let length = (state % 12) as usize;
        let mut value = String::new();
        for _ in 0..length {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            value.push(alphabet[(state % alphabet.len() as u64) as usize]);
        }
        // Trailing spaces are trimmed by design (parsers strip them from the last value).
        let value = value.trim_end_matches(' ').to_owned();
        let encoded = cef_value(&value);
        assert!(!encoded.contains('\n') && !encoded.contains('\r'));
        assert_eq!(
            unescape_value(&encoded).as_deref(),
            Some(value.as_str()),
            "{value:?}"
        );
        let header = cef_header(&value);
        assert!(
            !header.replace("\\\\", "").replace("\\|", "").contains('|'),
            "{header:?}"
        );
    }
}
