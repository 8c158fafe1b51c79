//! Operators (`@rx`, `@pm`, ...).

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};
use regex::bytes::Regex;

use crate::macros::Macro;
use crate::pcre;

/// A compiled operator, without its negation.
#[derive(Debug)]
pub(crate) enum Operator {
    Rx(Rx),
    Pm(Pm),
    Contains(Macro),
    ContainsWord(Macro),
    BeginsWith(Macro),
    EndsWith(Macro),
    Streq(Macro),
    Within(Macro),
    Eq(Macro),
    Ge(Macro),
    Gt(Macro),
    Le(Macro),
    Lt(Macro),
    IpMatch(Vec<IpNet>),
    DetectSqli,
    DetectXss,
    ValidateByteRange(Box<[bool; 256]>),
    ValidateUrlEncoding,
    ValidateUtf8Encoding,
    UnconditionalMatch,
    NoMatch,
    /// `@geoLookup`: there is no geolocation database, so it never matches
    /// and GEO stays empty.
    GeoLookup,
    /// `@rbl`: evaluation does no network I/O, so it never matches.
    Rbl,
}

/// `@rx`: a regex compiled at load time, or a pattern with macros compiled
/// per transaction.
#[derive(Debug)]
pub(crate) enum Rx {
    Dynamic(Macro),
    /// A pattern that needs a PCRE-only construct, evaluated by one of the
    /// strategies in PCRE-ONLY.md.
    Emulated(crate::pcre_only::Emulated),
    /// A static pattern not checked yet: the loader checks all of them at
    /// the end, in parallel, and replaces this with `Lazy`.
    Pending(String),
    /// `^.*$`, which CRS uses to capture a whole value (every header name
    /// in 920450, the User-Agent in 901318). With `.` matching every byte and
    /// `$` only at the end, it matches any input and TX.0 is the input, so no
    /// regex runs.
    Everything,
    /// A checked static pattern, compiled the first time a request needs it
    /// (or by [`crate::Engine::warm_up`]). At paranoia level 1 about half of
    /// the CRS regexes are never needed, and compiling is most of load time.
    Lazy(Box<LazyRegex>),
}

/// A regex compiled on first use, once, whichever thread gets there first.
#[derive(Debug)]
pub(crate) struct LazyRegex {
    pub pattern: String,
    pub cell: std::sync::OnceLock<Result<Regex, String>>,
}

impl LazyRegex {
    pub(crate) fn get(&self) -> Result<&Regex, &str> {
        self.cell
            .get_or_init(|| pcre::compile(&self.pattern, false))
            .as_ref()
            .map_err(String::as_str)
    }
}

/// `@pm` and `@pmFromFile`: case-insensitive phrase match. Cloning shares
/// the phrases and the automaton.
#[derive(Debug, Clone)]
pub(crate) struct Pm {
    /// Built on first use (or by [`crate::Engine::warm_up`]), as regexes are:
    /// the automata of CRS's phrase sets were about a third of the time to
    /// load the rule set, and a request reaches only some of them. Shared by
    /// every rule with the same phrases, so each set is built once.
    ac: std::sync::Arc<std::sync::OnceLock<Result<AhoCorasick, String>>>,
    /// The phrases, kept for the engine's literal prefilter (an `@pm` can
    /// only match where one of its phrases occurs).
    pub phrases: std::sync::Arc<Vec<Vec<u8>>>,
}

impl Pm {
    pub(crate) fn new(phrases: Vec<Vec<u8>>) -> Pm {
        // The CRS uses some data files from several rules; share each set
        // (and so its automaton) between them.
        use std::cell::RefCell;
        use std::collections::HashMap;
        thread_local! {
            static CACHE: RefCell<HashMap<Vec<Vec<u8>>, Pm>> = RefCell::new(HashMap::new());
        }
        if let Some(pm) = CACHE.with(|c| c.borrow().get(&phrases).cloned()) {
            return pm;
        }
        let pm = Pm {
            ac: Default::default(),
            phrases: std::sync::Arc::new(phrases.clone()),
        };
        CACHE.with(|c| {
            let mut c = c.borrow_mut();
            if c.len() < 256 {
                c.insert(phrases, pm.clone());
            }
        });
        pm
    }

