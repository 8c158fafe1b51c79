//! The compiled rule model and the parsers for a rule's three arguments.

use regex::bytes::Regex;

use crate::error::ErrorKind;
use crate::macros::Macro;
use crate::operator::{self, IpNet, Operator, Pm};
use crate::transform::Transform;
use crate::vars::Var;

/// Which keys of a collection a target selects.
#[derive(Debug, Clone)]
pub(crate) enum Selector {
    All,
    /// A literal key, lowercased (keys compare case-insensitively).
    Key(String),
    /// `/regex/`, matched case-insensitively against the key.
    Regex(Regex),
    /// A `/regex/` that is a plain word (`/__utm/`), lowercased: a
    /// case-insensitive substring test, which is what the regex means,
    /// without running a regex per key per rule.
    Contains(String),
    /// A `/^word/` regex, lowercased: a case-insensitive prefix test.
    Prefix(String),
}

impl Selector {
    pub(crate) fn matches(&self, key: &str) -> bool {
        match self {
            Selector::All => true,
            Selector::Key(k) => k.eq_ignore_ascii_case(key),
            Selector::Regex(r) => r.is_match(key.as_bytes()),
            Selector::Contains(w) => {
                // The first byte rules out almost every position (the whole
                // TX collection is searched this way in phase 5).
                let w = w.as_bytes();
                w.first().is_some_and(|&first| {
                    key.as_bytes()
                        .windows(w.len())
                        .any(|k| k[0].to_ascii_lowercase() == first && k.eq_ignore_ascii_case(w))
                })
            }
            Selector::Prefix(w) => key
                .as_bytes()
                .get(..w.len())
                .is_some_and(|k| k.eq_ignore_ascii_case(w.as_bytes())),
        }
    }
}

/// The text a regex selector's pattern matches literally, if it is only
/// letters, digits, punctuation that is not regex syntax, and escaped
/// punctuation (`LEAKAGE\\/ERRORS`).
fn literal_word(pattern: &str) -> Option<String> {
    let mut word = String::new();
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        match c {
            // Punctuation with no meaning to the regex syntax outside a
            // class (and not `#`, which the `x` flag would make a comment).
            c if c.is_ascii_alphanumeric() || "_-/:@!%&=,;<>'\"~`".contains(c) => word.push(c),
            '\\' => match chars.next() {
                Some(e) if e.is_ascii_punctuation() => word.push(e),
                _ => return None,
            },
            _ => return None,
        }
    }
    (!word.is_empty()).then(|| word.to_ascii_lowercase())
}

/// One target of a rule (`ARGS:foo`, `&TX:x`, `XML:/*`).
#[derive(Debug, Clone)]
pub(crate) struct Target {
    pub var: Var,
    pub selector: Selector,
    pub count: bool,
    /// The selector as written, for `XML` XPath expressions.
    pub raw_key: String,
}

/// An exclusion (`!ARGS:foo`) of a rule.
#[derive(Debug, Clone)]
pub(crate) struct Exclusion {
    pub var: Var,
    pub selector: Selector,
}

/// What to do when a rule (or its whole chain) matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Disruptive {
    Pass,
    Block,
    Deny,
    Drop,
    Allow,
    Redirect,
}

