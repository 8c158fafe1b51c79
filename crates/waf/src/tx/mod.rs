//! Transactions: one request and its response going through the rules.
//!
//! This module holds the public types, the transaction's state and its
//! accessors; its parts are the phase entry points (`phases`), running a
//! phase's rules (`run`), evaluating one rule link (`eval`), macro expansion
//! and scalar variables (`expand`), actions (`actions`), matched-rule
//! records and the error log (`log`), the per-transaction caches (`cache`)
//! and the prefilter summaries built on them (`summary`).

mod actions;
mod cache;
mod eval;
mod expand;
mod log;
mod phases;
mod run;
mod summary;

use std::time::Instant;

use regex::bytes::Regex;

use crate::body;
use crate::engine::Engine;
use crate::rule::{EngineMode, Exclusion};
use crate::vars::Var;
use crate::FastMap;

pub(crate) use cache::Caches;
use cache::MAX_POOLED;

/// Facts about a request known before its headers are read.
#[derive(Debug, Clone, Default)]
pub struct TxMeta {
    /// The client address (after trusted-proxy resolution).
    pub remote_addr: String,
    /// The client port.
    pub remote_port: u16,
    /// The address the request arrived on.
    pub server_addr: String,
    /// The port the request arrived on.
    pub server_port: u16,
    /// The request's unique id, echoed in every error log line.
    pub unique_id: String,
}

/// What the rules decided.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Verdict {
    /// Let the request (or response) through.
    Continue,
    /// Answer with `status` instead; `rule_id` is the rule that decided,
    /// or for the engine's own refusals 0 (413, request body over its
    /// limit) or [`ARGUMENTS_LIMIT_RULE_ID`] (400, arguments past a limit).
    Deny { status: u16, rule_id: u32 },
    /// Close the connection without answering.
    Drop { rule_id: u32 },
    /// Redirect the client.
    Redirect {
        status: u16,
        location: String,
        rule_id: u32,
    },
}

/// A rule (chain) that matched during the transaction.
#[derive(Debug, Clone)]
pub struct MatchedRule {
    /// The rule id.
    pub id: u32,
    /// The phase it ran in.
    pub phase: u8,
    /// The expanded `msg`.
    pub msg: String,
    /// The expanded `logdata`.
    pub data: String,
    /// The severity, 0 (emergency) to 7 (debug).
    pub severity: Option<u8>,
    /// The rule's tags.
    pub tags: Vec<String>,
    /// The variable that matched last, e.g. `ARGS:q`.
    pub matched_var_name: String,
    /// Whether the rule writes to the error log (`log`, not `nolog`).
    pub logged: bool,
}

/// The request and response as the rules see them.
#[derive(Debug, Default)]
struct Request {
    method: Vec<u8>,
    uri_raw: Vec<u8>,
    uri: Vec<u8>,
    protocol: Vec<u8>,
    line: Vec<u8>,
    filename: Vec<u8>,
    basename: Vec<u8>,
    query: Vec<u8>,
    headers: Vec<(String, Vec<u8>)>,
    cookies: Vec<(String, Vec<u8>)>,
    args_get: Vec<(String, Vec<u8>)>,
    args_post: Vec<(String, Vec<u8>)>,
    files: Vec<(String, Vec<u8>)>,
    files_sizes: Vec<(String, Vec<u8>)>,
    files_combined_size: usize,
    part_headers: Vec<(String, Vec<u8>)>,
    multipart: Option<body::Multipart>,
    xml: Option<body::Xml>,
    body: Vec<u8>,
    body_truncated: bool,
    body_processor: Option<String>,
    reqbody_error: Option<String>,
    /// What the parsers left out for a limit (SecArgumentsLimit, the JSON
    /// name cap), one message each; see `enforce_argument_limits`.
    truncations: Vec<String>,
    /// How many of `truncations` have been acted on.
    truncations_reported: usize,
    resp_status: Vec<u8>,
    resp_protocol: Vec<u8>,
    resp_headers: Vec<(String, Vec<u8>)>,
    resp_content_type: Vec<u8>,
    resp_body: Vec<u8>,
    resp_body_truncated: bool,
}

