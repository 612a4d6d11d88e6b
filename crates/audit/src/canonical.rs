//! A fast, allocation-free check that bytes are already in RFC 8785 canonical form, for the
//! JSON records hold (objects, arrays, strings, integers, literals), that also picks out the
//! fields the verifier needs. Anything it cannot decide quickly — fractions or exponents,
//! keys outside the Basic Multilingual Plane below the surrogates — is `Undecided`, and the
//! verifier falls back to parsing and re-canonicalising. A wrong "yes" here would not break
//! tamper evidence (the leaf hash covers the bytes, whatever their form), only the promise
//! that a third party can recompute them; the tests compare it with the full check.

/// What the fast check found.
#[derive(Debug, PartialEq, Eq)]
pub enum Scan<'a> {
    /// Canonical; the top-level fields the verifier reads (raw, still escaped — `None` when
    /// absent or not of the expected type).
    Canonical(Fields<'a>),
    /// Not canonical (or not JSON).
    NotCanonical,
    /// Needs the full check.
    Undecided,
}

#[derive(Debug, Default, PartialEq, Eq)]
pub struct Fields<'a> {
    pub seq: Option<u64>,
    /// The string's raw bytes between the quotes; `escaped` when it held an escape.
    pub origin: Option<&'a [u8]>,
    pub logged: Option<&'a [u8]>,
    pub withheld: bool,
    pub schema: bool,
    pub escaped: bool,
}

enum Stop {
    NotCanonical,
    Undecided,
}

struct Scanner<'a> {
    bytes: &'a [u8],
    at: usize,
    escaped: bool,
}

impl<'a> Scanner<'a> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.at).copied()
    }

    fn expect(&mut self, byte: u8) -> Result<(), Stop> {
        if self.peek() == Some(byte) {
            self.at += 1;
            Ok(())
        } else {
            Err(Stop::NotCanonical)
        }
    }

    /// A string, canonically escaped; returns its raw content.
    fn string(&mut self) -> Result<&'a [u8], Stop> {
        self.expect(b'"')?;
        let start = self.at;
        loop {
            let byte = self.peek().ok_or(Stop::NotCanonical)?;
            match byte {
                b'"' => {
                    let raw = &self.bytes[start..self.at];
                    self.at += 1;
                    return Ok(raw);
                }
                b'\\' => {
                    self.escaped = true;
                    let next = *self.bytes.get(self.at + 1).ok_or(Stop::NotCanonical)?;
                    match next {
                        b'"' | b'\\' | b'b' | b'f' | b'n' | b'r' | b't' => self.at += 2,
                        b'u' => {
                            // Only control characters without a short form are \u-escaped,
                            // as lower-case hex.
                            let hex = self
                                .bytes
                                .get(self.at + 2..self.at + 6)
                                .ok_or(Stop::NotCanonical)?;
                            if !hex
                                .iter()
                                .all(|h| h.is_ascii_digit() || (b'a'..=b'f').contains(h))
                            {
                                return Err(Stop::NotCanonical);
                            }
                            let code = hex.iter().fold(0_u32, |acc, h| {
                                acc * 16 + char::from(*h).to_digit(16).unwrap_or(0)
                            });
                            let short = matches!(code, 0x08 | 0x09 | 0x0a | 0x0c | 0x0d);
                            if code >= 0x20 || short {
                                return Err(Stop::NotCanonical);
                            }
                            self.at += 6;
                        }
                        _ => return Err(Stop::NotCanonical),
                    }
                }
                0x00..=0x1f => return Err(Stop::NotCanonical),
                _ => self.at += 1,
            }
        }
    }

    fn integer(&mut self) -> Result<(), Stop> {
        let start = self.at;
        if self.peek() == Some(b'-') {
            self.at += 1;
        }
        let digits = self.at;
        while self.peek().is_some_and(|b| b.is_ascii_digit()) {
            self.at += 1;
        }
        let count = self.at - digits;
        if count == 0 {
            return Err(Stop::NotCanonical);
        }
        if matches!(self.peek(), Some(b'.' | b'e' | b'E')) {
            return Err(Stop::Undecided);
        }
        let text = &self.bytes[digits..self.at];
        // No leading zeros, no "-0", and small enough to be exact in a double.
        if (count > 1 && text[0] == b'0') || (text == b"0" && digits > start) || count > 15 {
            return Err(if count > 15 {
                Stop::Undecided
            } else {
                Stop::NotCanonical
            });
        }
        Ok(())
    }

    fn value(&mut self, depth: usize) -> Result<(), Stop> {
        if depth > 64 {
            return Err(Stop::Undecided);
        }
        match self.peek().ok_or(Stop::NotCanonical)? {
            b'{' => self.object(depth, |scanner, _, depth| scanner.value(depth + 1)),
            b'[' => {
                self.at += 1;
                if self.peek() == Some(b']') {
                    self.at += 1;
                    return Ok(());
                }
                loop {
                    self.value(depth + 1)?;
                    match self.peek() {
                        Some(b',') => self.at += 1,
                        Some(b']') => {
                            self.at += 1;
                            return Ok(());
                        }
                        _ => return Err(Stop::NotCanonical),
                    }
                }
            }
            b'"' => self.string().map(|_| ()),
            b't' => self.literal(b"true"),
            b'f' => self.literal(b"false"),
            b'n' => self.literal(b"null"),
            _ => self.integer(),
        }
    }

    fn literal(&mut self, word: &[u8]) -> Result<(), Stop> {
        if self.bytes.get(self.at..self.at + word.len()) == Some(word) {
            self.at += word.len();
            Ok(())
        } else {
            Err(Stop::NotCanonical)
        }
    }

    /// An object whose keys strictly increase; `member` sees each key before its value is
    /// scanned and must scan it.
    fn object(
        &mut self,
        depth: usize,
        mut member: impl FnMut(&mut Self, &'a [u8], usize) -> Result<(), Stop>,
    ) -> Result<(), Stop> {
        self.expect(b'{')?;
        if self.peek() == Some(b'}') {
            self.at += 1;
            return Ok(());
        }
        let mut previous: Option<&[u8]> = None;
        loop {
            let escaped_before = self.escaped;
            let key = self.string()?;
            if self.escaped != escaped_before {
                // Escaped keys sort by their decoded UTF-16 units: leave them to the full check.
                return Err(Stop::Undecided);
            }
            // UTF-8 byte order equals UTF-16 order unless a key holds a character at or above
            // U+E000 next to one outside the BMP; such keys go to the full check.
            if key.iter().any(|b| *b >= 0xEE) {
                return Err(Stop::Undecided);
            }
            if previous.is_some_and(|previous| previous >= key) {
                return Err(Stop::NotCanonical);
            }
            previous = Some(key);
            self.expect(b':')?;
            member(self, key, depth)?;
            match self.peek() {
                Some(b',') => self.at += 1,
                Some(b'}') => {
                    self.at += 1;
                    return Ok(());
                }
                _ => return Err(Stop::NotCanonical),
            }
        }
    }
}