/// A `setvar` operation.
#[derive(Debug, Clone)]
pub(crate) struct SetVar {
    pub collection: Var,
    pub name: Macro,
    pub op: SetOp,
    pub value: Macro,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SetOp {
    Set,
    Add,
    Sub,
    Delete,
}

/// The rules carrying a tag that a `ctl:ruleRemoveTargetByTag` regex
/// matches, computed on first use: (address of the engine's rule list, the
/// addresses of those rules in it). A rule's tags never change, so the tag
/// regexes run once per engine instead of once per rule and value.
pub(crate) type TaggedRules =
    std::sync::Arc<std::sync::OnceLock<(usize, crate::FastMap<usize, ()>)>>;

/// A `ctl` action.
#[derive(Debug, Clone)]
pub(crate) enum Ctl {
    RuleEngine(EngineMode),
    RuleRemoveById(Vec<(u32, u32)>),
    RuleRemoveByTag(Regex),
    RuleRemoveTargetById(Vec<(u32, u32)>, Exclusion),
    RuleRemoveTargetByTag(Regex, Exclusion, TaggedRules),
    RequestBodyProcessor(String),
    ForceRequestBodyVariable(bool),
    RequestBodyAccess(bool),
    RequestBodyLimit(u64),
    /// Audit logging is not implemented by this engine; these are accepted
    /// so the CRS loads, and do nothing.
    AuditEngine,
    AuditLogParts,
}

/// A non-disruptive action run when a rule matches, in written order.
#[derive(Debug, Clone)]
pub(crate) enum Action {
    SetVar(SetVar),
    /// `expirevar`: collections do not outlive a transaction here, so this
    /// is accepted and has no effect.
    ExpireVar,
    /// `initcol`: collections are per transaction; accepted, no effect.
    InitCol,
    Ctl(Ctl),
    SetEnv,
}

/// The rule engine mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EngineMode {
    /// Evaluate rules and enforce their disruptive actions.
    On,
    /// Evaluate rules and log, never disrupt.
    DetectionOnly,
    /// Do not evaluate rules.
    Off,
}

/// Metadata and actions of a rule.
#[derive(Debug, Clone, Default)]
pub(crate) struct Actions {
    pub id: Option<u32>,
    pub phase: Option<u8>,
    pub chain: bool,
    pub disruptive: Option<Disruptive>,
    pub status: Option<u16>,
    pub redirect: Option<Macro>,
    pub msg: Option<Macro>,
    pub logdata: Option<Macro>,
    pub tags: Vec<String>,
    pub severity: Option<u8>,
    pub ver: Option<String>,
    pub rev: Option<String>,
    pub maturity: Option<String>,
    pub accuracy: Option<String>,
    pub capture: bool,
    /// `None` marks a `t:none` reset.
    pub transforms: Vec<Option<Transform>>,
    pub multi_match: bool,
    pub log: Option<bool>,
    pub auditlog: Option<bool>,
    pub skip: u32,
    pub skip_after: Option<String>,
    pub actions: Vec<Action>,
}

/// A compiled rule; `chain` holds the next rule of a chain.
#[derive(Debug)]
pub(crate) struct Rule {
    pub id: u32,
    pub phase: u8,
    pub file: String,
    pub line: usize,
    pub targets: Vec<Target>,
    pub exclusions: Vec<Exclusion>,
    pub op: Operator,
    pub negated: bool,
    /// The operator as written, for logging.
    pub op_name: String,
    pub op_arg: String,
    /// The transformation pipeline after defaults and `t:none` resets.
    pub transforms: Vec<Transform>,
    /// Interned id of `transforms`, the key of the transformation cache.
    pub chain_id: u32,
    pub actions: Actions,
    pub chain: Option<Box<Rule>>,
    /// SecAction: no targets, always matches.
    pub unconditional: bool,
    /// This rule's bit in the literal prefilter of its pipeline, if its
    /// regex has a usable required-literal set.
    pub pf_bit: Option<u32>,
    /// For a rule whose first link can be ruled out by its prefilter bit
    /// alone, the index of its target group in `Inner::reject_groups`.
    pub reject_group: Option<u32>,
    /// Set when the link only compares one TX variable, or whether it
    /// exists, with a constant number.
    pub tx_compare: Option<TxCompare>,
}