const STORES: [Var; 8] = [
    Var::Tx,
    Var::Ip,
    Var::Global,
    Var::Session,
    Var::User,
    Var::Resource,
    Var::Geo,
    Var::Env,
];

fn store_index(v: Var) -> usize {
    STORES.iter().position(|&s| s == v).unwrap_or(0)
}

/// Mutable per-transaction state the rules read and write.
#[derive(Debug)]
struct State {
    mode: EngineMode,
    stores: [FastMap<String, Vec<u8>>; 8],
    matched_var: Vec<u8>,
    /// Built from a static variable name and a `String` key, so always
    /// UTF-8; kept as bytes so a match costs a copy, not a validation.
    matched_var_name: Vec<u8>,
    matched_vars: MatchedList,
    removed_ids: Vec<(u32, u32)>,
    removed_tags: Vec<Regex>,
    removed_targets: Vec<(Vec<(u32, u32)>, Exclusion)>,
    removed_targets_by_tag: Vec<(Regex, Exclusion, crate::rule::TaggedRules)>,
    body_processor: Option<String>,
    force_body_variable: bool,
    body_access: bool,
    body_limit: u64,
    highest_severity: u8,
    allow_all: bool,
}

/// The rule id the engine reports when a request had more arguments than
/// `SecArgumentsLimit` (or a JSON name over the cap) and was refused or
/// flagged instead of being inspected in part: in `Verdict::Deny`, in
/// `matched_rules()` and in the error log line. It is the id of the rule
/// ModSecurity's recommended configuration uses for the same purpose
/// (`SecRule &ARGS "@ge 1000" "id:200007,phase:2,deny,status:400"`), so
/// operators recognise it; the refusal itself is the engine's own, like the
/// 413 of the body limit (which reports rule id 0), and cannot be removed by
/// rule exclusions.
pub const ARGUMENTS_LIMIT_RULE_ID: u32 = 200_007;

/// One request/response pair being evaluated.
pub struct Transaction {
    engine: Engine,
    meta: TxMeta,
    req: Request,
    st: State,
    caches: Caches,
    matched: Vec<MatchedRule>,
    log_lines: Vec<String>,
    started: Instant,
    interrupted: Option<Verdict>,
    phases_done: u8,
}

impl Drop for Transaction {
    fn drop(&mut self) {
        let mut caches = std::mem::take(&mut self.caches);
        caches.spare_rules = std::mem::take(&mut self.matched);
        if caches.reset() {
            if let Ok(mut pool) = self.engine.inner.cache_pool.lock() {
                if pool.len() < MAX_POOLED {
                    pool.push(caches);
                }
            }
        }
    }
}

impl std::fmt::Debug for Transaction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transaction")
            .field("unique_id", &self.meta.unique_id)
            .finish()
    }
}

/// Appends to a buffer and returns the appended range.
fn push_range(buf: &mut Vec<u8>, bytes: &[u8]) -> std::ops::Range<usize> {
    let start = buf.len();
    buf.extend_from_slice(bytes);
    start..buf.len()
}

/// MATCHED_VARS: names and values in one buffer.
#[derive(Debug, Default)]
struct MatchedList {
    buf: Vec<u8>,
    items: Vec<(std::ops::Range<usize>, std::ops::Range<usize>)>,
}

impl MatchedList {
    fn clear(&mut self) {
        self.buf.clear();
        self.items.clear();
    }

    fn push(&mut self, name: &[u8], value: &[u8]) {
        let n = push_range(&mut self.buf, name);
        let v = push_range(&mut self.buf, value);
        self.items.push((n, v));
    }

    fn iter(&self) -> impl Iterator<Item = (&str, &[u8])> {
        self.items.iter().map(|(n, v)| {
            (
                std::str::from_utf8(&self.buf[n.clone()]).unwrap_or(""),
                &self.buf[v.clone()],
            )
        })
    }
}