    /// The automaton, built on the first call. It fails only if the phrases
    /// are too many for the automaton's state space; `Engine::warm_up`
    /// reports that with the rule's position.
    pub(crate) fn automaton(&self) -> Result<&AhoCorasick, &str> {
        self.ac
            .get_or_init(|| {
                AhoCorasickBuilder::new()
                    .ascii_case_insensitive(true)
                    .match_kind(MatchKind::LeftmostFirst)
                    .build(self.phrases.as_slice())
                    .map_err(|e| e.to_string())
            })
            .as_ref()
            .map_err(String::as_str)
    }
}

/// An IPv4 or IPv6 network in 128-bit form.
#[derive(Debug, Clone, Copy)]
pub(crate) struct IpNet {
    addr: u128,
    mask: u128,
    v4: bool,
}

impl IpNet {
    pub(crate) fn parse(s: &str) -> Option<IpNet> {
        let (a, len) = match s.split_once('/') {
            Some((a, l)) => (a, Some(l.parse::<u32>().ok()?)),
            None => (s, None),
        };
        let ip: std::net::IpAddr = a.trim().parse().ok()?;
        let (addr, bits, v4) = match ip {
            std::net::IpAddr::V4(v) => (u128::from(u32::from(v)), 32, true),
            std::net::IpAddr::V6(v) => (u128::from(v), 128, false),
        };
        let len = len.unwrap_or(bits).min(bits);
        let mask = if len == 0 {
            0
        } else {
            (!0u128 >> (128 - bits)) & !((1u128 << (bits - len)) - 1).min(!0u128 >> (128 - bits))
        };
        let mask = if len == bits {
            !0u128 >> (128 - bits)
        } else {
            mask
        };
        Some(IpNet {
            addr: addr & mask,
            mask,
            v4,
        })
    }

    fn contains(&self, ip: &std::net::IpAddr) -> bool {
        let (addr, v4) = match ip {
            std::net::IpAddr::V4(v) => (u128::from(u32::from(*v)), true),
            std::net::IpAddr::V6(v) => (u128::from(*v), false),
        };
        v4 == self.v4 && addr & self.mask == self.addr
    }
}

/// What an operator needs from the transaction: macro expansion and the
/// place to put captures.
pub(crate) trait OpContext {
    fn expand<'m>(&'m self, m: &'m Macro) -> std::borrow::Cow<'m, [u8]>;
    fn dynamic_regex(&mut self, pattern: &[u8]) -> Option<Regex>;
}

/// C's `atoi`-like parse used by the numeric operators: leading spaces, an
/// optional sign, digits; anything else ends the number, and no digits is 0.
pub(crate) fn parse_int(s: &[u8]) -> i64 {
    let mut i = 0;
    while i < s.len() && crate::transform::is_space(s[i]) {
        i += 1;
    }
    let mut neg = false;
    if i < s.len() && (s[i] == b'-' || s[i] == b'+') {
        neg = s[i] == b'-';
        i += 1;
    }
    let mut v: i64 = 0;
    while i < s.len() && s[i].is_ascii_digit() {
        v = v.saturating_mul(10).saturating_add(i64::from(s[i] - b'0'));
        i += 1;
    }
    if neg {
        -v
    } else {
        v
    }
}

/// The numeric operators' comparisons, shared by `Operator::eval` and the
/// TX comparison fast path (`rule::TxCompare`) so that both read the same.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NumCompare {
    Eq,
    Ge,
    Gt,
    Le,
    Lt,
}

impl NumCompare {
    /// Whether `value` stands in this relation to `operand`.
    pub(crate) fn holds(self, value: i64, operand: i64) -> bool {
        match self {
            NumCompare::Eq => value == operand,
            NumCompare::Ge => value >= operand,
            NumCompare::Gt => value > operand,
            NumCompare::Le => value <= operand,
            NumCompare::Lt => value < operand,
        }
    }
}