/// A link of the shape `TX:key "@lt 2"` or `&TX:key "@eq 0"`, untransformed,
/// with a literal operand: CRS's paranoia-level skips and setup checks, about
/// ninety per request. The transaction evaluates it without the general
/// machinery (sources, the value cache, macro expansion of the operand), to
/// the same result and the same matched variable.
#[derive(Debug, Clone)]
pub(crate) struct TxCompare {
    /// The key, lowercased like a selector key.
    pub key: String,
    /// `&TX:key`: the count of such variables (0 or 1) is compared.
    pub count: bool,
    pub compare: operator::NumCompare,
    /// The operand, read as the numeric operators read it.
    pub operand: i64,
}

impl TxCompare {
    /// The fast form of `link`, if it has the shape.
    pub(crate) fn of(link: &Rule) -> Option<TxCompare> {
        use crate::macros::Part;
        if link.unconditional
            || link.targets.len() != 1
            || !link.transforms.is_empty()
            || link.actions.multi_match
            || link.actions.capture
        {
            return None;
        }
        let target = &link.targets[0];
        let Selector::Key(key) = &target.selector else {
            return None;
        };
        if target.var != Var::Tx {
            return None;
        }
        let (compare, operand) = link.op.numeric()?;
        let operand = match operand.parts.as_slice() {
            [] => 0,
            [Part::Literal(l)] => operator::parse_int(l),
            _ => return None,
        };
        Some(TxCompare {
            key: key.clone(),
            count: target.count,
            compare,
            operand,
        })
    }
}

impl Rule {
    /// Whether the rule or any of its chain has the given tag.
    pub(crate) fn has_tag(&self, re: &Regex) -> bool {
        self.actions.tags.iter().any(|t| re.is_match(t.as_bytes()))
    }

    /// Whether the rule's `msg` is a literal that `re` matches.
    pub(crate) fn msg_matches(&self, re: &Regex) -> bool {
        self.actions
            .msg
            .as_ref()
            .and_then(|m| m.as_literal())
            .is_some_and(|m| re.is_match(m))
    }

    /// Whether the rule's id lies in one of the inclusive `ranges`.
    pub(crate) fn id_in(&self, ranges: &[(u32, u32)]) -> bool {
        ranges.iter().any(|&(a, b)| self.id >= a && self.id <= b)
    }

    /// The rule and each rule chained to it, in order.
    pub(crate) fn links(&self) -> impl Iterator<Item = &Rule> {
        std::iter::successors(Some(self), |l| l.chain.as_deref())
    }

    /// Calls `f` on the rule and each rule chained to it, in order.
    pub(crate) fn for_each_link_mut(&mut self, mut f: impl FnMut(&mut Rule)) {
        let mut link = Some(self);
        while let Some(l) = link {
            f(l);
            link = l.chain.as_deref_mut();
        }
    }
}

fn split_top(s: &str, sep: u8) -> Vec<&str> {
    // Splits on `sep` outside single quotes and outside `/regex/` selectors.
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut start = 0;
    let mut quote = false;
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c == b'\\' && quote {
            i += 2;
            continue;
        }
        if c == b'\'' {
            quote = !quote;
        } else if c == sep && !quote {
            out.push(&s[start..i]);
            start = i + 1;
        }
        i += 1;
    }
    out.push(&s[start..]);
    out
}

pub(crate) fn parse_selector(key: &str) -> Result<Selector, ErrorKind> {
    let key = key.trim();
    let key = key
        .strip_prefix('\'')
        .and_then(|k| k.strip_suffix('\''))
        .unwrap_or(key);
    if key.len() >= 2 && key.starts_with('/') && key.ends_with('/') {
        let pattern = &key[1..key.len() - 1];
        // A trailing `.*` or `c*` can match nothing, so it does not change
        // whether an unanchored search finds the word (`/paramcounter_.*/`);
        // an escaped `\.*` or `\w*` is not such a tail.
        let bytes = pattern.as_bytes();
        let word_part = match bytes {
            [.., b'\\', _, b'*'] => pattern,
            [.., b'.', b'*'] => &pattern[..pattern.len() - 2],
            [.., c, b'*'] if c.is_ascii_alphanumeric() || *c == b'_' => {
                &pattern[..pattern.len() - 2]
            }
            _ => pattern,
        };
        if let Some(word) = literal_word(word_part) {
            return Ok(Selector::Contains(word));
        }
        if let Some(word) = word_part.strip_prefix('^').and_then(literal_word) {
            return Ok(Selector::Prefix(word));
        }
        let re = crate::pcre::compile_cached(pattern, true).map_err(ErrorKind::Regex)?;
        return Ok(Selector::Regex(re));
    }
    Ok(Selector::Key(key.to_ascii_lowercase()))
}

