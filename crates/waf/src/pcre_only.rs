//! Bounded strategies for the few CRS patterns that need PCRE-only features.
//!
//! Rust's regex has no look-around and no back-references, which keeps every
//! match linear in the input. CRS v4 needs neither; CRS v3.3.4 has three
//! patterns that do (see PCRE-ONLY.md). Each gets a strategy built from
//! linear-time regexes plus a bounded check per candidate position, so the
//! cost stays O(n·k) for a small fixed k, never exponential.

use regex::bytes::Regex;

use crate::pcre;

/// How a PCRE-only pattern is evaluated.
#[derive(Debug)]
pub(crate) enum Emulated {
    /// `(?<!X)Y`: every match of `Y` (tried at every start position) counts
    /// unless `X` matches ending right where it starts.
    NegLookbehind { behind: Regex, main: Regex },
    /// `Y(?!X)` at the end of the pattern: a match of `Y` counts unless `X`
    /// matches right after it.
    NegLookahead { main: Regex, ahead: Regex },
    /// Rule 942130's SQL tautology pattern (`a = a`, `a != b`): two words
    /// around a comparison operator, compared with a back-reference in PCRE.
    Tautology(Box<Tautology>),
}

#[derive(Debug)]
pub(crate) struct Tautology {
    word: Regex,
    /// Operators after which the second word must differ from the first.
    differ: Vec<Regex>,
    /// Operators after which the second word must equal the first.
    same: Vec<Regex>,
}