impl Operator {
    /// The comparison and operand of a numeric operator (`@eq`, `@ge`,
    /// `@gt`, `@le`, `@lt`).
    pub(crate) fn numeric(&self) -> Option<(NumCompare, &Macro)> {
        match self {
            Operator::Eq(m) => Some((NumCompare::Eq, m)),
            Operator::Ge(m) => Some((NumCompare::Ge, m)),
            Operator::Gt(m) => Some((NumCompare::Gt, m)),
            Operator::Le(m) => Some((NumCompare::Le, m)),
            Operator::Lt(m) => Some((NumCompare::Lt, m)),
            _ => None,
        }
    }

    /// Runs the operator. When `captures` is given and the operator matched,
    /// it receives what ModSecurity puts into TX.0..TX.9.
    pub(crate) fn eval(
        &self,
        ctx: &mut dyn OpContext,
        input: &[u8],
        captures: Option<&mut Vec<Vec<u8>>>,
    ) -> bool {
        match self {
            Operator::Rx(rx) => {
                let dynamic;
                let re = match rx {
                    Rx::Dynamic(m) => {
                        let pattern = ctx.expand(m).into_owned();
                        match ctx.dynamic_regex(&pattern) {
                            Some(re) => {
                                dynamic = re;
                                &dynamic
                            }
                            None => return false,
                        }
                    }
                    Rx::Emulated(e) => return e.eval(input, captures),
                    Rx::Everything => {
                        if let Some(caps) = captures {
                            caps.clear();
                            caps.push(input.to_vec());
                        }
                        return true;
                    }
                    // A pattern that fails to compile here passed the syntax
                    // check at load; only a size limit can fail now, and
                    // `Engine::warm_up` reports it.
                    Rx::Lazy(l) => match l.get() {
                        Ok(re) => re,
                        Err(_) => return false,
                    },
                    // The loader never leaves a pattern pending.
                    Rx::Pending(_) => return false,
                };
                // Captures cost a slower engine; run it only after a match.
                if !re.is_match(input) {
                    return false;
                }
                match captures {
                    None => true,
                    Some(caps) => match re.captures(input) {
                        Some(c) => {
                            caps.clear();
                            for g in c.iter().take(10) {
                                caps.push(g.map(|m| m.as_bytes().to_vec()).unwrap_or_default());
                            }
                            true
                        }
                        None => false,
                    },
                }
            }
            Operator::Pm(pm) => match pm.automaton().ok().and_then(|ac| ac.find(input)) {
                Some(m) => {
                    if let Some(caps) = captures {
                        caps.clear();
                        caps.push(input[m.start()..m.end()].to_vec());
                    }
                    true
                }
                None => false,
            },
            Operator::Contains(m) => {
                let needle = ctx.expand(m);
                needle.is_empty() || memmem(input, &needle).is_some()
            }
            Operator::ContainsWord(m) => {
                let needle = ctx.expand(m);
                if needle.is_empty() {
                    return true;
                }
                let mut start = 0;
                while let Some(pos) = memmem(&input[start..], &needle) {
                    let s = start + pos;
                    let e = s + needle.len();
                    let before = s == 0 || !is_word(input[s - 1]);
                    let after = e == input.len() || !is_word(input[e]);
                    if before && after {
                        return true;
                    }
                    start = s + 1;
                }
                false
            }
            Operator::BeginsWith(m) => input.starts_with(&ctx.expand(m)),
            Operator::EndsWith(m) => input.ends_with(&ctx.expand(m)),
            Operator::Streq(m) => input == &*ctx.expand(m),
            Operator::Within(m) => {
                let hay = ctx.expand(m);
                input.is_empty() || memmem(&hay, input).is_some()
            }
            Operator::Eq(m) => NumCompare::Eq.holds(parse_int(input), parse_int(&ctx.expand(m))),
            Operator::Ge(m) => NumCompare::Ge.holds(parse_int(input), parse_int(&ctx.expand(m))),
            Operator::Gt(m) => NumCompare::Gt.holds(parse_int(input), parse_int(&ctx.expand(m))),
            Operator::Le(m) => NumCompare::Le.holds(parse_int(input), parse_int(&ctx.expand(m))),
            Operator::Lt(m) => NumCompare::Lt.holds(parse_int(input), parse_int(&ctx.expand(m))),
            Operator::IpMatch(nets) => {
                let Ok(s) = std::str::from_utf8(input) else {
                    return false;
                };
                let Ok(ip) = s.trim().parse::<std::net::IpAddr>() else {
                    return false;
                };
                nets.iter().any(|n| n.contains(&ip))
            }
            Operator::DetectSqli => {
                if sqli_impossible(input) {
                    return false;
                }
                // `detect_sqli` is this, plus a second tokenising pass for the
                // fingerprint that it always makes; only a detection needs it.
                let mut state =
                    libinjectionrs::SqliState::new(input, libinjectionrs::SqliFlags::FLAG_NONE);
                if state.detect() {
                    if let Some(caps) = captures {
                        caps.clear();
                        caps.push(state.get_fingerprint().as_str().as_bytes().to_vec());
                    }
                    true
                } else {
                    false
                }
            }
            Operator::DetectXss => {
                if xss_impossible(input) {
                    return false;
                }
                let r = libinjectionrs::detect_xss(input);
                if r.is_injection() {
                    if let Some(caps) = captures {
                        caps.clear();
                        caps.push(input.to_vec());
                    }
                    true
                } else {
                    false
                }
            }
            Operator::ValidateByteRange(allowed) => input.iter().any(|&c| !allowed[c as usize]),
            Operator::ValidateUrlEncoding => !valid_url_encoding(input),
            Operator::ValidateUtf8Encoding => std::str::from_utf8(input).is_err(),
            Operator::UnconditionalMatch => true,
            Operator::NoMatch | Operator::GeoLookup | Operator::Rbl => false,
        }
    }
}