/// Parses one `VAR:key` element (without `!` or `&`).
pub(crate) fn parse_var_element(s: &str) -> Result<(Var, Selector, String), ErrorKind> {
    let (name, key) = match s.split_once(':') {
        Some((n, k)) => (n, Some(k)),
        None => (s, None),
    };
    let var =
        Var::from_name(name.trim()).ok_or_else(|| ErrorKind::UnknownVariable(name.to_string()))?;
    match key {
        None => Ok((var, Selector::All, String::new())),
        Some(k) if var == Var::Xml => Ok((var, Selector::All, k.to_string())),
        Some(k) => {
            if !var.is_collection() {
                return Err(ErrorKind::Syntax(format!("variable `{name}` takes no key")));
            }
            Ok((var, parse_selector(k)?, k.to_string()))
        }
    }
}

/// Parses a rule's variables argument.
pub(crate) fn parse_targets(s: &str) -> Result<(Vec<Target>, Vec<Exclusion>), ErrorKind> {
    let mut targets = Vec::new();
    let mut exclusions = Vec::new();
    for part in split_vars(s) {
        let part = part.trim();
        if part.is_empty() {
            continue;
        }
        if let Some(rest) = part.strip_prefix('!') {
            let (var, selector, _) = parse_var_element(rest)?;
            exclusions.push(Exclusion { var, selector });
        } else if let Some(rest) = part.strip_prefix('&') {
            let (var, selector, raw_key) = parse_var_element(rest)?;
            targets.push(Target {
                var,
                selector,
                count: true,
                raw_key,
            });
        } else {
            let (var, selector, raw_key) = parse_var_element(part)?;
            targets.push(Target {
                var,
                selector,
                count: false,
                raw_key,
            });
        }
    }
    Ok((targets, exclusions))
}

/// Splits the variables argument on `|`, except inside `/regex/` keys.
fn split_vars(s: &str) -> Vec<&str> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut start = 0;
    let mut in_re = false;
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if in_re && c == b'\\' {
            i += 2;
            continue;
        }
        if c == b'/'
            && i > 0
            && b[i - 1] == b':'
            && !s[start..]
                .trim_start_matches(['!', '&'])
                .to_ascii_uppercase()
                .starts_with("XML:")
        {
            in_re = true;
        } else if c == b'/' && in_re {
            in_re = false;
        } else if c == b'|' && !in_re {
            out.push(&s[start..i]);
            start = i + 1;
        }
        i += 1;
    }
    out.push(&s[start..]);
    out
}

/// Something `Include`-like the operator needs: data files next to rules.
pub(crate) trait DataFiles {
    fn read_data(&mut self, name: &str) -> Result<Vec<u8>, String>;
}