/// Check `bytes` (one leaf, valid UTF-8 assumed checked by the caller) for canonical form.
pub fn scan(bytes: &[u8]) -> Scan<'_> {
    if std::str::from_utf8(bytes).is_err() {
        return Scan::NotCanonical;
    }
    // Records are objects; anything else is for the full check to judge.
    if bytes.first() != Some(&b'{') {
        return Scan::Undecided;
    }
    let mut scanner = Scanner {
        bytes,
        at: 0,
        escaped: false,
    };
    let mut fields = Fields::default();
    let result = scanner.object(0, |scanner, key, depth| {
        let start = scanner.at;
        match key {
            b"seq" => {
                scanner.value(depth + 1)?;
                fields.seq = std::str::from_utf8(&scanner.bytes[start..scanner.at])
                    .ok()
                    .and_then(|text| text.parse().ok());
            }
            b"origin" | b"logged" if scanner.peek() == Some(b'"') => {
                let before = scanner.escaped;
                let raw = scanner.string()?;
                if scanner.escaped != before {
                    fields.escaped = true;
                }
                if key == b"origin" {
                    fields.origin = Some(raw);
                } else {
                    fields.logged = Some(raw);
                }
            }
            b"withheld" => {
                scanner.value(depth + 1)?;
                fields.withheld = &scanner.bytes[start..scanner.at] == b"true";
            }
            b"schema" => {
                fields.schema = true;
                scanner.value(depth + 1)?;
            }
            _ => scanner.value(depth + 1)?,
        }
        Ok(())
    });
    match result {
        Ok(()) if scanner.at == bytes.len() => Scan::Canonical(fields),
        Ok(()) => Scan::NotCanonical,
        Err(Stop::NotCanonical) => Scan::NotCanonical,
        Err(Stop::Undecided) => Scan::Undecided,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn full_check(bytes: &[u8]) -> bool {
        serde_json::from_slice::<serde_json::Value>(bytes)
            .ok()
            .and_then(|value| crate::record::canonical(&value).ok())
            .is_some_and(|canonical| canonical == bytes)
    }

    #[test]
    fn the_fast_check_agrees_with_the_full_one() {
        let cases: &[&str] = &[
            r#"{"a":1,"b":[true,false,null],"c":{"d":"e"}}"#,
            r#"{"b":1,"a":2}"#,
            r#"{"a":1,"a":2}"#,
            r#"{"a": 1}"#,
            r#"{"a":01}"#,
            r#"{"a":-0}"#,
            r#"{"a":1.5}"#,
            r#"{"a":1e3}"#,
            r#"{"a":"\u0041"}"#,
            r#"{"a":"\u001f"}"#,
            r#"{"a":"\u001F"}"#,
            r#"{"a":"\n"}"#,
            r#"{"a":"\u000a"}"#,
            r#"{"a":"\/"}"#,
            r#"{"a":"é😀"}"#,
            r#"{"a":[]}"#,
            r#"{"a":{}}"#,
            r#"{}"#,
            r#"{"a":1}x"#,
            r#"{"a":"x"#,
            r#"{"a":9007199254740991}"#,
            r#"{"é":1,"z":2}"#,
            r#"{"z":1,"é":2}"#,
            "{\"a\":\"\u{7f}\"}",
        ];
        for case in cases {
            let fast = scan(case.as_bytes());
            let full = full_check(case.as_bytes());
            match fast {
                Scan::Canonical(_) => assert!(full, "fast said canonical: {case}"),
                Scan::NotCanonical => assert!(!full, "fast said not canonical: {case}"),
                Scan::Undecided => {}
            }
        }
        let Scan::Canonical(fields) =
            scan(br#"{"logged":"2026","origin":"t/d","schema":"x","seq":42}"#)
        else {
            panic!("canonical");
        };
        assert_eq!(fields.seq, Some(42));
        assert_eq!(fields.origin, Some(&b"t/d"[..]));
        assert_eq!(fields.logged, Some(&b"2026"[..]));
        assert!(fields.schema);
    }
}