fn is_word(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

pub(crate) fn memmem(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() {
        return Some(0);
    }
    if needle.len() > hay.len() {
        return None;
    }
    // `@within` searches a list of a few hundred bytes (allowed methods,
    // content types) on every request: a vectorised search, not a compare
    // per position.
    memchr::memmem::find(hay, needle)
}

fn valid_url_encoding(input: &[u8]) -> bool {
    let mut i = 0;
    while i < input.len() {
        if input[i] == b'%' {
            if i + 2 >= input.len() {
                return false;
            }
            if !input[i + 1].is_ascii_hexdigit() || !input[i + 2].is_ascii_hexdigit() {
                return false;
            }
            i += 3;
        } else {
            i += 1;
        }
    }
    true
}

/// Parses `@validateByteRange`'s argument, e.g. `1-255` or `9,10,13,32-126`.
pub(crate) fn parse_byte_range(arg: &str) -> Result<Box<[bool; 256]>, String> {
    let mut table = Box::new([false; 256]);
    for part in arg.split(',') {
        let part = part.trim();
        if part.is_empty() {
            continue;
        }
        let (lo, hi) = match part.split_once('-') {
            Some((a, b)) => (a.trim().parse::<u16>(), b.trim().parse::<u16>()),
            None => (part.parse::<u16>(), part.parse::<u16>()),
        };
        match (lo, hi) {
            (Ok(lo), Ok(hi)) if lo <= hi && hi <= 255 => {
                for c in lo..=hi {
                    table[c as usize] = true;
                }
            }
            _ => return Err(format!("invalid byte range `{part}`")),
        }
    }
    Ok(table)
}

/// Prepares a static `@rx` pattern: PCRE-only ones get their strategy now,
/// the others are compiled later by the loader (see [`Rx::Pending`]).
pub(crate) fn compile_rx(pattern: &str) -> Result<Rx, String> {
    if pcre::needs_pcre(pattern) {
        return crate::pcre_only::Emulated::new(pattern).map(Rx::Emulated);
    }
    if pattern == "^.*$" {
        return Ok(Rx::Everything);
    }
    Ok(Rx::Pending(pattern.to_string()))
}

/// Inputs libinjection's SQLi detector cannot flag, recognised without
/// running it. A value that is one word (`[A-Za-z][A-Za-z0-9_]*`) or one
/// run of digits tokenises to a single token (letters that may open a
/// prefixed string — `b'`, `n'`, `x'`, `u&'`… — fall back to a word without
/// the quote or `&`), and no quote means only the as-is context is tried, so
/// the fingerprint is that token's one-letter type. The only one-letter
/// fingerprint in libinjection's blacklist is `X` (evil), which comes from
/// folding two or more tokens, never from a word lookup. Most benign
/// argument names and many values (names, numbers, codes) are such words.
fn sqli_impossible(input: &[u8]) -> bool {
    match input.first() {
        Some(c) if c.is_ascii_alphabetic() => input
            .iter()
            .all(|&c| c.is_ascii_alphanumeric() || c == b'_'),
        Some(c) if c.is_ascii_digit() => input.iter().all(u8::is_ascii_digit),
        _ => false,
    }
}

/// Inputs libinjection's XSS detector cannot flag: without `<` no tag,
/// comment or doctype token is ever produced (in any of the five contexts
/// the data state only yields text), and without `=` an attribute name is
/// never followed by an attribute value, so the attribute checks (`on*`,
/// `style`, URL attributes) never fire; a leading value token alone carries
/// no attribute and is harmless.
fn xss_impossible(input: &[u8]) -> bool {
    !input.iter().any(|&c| c == b'<' || c == b'=')
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Rules with the same phrases share one automaton, built on first use,
    /// and it matches as `@pm` does: ignoring ASCII case, leftmost first.
    #[test]
    fn phrase_sets_are_shared_and_built_on_first_use() {
        let phrases = || vec![b"passwd".to_vec(), b"etc/shadow".to_vec()];
        let a = Pm::new(phrases());
        let b = Pm::new(phrases());
        assert!(
            std::sync::Arc::ptr_eq(&a.ac, &b.ac),
            "one automaton per set"
        );
        assert!(
            a.ac.get().is_none(),
            "nothing is built before the first use"
        );
        let ac = b.automaton().unwrap();
        let m = ac.find(&b"GET /ETC/Shadow?x=passwd"[..]).unwrap();
        assert_eq!((m.start(), m.end()), (5, 15));
        assert!(
            a.ac.get().is_some(),
            "the other rule sees the built automaton"
        );
        let other = Pm::new(vec![b"passwd".to_vec()]);
        assert!(!std::sync::Arc::ptr_eq(&a.ac, &other.ac));
    }

    /// The libinjection fast rejects agree with libinjection itself on
    /// SQL keywords, functions, operators-as-words, numbers and plain words,
    /// and on values that look like the start of an attack.
    #[test]
    fn libinjection_fast_rejects_agree() {
        let words = [
            "select",
            "SELECT",
            "union",
            "UNION",
            "or",
            "and",
            "xor",
            "not",
            "like",
            "null",
            "true",
            "false",
            "sleep",
            "benchmark",
            "version",
            "user",
            "admin",
            "sp_password",
            "waitfor",
            "delay",
            "exec",
            "execute",
            "drop",
            "table",
            "insert",
            "into",
            "from",
            "where",
            "having",
            "order",
            "by",
            "group",
            "limit",
            "procedure",
            "analyse",
            "load_file",
            "outfile",
            "char",
            "concat",
            "x",
            "b",
            "n",
            "q",
            "u",
            "e",
            "X",
            "B",
            "N",
            "Q",
            "U",
            "E",
            "abc",
            "Alice",
            "first_name",
            "f1",
            "a_b_c",
            "0",
            "1",
            "12345678901234567890",
            "75002",
            "ascii",
            "substring",
            "information_schema",
            "utl_inaddr",
            "dbms_pipe",
            "onload",
            "onerror",
            "javascript",
            "script",
            "style",
            "alert",
            "1e5",
            "0x41",
            "0b1",
            "x41",
            "id",
            "abcdefghijklmnopqrstuvwxyzabcdefghijklmnop",
        ];
        for w in words {
            if sqli_impossible(w.as_bytes()) {
                assert!(
                    !libinjectionrs::detect_sqli(w.as_bytes()).is_injection(),
                    "sqli {w}"
                );
            }
            if xss_impossible(w.as_bytes()) {
                assert!(
                    !libinjectionrs::detect_xss(w.as_bytes()).is_injection(),
                    "xss {w}"
                );
            }
        }
        for v in [
            "1 or 1",
            "1'or'1",
            "x onerror",
            "a' onload",
            "<script>",
            "x onerror=alert(1)",
            "javascript:alert(1)",
            "1;drop table t",
            "' or 1=1--",
        ] {
            if xss_impossible(v.as_bytes()) {
                assert!(
                    !libinjectionrs::detect_xss(v.as_bytes()).is_injection(),
                    "xss {v}"
                );
            }
            assert!(!sqli_impossible(v.as_bytes()), "{v}");
        }
    }
    use crate::rule::{parse_operator, DataFiles};

    struct NoFiles;
    impl DataFiles for NoFiles {
        fn read_data(&mut self, name: &str) -> Result<Vec<u8>, String> {
            match name {
                "words.data" => Ok(b"# comment\n\nunion select\nsleep(\n".to_vec()),
                "nets.data" => Ok(b"10.0.0.0/8\n192.168.1.1\n".to_vec()),
                _ => Err(format!("{name}: no such file")),
            }
        }
    }

    struct Literal;
    impl OpContext for Literal {
        fn expand<'m>(&'m self, m: &'m Macro) -> std::borrow::Cow<'m, [u8]> {
            std::borrow::Cow::Borrowed(m.as_literal().unwrap_or(b""))
        }
        fn dynamic_regex(&mut self, pattern: &[u8]) -> Option<Regex> {
            pcre::compile(&String::from_utf8_lossy(pattern), false).ok()
        }
    }

    #[test]
    fn whole_value_pattern_agrees_with_its_regex() {
        let re = pcre::compile("^.*$", false).expect("compiles");
        assert!(matches!(compile_rx("^.*$"), Ok(Rx::Everything)));
        // Empty, plain, newlines anywhere, bytes that are not UTF-8, NUL.
        for input in
            b"|x-forwarded-for|line\n|\nlead|a\r\nb|\xff\xfe bytes|\0".split(|&b| b == b'|')
        {
            let mut caps = Vec::new();
            let got = Operator::Rx(Rx::Everything).eval(&mut Literal, input, Some(&mut caps));
            let want = re.captures(input).map(|c| {
                c.iter()
                    .take(10)
                    .map(|g| g.map(|m| m.as_bytes().to_vec()).unwrap_or_default())
                    .collect::<Vec<_>>()
            });
            assert_eq!(got, want.is_some(), "{input:?}");
            assert_eq!(caps, want.unwrap_or_default(), "{input:?}");
        }
    }

    /// Runs `op` (as written after the variables of a SecRule) on `input`;
    /// returns whether the rule would match and TX.0 if captured.
    fn check(op: &str, input: &[u8], expect: bool) {
        let (negated, op_c, _, _) =
            parse_operator(op, &mut NoFiles).unwrap_or_else(|e| panic!("{op}: {e}"));
        let op_c = match op_c {
            Operator::Rx(Rx::Pending(p)) => Operator::Rx(Rx::Lazy(Box::new(LazyRegex {
                pattern: p,
                cell: Default::default(),
            }))),
            o => o,
        };
        let mut caps = Vec::new();
        let got = op_c.eval(&mut Literal, input, Some(&mut caps)) != negated;
        assert_eq!(got, expect, "{op} on {:?}", String::from_utf8_lossy(input));
    }

    #[test]
    fn string_operators() {
        check("@contains evil", b"very evil thing", true);
        check("@contains evil", b"good", false);
        check("@containsWord evil", b"devilish", false);
        check("@containsWord evil", b"an evil-doer", true);
        check("@beginsWith /admin", b"/admin/x", true);
        check("@endsWith .php", b"/x.php", true);
        check("@streq GET", b"GET", true);
        check("@streq GET", b"get", false);
        check("@within GET POST HEAD", b"POST", true);
        check("@within GET POST HEAD", b"PUT", false);
        check("!@within GET POST", b"PUT", true);
    }

    #[test]
    fn numeric_operators() {
        check("@eq 0", b"0", true);
        check("@eq 0", b"", true);
        check("@gt 5", b"10", true);
        check("@lt 5", b" 3abc", true);
        check("@ge -1", b"-1", true);
        check("@le 2", b"3", false);
    }

    #[test]
    fn matching_operators() {
        check("@rx (?i)union\\s+select", b"1 UNION  select 2", true);
        check("^\\d+$", b"123", true);
        check("@rx ^\\d+$", b"12a", false);
        check("@pm foo bar", b"xxBARxx", true);
        check("@pm foo bar", b"baz", false);
        check("@pmFromFile words.data", b"1 UNION SELECT 2", true);
        check("@pmFromFile words.data", b"sleep (", false);
        check("@ipMatch 127.0.0.1,10.0.0.0/8,::1", b"10.2.3.4", true);
        check("@ipMatch 127.0.0.1,10.0.0.0/8,::1", b"11.2.3.4", false);
        check("@ipMatch 2001:db8::/32", b"2001:db8::1", true);
        check("@ipMatchFromFile nets.data", b"192.168.1.1", true);
        check("@validateByteRange 32-126", b"abc", false);
        check("@validateByteRange 32-126", b"ab\x01", true);
        check("@validateUrlEncoding", b"a%zz", true);
        check("@validateUrlEncoding", b"a%20b", false);
        check("@validateUtf8Encoding", "é".as_bytes(), false);
        check("@validateUtf8Encoding", b"\xc0\xaf", true);
        check("@unconditionalMatch", b"", true);
        check("@noMatch", b"x", false);
    }

    /// Representative libinjection behaviour: well-known attack strings and
    /// the benign strings that must not trip it.
    #[test]
    fn libinjection_vectors() {
        let sqli = [
            "1 UNION SELECT * FROM TABLE",
            "-1' and 1=1--",
            "1' OR '1'='1",
            "admin'--",
            "1;DROP TABLE users",
            "' or 1=1#",
            "1 AND SLEEP(5)",
        ];
        let not_sqli = [
            "hello world",
            "O'Reilly",
            "1.5",
            "john@example.com",
            "SELECT is a word",
            "a-b-c",
            "",
        ];
        let xss = [
            "<script>alert(1)</script>",
            "');}</style><script>alert(1);</script>",
            "<img src=x onerror=alert(1)>",
            "\"><script>alert(1)</script>",
            "<svg onload=alert(1)>",
            "<a href=\"javascript:alert(1)\">x</a>",
        ];
        let not_xss = [
            "hello world",
            "a < b and c > d",
            "<b>bold</b>",
            "x=1&y=2",
            "",
        ];
        for (op, cases, expect) in [
            ("@detectSQLi", &sqli[..], true),
            ("@detectSQLi", &not_sqli[..], false),
            ("@detectXSS", &xss[..], true),
            ("@detectXSS", &not_xss[..], false),
        ] {
            for case in cases {
                check(op, case.as_bytes(), expect);
            }
        }
        // libinjection's fingerprint is what TX.0 captures.
        let r = libinjectionrs::detect_sqli(b"1 UNION SELECT * FROM TABLE");
        assert_eq!(
            r.fingerprint.map(|f| f.to_string()).as_deref(),
            Some("1UEok")
        );
    }
}
