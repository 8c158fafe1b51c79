//! Translation of the PCRE dialect the CRS is written in into the syntax of
//! Rust's `regex` crate, matching bytes.
//!
//! ModSecurity compiles `@rx` with `PCRE_DOTALL | PCRE_DOLLAR_ENDONLY` and
//! without UTF mode, so patterns match bytes, `.` matches a newline and `$`
//! only matches at the very end. Rust's regex gives the same with Unicode off
//! and `s` on. What Rust cannot express (look-around, back-references) is
//! rewritten by the bounded strategies listed in PCRE-ONLY.md; possessive
//! quantifiers and atomic groups become ordinary ones, which can only make a
//! pattern match more often, never less.

use regex::bytes::{Regex, RegexBuilder};

/// The largest compiled program or lazy DFA cache one pattern may use.
/// Some CRS patterns are hundreds of alternatives long; this is enough for the
/// largest of them while still bounding memory.
const SIZE_LIMIT: usize = 64 << 20;

/// Compiles a PCRE pattern as ModSecurity would.
pub(crate) fn compile(pattern: &str, caseless: bool) -> Result<Regex, String> {
    let translated = translate(pattern);
    RegexBuilder::new(&translated)
        .unicode(false)
        .dot_matches_new_line(true)
        .case_insensitive(caseless)
        .size_limit(SIZE_LIMIT)
        .dfa_size_limit(SIZE_LIMIT)
        .build()
        .map_err(|e| format!("{e}"))
}

/// Like [`compile`], but reuses an earlier compilation of the same pattern
/// on this thread. Rule files repeat small patterns many times (the CRS puts
/// `!REQUEST_COOKIES:/__utm/` on hundreds of rules); a compiled `Regex` is
/// cheap to clone and shares its program.
pub(crate) fn compile_cached(pattern: &str, caseless: bool) -> Result<Regex, String> {
    use std::cell::RefCell;
    use std::collections::HashMap;
    thread_local! {
        static CACHE: RefCell<HashMap<(String, bool), Regex>> = RefCell::new(HashMap::new());
    }
    /// Bounds the cache; beyond it patterns are compiled each time.
    const MAX_CACHED: usize = 4096;
    if let Some(re) = CACHE.with(|c| c.borrow().get(&(pattern.to_string(), caseless)).cloned()) {
        return Ok(re);
    }
    let re = compile(pattern, caseless)?;
    CACHE.with(|c| {
        let mut c = c.borrow_mut();
        if c.len() < MAX_CACHED {
            c.insert((pattern.to_string(), caseless), re.clone());
        }
    });
    Ok(re)
}

/// Parses a translated pattern as the compiler will see it, without
/// building the matcher: this checks its syntax at load time.
pub(crate) fn parse_hir(translated: &str) -> Result<regex_syntax::hir::Hir, String> {
    regex_syntax::ParserBuilder::new()
        .unicode(false)
        .utf8(false)
        .dot_matches_new_line(true)
        .build()
        .parse(translated)
        .map_err(|e| e.to_string())
}

/// Whether a pattern uses a construct Rust's regex cannot express directly.
pub(crate) fn needs_pcre(pattern: &str) -> bool {
    pattern.contains("(?=")
        || pattern.contains("(?!")
        || pattern.contains("(?<=")
        || pattern.contains("(?<!")
}

