//! Exact recognisers: canary records and fingerprints of the organisation's own records.
//!
//! Values arrive as CSV text and are kept only as truncated HMAC-SHA256 tags under a key the
//! caller supplies, so a memory dump or a core file of the gateway gives an attacker nothing to
//! read and nothing to test guesses against without the key.

use std::collections::HashSet;

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::policy::EntityKind;
use crate::recognize::Recognizers;

/// A fingerprint: the first 16 bytes of the HMAC. 128 bits leave no room for accidental
/// collisions among millions of records.
pub(crate) type Tag = [u8; 16];

/// The shortest key accepted. Anything shorter would make the tags guessable offline for
/// low-entropy values such as phone numbers.
pub const MIN_KEY_LEN: usize = 16;

/// The largest CSV accepted, so a wrong file cannot exhaust memory at start-up.
pub const MAX_CSV_BYTES: usize = 256 * 1024 * 1024;

/// What importing a CSV export did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportReport {
    /// Data rows read (the header row excluded).
    pub rows: usize,
    /// Values fingerprinted, by kind.
    pub fingerprinted: Vec<(EntityKind, usize)>,
    /// Values that are not identifiers the stream scanner can find (names, free text), per
    /// column name. They are not stored at all; a canary should include at least one email,
    /// phone or number column.
    pub skipped: Vec<(String, usize)>,
}

pub(crate) struct Exact {
    mac: Hmac<Sha256>,
    canaries: HashSet<Tag>,
    records: HashSet<Tag>,
    public: HashSet<Tag>,
}

/// The canonical form both sides hash: email addresses lower-cased; everything else reduced to
/// uppercase letters and digits, with UK phone numbers in national form.
pub(crate) fn canonical(kind: EntityKind, text: &[u8], out: &mut Vec<u8>) {
    out.clear();
    if kind == EntityKind::Email {
        out.extend(text.iter().map(u8::to_ascii_lowercase));
        return;
    }
    out.extend(
        text.iter()
            .filter(|b| b.is_ascii_alphanumeric())
            .map(u8::to_ascii_uppercase),
    );
    if kind == EntityKind::Phone {
        if out.starts_with(b"440") && out.len() == 13 {
            out.drain(..2);
        } else if out.starts_with(b"0044") {
            out.drain(..3);
            out[0] = b'0';
        } else if out.starts_with(b"44") {
            out[1] = b'0';
            out.remove(0);
        }
    }
}

impl Exact {
    pub fn new(key: &[u8]) -> Result<Exact, String> {
        if key.len() < MIN_KEY_LEN {
            return Err(format!(
                "fingerprint key must be at least {MIN_KEY_LEN} bytes"
            ));
        }
        let mac = Hmac::<Sha256>::new_from_slice(key).map_err(|e| e.to_string())?;
        Ok(Exact {
            mac,
            canaries: HashSet::new(),
            records: HashSet::new(),
            public: HashSet::new(),
        })
    }

    pub fn is_empty(&self) -> bool {
        self.canaries.is_empty() && self.records.is_empty() && self.public.is_empty()
    }

    pub fn has_canaries(&self) -> bool {
        !self.canaries.is_empty()
    }

    fn tag(&self, kind: EntityKind, canonical: &[u8]) -> Tag {
        let mut mac = self.mac.clone();
        // The kind is part of the message, so a phone number and an account number with the same
        // digits stay apart.
        mac.update(kind.name().as_bytes());
        mac.update(b"\0");
        mac.update(canonical);
        let full = mac.finalize().into_bytes();
        let mut tag = [0u8; 16];
        tag.copy_from_slice(&full[..16]);
        tag
    }

    /// What an identifier found in the stream is, if it is one of ours.
    pub fn lookup(&self, kind: EntityKind, text: &[u8], scratch: &mut Vec<u8>) -> Option<Verdict> {
        canonical(kind, text, scratch);
        let tag = self.tag(kind, scratch);
        if self.canaries.contains(&tag) {
            Some(Verdict::Canary)
        } else if self.records.contains(&tag) {
            Some(Verdict::Record)
        } else if self.public.contains(&tag) {
            Some(Verdict::Public)
        } else {
            None
        }
    }

    pub fn add_public(&mut self, recognizers: &Recognizers, value: &str) -> Result<(), String> {
        let value = value.trim();
        let kind = recognizers.classify(value.as_bytes()).ok_or_else(|| {
            format!("public value {value:?} is not an identifier the guard recognises")
        })?;
        let mut scratch = Vec::new();
        canonical(kind, value.as_bytes(), &mut scratch);
        let tag = self.tag(kind, &scratch);
        self.public.insert(tag);
        Ok(())
    }

