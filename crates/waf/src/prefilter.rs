//! The literal prefilter.
//!
//! For each static regex, [`required_literals_hir`] computes a set of
//! literals one of which must occur in any input the regex matches
//! (lowercased; the check is ASCII case-insensitive, so it is a superset
//! test). An `@pm` phrase set is its own exact literal set. One Aho-Corasick
//! automaton holds all of them; a value is scanned once and only the rules
//! whose literals occur run their operator. A rule without a usable literal
//! set always runs.

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};
use regex_syntax::hir::{Class, Hir, HirKind};

/// Exact sets larger than this are not tracked.
const EXACT_LIMIT: usize = 64;
/// Literal sets larger than this are not worth a prefilter.
const NEED_LIMIT: usize = 400;

struct Info {
    /// Every string the node can match, if that set is small and finite.
    exact: Option<Vec<Vec<u8>>>,
    /// A set one member of which occurs in every match.
    need: Option<Vec<Vec<u8>>>,
}

fn lower(b: &[u8]) -> Vec<u8> {
    b.to_ascii_lowercase()
}

fn dedup(mut v: Vec<Vec<u8>>) -> Vec<Vec<u8>> {
    v.sort();
    v.dedup();
    v
}

fn score(set: &[Vec<u8>]) -> Option<i64> {
    if set.is_empty() || set.iter().any(Vec::is_empty) || set.len() > NEED_LIMIT {
        return None;
    }
    // A single letter or digit occurs in nearly every value: it filters
    // nothing and makes every scan report matches.
    if set
        .iter()
        .any(|l| l.len() == 1 && l[0].is_ascii_alphanumeric())
    {
        return None;
    }
    let min = set.iter().map(Vec::len).min().unwrap_or(0) as i64;
    Some(min.min(8) * 1000 - set.len() as i64)
}

/// Whether a literal set is worth scanning for: no empty literal, no
/// single letter or digit, and not enormous.
pub(crate) fn usable(set: &[Vec<u8>]) -> bool {
    set.len() <= 20_000
        && !set.is_empty()
        && !set
            .iter()
            .any(|l| l.is_empty() || (l.len() == 1 && l[0].is_ascii_alphanumeric()))
}

fn better(a: Option<Vec<Vec<u8>>>, b: Option<Vec<Vec<u8>>>) -> Option<Vec<Vec<u8>>> {
    match (a, b) {
        (Some(a), Some(b)) => match (score(&a), score(&b)) {
            (Some(sa), Some(sb)) => Some(if sb > sa { b } else { a }),
            (Some(_), None) => Some(a),
            (None, Some(_)) => Some(b),
            (None, None) => None,
        },
        (Some(a), None) => score(&a).map(|_| a),
        (None, Some(b)) => score(&b).map(|_| b),
        (None, None) => None,
    }
}

fn product(a: &[Vec<u8>], b: &[Vec<u8>]) -> Option<Vec<Vec<u8>>> {
    if a.len() * b.len() > EXACT_LIMIT {
        return None;
    }
    let mut out = Vec::with_capacity(a.len() * b.len());
    for x in a {
        for y in b {
            let mut s = x.clone();
            s.extend_from_slice(y);
            out.push(s);
        }
    }
    Some(dedup(out))
}

fn class_bytes(c: &Class) -> Option<Vec<Vec<u8>>> {
    let mut bytes = Vec::new();
    match c {
        Class::Bytes(b) => {
            for r in b.ranges() {
                if (r.end() - r.start()) as usize > 32 {
                    return None;
                }
                for x in r.start()..=r.end() {
                    bytes.push(x.to_ascii_lowercase());
                }
            }
        }
        Class::Unicode(u) => {
            for r in u.ranges() {
                let (s, e) = (r.start() as u32, r.end() as u32);
                if e > 0xff || e - s > 32 {
                    return None;
                }
                for x in s..=e {
                    bytes.push((x as u8).to_ascii_lowercase());
                }
            }
        }
    }
    bytes.sort_unstable();
    bytes.dedup();
    if bytes.len() > 16 {
        return None;
    }
    Some(bytes.into_iter().map(|b| vec![b]).collect())
}