/// Rewrites PCRE-only syntax into the Rust equivalent.
pub(crate) fn translate(p: &str) -> String {
    let possessive = possessive_whitespace(p);
    let p = possessive.as_str();
    let b = p.as_bytes();
    let mut out = String::with_capacity(p.len() + 8);
    let mut i = 0;
    let mut in_class = false;
    while i < b.len() {
        let c = b[i];
        if c == b'\\' && i + 1 < b.len() {
            let n = b[i + 1];
            match n {
                b'x' if b.get(i + 2) == Some(&b'{') => {
                    // `\x{HH}` is a byte here, as in PCRE without UTF mode.
                    if let Some(end) = p[i + 3..].find('}') {
                        let hex = &p[i + 3..i + 3 + end];
                        match u32::from_str_radix(hex, 16) {
                            Ok(v) if v <= 0xff => push_literal(&mut out, v as u8),
                            _ => out.push_str(&p[i..i + 3 + end + 1]),
                        }
                        i += 3 + end + 1;
                        continue;
                    }
                    out.push_str("\\x");
                }
                b'e' => out.push_str("\\x1b"),
                b'h' => out.push_str(if in_class { " \\t" } else { "[ \\t]" }),
                b'0' => {
                    // PCRE's \0 is an octal escape: \0, \0d or \0dd.
                    let mut j = i + 2;
                    let mut v = 0u32;
                    while j < b.len() && j < i + 4 && (b'0'..=b'7').contains(&b[j]) {
                        v = v * 8 + u32::from(b[j] - b'0');
                        j += 1;
                    }
                    out.push_str(&format!("\\x{:02x}", v & 0xff));
                    i = j;
                    continue;
                }
                b'Z' => out.push_str("\\z"),
                b'/' | b'"' | b'\'' | b'<' | b'>' | b'=' | b'@' | b'%' | b',' | b';' | b':'
                | b'!' | b'`' | b'_' | b'&' | b'~' => {
                    // Escaping a character that needs none is allowed in PCRE;
                    // Rust only allows it for meta characters.
                    push_literal(&mut out, n);
                }
                _ if n >= 0x80 => push_literal(&mut out, n),
                _ => {
                    out.push('\\');
                    out.push(n as char);
                }
            }
            i += 2;
            continue;
        }
        if in_class {
            if c == b'[' && b.get(i + 1) == Some(&b':') {
                // POSIX class inside a bracket expression: copy through.
                if let Some(end) = p[i..].find(":]") {
                    out.push_str(&p[i..i + end + 2]);
                    i += end + 2;
                    continue;
                }
            }
            if c == b'[' {
                out.push_str("\\[");
                i += 1;
                continue;
            }
            if c == b']' {
                in_class = false;
            }
            if c == b'&' || c == b'~' || c == b'-' && b.get(i + 1) == Some(&b'-') {
                // Rust reads `&&`, `~~` and `--` in a class as set operations.
                push_literal(&mut out, c);
                i += 1;
                continue;
            }
            if c >= 0x80 {
                push_literal(&mut out, c);
            } else {
                out.push(c as char);
            }
            i += 1;
            continue;
        }
        match c {
            b'[' => {
                in_class = true;
                out.push('[');
                i += 1;
                if b.get(i) == Some(&b'^') {
                    out.push('^');
                    i += 1;
                }
                if b.get(i) == Some(&b']') {
                    out.push_str("\\]");
                    i += 1;
                }
                continue;
            }
            b'(' if p[i..].starts_with("(?>") => {
                out.push_str("(?:");
                i += 3;
                continue;
            }
            b'*' | b'+' | b'?' | b'}' => {
                out.push(c as char);
                i += 1;
                // A possessive quantifier becomes a greedy one.
                if b.get(i) == Some(&b'+') {
                    i += 1;
                }
                continue;
            }
            b'{' => {
                // A brace that does not start a valid repetition is a literal
                // in PCRE and an error in Rust.
                let rest = &p[i + 1..];
                let end = rest.find('}');
                let valid = end.is_some_and(|e| {
                    let inner = &rest[..e];
                    !inner.is_empty()
                        && !inner.starts_with(',')
                        && inner.chars().all(|ch| ch.is_ascii_digit() || ch == ',')
                        && inner.matches(',').count() <= 1
                });
                if valid {
                    out.push('{');
                } else {
                    out.push_str("\\{");
                }
                i += 1;
                continue;
            }
            _ => {}
        }
        if c >= 0x80 {
            push_literal(&mut out, c);
        } else {
            out.push(c as char);
        }
        i += 1;
    }
    out
}