    pub fn import(
        &mut self,
        recognizers: &Recognizers,
        csv: &str,
        canary: bool,
    ) -> Result<ImportReport, String> {
        if csv.len() > MAX_CSV_BYTES {
            return Err(format!("CSV is larger than {MAX_CSV_BYTES} bytes"));
        }
        let mut rows = parse_csv(csv);
        let header: Vec<String> = match rows.next() {
            Some(h) => h,
            None => return Ok(ImportReport::default()),
        };
        let mut report = ImportReport::default();
        let mut by_kind = [0usize; EntityKind::COUNT];
        let mut skipped = vec![0usize; header.len()];
        let mut scratch = Vec::new();
        for row in rows {
            if row.iter().all(|c| c.trim().is_empty()) {
                continue;
            }
            report.rows += 1;
            for (i, cell) in row.iter().enumerate() {
                let value = cell.trim();
                if value.is_empty() {
                    continue;
                }
                match recognizers.classify(value.as_bytes()) {
                    Some(kind) => {
                        canonical(kind, value.as_bytes(), &mut scratch);
                        let tag = self.tag(kind, &scratch);
                        if canary {
                            self.canaries.insert(tag);
                        } else {
                            self.records.insert(tag);
                        }
                        by_kind[kind as usize] += 1;
                    }
                    None => {
                        if i >= skipped.len() {
                            skipped.resize(i + 1, 0);
                        }
                        skipped[i] += 1;
                    }
                }
            }
        }
        report.fingerprinted = EntityKind::ALL
            .iter()
            .filter(|k| by_kind[**k as usize] > 0)
            .map(|k| (*k, by_kind[*k as usize]))
            .collect();
        report.skipped = skipped
            .iter()
            .enumerate()
            .filter(|(_, n)| **n > 0)
            .map(|(i, n)| {
                (
                    header
                        .get(i)
                        .cloned()
                        .unwrap_or_else(|| format!("column {}", i + 1)),
                    *n,
                )
            })
            .collect();
        Ok(report)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    Canary,
    Record,
    Public,
}

/// RFC 4180 CSV: quoted fields with doubled quotes, commas, CRLF or LF line ends. Malformed
/// quoting is read leniently (a stray quote is literal) rather than rejected: exports from
/// spreadsheets are rarely perfect.
fn parse_csv(text: &str) -> impl Iterator<Item = Vec<String>> + '_ {
    let bytes = text.as_bytes();
    let mut pos = 0;
    std::iter::from_fn(move || {
        if pos >= bytes.len() {
            return None;
        }
        let mut row = Vec::new();
        let mut field = Vec::new();
        let mut quoted = false;
        let mut at_start = true;
        while pos < bytes.len() {
            let b = bytes[pos];
            pos += 1;
            if quoted {
                if b == b'"' {
                    if bytes.get(pos) == Some(&b'"') {
                        field.push(b'"');
                        pos += 1;
                    } else {
                        quoted = false;
                    }
                } else {
                    field.push(b);
                }
                continue;
            }
            match b {
                b'"' if at_start => {
                    quoted = true;
                    at_start = false;
                }
                b',' => {
                    row.push(String::from_utf8_lossy(&field).into_owned());
                    field.clear();
                    at_start = true;
                }
                b'\n' => break,
                b'\r' => {}
                _ => {
                    field.push(b);
                    at_start = false;
                }
            }
        }
        row.push(String::from_utf8_lossy(&field).into_owned());
        Some(row)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_handles_quotes_and_crlf() {
        let rows: Vec<_> = parse_csv("a,b\r\n\"x, y\",\"say \"\"hi\"\"\"\n").collect();
        assert_eq!(rows, vec![vec!["a", "b"], vec!["x, y", "say \"hi\""]]);
    }

    #[test]
    fn phones_canonicalise_to_national_form() {
        let mut out = Vec::new();
        canonical(EntityKind::Phone, b"+44 (0)20 7946 0958", &mut out);
        assert_eq!(out, b"02079460958");
        canonical(EntityKind::Phone, b"+44 20 7946 0958", &mut out);
        assert_eq!(out, b"02079460958");
        canonical(EntityKind::Phone, b"020-7946-0958", &mut out);
        assert_eq!(out, b"02079460958");
    }
}