impl Transaction {
    pub(crate) fn new(engine: Engine, meta: TxMeta) -> Transaction {
        let cfg = &engine.inner.config;
        let st = State {
            mode: cfg.mode,
            stores: Default::default(),
            matched_var: Vec::new(),
            matched_var_name: Vec::new(),
            matched_vars: MatchedList::default(),
            removed_ids: Vec::new(),
            removed_tags: Vec::new(),
            removed_targets: Vec::new(),
            removed_targets_by_tag: Vec::new(),
            body_processor: None,
            force_body_variable: false,
            body_access: cfg.request_body_access,
            body_limit: cfg.request_body_limit,
            highest_severity: 255,
            allow_all: false,
        };
        // CRS sets about a hundred TX variables per request (901's
        // defaults, scores, flags): one allocation instead of a rehash chain.
        let mut st = st;
        st.stores[0].reserve(128);
        // Buffers come from the engine's pool, so a steady stream of requests
        // reuses them instead of growing new ones each time.
        let caches = engine
            .inner
            .cache_pool
            .lock()
            .ok()
            .and_then(|mut p| p.pop())
            .unwrap_or_default();
        let mut caches = caches;
        caches.transformed.width = engine.inner.transform_chains.len();
        let matched = std::mem::take(&mut caches.spare_rules);
        Transaction {
            engine,
            meta,
            req: Request::default(),
            st,
            caches,
            matched,
            log_lines: Vec::new(),
            started: Instant::now(),
            interrupted: None,
            phases_done: 0,
        }
    }

    /// Every rule that matched, in order.
    pub fn matched_rules(&self) -> &[MatchedRule] {
        &self.matched
    }

    /// ModSecurity-style error log lines, one per logged match.
    pub fn error_log_lines(&self) -> &[String] {
        &self.log_lines
    }

    /// A value of the TX collection, e.g. `blocking_inbound_anomaly_score`.
    pub fn tx_var(&self, name: &str) -> Option<&[u8]> {
        self.st.stores[0]
            .get(&name.to_ascii_lowercase())
            .map(Vec::as_slice)
    }

    /// The request body error, if a body processor failed or arguments
    /// were left out for a limit.
    pub fn request_body_error(&self) -> Option<&str> {
        self.req.reqbody_error.as_deref()
    }

    /// Removes the rules whose ids fall in any of the inclusive `ranges`
    /// from this transaction, exactly as a `ctl:ruleRemoveById` taken before
    /// phase 1 would (a range whose start is past its end removes nothing,
    /// as in `ctl`). For exclusions decided outside the rules, e.g. from the
    /// gateway's normalised request path: call it right after
    /// [`Engine::transaction`](crate::Engine::transaction) and before
    /// [`process_request_headers`](Self::process_request_headers); called
    /// later, it affects only the rules not yet run. It does not lift the
    /// engine's own refusals (body limit, [`ARGUMENTS_LIMIT_RULE_ID`]).
    pub fn remove_rules_by_id(&mut self, ranges: &[(u32, u32)]) {
        self.st.removed_ids.extend_from_slice(ranges);
    }

    /// Stops the rules in `ranges` from looking at one target, exactly as a
    /// `ctl:ruleRemoveTargetById=ID;TARGET` taken before phase 1 would: the
    /// narrow exclusion an operator makes for one argument or header of one
    /// path. The same timing as [`remove_rules_by_id`](Self::remove_rules_by_id).
    pub fn remove_target_by_id(&mut self, ranges: &[(u32, u32)], target: &TargetExclusion) {
        self.st
            .removed_targets
            .push((ranges.to_vec(), target.0.clone()));
    }
}

/// One target a rule can be told to skip (`ARGS:q`,
/// `REQUEST_HEADERS:User-Agent`, `REQUEST_COOKIES:/^utm_/`), parsed once,
/// as the target of `ctl:ruleRemoveTargetById` is.
#[derive(Debug, Clone)]
pub struct TargetExclusion(crate::rule::Exclusion);

impl TargetExclusion {
    /// Parses a target in SecLang's `COLLECTION:key` form.
    pub fn parse(target: &str) -> Result<TargetExclusion, crate::ErrorKind> {
        crate::rule::parse_exclusion(target).map(TargetExclusion)
    }
}