/// Parses the operator argument into (negated, operator, name, argument).
pub(crate) fn parse_operator(
    s: &str,
    files: &mut dyn DataFiles,
) -> Result<(bool, Operator, String, String), ErrorKind> {
    let mut s = s;
    let mut negated = false;
    if let Some(rest) = s.strip_prefix('!') {
        negated = true;
        s = rest;
    }
    let (name, arg) = if let Some(rest) = s.strip_prefix('@') {
        match rest.find(|c: char| c.is_ascii_whitespace()) {
            Some(p) => (&rest[..p], rest[p..].trim_start()),
            None => (rest, ""),
        }
    } else {
        ("rx", s)
    };
    let lname = name.to_ascii_lowercase();
    let m = || Macro::parse(arg);
    let op = match lname.as_str() {
        "rx" => {
            let mac = Macro::parse(arg);
            if mac.as_literal().is_some() {
                Operator::Rx(operator::compile_rx(arg).map_err(ErrorKind::Regex)?)
            } else {
                Operator::Rx(operator::Rx::Dynamic(mac))
            }
        }
        "pm" => {
            let phrases: Vec<Vec<u8>> = arg
                .split_ascii_whitespace()
                .map(|p| p.as_bytes().to_vec())
                .collect();
            Operator::Pm(Pm::new(phrases))
        }
        "pmfromfile" | "pmf" => {
            let mut phrases = Vec::new();
            for file in arg.split_ascii_whitespace() {
                let data = files.read_data(file).map_err(ErrorKind::Io)?;
                for line in data.split(|&c| c == b'\n') {
                    let line = line.strip_suffix(b"\r").unwrap_or(line);
                    let t = trim(line);
                    if t.is_empty() || t.starts_with(b"#") {
                        continue;
                    }
                    phrases.push(t.to_vec());
                }
            }
            Operator::Pm(Pm::new(phrases))
        }
        "contains" => Operator::Contains(m()),
        "containsword" => Operator::ContainsWord(m()),
        "beginswith" => Operator::BeginsWith(m()),
        "endswith" => Operator::EndsWith(m()),
        "streq" => Operator::Streq(m()),
        "within" => Operator::Within(m()),
        "eq" => Operator::Eq(m()),
        "ge" => Operator::Ge(m()),
        "gt" => Operator::Gt(m()),
        "le" => Operator::Le(m()),
        "lt" => Operator::Lt(m()),
        "ipmatch" => {
            let mut nets = Vec::new();
            for p in arg.split(',') {
                nets.push(
                    IpNet::parse(p.trim())
                        .ok_or_else(|| ErrorKind::Syntax(format!("invalid address `{p}`")))?,
                );
            }
            Operator::IpMatch(nets)
        }
        "ipmatchfromfile" | "ipmatchf" => {
            let data = files.read_data(arg.trim()).map_err(ErrorKind::Io)?;
            let mut nets = Vec::new();
            for line in String::from_utf8_lossy(&data).lines() {
                let t = line.trim();
                if t.is_empty() || t.starts_with('#') {
                    continue;
                }
                nets.push(
                    IpNet::parse(t)
                        .ok_or_else(|| ErrorKind::Syntax(format!("invalid address `{t}`")))?,
                );
            }
            Operator::IpMatch(nets)
        }
        "detectsqli" => Operator::DetectSqli,
        "detectxss" => Operator::DetectXss,
        "validatebyterange" => {
            Operator::ValidateByteRange(operator::parse_byte_range(arg).map_err(ErrorKind::Syntax)?)
        }
        "validateurlencoding" => Operator::ValidateUrlEncoding,
        "validateutf8encoding" => Operator::ValidateUtf8Encoding,
        "unconditionalmatch" => Operator::UnconditionalMatch,
        "nomatch" => Operator::NoMatch,
        "geolookup" => Operator::GeoLookup,
        "rbl" => Operator::Rbl,
        _ => return Err(ErrorKind::UnknownOperator(name.to_string())),
    };
    Ok((negated, op, name.to_string(), arg.to_string()))
}

fn trim(s: &[u8]) -> &[u8] {
    let a = s.iter().take_while(|c| c.is_ascii_whitespace()).count();
    let b = s
        .iter()
        .rev()
        .take_while(|c| c.is_ascii_whitespace())
        .count();
    if a >= s.len() {
        return &[];
    }
    &s[a..s.len() - b]
}