fn analyze(h: &Hir, depth: usize) -> Info {
    if depth > 200 {
        return Info {
            exact: None,
            need: None,
        };
    }
    match h.kind() {
        HirKind::Empty | HirKind::Look(_) => Info {
            exact: Some(vec![Vec::new()]),
            need: None,
        },
        HirKind::Literal(l) => {
            let v = vec![lower(&l.0)];
            Info {
                exact: Some(v.clone()),
                need: Some(v),
            }
        }
        HirKind::Class(c) => {
            let e = class_bytes(c);
            Info {
                need: e.clone(),
                exact: e,
            }
        }
        HirKind::Capture(c) => analyze(&c.sub, depth + 1),
        HirKind::Repetition(r) => {
            let sub = analyze(&r.sub, depth + 1);
            if r.min == 0 {
                return Info {
                    exact: None,
                    need: None,
                };
            }
            let exact = match (&sub.exact, r.max) {
                (Some(e), Some(max)) if max == r.min && r.min <= 4 => {
                    let mut cur = vec![Vec::new()];
                    let mut ok = true;
                    for _ in 0..r.min {
                        match product(&cur, e) {
                            Some(p) => cur = p,
                            None => {
                                ok = false;
                                break;
                            }
                        }
                    }
                    ok.then_some(cur)
                }
                _ => None,
            };
            let need = better(sub.need, exact.clone());
            Info { exact, need }
        }
        HirKind::Concat(parts) => {
            let mut best: Option<Vec<Vec<u8>>> = None;
            let mut cur: Option<Vec<Vec<u8>>> = Some(vec![Vec::new()]);
            let mut all_exact = true;
            for p in parts {
                let info = analyze(p, depth + 1);
                match info.exact {
                    Some(e) => {
                        // Literals of 8 bytes are selective enough; longer
                        // ones only cost load time.
                        let long = cur.as_ref().is_some_and(|c| c.iter().all(|l| l.len() >= 8));
                        let next = if long {
                            None
                        } else {
                            cur.as_ref().and_then(|c| product(c, &e))
                        };
                        match next {
                            Some(n) => cur = Some(n),
                            None => {
                                best = better(best, cur.take());
                                all_exact = false;
                                cur = Some(e);
                            }
                        }
                    }
                    None => {
                        all_exact = false;
                        best = better(best, cur.take());
                        best = better(best, info.need);
                        cur = Some(vec![Vec::new()]);
                    }
                }
            }
            let exact = if all_exact { cur.clone() } else { None };
            best = better(best, cur);
            Info { exact, need: best }
        }
        HirKind::Alternation(alts) => {
            let mut exact: Option<Vec<Vec<u8>>> = Some(Vec::new());
            let mut need: Option<Vec<Vec<u8>>> = Some(Vec::new());
            for a in alts {
                let info = analyze(a, depth + 1);
                exact = match (exact, info.exact.clone()) {
                    (Some(mut x), Some(e)) if x.len() + e.len() <= EXACT_LIMIT => {
                        x.extend(e);
                        Some(x)
                    }
                    _ => None,
                };
                let n = info
                    .need
                    .or(info.exact.filter(|e| !e.iter().any(Vec::is_empty)));
                need = match (need, n) {
                    (Some(mut x), Some(n)) if x.len() + n.len() <= NEED_LIMIT => {
                        x.extend(n);
                        Some(x)
                    }
                    _ => None,
                };
            }
            Info {
                exact: exact.map(dedup),
                need: need.map(dedup),
            }
        }
    }
}

/// The literals one of which must occur (ASCII case-insensitively) in any
/// input the pattern matches, or `None` when no useful set exists.
#[cfg(test)]
pub(crate) fn required_literals(translated_pattern: &str) -> Option<Vec<Vec<u8>>> {
    let hir = crate::pcre::parse_hir(translated_pattern).ok()?;
    required_literals_hir(&hir)
}