fn matching_paren(p: &[u8], open: usize) -> Option<usize> {
    let mut depth = 0;
    let mut i = open;
    let mut in_class = false;
    while i < p.len() {
        match p[i] {
            b'\\' => i += 1,
            b'[' if !in_class => in_class = true,
            b']' if in_class => in_class = false,
            b'(' if !in_class => depth += 1,
            b')' if !in_class => {
                depth -= 1;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => {}
        }
        i += 1;
    }
    None
}

impl Emulated {
    pub(crate) fn new(pattern: &str) -> Result<Emulated, String> {
        let b = pattern.as_bytes();
        if pattern.contains("\\1") && pattern.contains("(?!\\b\\1\\b)") {
            let c = |s: &str| pcre::compile(s, true);
            let differ = [
                r"^<>",
                r"^<=",
                r"^<",
                r"^not\s+regexp",
                r"^not\s+like",
                r"^is\s+not",
                r"^>=",
                r"^>",
                r"^!=",
                r"^\^",
            ];
            let same = [
                r"^<=>",
                r"^sounds\s+like",
                r"^like",
                r"^regexp",
                r"^rlike",
                r"^=",
            ];
            return Ok(Emulated::Tautology(Box::new(Tautology {
                word: c(r"^[0-9A-Za-z_]+")?,
                differ: differ.iter().map(|s| c(s)).collect::<Result<_, _>>()?,
                same: same.iter().map(|s| c(s)).collect::<Result<_, _>>()?,
            })));
        }
        if let Some(start) = pattern.find("(?<!") {
            let end = matching_paren(b, start).ok_or("unbalanced look-behind")?;
            let behind = format!("(?:{})\\z", &pattern[start + 4..end]);
            let main = format!("{}{}", &pattern[..start], &pattern[end + 1..]);
            return Ok(Emulated::NegLookbehind {
                behind: pcre::compile(&behind, false)?,
                main: pcre::compile(&main, false)?,
            });
        }
        if let Some(start) = pattern.rfind("(?!") {
            let end = matching_paren(b, start).ok_or("unbalanced look-ahead")?;
            if end + 1 == pattern.len() {
                let ahead = format!("^(?:{})", &pattern[start + 3..end]);
                let main = pattern[..start].to_string();
                return Ok(Emulated::NegLookahead {
                    main: pcre::compile(&main, false)?,
                    ahead: pcre::compile(&ahead, false)?,
                });
            }
        }
        Err("look-around or back-reference in a form no bounded strategy covers".into())
    }

    pub(crate) fn eval(&self, input: &[u8], captures: Option<&mut Vec<Vec<u8>>>) -> bool {
        let found = match self {
            Emulated::NegLookbehind { behind, main } => {
                let mut at = 0;
                let mut found = None;
                while at <= input.len() {
                    let Some(m) = main.find_at(input, at) else {
                        break;
                    };
                    if !behind.is_match(&input[..m.start()]) {
                        found = Some((m.start(), m.end()));
                        break;
                    }
                    at = m.start() + 1;
                }
                found
            }
            Emulated::NegLookahead { main, ahead } => {
                let mut at = 0;
                let mut found = None;
                while at <= input.len() {
                    let Some(m) = main.find_at(input, at) else {
                        break;
                    };
                    if !ahead.is_match(&input[m.end()..]) {
                        found = Some((m.start(), m.end()));
                        break;
                    }
                    at = m.start() + 1;
                }
                found
            }
            Emulated::Tautology(t) => t.find(input),
        };
        match found {
            Some((s, e)) => {
                if let Some(caps) = captures {
                    caps.clear();
                    caps.push(input[s..e].to_vec());
                }
                true
            }
            None => false,
        }
    }
}

fn is_word(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

fn is_junk(c: u8) -> bool {
    matches!(
        c,
        b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r' | b'\'' | b'"' | b'`' | b'(' | b')'
    )
}

impl Tautology {
    fn find(&self, input: &[u8]) -> Option<(usize, usize)> {
        for s in 0..input.len() {
            if !is_word(input[s]) || (s > 0 && is_word(input[s - 1])) {
                continue;
            }
            let Some(w1) = self.word.find(&input[s..]) else {
                continue;
            };
            let w1 = &input[s..s + w1.end()];
            let mut p = s + w1.len();
            while p < input.len() && is_junk(input[p]) {
                p += 1;
            }
            for (ops, want_same) in [(&self.differ, false), (&self.same, true)] {
                for op in ops.iter() {
                    let Some(m) = op.find(&input[p..]) else {
                        continue;
                    };
                    let mut q = p + m.end();
                    while q < input.len() && is_junk(input[q]) {
                        q += 1;
                    }
                    let Some(w2) = self.word.find(&input[q..]) else {
                        continue;
                    };
                    let w2b = &input[q..q + w2.end()];
                    let boundary = q == 0 || !is_word(input[q - 1]);
                    let equal = boundary && w2b.eq_ignore_ascii_case(w1);
                    if want_same && equal {
                        return Some((s, q + w2b.len()));
                    }
                    if !want_same && !equal {
                        return Some((s, q + w2b.len()));
                    }
                }
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(pattern: &str, input: &str, expect: bool) {
        let e = Emulated::new(pattern).unwrap();
        assert_eq!(e.eval(input.as_bytes(), None), expect, "{input}");
    }

    #[test]
    fn strategies() {
        let p920120 = r#"(?<!&(?:[aAoOuUyY]uml)|&(?:[aAeEiIoOuU]circ)|&(?:amp)|&(?:apos));|['\"=]"#;
        check(p920120, "file&auml;.txt", false);
        check(p920120, "file;.txt", true);
        check(p920120, "fi'le", true);
        check(r"<\?(?!xml)", "<?xml version", false);
        check(r"<\?(?!xml)", "<?php echo", true);
        let t = r#"(?i:[\s'\"`()]*?\b([\d\w]+)\b[\s'\"`()]*?(?:<(?:=(?:[\s'\"`()]*?(?!\b\1\b)[\d\w]+|>[\s'\"`()]*?(?:\b\1\b))|>?[\s'\"`()]*?(?!\b\1\b)[\d\w]+)|(?:not\s+(?:regexp|like)|is\s+not|>=?|!=|\^)[\s'\"`()]*?(?!\b\1\b)[\d\w]+|(?:(?:sounds\s+)?like|r(?:egexp|like)|=)[\s'\"`()]*?(?:\b\1\b)))"#;
        check(t, "1=1", true);
        check(t, "a' or 'x'='x", true);
        check(t, "1=2", false);
        check(t, "1!=2", true);
        check(t, "1<=1", false);
        check(t, "hello world", false);
    }
}