fn unquote(v: &str) -> String {
    let v = v.trim();
    if v.len() >= 2 && v.starts_with('\'') && v.ends_with('\'') {
        v[1..v.len() - 1].replace("\\'", "'")
    } else {
        v.to_string()
    }
}

/// Parses `1`, `1-5`, `1 2 3` or `1,2` id lists.
pub(crate) fn parse_id_ranges(s: &str) -> Result<Vec<(u32, u32)>, ErrorKind> {
    let mut out = Vec::new();
    for part in s.split([' ', ',']).map(str::trim).filter(|p| !p.is_empty()) {
        let bad = || ErrorKind::Syntax(format!("invalid rule id `{part}`"));
        match part.split_once('-') {
            Some((a, b)) => out.push((
                a.trim().parse().map_err(|_| bad())?,
                b.trim().parse().map_err(|_| bad())?,
            )),
            None => {
                let v = part.parse().map_err(|_| bad())?;
                out.push((v, v));
            }
        }
    }
    Ok(out)
}

pub(crate) fn parse_exclusion(s: &str) -> Result<Exclusion, ErrorKind> {
    let (var, selector, _) = parse_var_element(s.trim())?;
    Ok(Exclusion { var, selector })
}

fn parse_ctl(v: &str) -> Result<Ctl, ErrorKind> {
    let (name, val) = v
        .split_once('=')
        .ok_or_else(|| ErrorKind::Syntax(format!("ctl without value: `{v}`")))?;
    let on = |s: &str| matches!(s.trim().to_ascii_lowercase().as_str(), "on" | "true" | "1");
    Ok(match name.trim().to_ascii_lowercase().as_str() {
        "ruleengine" => Ctl::RuleEngine(
            parse_engine_mode(val)
                .ok_or_else(|| ErrorKind::Syntax(format!("invalid engine mode `{val}`")))?,
        ),
        "ruleremovebyid" => Ctl::RuleRemoveById(parse_id_ranges(val)?),
        "ruleremovebytag" => Ctl::RuleRemoveByTag(
            crate::pcre::compile_cached(val.trim(), false).map_err(ErrorKind::Regex)?,
        ),
        "ruleremovetargetbyid" => {
            let (ids, target) = val
                .split_once(';')
                .ok_or_else(|| ErrorKind::Syntax(format!("invalid ctl `{v}`")))?;
            Ctl::RuleRemoveTargetById(parse_id_ranges(ids)?, parse_exclusion(target)?)
        }
        "ruleremovetargetbytag" => {
            let (tag, target) = val
                .split_once(';')
                .ok_or_else(|| ErrorKind::Syntax(format!("invalid ctl `{v}`")))?;
            Ctl::RuleRemoveTargetByTag(
                crate::pcre::compile_cached(tag.trim(), false).map_err(ErrorKind::Regex)?,
                parse_exclusion(target)?,
                TaggedRules::default(),
            )
        }
        "requestbodyprocessor" => Ctl::RequestBodyProcessor(val.trim().to_ascii_uppercase()),
        "forcerequestbodyvariable" => Ctl::ForceRequestBodyVariable(on(val)),
        "requestbodyaccess" => Ctl::RequestBodyAccess(on(val)),
        "requestbodylimit" => Ctl::RequestBodyLimit(
            val.trim()
                .parse()
                .map_err(|_| ErrorKind::Syntax(format!("invalid limit `{val}`")))?,
        ),
        "auditengine" => Ctl::AuditEngine,
        "auditlogparts" => Ctl::AuditLogParts,
        other => return Err(ErrorKind::UnknownAction(format!("ctl:{other}"))),
    })
}

pub(crate) fn parse_engine_mode(s: &str) -> Option<EngineMode> {
    match s.trim().to_ascii_lowercase().as_str() {
        "on" => Some(EngineMode::On),
        "off" => Some(EngineMode::Off),
        "detectiononly" => Some(EngineMode::DetectionOnly),
        _ => None,
    }
}