/// [`required_literals`] for an already parsed pattern.
pub(crate) fn required_literals_hir(hir: &Hir) -> Option<Vec<Vec<u8>>> {
    let info = analyze(hir, 0);
    let need = better(
        info.need,
        info.exact.filter(|e| !e.iter().any(Vec::is_empty)),
    )?;
    score(&need)?;
    Some(need)
}

/// One automaton over the required literals of every prefiltered regex.
/// Literals shared by several regexes (`select`, `<script`) are one pattern.
#[derive(Debug)]
pub(crate) struct ChainPrefilter {
    pub ac: AhoCorasick,
    /// For each automaton pattern, the bits of the rules it belongs to, as a
    /// range of `bit_list`.
    pattern_bits: Vec<std::ops::Range<u32>>,
    bit_list: Vec<u32>,
    /// Number of rule bits.
    pub bits: u32,
}

impl ChainPrefilter {
    pub(crate) fn build(rules: &[(u32, Vec<Vec<u8>>)]) -> Option<ChainPrefilter> {
        let mut by_literal: std::collections::BTreeMap<Vec<u8>, Vec<u32>> =
            std::collections::BTreeMap::new();
        let mut bits = 0;
        for (bit, lits) in rules {
            for l in lits {
                by_literal
                    .entry(l.to_ascii_lowercase())
                    .or_default()
                    .push(*bit);
            }
            bits = bits.max(bit + 1);
        }
        let mut patterns = Vec::with_capacity(by_literal.len());
        let mut pattern_bits = Vec::with_capacity(by_literal.len());
        let mut bit_list = Vec::new();
        for (lit, mut owners) in by_literal {
            owners.sort_unstable();
            owners.dedup();
            let start = bit_list.len() as u32;
            bit_list.extend(owners);
            pattern_bits.push(start..bit_list.len() as u32);
            patterns.push(lit);
        }
        // A contiguous NFA: it builds in a few milliseconds for the CRS's
        // thousands of literals, where a DFA costs tens.
        let ac = AhoCorasickBuilder::new()
            .ascii_case_insensitive(true)
            .match_kind(MatchKind::Standard)
            .kind(Some(aho_corasick::AhoCorasickKind::ContiguousNFA))
            .build(&patterns)
            .ok()?;
        Some(ChainPrefilter {
            ac,
            pattern_bits,
            bit_list,
            bits,
        })
    }

    /// Scans a value once and sets the bits of every rule whose literal
    /// occurs, appending the words to `arena` and returning their range.
    pub(crate) fn scan_into(&self, value: &[u8], arena: &mut Vec<u64>) -> std::ops::Range<usize> {
        let start = arena.len();
        arena.resize(start + self.bits.div_ceil(64) as usize, 0);
        for m in self.ac.find_overlapping_iter(value) {
            let r = &self.pattern_bits[m.pattern().as_usize()];
            for &bit in &self.bit_list[r.start as usize..r.end as usize] {
                arena[start + (bit / 64) as usize] |= 1 << (bit % 64);
            }
        }
        start..arena.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(pattern: &str, expect: Option<&[&str]>) {
        let got = required_literals(&crate::pcre::translate(pattern));
        let got: Option<Vec<String>> = got.map(|v| {
            v.iter()
                .map(|l| String::from_utf8_lossy(l).into_owned())
                .collect()
        });
        let expect: Option<Vec<String>> = expect.map(|e| e.iter().map(|s| s.to_string()).collect());
        assert_eq!(got, expect, "{pattern}");
    }

    #[test]
    fn literal_sets() {
        check(r"(?i)union\s+select", Some(&["select"]));
        check(
            r"(?i:foo|bar)\d",
            Some(&[
                "bar0", "bar1", "bar2", "bar3", "bar4", "bar5", "bar6", "bar7", "bar8", "bar9",
                "foo0", "foo1", "foo2", "foo3", "foo4", "foo5", "foo6", "foo7", "foo8", "foo9",
            ]),
        );
        check(r"(?i:foo|bar)[a-z]", Some(&["bar", "foo"]));
        check(r"^.*$", None);
        check(r"a?b*", None);
        check(r"[;&|]\s*id", Some(&["id"]));
        check(r"(?:ab|cd)ef", Some(&["abef", "cdef"]));
    }
}