/// A possessive whitespace run (`\s*+`, `\s++`) never gives whitespace back,
/// so whatever follows it cannot start with whitespace. Rust has no
/// possessive quantifiers; this makes that explicit where it matters: a
/// negated class right after the run (directly, or first in a branch of the
/// group that follows) gets `\s` added to its exclusions. With that, the
/// greedy `\s*` the quantifier becomes matches exactly what PCRE matches
/// (CRS v3.3.4 rule 922110 depends on it; see PCRE-ONLY.md).
fn possessive_whitespace(p: &str) -> String {
    let mut out = p.to_string();
    let mut positions = Vec::new();
    let b = p.as_bytes();
    let mut i = 0;
    let mut in_class = false;
    while i < b.len() {
        match b[i] {
            b'\\' => {
                if !in_class && (p[i..].starts_with("\\s*+") || p[i..].starts_with("\\s++")) {
                    positions.push(i + 4);
                }
                i += 2;
                continue;
            }
            b'[' if !in_class => in_class = true,
            b']' if in_class => in_class = false,
            _ => {}
        }
        i += 1;
    }
    for pos in positions.into_iter().rev() {
        exclude_whitespace_at(&mut out, pos, 0);
    }
    out
}

fn exclude_whitespace_at(p: &mut String, pos: usize, depth: usize) {
    if depth > 16 || pos >= p.len() {
        return;
    }
    if p[pos..].starts_with("[^") {
        p.insert_str(pos + 2, "\\s");
        return;
    }
    if !p[pos..].starts_with('(') {
        return;
    }
    // The start of each top-level branch of the group at `pos`.
    let b = p.as_bytes();
    let mut starts = Vec::new();
    let mut i = pos + 1;
    if p[i..].starts_with("?:") {
        i += 2;
    } else if p[i..].starts_with('?') {
        return;
    }
    starts.push(i);
    let mut level = 0;
    let mut in_class = false;
    while i < b.len() {
        match b[i] {
            b'\\' => {
                i += 2;
                continue;
            }
            b'[' if !in_class => in_class = true,
            b']' if in_class => in_class = false,
            b'(' if !in_class => level += 1,
            b')' if !in_class => {
                if level == 0 {
                    break;
                }
                level -= 1;
            }
            b'|' if !in_class && level == 0 => starts.push(i + 1),
            _ => {}
        }
        i += 1;
    }
    for s in starts.into_iter().rev() {
        exclude_whitespace_at(p, s, depth + 1);
    }
}

fn push_literal(out: &mut String, c: u8) {
    out.push_str(&format!("\\x{c:02x}"));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(pattern: &str, input: &[u8], expect: bool) {
        let re = compile(pattern, false).unwrap_or_else(|e| panic!("{pattern}: {e}"));
        assert_eq!(
            re.is_match(input),
            expect,
            "{pattern} on {:?}",
            String::from_utf8_lossy(input)
        );
    }

    #[test]
    fn pcre_dialect() {
        check(r"\x{5c}a", b"\\a", true);
        check(r"a\/b", b"a/b", true);
        check(r"[\x80-\xff]", &[0xc3], true);
        check(r"a{", b"a{", true);
        check(r"a++b", b"aab", true);
        check(r"(?>ab)c", b"abc", true);
        check(r"a.b", b"a\nb", true);
        check(r"[]a]", b"]", true);
        check(r"\0", b"\0", true);
        check(r"[a&&b]", b"&", true);
        // A possessive whitespace run does not give whitespace to what follows.
        check(r"^a;\s*+(?:[^c][^=]*=x|;?)$", b"a; charset=x", false);
        check(r"^a;\s*+(?:[^c][^=]*=x|;?)$", b"a; name=x", true);
    }
}