fn parse_setvar(v: &str) -> Result<SetVar, ErrorKind> {
    let v = v.trim();
    let (del, v) = match v.strip_prefix('!') {
        Some(r) => (true, r),
        None => (false, v),
    };
    let (lhs, op, rhs) = if del {
        (v, SetOp::Delete, "")
    } else if let Some(p) = v.find('=') {
        let rhs = &v[p + 1..];
        if let Some(r) = rhs.strip_prefix('+') {
            (&v[..p], SetOp::Add, r)
        } else if let Some(r) = rhs.strip_prefix('-') {
            (&v[..p], SetOp::Sub, r)
        } else {
            (&v[..p], SetOp::Set, rhs)
        }
    } else {
        (v, SetOp::Set, "1")
    };
    let (coll, name) = lhs
        .split_once('.')
        .ok_or_else(|| ErrorKind::Syntax(format!("setvar without collection: `{v}`")))?;
    let collection = Var::from_name(coll.trim())
        .filter(|v| v.is_store())
        .ok_or_else(|| ErrorKind::UnknownVariable(coll.to_string()))?;
    Ok(SetVar {
        collection,
        name: Macro::parse(&name.trim().to_ascii_lowercase()),
        op,
        value: Macro::parse(rhs),
    })
}

fn severity(v: &str) -> Option<u8> {
    Some(match v.trim().to_ascii_uppercase().as_str() {
        "EMERGENCY" | "0" => 0,
        "ALERT" | "1" => 1,
        "CRITICAL" | "2" => 2,
        "ERROR" | "3" => 3,
        "WARNING" | "4" => 4,
        "NOTICE" | "5" => 5,
        "INFO" | "6" => 6,
        "DEBUG" | "7" => 7,
        _ => return None,
    })
}

/// Severity names as ModSecurity prints them.
pub(crate) fn severity_name(s: u8) -> &'static str {
    [
        "EMERGENCY",
        "ALERT",
        "CRITICAL",
        "ERROR",
        "WARNING",
        "NOTICE",
        "INFO",
        "DEBUG",
    ]
    .get(s as usize)
    .copied()
    .unwrap_or("DEBUG")
}

/// Parses an actions argument, appending into `a`. Errors are collected so
/// every bad action of a rule is reported.
pub(crate) fn parse_actions(s: &str, a: &mut Actions, errors: &mut Vec<ErrorKind>) {
    for item in split_top(s, b',') {
        let item = item.trim();
        if item.is_empty() {
            continue;
        }
        let (name, value) = match item.split_once(':') {
            Some((n, v)) => (n.trim(), unquote(v)),
            None => (item, String::new()),
        };
        let mut err = |e: ErrorKind| errors.push(e);
        match name.to_ascii_lowercase().as_str() {
            "id" => match value.parse() {
                Ok(id) => a.id = Some(id),
                Err(_) => err(ErrorKind::Syntax(format!("invalid id `{value}`"))),
            },
            "phase" => match value.as_str() {
                "1" | "2" | "3" | "4" | "5" => a.phase = value.parse().ok(),
                "request" => a.phase = Some(2),
                "response" => a.phase = Some(4),
                "logging" => a.phase = Some(5),
                _ => err(ErrorKind::Syntax(format!("invalid phase `{value}`"))),
            },
            "chain" => a.chain = true,
            "pass" => a.disruptive = Some(Disruptive::Pass),
            "block" => a.disruptive = Some(Disruptive::Block),
            "deny" => a.disruptive = Some(Disruptive::Deny),
            "drop" => a.disruptive = Some(Disruptive::Drop),
            "allow" => a.disruptive = Some(Disruptive::Allow),
            "redirect" => {
                a.disruptive = Some(Disruptive::Redirect);
                a.redirect = Some(Macro::parse(&value));
            }
            "status" => match value.parse() {
                Ok(s) => a.status = Some(s),
                Err(_) => err(ErrorKind::Syntax(format!("invalid status `{value}`"))),
            },
            "msg" => a.msg = Some(Macro::parse(&value)),
            "logdata" => a.logdata = Some(Macro::parse(&value)),
            "tag" => a.tags.push(value),
            "severity" => match severity(&value) {
                Some(s) => a.severity = Some(s),
                None => err(ErrorKind::Syntax(format!("invalid severity `{value}`"))),
            },
            "ver" => a.ver = Some(value),
            "rev" => a.rev = Some(value),
            "maturity" => a.maturity = Some(value),
            "accuracy" => a.accuracy = Some(value),
            "capture" => a.capture = true,
            "t" => {
                if value.eq_ignore_ascii_case("none") {
                    a.transforms.push(None);
                } else {
                    match Transform::from_name(&value) {
                        Some(t) => a.transforms.push(Some(t)),
                        None => err(ErrorKind::UnknownTransformation(value)),
                    }
                }
            }
            "multimatch" => a.multi_match = true,
            "log" => a.log = Some(true),
            "nolog" => a.log = Some(false),
            "auditlog" => a.auditlog = Some(true),
            "noauditlog" => a.auditlog = Some(false),
            "skip" => match value.parse() {
                Ok(n) => a.skip = n,
                Err(_) => err(ErrorKind::Syntax(format!("invalid skip `{value}`"))),
            },
            "skipafter" => a.skip_after = Some(value),
            "setvar" => match parse_setvar(&value) {
                Ok(sv) => a.actions.push(Action::SetVar(sv)),
                Err(e) => err(e),
            },
            "expirevar" => a.actions.push(Action::ExpireVar),
            "initcol" => a.actions.push(Action::InitCol),
            "setenv" => a.actions.push(Action::SetEnv),
            "ctl" => match parse_ctl(&value) {
                Ok(c) => a.actions.push(Action::Ctl(c)),
                Err(e) => err(e),
            },
            other => err(ErrorKind::UnknownAction(other.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The word selectors must answer exactly as the regex they replace.
    #[test]
    fn word_selectors_agree_with_their_regex() {
        let keys = [
            "__utma",
            "__UTMZ",
            "x__utm",
            "_pk_id.1",
            "_PK_ses",
            "pk_",
            "_pk",
            "",
            "session",
            "a-b_c",
            "pk_xid",
            "leakage/errors-x",
            "LEAKAGE_ERRORS",
            r"x-leakage\/errors",
            "A/B:C",
        ];
        for pattern in [
            "__utm",
            "^_pk_",
            "^a-b",
            "b_c",
            "^session",
            "_pk_.*",
            "utm_*",
            "^_pk.*",
            r"pk_\.id",
            r"^_pk_id\.",
            r"LEAKAGE\/ERRORS",
            r"LEAKAGE\\/ERRORS",
            "a/b:c",
        ] {
            let fast = parse_selector(&format!("/{pattern}/")).unwrap();
            assert!(
                matches!(fast, Selector::Contains(_) | Selector::Prefix(_)),
                "{pattern} should take the fast path"
            );
            let re = crate::pcre::compile_cached(pattern, true).unwrap();
            for key in keys {
                assert_eq!(
                    fast.matches(key),
                    re.is_match(key.as_bytes()),
                    "/{pattern}/ on {key:?}"
                );
            }
        }
        assert!(matches!(
            parse_selector("/^_ga(_|$)/").unwrap(),
            Selector::Regex(_)
        ));
        // Escaped tails are not word tails: these stay regexes, and valid ones.
        for pattern in [r"/ab\.*/", r"/ab\w*/", r"/^pbjs-\w+$/"] {
            let sel = parse_selector(pattern).unwrap();
            assert!(matches!(sel, Selector::Regex(_)), "{pattern}");
        }
        assert!(parse_selector(r"/ab\.*/").unwrap().matches("xab..."));
    }
}
