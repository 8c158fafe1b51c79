//! Transactions: one request and its response going through the rules.

use crate::fxhash::FxMap;
use std::borrow::Cow;
use std::time::Instant;

use regex::bytes::Regex;

use crate::body;
use crate::engine::{Engine, Item, LimitAction};
use crate::macros::{Macro, Part};
use crate::operator::OpContext;
use crate::rule::{Action, Ctl, Disruptive, EngineMode, Exclusion, Rule, Selector, SetOp, Target};
use crate::transform::Transform;
use crate::vars::Var;

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
    stores: [FxMap<String, Vec<u8>>; 8],
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

/// Caches that make repeated work cheap within a transaction.
#[derive(Default)]
pub(crate) struct Caches {
    /// Transformed values keyed by (variable, value index, pipeline id):
    /// each pipeline runs once per value per transaction, whatever the
    /// number of rules sharing it.
    transformed: TransformCache,
    /// Regexes compiled from macro-expanded patterns.
    regex: FxMap<Vec<u8>, Option<Regex>>,
    /// Per (list, pipeline): the list's length when computed and the union
    /// of its values' prefilter bits.
    summaries: FxMap<(u8, u32), (usize, std::ops::Range<usize>)>,
    /// Prefilter bits of raw values, shared by the pipelines that leave a
    /// value unchanged (see `cached_bits`).
    raw_bits: FxMap<(u8, u32), std::ops::Range<usize>>,
    /// Prefilter bits of transformed values by a case-insensitive hash of
    /// their bytes: (the value's range in `arena`, its bits).
    bits_by_content: FxMap<u64, (std::ops::Range<usize>, std::ops::Range<usize>)>,
    /// Per list id: (its length when computed, the union of its values'
    /// `transform::features`).
    list_features: FxMap<u8, (usize, u32)>,
    /// Scratch list of one list's value bit ranges (`list_union`).
    bit_ranges: Vec<std::ops::Range<usize>>,
    /// The (id, phase) of `nolog` rules already in `Transaction::matched`.
    recorded_nolog: crate::fxhash::FxSet<(u32, u8)>,
    /// Per reject group (`Inner::reject_groups`), its summary in this phase.
    group_bits: Vec<GroupSummary>,
    /// Scratch list of one group's part ranges (`group_union`).
    group_parts: Vec<std::ops::Range<usize>>,
    scratch: Vec<u8>,
    scratch2: Vec<u8>,
    /// Transformed values and prefilter bits, referenced by `CacheEntry`.
    arena: Vec<u8>,
    bit_arena: Vec<u64>,
    /// Matches of the rule being evaluated, and their names and values.
    found: Vec<Found>,
    found_buf: Vec<u8>,
    /// The previous MATCHED_VARS, kept to reuse its buffers.
    spare_matched: MatchedList,
    /// The matched-rule list of a finished transaction, for the next one:
    /// CRS's flow-control rules alone match forty to sixty times a request,
    /// and growing the list from empty copied it five times over.
    spare_rules: Vec<MatchedRule>,
}

/// A reject group's prefilter summary within one phase.
#[derive(Clone)]
enum GroupSummary {
    /// Not computed yet in this phase.
    Pending,
    /// The union of the bits of every value, in `Caches::bit_arena`.
    Union(std::ops::Range<usize>),
    /// Some value's bits could not be cached (the cache is full): the
    /// group's rules are evaluated the ordinary way.
    Unknown,
}

/// Whether a prefilter bit is set in a summary's words.
fn has_bit(words: &[u64], bit: u32) -> bool {
    words
        .get((bit / 64) as usize)
        .is_some_and(|w| w & (1 << (bit % 64)) != 0)
}

/// The pipeline cache: one row of slots per (variable, value index), one
/// slot per pipeline id. Rows are found by indexing (variable, then value
/// index), with a one-entry memo (a value's pipelines are asked for in
/// runs), so a pipeline and its parents cost array indexing, not a hash.
#[derive(Default)]
pub(crate) struct TransformCache {
    /// Per variable id, per value index, the row number (`NO_ROW` if none).
    rows: Vec<Vec<u32>>,
    /// Rows in use.
    n_rows: usize,
    /// Slots are never cleared between transactions: a slot holds an entry
    /// only when its generation is this transaction's, so a pooled cache
    /// starts a request without rewriting its rows (about 3 KB each).
    slots: Vec<Slot>,
    generation: u32,
    /// Slots per row: the engine's number of pipelines.
    width: usize,
    last: Option<((u8, u32), usize)>,
}

/// Rows (values) past this are not cached; their pipelines run per rule.
/// Bounds the slots at about 2 048 × pipelines (≈ 7 MiB for CRS's ~60).
const MAX_CACHE_ROWS: usize = 2048;

/// A value without a row in [`TransformCache::rows`].
const NO_ROW: u32 = u32::MAX;

impl TransformCache {
    fn clear(&mut self) {
        for row in &mut self.rows {
            row.clear();
        }
        self.n_rows = 0;
        self.last = None;
        self.generation = self.generation.wrapping_add(1);
        if self.generation == STALE {
            // Once in four billion transactions: no stale slot may look current.
            self.slots.clear();
            self.generation = 0;
        }
    }

    /// The first slot of a value's row; with `create`, adds the row.
    #[inline]
    fn base(&mut self, v: u8, i: u32, create: bool) -> Option<usize> {
        if let Some((k, b)) = self.last {
            if k == (v, i) {
                return Some(b);
            }
        }
        let row = self
            .rows
            .get(v as usize)
            .and_then(|r| r.get(i as usize))
            .copied()
            .unwrap_or(NO_ROW);
        let b = if row != NO_ROW {
            row as usize * self.width
        } else if create && self.n_rows < MAX_CACHE_ROWS {
            let r = self.n_rows;
            self.n_rows += 1;
            if self.rows.len() <= v as usize {
                self.rows.resize_with(v as usize + 1, Vec::new);
            }
            let list = &mut self.rows[v as usize];
            if list.len() <= i as usize {
                list.resize(i as usize + 1, NO_ROW);
            }
            list[i as usize] = r as u32;
            if self.slots.len() < (r + 1) * self.width {
                self.slots.resize(
                    (r + 1) * self.width,
                    Slot {
                        generation: STALE,
                        entry: CacheEntry::default(),
                    },
                );
            }
            r * self.width
        } else {
            return None;
        };
        self.last = Some(((v, i), b));
        Some(b)
    }

    fn get(&mut self, key: &(u8, u32, u32)) -> Option<&CacheEntry> {
        let b = self.base(key.0, key.1, false)?;
        let slot = self.slots.get(b + key.2 as usize)?;
        (slot.generation == self.generation).then_some(&slot.entry)
    }

    fn get_mut(&mut self, key: &(u8, u32, u32)) -> Option<&mut CacheEntry> {
        let b = self.base(key.0, key.1, false)?;
        let generation = self.generation;
        let slot = self.slots.get_mut(b + key.2 as usize)?;
        (slot.generation == generation).then_some(&mut slot.entry)
    }

    /// Stores an entry; `false` when the cache is full.
    fn insert(&mut self, key: (u8, u32, u32), e: CacheEntry) -> bool {
        let Some(b) = self.base(key.0, key.1, true) else {
            return false;
        };
        let generation = self.generation;
        match self.slots.get_mut(b + key.2 as usize) {
            Some(slot) => {
                *slot = Slot {
                    generation,
                    entry: e,
                };
                true
            }
            None => false,
        }
    }
}

/// A slot's generation before anything is stored in it.
const STALE: u32 = u32::MAX;

/// One slot of [`TransformCache`]: an entry, current only in the
/// transaction whose generation it carries.
#[derive(Clone)]
struct Slot {
    generation: u32,
    entry: CacheEntry,
}

/// A value after one pipeline, and which prefiltered rules may match it.
#[derive(Default, Clone)]
struct CacheEntry {
    /// The transformed value in `Caches::arena`; `None` when the pipeline is
    /// empty and the value is used as it is.
    value: Option<std::ops::Range<usize>>,
    /// Prefilter bits in `Caches::bit_arena`, computed the first time a
    /// prefiltered rule asks.
    bits: Option<std::ops::Range<usize>>,
    /// `transform::features` of the value, so the next step of a pipeline
    /// knows in one AND whether it would change it.
    features: u32,
}

/// Transformed values cached per transaction stop growing past this; later
/// ones are recomputed per rule instead. 32 MiB covers a maximal body
/// through the handful of pipelines rules apply to it.
const MAX_CACHE_BYTES: usize = 32 << 20;

/// The most error log lines one transaction keeps; a hostile request that
/// matches thousands of times must not grow memory without bound.
const MAX_LOG_LINES: usize = 1000;
/// ModSecurity truncates `[data]` to 512 bytes; so do we.
const MAX_LOGDATA: usize = 512;

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

/// Pooled caches keep at most this many bytes of buffers; a transaction
/// that grew them beyond (a large body) gives them back to the allocator.
const MAX_POOLED_BYTES: usize = 1 << 20;
/// How many idle cache sets the engine keeps, about one per worker thread.
pub(crate) const MAX_POOLED: usize = 64;

impl Caches {
    fn reset(&mut self) -> bool {
        let bytes = self.arena.capacity()
            + self.found_buf.capacity()
            + self.scratch.capacity()
            + self.scratch2.capacity()
            + self.bit_arena.capacity() * 8
            + self.spare_rules.capacity() * std::mem::size_of::<MatchedRule>();
        let slot_bytes = self.transformed.slots.capacity() * std::mem::size_of::<Slot>();
        let row_bytes: usize = self.transformed.rows.iter().map(|r| r.capacity() * 4).sum();
        if bytes + slot_bytes + row_bytes > MAX_POOLED_BYTES {
            return false;
        }
        self.transformed.clear();
        self.regex.clear();
        self.summaries.clear();
        self.raw_bits.clear();
        self.bits_by_content.clear();
        self.list_features.clear();
        self.group_bits.clear();
        self.recorded_nolog.clear();
        self.scratch.clear();
        self.scratch2.clear();
        self.arena.clear();
        self.bit_arena.clear();
        self.found.clear();
        self.found_buf.clear();
        self.spare_matched.clear();
        self.spare_rules.clear();
        true
    }
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

/// A match of one target value, its name and value kept in
/// `Caches::found_buf` so matching allocates nothing.
struct Found {
    name: std::ops::Range<usize>,
    value: std::ops::Range<usize>,
    captures: Option<Vec<Vec<u8>>>,
}

/// Appends to a buffer and returns the appended range.
fn push_range(buf: &mut Vec<u8>, bytes: &[u8]) -> std::ops::Range<usize> {
    let start = buf.len();
    buf.extend_from_slice(bytes);
    start..buf.len()
}

/// Writes a variable's display name (`ARGS:q`, `REQUEST_URI`) into a buffer.
fn push_name(buf: &mut Vec<u8>, var: Var, key: &str) -> std::ops::Range<usize> {
    let start = buf.len();
    buf.extend_from_slice(var.name().as_bytes());
    if var.is_collection() && var != Var::Xml {
        buf.push(b':');
        buf.extend_from_slice(key.as_bytes());
    }
    start..buf.len()
}

/// Writes the display name of a count target (`&TX:key`, `&ARGS`).
fn push_count_name(buf: &mut Vec<u8>, target: &Target) -> std::ops::Range<usize> {
    let start = buf.len();
    buf.push(b'&');
    buf.extend_from_slice(target.var.name().as_bytes());
    if !target.raw_key.is_empty() {
        buf.push(b':');
        buf.extend_from_slice(target.raw_key.as_bytes());
    }
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

    /// Phase 1: the request line and headers. Call once, first.
    pub fn process_request_headers<I, K, V>(
        &mut self,
        method: &str,
        uri: &str,
        protocol: &str,
        headers: I,
    ) -> Verdict
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: AsRef<[u8]>,
    {
        let r = &mut self.req;
        r.method = method.as_bytes().to_vec();
        r.uri_raw = uri.as_bytes().to_vec();
        r.protocol = protocol.as_bytes().to_vec();
        r.line = format!("{method} {uri} {protocol}").into_bytes();
        // An absolute URI keeps only its path and query in REQUEST_URI.
        let rel = match uri.find("://") {
            Some(p) if !uri[..p].contains(['/', '?']) => {
                let rest = &uri[p + 3..];
                match rest.find('/') {
                    Some(s) => &rest[s..],
                    None => "/",
                }
            }
            _ => uri,
        };
        r.uri = rel.as_bytes().to_vec();
        let (path, query) = match rel.find('?') {
            Some(q) => (&rel[..q], Some(&rel[q + 1..])),
            None => (rel, None),
        };
        let path = path.split('#').next().unwrap_or(path);
        // The path is percent-decoded (not `+`), as the web server hands it
        // to ModSecurity; the CRS tests rely on it (e.g. 933151).
        r.filename = percent_decode(path.as_bytes());
        let base_start = r
            .filename
            .iter()
            .rposition(|&c| c == b'/')
            .map(|p| p + 1)
            .unwrap_or(0);
        r.basename = r.filename[base_start..].to_vec();
        if let Some(q) = query {
            let q = q.split('#').next().unwrap_or(q);
            r.query = q.as_bytes().to_vec();
            let limit = self.engine.inner.config.arguments_limit;
            if body::parse_urlencoded(q.as_bytes(), limit, &mut r.args_get) {
                note_truncation(r, format!("Query string has more than {limit} arguments"));
            }
        }
        for (k, v) in headers {
            let k = k.as_ref();
            let v = v.as_ref();
            if k.eq_ignore_ascii_case("cookie") {
                body::parse_cookies(v, &mut r.cookies);
            }
            if k.eq_ignore_ascii_case("content-type") && self.st.body_processor.is_none() {
                // ModSecurity picks the processor from the content type when
                // the transaction starts, so phase 1 rules already see it.
                let lower = v.to_ascii_lowercase();
                if lower.starts_with(b"application/x-www-form-urlencoded") {
                    self.st.body_processor = Some("URLENCODED".into());
                } else if lower.starts_with(b"multipart/form-data") {
                    self.st.body_processor = Some("MULTIPART".into());
                }
            }
            r.headers.push((k.to_string(), v.to_vec()));
        }
        let v = self.run_phase(1);
        // Query arguments left out for the limit are acted on here, once
        // phase 1 has run, rather than before it or in phase 2: phase 1
        // rules may still change the engine mode (`ctl:ruleEngine`, as CRS's
        // test setup and per-path settings do), and refusing now keeps the
        // request from any upstream even if a caller skips phase 2 for a
        // request without a body.
        if v == Verdict::Continue {
            if let Some(refused) = self.enforce_argument_limits(1) {
                return refused;
            }
        }
        v
    }

    /// Buffers request body bytes, up to the configured limit.
    pub fn append_request_body(&mut self, chunk: &[u8]) {
        let limit = self.st.body_limit as usize;
        append_capped(
            &mut self.req.body,
            &mut self.req.body_truncated,
            chunk,
            limit,
        );
    }

    /// Whether more request body would still be inspected: false once the
    /// buffer holds as much as the body limit allows (or body access is
    /// off), when a caller can run phase 2 on what it holds and stream the
    /// rest instead of holding all of it.
    pub fn request_body_wanted(&self) -> bool {
        // A body without files is judged once it passes the smaller
        // no-files limit, as phase 2 then refuses or inspects it in part.
        let multipart = self
            .header("content-type")
            .is_some_and(|v| v.to_ascii_lowercase().starts_with(b"multipart/"));
        let no_files = self.engine.inner.config.request_body_no_files_limit;
        let limit = if multipart {
            self.st.body_limit
        } else {
            self.st.body_limit.min(no_files.saturating_add(1))
        };
        self.st.body_access && !self.req.body_truncated && (self.req.body.len() as u64) < limit
    }

    /// Phase 2: parses the buffered body and runs the body rules.
    pub fn process_request_body(&mut self) -> Verdict {
        if self.interrupted.is_some() {
            return self.interrupted.clone().unwrap_or(Verdict::Continue);
        }
        // SecRequestBodyNoFilesLimit: a body that carries no files (anything
        // but multipart) is held to the smaller limit, as in ModSecurity.
        let multipart = self
            .header("content-type")
            .is_some_and(|v| v.to_ascii_lowercase().starts_with(b"multipart/"));
        let over_no_files = !multipart
            && self.req.body.len() as u64 > self.engine.inner.config.request_body_no_files_limit;
        if (self.req.body_truncated || over_no_files)
            && self.engine.inner.config.request_body_limit_action == LimitAction::Reject
            && self.st.mode == EngineMode::On
        {
            let v = Verdict::Deny {
                status: 413,
                rule_id: 0,
            };
            self.interrupted = Some(v.clone());
            return v;
        }
        if self.st.body_access {
            self.parse_body();
        }
        // Before the phase 2 rules: a refused request is not worth their
        // time, and a flagged one shows REQBODY_ERROR to them.
        if let Some(refused) = self.enforce_argument_limits(2) {
            return refused;
        }
        self.run_phase(2)
    }

    /// Acts on arguments the parsers left out for a limit since the last
    /// call. With `SecRuleEngine On` the request is refused (400, rule id
    /// [`ARGUMENTS_LIMIT_RULE_ID`]) rather than inspected in part; in
    /// `DetectionOnly` it goes on with REQBODY_ERROR set (done when the
    /// parser reported it). Either way the engine records a match and writes
    /// an error log line, so the event is never silent. This holds whatever
    /// `SecRequestBodyLimitAction` says: that directive is about the body's
    /// size, not about arguments left out of a body that was read.
    fn enforce_argument_limits(&mut self, phase: u8) -> Option<Verdict> {
        let new = &self.req.truncations[self.req.truncations_reported..];
        if new.is_empty() {
            return None;
        }
        let what = new.join("; ");
        self.req.truncations_reported = self.req.truncations.len();
        let blocking = match self.st.mode {
            EngineMode::Off => return None,
            EngineMode::On => true,
            EngineMode::DetectionOnly => false,
        };
        let id = ARGUMENTS_LIMIT_RULE_ID;
        let severity = 2;
        self.st.highest_severity = self.st.highest_severity.min(severity);
        let msg = "Request arguments left out by a parser limit".to_string();
        let (head, tail) = if blocking {
            (
                format!("Access denied with code 400 (phase {phase}). "),
                "refused rather than inspected in part",
            )
        } else {
            ("Warning. ".to_string(), "inspected in part only")
        };
        let host = self.header("host").unwrap_or_default();
        let line = format!(
            "ModSecurity: {head}{what}; {tail} [id \"{id}\"] [msg \"{}\"] [data \"{}\"] [severity \"{}\"] [hostname \"{}\"] [uri \"{}\"] [unique_id \"{}\"]",
            esc(msg.as_bytes(), 1024),
            esc(what.as_bytes(), MAX_LOGDATA),
            crate::rule::severity_name(severity),
            esc(host, 256),
            esc(&self.req.filename, 256),
            self.meta.unique_id
        );
        if self.log_lines.len() < MAX_LOG_LINES {
            self.log_lines.push(line);
        }
        let mut data = what;
        if data.len() > MAX_LOGDATA {
            let mut cut = MAX_LOGDATA;
            while !data.is_char_boundary(cut) {
                cut -= 1;
            }
            data.truncate(cut);
        }
        self.matched.push(MatchedRule {
            id,
            phase,
            msg,
            data,
            severity: Some(severity),
            tags: Vec::new(),
            // Phase 1 reports the query string, phase 2 the body.
            matched_var_name: if phase == 1 { "ARGS_GET" } else { "ARGS_POST" }.to_string(),
            logged: true,
        });
        if !blocking {
            return None;
        }
        let v = Verdict::Deny {
            status: 400,
            rule_id: id,
        };
        self.interrupted = Some(v.clone());
        Some(v)
    }

    fn header(&self, name: &str) -> Option<&[u8]> {
        self.req
            .headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_slice())
    }

    fn parse_body(&mut self) {
        let ct = self
            .header("content-type")
            .map(<[u8]>::to_vec)
            .unwrap_or_default();
        let lower = ct.to_ascii_lowercase();
        let processor = match &self.st.body_processor {
            Some(p) => Some(p.clone()),
            None if lower.starts_with(b"application/x-www-form-urlencoded") => {
                Some("URLENCODED".to_string())
            }
            None if lower.starts_with(b"multipart/form-data") => Some("MULTIPART".to_string()),
            None => None,
        };
        let limit = self.engine.inner.config.arguments_limit;
        let r = &mut self.req;
        r.body_processor = processor.clone();
        if r.body.is_empty() && processor.as_deref() != Some("MULTIPART") {
            return;
        }
        match processor.as_deref() {
            Some("URLENCODED") => {
                let dropped = body::parse_urlencoded(&r.body, limit, &mut r.args_post);
                if dropped {
                    note_truncation(
                        r,
                        format!("URL-encoded body has more than {limit} arguments"),
                    );
                }
            }
            Some("MULTIPART") => {
                let mp = body::parse_multipart(&ct, &r.body, limit);
                r.args_post.extend(mp.args.iter().cloned());
                r.files = mp.files.clone();
                r.files_sizes = mp
                    .file_sizes
                    .iter()
                    .map(|(k, s)| (k.clone(), s.to_string().into_bytes()))
                    .collect();
                r.files_combined_size = mp.file_sizes.iter().map(|(_, s)| s).sum();
                r.part_headers = mp.part_headers.clone();
                if let Some(e) = &mp.error {
                    add_reqbody_error(&mut r.reqbody_error, e);
                }
                if mp.args_truncated {
                    note_truncation(r, format!("Multipart body has more than {limit} arguments"));
                }
                r.multipart = Some(mp);
            }
            Some("JSON") => {
                let mut dropped = body::JsonDropped::default();
                if let Err(e) = body::parse_json(&r.body, limit, &mut r.args_post, &mut dropped) {
                    add_reqbody_error(&mut r.reqbody_error, &e);
                }
                if dropped.over_limit {
                    note_truncation(r, format!("JSON body has more than {limit} values"));
                }
                if dropped.long_name {
                    note_truncation(
                        r,
                        format!(
                            "JSON body has an argument name longer than {} bytes",
                            body::MAX_JSON_NAME
                        ),
                    );
                }
            }
            Some("XML") => match body::parse_xml(&r.body) {
                Ok(x) => r.xml = Some(x),
                Err(e) => add_reqbody_error(&mut r.reqbody_error, &e),
            },
            _ => {}
        }
    }

    /// Phase 3: the response status line and headers.
    pub fn process_response_headers<I, K, V>(
        &mut self,
        status: u16,
        protocol: &str,
        headers: I,
    ) -> Verdict
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: AsRef<[u8]>,
    {
        self.req.resp_status = status.to_string().into_bytes();
        self.req.resp_protocol = protocol.as_bytes().to_vec();
        for (k, v) in headers {
            let (k, v) = (k.as_ref(), v.as_ref());
            if k.eq_ignore_ascii_case("content-type") {
                self.req.resp_content_type = v.to_vec();
            }
            self.req.resp_headers.push((k.to_string(), v.to_vec()));
        }
        if self.interrupted.is_some() {
            return self.interrupted.clone().unwrap_or(Verdict::Continue);
        }
        self.run_phase(3)
    }

    /// Whether the response body will be inspected (access on and a MIME
    /// type listed in SecResponseBodyMimeType).
    pub fn response_body_wanted(&self) -> bool {
        let cfg = &self.engine.inner.config;
        if !cfg.response_body_access {
            return false;
        }
        let ct = String::from_utf8_lossy(&self.req.resp_content_type).to_ascii_lowercase();
        let mime = ct.split(';').next().unwrap_or("").trim().to_string();
        cfg.response_mime_types.contains(&mime)
    }

    /// Buffers response body bytes, up to the configured limit.
    pub fn append_response_body(&mut self, chunk: &[u8]) {
        if !self.response_body_wanted() {
            return;
        }
        let limit = self.engine.inner.config.response_body_limit as usize;
        append_capped(
            &mut self.req.resp_body,
            &mut self.req.resp_body_truncated,
            chunk,
            limit,
        );
    }

    /// Phase 4: the response body rules.
    pub fn process_response_body(&mut self) -> Verdict {
        if self.interrupted.is_some() {
            return self.interrupted.clone().unwrap_or(Verdict::Continue);
        }
        self.run_phase(4)
    }

    /// Phase 5: logging rules (e.g. CRS's correlation rules). Runs even when
    /// an earlier phase denied.
    pub fn process_logging(&mut self) {
        let _ = self.run_phase(5);
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

    /// The rule evaluator over this transaction's request, state and caches.
    fn evaluator<'t>(&'t mut self, inner: &'t crate::engine::Inner) -> Evaluator<'t> {
        Evaluator {
            inner,
            req: &self.req,
            st: &self.st,
            meta: &self.meta,
            started: self.started,
            caches: &mut self.caches,
        }
    }

    fn run_phase(&mut self, phase: u8) -> Verdict {
        self.phases_done = self.phases_done.max(phase);
        if self.st.mode == EngineMode::Off {
            return Verdict::Continue;
        }
        if self.st.allow_all && phase < 5 {
            return Verdict::Continue;
        }
        let engine = self.engine.clone();
        let inner = &engine.inner;
        let items = &inner.phases[phase as usize];
        // Lists and request values change between phases (the body adds
        // ARGS_POST), never within one: group summaries last a phase.
        self.caches.group_bits.clear();
        self.caches
            .group_bits
            .resize(inner.reject_groups.len(), GroupSummary::Pending);
        let mut i = 0;
        let mut skip = 0u32;
        while i < items.len() {
            let Item::Rule(ri) = &items[i] else {
                i += 1;
                continue;
            };
            let rule = &inner.rules[*ri];
            i += 1;
            if skip > 0 {
                skip -= 1;
                continue;
            }
            if self.is_removed(rule) {
                continue;
            }
            if let (Some(group), Some(bit)) = (rule.reject_group, rule.pf_bit) {
                // No value the rule looks at has any of its regex's required
                // literals: it cannot match, whatever its targets' details.
                let mut ev = self.evaluator(inner);
                if let Some(union) = ev.group_union(group as usize) {
                    if !has_bit(&self.caches.bit_arena[union], bit) {
                        continue;
                    }
                }
            }
            if !self.eval_chain(inner, rule) {
                continue;
            }
            // The whole chain matched: disruptive action and flow control.
            let mut d = rule.actions.disruptive.unwrap_or(Disruptive::Pass);
            if d == Disruptive::Block {
                d = inner.default_disruptive[phase as usize];
            }
            match d {
                Disruptive::Allow => {
                    self.st.allow_all = true;
                    return Verdict::Continue;
                }
                Disruptive::Deny | Disruptive::Drop | Disruptive::Redirect
                    if self.st.mode == EngineMode::On && phase < 5 =>
                {
                    let v = match d {
                        Disruptive::Deny => Verdict::Deny {
                            status: rule.actions.status.unwrap_or(403),
                            rule_id: rule.id,
                        },
                        Disruptive::Drop => Verdict::Drop { rule_id: rule.id },
                        _ => Verdict::Redirect {
                            status: rule
                                .actions
                                .status
                                .filter(|s| (300..400).contains(s))
                                .unwrap_or(302),
                            location: rule
                                .actions
                                .redirect
                                .as_ref()
                                .map(|m| {
                                    String::from_utf8_lossy(&self.expand_in(m, rule)).into_owned()
                                })
                                .unwrap_or_default(),
                            rule_id: rule.id,
                        },
                    };
                    self.interrupted = Some(v.clone());
                    return v;
                }
                _ => {}
            }
            if rule.actions.skip_after.is_some() {
                // Resolved at load: just past the marker, or the end.
                i = inner.skip_targets[phase as usize]
                    .get(i - 1)
                    .map_or(items.len(), |&t| t as usize);
                continue;
            }
            if rule.actions.skip > 0 {
                skip = rule.actions.skip;
            }
        }
        Verdict::Continue
    }

    fn is_removed(&self, rule: &Rule) -> bool {
        self.st
            .removed_ids
            .iter()
            .any(|&(a, b)| rule.id >= a && rule.id <= b)
            || self.st.removed_tags.iter().any(|re| rule.has_tag(re))
    }

    /// Evaluates a rule and its chain; runs actions of each matching link.
    fn eval_chain(&mut self, inner: &crate::engine::Inner, rule: &Rule) -> bool {
        let mut link = rule;
        loop {
            let last = link.chain.is_none();
            if !self.eval_link(inner, rule, link, last) {
                return false;
            }
            match &link.chain {
                Some(next) => link = next,
                None => return true,
            }
        }
    }

    fn eval_link(
        &mut self,
        inner: &crate::engine::Inner,
        starter: &Rule,
        link: &Rule,
        last: bool,
    ) -> bool {
        let mut found: Vec<Found> = std::mem::take(&mut self.caches.found);
        found.clear();
        self.caches.found_buf.clear();
        if link.unconditional {
            found.push(Found {
                name: 0..0,
                value: 0..0,
                captures: None,
            });
        } else if let Some(compare) = &link.tx_compare {
            self.evaluator(inner)
                .eval_tx_compare(starter, link, compare, &mut found);
        } else {
            let chain: &[Transform] = &inner.transform_chains[link.chain_id as usize];
            let mut ev = self.evaluator(inner);
            for target in &link.targets {
                ev.eval_target(starter, link, target, chain, &mut found);
            }
        }
        if found.is_empty() {
            self.caches.found = found;
            return false;
        }
        let buf = std::mem::take(&mut self.caches.found_buf);
        let mut next_matched = std::mem::take(&mut self.caches.spare_matched);
        next_matched.clear();
        for f in found.iter_mut() {
            let (name, value) = (&buf[f.name.clone()], &buf[f.value.clone()]);
            self.st.matched_var.clear();
            self.st.matched_var.extend_from_slice(value);
            self.st.matched_var_name.clear();
            self.st.matched_var_name.extend_from_slice(name);
            next_matched.push(name, value);
            if let Some(caps) = f.captures.take() {
                let tx = &mut self.st.stores[0];
                for k in DIGITS {
                    tx.remove(k);
                }
                for (k, c) in caps.into_iter().enumerate().take(10) {
                    tx.insert(DIGITS[k].to_string(), c);
                }
            }
            for a in &link.actions.actions {
                self.run_action(starter, a);
            }
        }
        self.caches.spare_matched = std::mem::replace(&mut self.st.matched_vars, next_matched);
        if last {
            // One finding and one log line per matched rule, describing its
            // last match; the per-match actions above (scores) already ran
            // once per matched value, as in ModSecurity.
            self.record_match(starter, link);
        }
        self.caches.found_buf = buf;
        self.caches.found = found;
        true
    }

    fn expand_in(&self, m: &Macro, rule: &Rule) -> Vec<u8> {
        expand(&self.req, &self.st, &self.meta, self.started, rule, m).into_owned()
    }

    fn run_action(&mut self, starter: &Rule, a: &Action) {
        match a {
            Action::SetVar(sv) => {
                let name: Cow<'_, str> = match sv.name.as_literal() {
                    Some(l) => match std::str::from_utf8(l) {
                        Ok(n) => Cow::Borrowed(n),
                        Err(_) => String::from_utf8_lossy(l),
                    },
                    None => Cow::Owned(
                        String::from_utf8_lossy(&self.expand_in(&sv.name, starter))
                            .to_ascii_lowercase(),
                    ),
                };
                if sv.op == SetOp::Add || sv.op == SetOp::Sub {
                    // The common CRS case (`tx.score=+%{tx.critical_anomaly_score}`):
                    // update the number in place, allocating nothing once
                    // the variable exists.
                    let d = crate::operator::parse_int(&expand(
                        &self.req,
                        &self.st,
                        &self.meta,
                        self.started,
                        starter,
                        &sv.value,
                    ));
                    let store = &mut self.st.stores[store_index(sv.collection)];
                    let cur = store
                        .get(name.as_ref())
                        .map(|v| crate::operator::parse_int(v))
                        .unwrap_or(0);
                    let n = if sv.op == SetOp::Add {
                        cur.saturating_add(d)
                    } else {
                        cur.saturating_sub(d)
                    };
                    let mut digits = [0u8; 24];
                    let text = format_i64(n, &mut digits);
                    match store.get_mut(name.as_ref()) {
                        Some(slot) => {
                            slot.clear();
                            slot.extend_from_slice(text);
                        }
                        None => {
                            store.insert(name.into_owned(), text.to_vec());
                        }
                    }
                    return;
                }
                if sv.op == SetOp::Set {
                    let value = expand(
                        &self.req,
                        &self.st,
                        &self.meta,
                        self.started,
                        starter,
                        &sv.value,
                    )
                    .into_owned();
                    let store = &mut self.st.stores[store_index(sv.collection)];
                    match store.get_mut(name.as_ref()) {
                        Some(slot) => *slot = value,
                        None => {
                            store.insert(name.into_owned(), value);
                        }
                    }
                    return;
                }
                let name = name.into_owned();
                let value = self.expand_in(&sv.value, starter);
                let store = &mut self.st.stores[store_index(sv.collection)];
                match sv.op {
                    SetOp::Set => {
                        store.insert(name, value);
                    }
                    SetOp::Delete => {
                        store.remove(&name);
                    }
                    SetOp::Add | SetOp::Sub => {
                        let cur = store
                            .get(&name)
                            .map(|v| crate::operator::parse_int(v))
                            .unwrap_or(0);
                        let d = crate::operator::parse_int(&value);
                        let n = if sv.op == SetOp::Add {
                            cur.saturating_add(d)
                        } else {
                            cur.saturating_sub(d)
                        };
                        store.insert(name, n.to_string().into_bytes());
                    }
                }
            }
            Action::Ctl(c) => match c {
                Ctl::RuleEngine(m) => self.st.mode = *m,
                Ctl::RuleRemoveById(r) => self.st.removed_ids.extend(r.iter().copied()),
                Ctl::RuleRemoveByTag(t) => self.st.removed_tags.push(t.clone()),
                Ctl::RuleRemoveTargetById(ids, e) => {
                    self.st.removed_targets.push((ids.clone(), e.clone()))
                }
                Ctl::RuleRemoveTargetByTag(t, e, tagged) => {
                    self.st
                        .removed_targets_by_tag
                        .push((t.clone(), e.clone(), tagged.clone()))
                }
                Ctl::RequestBodyProcessor(p) => self.st.body_processor = Some(p.clone()),
                Ctl::ForceRequestBodyVariable(b) => self.st.force_body_variable = *b,
                Ctl::RequestBodyAccess(b) => self.st.body_access = *b,
                Ctl::RequestBodyLimit(n) => self.st.body_limit = *n,
                Ctl::AuditEngine | Ctl::AuditLogParts => {}
            },
            Action::ExpireVar | Action::InitCol | Action::SetEnv => {}
        }
    }

    fn record_match(&mut self, starter: &Rule, link: &Rule) {
        let a = &starter.actions;
        if let Some(s) = a.severity {
            self.st.highest_severity = self.st.highest_severity.min(s);
        }
        let logged = a.log.unwrap_or(true);
        if !logged {
            // Flow-control rules (`nolog`) match on every request; record
            // them without expanding texts nobody will read.
            if self
                .caches
                .recorded_nolog
                .insert((starter.id, starter.phase))
            {
                self.matched.push(MatchedRule {
                    id: starter.id,
                    phase: starter.phase,
                    msg: String::new(),
                    data: String::new(),
                    severity: a.severity,
                    tags: Vec::new(),
                    matched_var_name: String::new(),
                    logged,
                });
            }
            return;
        }
        let msg = a
            .msg
            .as_ref()
            .map(|m| String::from_utf8_lossy(&self.expand_in(m, starter)).into_owned())
            .unwrap_or_default();
        let mut data = a
            .logdata
            .as_ref()
            .map(|m| self.expand_in(m, starter))
            .unwrap_or_default();
        data.truncate(MAX_LOGDATA);
        let data = String::from_utf8_lossy(&data).into_owned();
        let mrule = MatchedRule {
            id: starter.id,
            phase: starter.phase,
            msg,
            data,
            severity: a.severity,
            tags: a.tags.clone(),
            matched_var_name: String::from_utf8_lossy(&self.st.matched_var_name).into_owned(),
            logged,
        };
        if logged && self.log_lines.len() < MAX_LOG_LINES {
            let line = self.format_log(starter, link, &mrule);
            self.log_lines.push(line);
        }
        self.matched.push(mrule);
    }

    fn format_log(&self, starter: &Rule, link: &Rule, m: &MatchedRule) -> String {
        use std::fmt::Write;
        let mut s = String::with_capacity(512);
        let head = if self.st.mode == EngineMode::On
            && matches!(
                starter.actions.disruptive,
                Some(Disruptive::Deny | Disruptive::Drop)
            ) {
            format!(
                "Access denied with code {} (phase {}). ",
                starter.actions.status.unwrap_or(403),
                starter.phase
            )
        } else {
            "Warning. ".to_string()
        };
        let _ = write!(
            s,
            "ModSecurity: {head}Matched \"Operator `{}' with parameter `{}' against variable `{}' (Value: `{}' )\" [file \"{}\"] [line \"{}\"] [id \"{}\"]",
            link.op_name,
            esc(link.op_arg.as_bytes(), 200),
            String::from_utf8_lossy(&self.st.matched_var_name),
            esc(&self.st.matched_var, 200),
            starter.file,
            starter.line,
            starter.id
        );
        if let Some(rev) = &starter.actions.rev {
            let _ = write!(s, " [rev \"{rev}\"]");
        }
        if starter.actions.msg.is_some() {
            let _ = write!(s, " [msg \"{}\"]", esc(m.msg.as_bytes(), 1024));
        }
        if starter.actions.logdata.is_some() {
            let _ = write!(s, " [data \"{}\"]", esc(m.data.as_bytes(), 1024));
        }
        if let Some(sev) = m.severity {
            let _ = write!(s, " [severity \"{}\"]", crate::rule::severity_name(sev));
        }
        if let Some(v) = &starter.actions.ver {
            let _ = write!(s, " [ver \"{v}\"]");
        }
        for t in &m.tags {
            let _ = write!(s, " [tag \"{}\"]", esc(t.as_bytes(), 256));
        }
        let host = self
            .header("host")
            .map(|h| String::from_utf8_lossy(h).into_owned())
            .unwrap_or_default();
        let _ = write!(
            s,
            " [hostname \"{}\"] [uri \"{}\"] [unique_id \"{}\"]",
            esc(host.as_bytes(), 256),
            esc(&self.req.filename, 256),
            self.meta.unique_id
        );
        s
    }
}

/// Records arguments a parser left out for a limit: REQBODY_ERROR is set
/// (also for the query string, so `DetectionOnly` rules on REQBODY_ERROR
/// see it) and the transaction acts on it at the end of the phase.
fn note_truncation(r: &mut Request, what: String) {
    add_reqbody_error(&mut r.reqbody_error, &what);
    r.truncations.push(what);
}

/// Sets REQBODY_ERROR_MSG, or adds to it: one body processor error must not
/// hide another, nor a truncation that the query string already reported.
fn add_reqbody_error(slot: &mut Option<String>, msg: &str) {
    match slot {
        Some(e) => {
            e.push_str("; ");
            e.push_str(msg);
        }
        None => *slot = Some(msg.to_string()),
    }
}

fn percent_decode(input: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while i < input.len() {
        if input[i] == b'%'
            && i + 2 < input.len()
            && input[i + 1].is_ascii_hexdigit()
            && input[i + 2].is_ascii_hexdigit()
        {
            let h = |c: u8| (c as char).to_digit(16).unwrap_or(0) as u8;
            out.push((h(input[i + 1]) << 4) | h(input[i + 2]));
            i += 3;
        } else {
            out.push(input[i]);
            i += 1;
        }
    }
    out
}

fn esc(b: &[u8], max: usize) -> String {
    let mut s = String::new();
    for &c in b.iter().take(max) {
        match c {
            b'"' => s.push_str("\\\""),
            b'\\' => s.push_str("\\\\"),
            0x20..=0x7e => s.push(c as char),
            _ => s.push_str(&format!("\\x{c:02x}")),
        }
    }
    s
}

/// Runs a pipeline; the result is left in `a`.
fn apply_chain(chain: &[Transform], value: &[u8], a: &mut Vec<u8>, b: &mut Vec<u8>) {
    a.clear();
    a.extend_from_slice(value);
    for t in chain {
        t.apply(a, b);
        std::mem::swap(a, b);
    }
}

struct Ctx<'a> {
    req: &'a Request,
    st: &'a State,
    meta: &'a TxMeta,
    regex: &'a mut FxMap<Vec<u8>, Option<Regex>>,
    shared_regex: &'a std::sync::Mutex<FxMap<Vec<u8>, Option<Regex>>>,
    rule: &'a Rule,
    started: Instant,
}

/// Dynamic regexes are bounded per transaction so macro-built patterns
/// cannot fill memory.
const MAX_DYNAMIC_REGEX: usize = 64;
/// Macro-built patterns the engine keeps across transactions.
const MAX_SHARED_DYNAMIC_REGEX: usize = 256;

impl OpContext for Ctx<'_> {
    fn expand<'m>(&'m self, m: &'m Macro) -> Cow<'m, [u8]> {
        expand(self.req, self.st, self.meta, self.started, self.rule, m)
    }

    fn dynamic_regex(&mut self, pattern: &[u8]) -> Option<Regex> {
        if let Some(r) = self.regex.get(pattern) {
            return r.clone();
        }
        // Patterns built from configuration variables are the same on every
        // request, so the engine keeps them; the shared cache is bounded, so
        // patterns built from request data cannot grow it without limit.
        if let Ok(shared) = self.shared_regex.lock() {
            if let Some(r) = shared.get(pattern) {
                return r.clone();
            }
        }
        let re = crate::pcre::compile(&String::from_utf8_lossy(pattern), false).ok();
        let stored = match self.shared_regex.lock() {
            Ok(mut shared) if shared.len() < MAX_SHARED_DYNAMIC_REGEX => {
                shared.insert(pattern.to_vec(), re.clone());
                true
            }
            _ => false,
        };
        if !stored && self.regex.len() < MAX_DYNAMIC_REGEX {
            self.regex.insert(pattern.to_vec(), re.clone());
        }
        re
    }
}

fn expand<'a>(
    req: &'a Request,
    st: &'a State,
    meta: &TxMeta,
    started: Instant,
    rule: &Rule,
    m: &'a Macro,
) -> Cow<'a, [u8]> {
    match m.parts.as_slice() {
        [] => return Cow::Borrowed(b""),
        [Part::Literal(l)] => return Cow::Borrowed(l),
        [Part::Var(v, Some(k))] if v.is_store() => {
            return Cow::Borrowed(
                st.stores[store_index(*v)]
                    .get(k.as_str())
                    .map(Vec::as_slice)
                    .unwrap_or(b""),
            );
        }
        _ => {}
    }
    let mut out = Vec::new();
    for p in &m.parts {
        match p {
            Part::Literal(l) => out.extend_from_slice(l),
            Part::Rule(k) => match k.as_str() {
                "id" => out.extend_from_slice(rule.id.to_string().as_bytes()),
                "msg" => {
                    if let Some(msg) = rule.actions.msg.as_ref().and_then(|m| m.as_literal()) {
                        out.extend_from_slice(msg);
                    }
                }
                "severity" => {
                    if let Some(s) = rule.actions.severity {
                        out.extend_from_slice(s.to_string().as_bytes());
                    }
                }
                "phase" => out.extend_from_slice(rule.phase.to_string().as_bytes()),
                _ => {}
            },
            Part::Var(v, key) => {
                if v.is_store() {
                    if let Some(k) = key {
                        if let Some(val) = st.stores[store_index(*v)].get(k) {
                            out.extend_from_slice(val);
                        }
                    }
                } else if v.is_collection() {
                    let list: &[(String, Vec<u8>)] = match v {
                        Var::RequestHeaders => &req.headers,
                        Var::ResponseHeaders => &req.resp_headers,
                        Var::RequestCookies => &req.cookies,
                        Var::ArgsGet => &req.args_get,
                        Var::ArgsPost => &req.args_post,
                        Var::Args => {
                            if let Some(k) = key {
                                if let Some((_, val)) = req
                                    .args_get
                                    .iter()
                                    .chain(req.args_post.iter())
                                    .find(|(n, _)| n.eq_ignore_ascii_case(k))
                                {
                                    out.extend_from_slice(val);
                                }
                            }
                            continue;
                        }
                        _ => &[],
                    };
                    if let Some(k) = key {
                        if let Some((_, val)) = list.iter().find(|(n, _)| n.eq_ignore_ascii_case(k))
                        {
                            out.extend_from_slice(val);
                        }
                    }
                } else if let Some(val) = scalar_value(req, st, meta, started, *v) {
                    out.extend_from_slice(&val);
                }
            }
        }
    }
    Cow::Owned(out)
}

fn flag(b: bool) -> Cow<'static, [u8]> {
    Cow::Borrowed(if b { b"1" } else { b"0" })
}

fn scalar_value<'a>(
    r: &'a Request,
    st: &'a State,
    meta: &'a TxMeta,
    started: Instant,
    v: Var,
) -> Option<Cow<'a, [u8]>> {
    let s = |x: &'a [u8]| Some(Cow::Borrowed(x));
    let n = |x: usize| Some(Cow::Owned(x.to_string().into_bytes()));
    let mp = r.multipart.as_ref();
    let mpf = |f: fn(&body::Multipart) -> bool| Some(flag(mp.is_some_and(f)));
    match v {
        Var::ArgsCombinedSize => n(r
            .args_get
            .iter()
            .chain(r.args_post.iter())
            .map(|(k, v)| k.len() + v.len())
            .sum()),
        Var::RequestUri => s(&r.uri),
        Var::RequestUriRaw => s(&r.uri_raw),
        Var::RequestLine => s(&r.line),
        Var::RequestMethod => s(&r.method),
        Var::RequestProtocol => s(&r.protocol),
        Var::RequestFilename => s(&r.filename),
        Var::RequestBasename => s(&r.basename),
        Var::QueryString => s(&r.query),
        Var::RequestBody => {
            // As in ModSecurity v2: only the URL-encoded processor, or
            // ctl:forceRequestBodyVariable, fills REQUEST_BODY.
            if r.body_processor.as_deref() == Some("URLENCODED") || st.force_body_variable {
                s(&r.body)
            } else {
                None
            }
        }
        Var::RequestBodyLength => n(r.body.len()),
        Var::FilesCombinedSize => n(r.files_combined_size),
        Var::ReqbodyError => Some(flag(r.reqbody_error.is_some())),
        Var::ReqbodyErrorMsg | Var::ReqbodyProcessorError => Some(Cow::Borrowed(
            r.reqbody_error.as_deref().unwrap_or("").as_bytes(),
        )),
        Var::ReqbodyProcessor => match (&r.body_processor, &st.body_processor) {
            (Some(p), _) | (None, Some(p)) => Some(Cow::Owned(p.as_bytes().to_vec())),
            (None, None) => Some(Cow::Borrowed(b"")),
        },
        Var::ResponseStatus => s(&r.resp_status),
        Var::ResponseBody => s(&r.resp_body),
        Var::ResponseContentType => s(&r.resp_content_type),
        Var::ResponseContentLength => r
            .resp_headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
            .map(|(_, v)| Cow::Borrowed(v.as_slice())),
        Var::ResponseProtocol => s(&r.resp_protocol),
        Var::StatusLine => Some(Cow::Owned(
            [r.resp_protocol.as_slice(), b" ", r.resp_status.as_slice()].concat(),
        )),
        Var::MatchedVar => s(&st.matched_var),
        Var::MatchedVarName => s(&st.matched_var_name),
        Var::RemoteAddr => s(meta.remote_addr.as_bytes()),
        Var::RemotePort => n(meta.remote_port as usize),
        Var::RemoteHost => s(meta.remote_addr.as_bytes()),
        Var::ServerAddr => s(meta.server_addr.as_bytes()),
        Var::ServerPort => n(meta.server_port as usize),
        Var::ServerName => r
            .headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("host"))
            .map(|(_, v)| Cow::Borrowed(v.as_slice())),
        Var::UniqueId => s(meta.unique_id.as_bytes()),
        Var::Duration => n(started.elapsed().as_micros() as usize),
        Var::HighestSeverity => n(st.highest_severity as usize),
        Var::FullRequestLength => n(r.line.len()
            + r.headers
                .iter()
                .map(|(k, v)| k.len() + v.len() + 4)
                .sum::<usize>()
            + r.body.len()),
        Var::InboundDataError => Some(flag(r.body_truncated)),
        Var::OutboundDataError => Some(flag(r.resp_body_truncated)),
        Var::UrlencodedError => Some(flag(false)),
        Var::MultipartStrictError => mpf(|m| m.strict_error()),
        Var::MultipartUnmatchedBoundary => mpf(|m| m.unmatched_boundary),
        Var::MultipartBoundaryQuoted => mpf(|m| m.boundary_quoted),
        Var::MultipartBoundaryWhitespace => mpf(|m| m.boundary_whitespace),
        Var::MultipartDataBefore => mpf(|m| m.data_before),
        Var::MultipartDataAfter => mpf(|m| m.data_after),
        Var::MultipartHeaderFolding => mpf(|m| m.header_folding),
        Var::MultipartLfLine => mpf(|m| m.lf_line),
        Var::MultipartCrlfLfLines => mpf(|m| m.lf_line && m.crlf_line),
        Var::MultipartMissingSemicolon => mpf(|m| m.missing_semicolon),
        Var::MultipartInvalidQuoting => mpf(|m| m.invalid_quoting),
        Var::MultipartInvalidPart => mpf(|m| m.invalid_part),
        Var::MultipartInvalidHeaderFolding => mpf(|m| m.invalid_header_folding),
        Var::MultipartFileLimitExceeded => Some(flag(false)),
        Var::MultipartFilename => mp.map(|m| Cow::Borrowed(m.last_filename.as_slice())),
        Var::MultipartName => mp.map(|m| Cow::Borrowed(m.last_name.as_slice())),
        Var::AuthType | Var::RemoteUser | Var::PathInfo | Var::Webappid | Var::FullRequest => None,
        Var::Time | Var::TimeEpoch => {
            let secs = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0);
            n(secs as usize)
        }
        _ => None,
    }
}

const DIGITS: [&str; 10] = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"];

/// Where the values of one target come from.
enum Source<'a> {
    None,
    /// (key, value) pairs; `names` yields the keys as values.
    List {
        list: &'a [(String, Vec<u8>)],
        id: Var,
        names: bool,
    },
    Store(&'a FxMap<String, Vec<u8>>),
    Matched {
        list: &'a MatchedList,
        names: bool,
    },
    Scalar(Cow<'a, [u8]>, Option<Var>),
    XmlAttrs(&'a [(String, Vec<u8>)]),
}

/// Read-only view of the transaction used while a rule's targets are
/// evaluated; only the caches are written.
struct Evaluator<'t> {
    inner: &'t crate::engine::Inner,
    req: &'t Request,
    st: &'t State,
    meta: &'t TxMeta,
    started: Instant,
    caches: &'t mut Caches,
}

impl<'t> Evaluator<'t> {
    fn sources(&self, target: &Target) -> [Source<'t>; 2] {
        self.sources_of(target.var, &target.raw_key)
    }

    /// Where the values of variable `var` come from; `raw_key` tells the
    /// XML text (`XML:/*`) from its attributes (`XML://@*`).
    fn sources_of(&self, var: Var, raw_key: &str) -> [Source<'t>; 2] {
        let r = self.req;
        let list =
            |list: &'t [(String, Vec<u8>)], id: Var, names: bool| Source::List { list, id, names };
        match var {
            Var::Args => [
                list(&r.args_get, Var::ArgsGet, false),
                list(&r.args_post, Var::ArgsPost, false),
            ],
            Var::ArgsGet => [list(&r.args_get, Var::ArgsGet, false), Source::None],
            Var::ArgsPost => [list(&r.args_post, Var::ArgsPost, false), Source::None],
            Var::ArgsNames => [
                list(&r.args_get, Var::ArgsGetNames, true),
                list(&r.args_post, Var::ArgsPostNames, true),
            ],
            Var::ArgsGetNames => [list(&r.args_get, Var::ArgsGetNames, true), Source::None],
            Var::ArgsPostNames => [list(&r.args_post, Var::ArgsPostNames, true), Source::None],
            Var::RequestHeaders => [list(&r.headers, Var::RequestHeaders, false), Source::None],
            Var::RequestHeadersNames => [
                list(&r.headers, Var::RequestHeadersNames, true),
                Source::None,
            ],
            Var::RequestCookies => [list(&r.cookies, Var::RequestCookies, false), Source::None],
            Var::RequestCookiesNames => [
                list(&r.cookies, Var::RequestCookiesNames, true),
                Source::None,
            ],
            Var::Files => [list(&r.files, Var::Files, false), Source::None],
            Var::FilesNames => [list(&r.files, Var::FilesNames, true), Source::None],
            Var::FilesSizes => [list(&r.files_sizes, Var::FilesSizes, false), Source::None],
            Var::MultipartPartHeaders => [
                list(&r.part_headers, Var::MultipartPartHeaders, false),
                Source::None,
            ],
            Var::ResponseHeaders => [
                list(&r.resp_headers, Var::ResponseHeaders, false),
                Source::None,
            ],
            Var::ResponseHeadersNames => [
                list(&r.resp_headers, Var::ResponseHeadersNames, true),
                Source::None,
            ],
            v if v.is_store() => [Source::Store(&self.st.stores[store_index(v)]), Source::None],
            Var::Xml => match &r.xml {
                Some(x) if raw_key.contains('@') => [Source::XmlAttrs(&x.attrs), Source::None],
                Some(x) => [
                    Source::Scalar(Cow::Borrowed(x.text.as_slice()), Some(Var::Xml)),
                    Source::None,
                ],
                None => [Source::None, Source::None],
            },
            Var::MatchedVars => [
                Source::Matched {
                    list: &self.st.matched_vars,
                    names: false,
                },
                Source::None,
            ],
            Var::MatchedVarsNames => [
                Source::Matched {
                    list: &self.st.matched_vars,
                    names: true,
                },
                Source::None,
            ],
            Var::FilesTmpNames | Var::Rule => [Source::None, Source::None],
            v => match scalar_value(r, self.st, self.meta, self.started, v) {
                Some(val) => {
                    let id = match v {
                        Var::MatchedVar
                        | Var::MatchedVarName
                        | Var::Duration
                        | Var::ReqbodyProcessor
                        | Var::ReqbodyError
                        | Var::HighestSeverity => None,
                        v => Some(v),
                    };
                    [Source::Scalar(val, id), Source::None]
                }
                None => [Source::None, Source::None],
            },
        }
    }

    fn excluded(&self, starter: &Rule, link: &Rule, var: Var, key: &str) -> bool {
        if link
            .exclusions
            .iter()
            .any(|e| e.var == var && e.selector.matches(key))
        {
            return true;
        }
        for (ids, e) in &self.st.removed_targets {
            if e.var == var
                && ids.iter().any(|&(a, b)| starter.id >= a && starter.id <= b)
                && e.selector.matches(key)
            {
                return true;
            }
        }
        for (re, e, tagged) in &self.st.removed_targets_by_tag {
            if e.var != var || !e.selector.matches(key) {
                continue;
            }
            let rules = &self.inner.rules;
            let owner = rules.as_ptr() as usize;
            let (built_for, set) = tagged.get_or_init(|| {
                (
                    owner,
                    rules
                        .iter()
                        .filter(|r| r.has_tag(re))
                        .map(|r| r as *const Rule as usize)
                        .map(|a| (a, ()))
                        .collect(),
                )
            });
            // `starter` is always one of the engine's rules; the set was built
            // for this engine unless the ctl's rule is shared with another.
            let has = if *built_for == owner {
                set.contains_key(&(starter as *const Rule as usize))
            } else {
                starter.has_tag(re)
            };
            if has {
                return true;
            }
        }
        false
    }

    /// [`eval_target`](Self::eval_target) and the value test for a link of
    /// the [`TxCompare`](crate::rule::TxCompare) shape: the same exclusions,
    /// the same comparison and the same matched name and value.
    fn eval_tx_compare(
        &mut self,
        starter: &Rule,
        link: &Rule,
        compare: &crate::rule::TxCompare,
        found: &mut Vec<Found>,
    ) {
        let entry = self.st.stores[store_index(Var::Tx)]
            .get_key_value(compare.key.as_str())
            .filter(|(k, _)| !self.excluded(starter, link, Var::Tx, k));
        let buf = &mut self.caches.found_buf;
        if compare.count {
            let count = usize::from(entry.is_some());
            if compare.compare.holds(count as i64, compare.operand) == link.negated {
                return;
            }
            let mut digits = [0u8; 20];
            let value = push_range(buf, format_count(count, &mut digits));
            let name = push_count_name(buf, &link.targets[0]);
            found.push(Found {
                name,
                value,
                captures: None,
            });
            return;
        }
        let Some((key, value)) = entry else { return };
        if compare
            .compare
            .holds(crate::operator::parse_int(value), compare.operand)
            == link.negated
        {
            return;
        }
        let value = push_range(buf, value);
        let name = push_name(buf, Var::Tx, key);
        found.push(Found {
            name,
            value,
            captures: None,
        });
    }

    fn eval_target(
        &mut self,
        starter: &Rule,
        link: &Rule,
        target: &Target,
        chain: &[Transform],
        found: &mut Vec<Found>,
    ) {
        let sel = &target.selector;
        let var = target.var;
        let mut count = 0usize;
        for source in self.sources(target) {
            match source {
                Source::None => {}
                Source::List { list, id, names } => {
                    if !target.count
                        && !link.negated
                        && matches!(sel, Selector::All)
                        && !list.is_empty()
                        && self.list_cannot_match(link, list, id, names, chain)
                    {
                        continue;
                    }
                    for (i, (k, v)) in list.iter().enumerate() {
                        if !sel.matches(k) || self.excluded(starter, link, var, k) {
                            continue;
                        }
                        count += 1;
                        if !target.count {
                            let value: &[u8] = if names { k.as_bytes() } else { v };
                            self.test_value(
                                link,
                                var,
                                k,
                                value,
                                Some((id as u8, i as u32)),
                                chain,
                                found,
                            );
                        }
                    }
                }
                Source::Store(map) => {
                    if let Selector::Key(key) = sel {
                        // Store keys are lowercase, like selector keys: look
                        // the one key up instead of scanning the collection.
                        if let Some((k, v)) = map.get_key_value(key.as_str()) {
                            if !self.excluded(starter, link, var, k) {
                                count += 1;
                                if !target.count {
                                    self.test_value(link, var, k, v, None, chain, found);
                                }
                            }
                        }
                        continue;
                    }
                    for (k, v) in map.iter() {
                        if !sel.matches(k) || self.excluded(starter, link, var, k) {
                            continue;
                        }
                        count += 1;
                        if !target.count {
                            self.test_value(link, var, k, v, None, chain, found);
                        }
                    }
                }
                Source::Matched { list, names } => {
                    for (k, v) in list.iter() {
                        if !sel.matches(k) || self.excluded(starter, link, var, k) {
                            continue;
                        }
                        count += 1;
                        if !target.count {
                            let value: &[u8] = if names { k.as_bytes() } else { v };
                            self.test_value(link, var, k, value, None, chain, found);
                        }
                    }
                }
                Source::XmlAttrs(list) => {
                    for (i, (_, v)) in list.iter().enumerate() {
                        count += 1;
                        if !target.count {
                            self.test_value(
                                link,
                                var,
                                "",
                                v,
                                Some((Var::Xml as u8, i as u32 + 1)),
                                chain,
                                found,
                            );
                        }
                    }
                }
                Source::Scalar(v, id) => {
                    if self.excluded(starter, link, var, "") {
                        continue;
                    }
                    count += 1;
                    if !target.count {
                        self.test_value(
                            link,
                            var,
                            "",
                            &v,
                            id.map(|id| (id as u8, 0)),
                            chain,
                            found,
                        );
                    }
                }
            }
        }
        if target.count {
            let mut digits = [0u8; 20];
            let v = format_count(count, &mut digits);
            let before = found.len();
            self.test_value(link, var, "", v, None, &[], found);
            if found.len() > before {
                let name = push_count_name(&mut self.caches.found_buf, target);
                if let Some(f) = found.last_mut() {
                    f.name = name;
                }
            }
        }
    }

    /// Whether a prefiltered rule's regex can match no value of a list: the
    /// union of the prefilter bits of every (transformed) value, computed
    /// once per list and pipeline, lacks the rule's bit. Then the rule skips
    /// the whole list in one lookup, which is the common case for benign
    /// traffic.
    fn list_cannot_match(
        &mut self,
        link: &Rule,
        list: &[(String, Vec<u8>)],
        id: Var,
        names: bool,
        chain: &[Transform],
    ) -> bool {
        // multiMatch tests every intermediate value; the bits only cover the last.
        if link.actions.multi_match {
            return false;
        }
        let Some(bit) = link.pf_bit else { return false };
        match self.list_union(list, id, names, link.chain_id, chain) {
            Some(union) => !has_bit(&self.caches.bit_arena[union], bit),
            None => false,
        }
    }

    /// The union of the prefilter bits of a list's values (or names) after
    /// pipeline `chain_id`, cached per list and pipeline and recomputed when
    /// the list grew (phase 2 adds ARGS_POST); `None` when some value's bits
    /// could not be cached.
    fn list_union(
        &mut self,
        list: &[(String, Vec<u8>)],
        id: Var,
        names: bool,
        chain_id: u32,
        chain: &[Transform],
    ) -> Option<std::ops::Range<usize>> {
        let pf = self.inner.prefilter.as_ref()?;
        // When no step of the pipeline can change any value of the list
        // beyond case, its summary is the raw values' one, shared by every
        // such pipeline (key `u32::MAX`) and built without transforming.
        let raw = crate::transform::chain_keeps_bits(chain, self.list_features(list, id, names));
        let key = (id as u8, if raw { u32::MAX } else { chain_id });
        if let Some((n, union)) = self.caches.summaries.get(&key) {
            if *n == list.len() {
                return Some(union.clone());
            }
        }
        let words = pf.bits.div_ceil(64) as usize;
        let mut ranges = std::mem::take(&mut self.caches.bit_ranges);
        ranges.clear();
        for (i, (k, v)) in list.iter().enumerate() {
            let value: &[u8] = if names { k.as_bytes() } else { v };
            // Per value, the same shortcut: a value the pipeline cannot
            // change beyond case has its raw bits.
            let bits = if raw {
                Some(self.raw_bits(id as u8, i as u32, value, pf))
            } else {
                self.value_bits((id as u8, i as u32, chain_id), chain, value, pf)
            };
            match bits {
                Some(r) => ranges.push(r),
                None => {
                    self.caches.bit_ranges = ranges;
                    return None;
                }
            }
        }
        let union = self.or_words(&ranges, words);
        self.caches.bit_ranges = ranges;
        self.caches
            .summaries
            .insert(key, (list.len(), union.clone()));
        Some(union)
    }

    /// The prefilter bits of one cached value after a pipeline: its raw
    /// bits when the pipeline cannot change it beyond case, else those of
    /// its transformed form. `None` when the cache is full.
    fn value_bits(
        &mut self,
        key: (u8, u32, u32),
        chain: &[Transform],
        value: &[u8],
        pf: &crate::prefilter::ChainPrefilter,
    ) -> Option<std::ops::Range<usize>> {
        if crate::transform::chain_keeps_bits(chain, crate::transform::features(value)) {
            Some(self.raw_bits(key.0, key.1, value, pf))
        } else {
            self.cached_bits(key, chain, value, pf)
        }
    }

    /// ORs the bit ranges `parts` into a fresh slot of `words` words in the
    /// bit arena and returns the slot.
    fn or_words(
        &mut self,
        parts: &[std::ops::Range<usize>],
        words: usize,
    ) -> std::ops::Range<usize> {
        let arena = &mut self.caches.bit_arena;
        let start = arena.len();
        arena.resize(start + words, 0);
        for r in parts {
            for w in 0..words.min(r.len()) {
                let b = arena[r.start + w];
                arena[start + w] |= b;
            }
        }
        start..start + words
    }

    /// The summary of reject group `g` in this phase: the union of the
    /// prefilter bits of every value of its variables after its pipeline,
    /// computed on first use. `None` when it cannot be known.
    fn group_union(&mut self, g: usize) -> Option<std::ops::Range<usize>> {
        match self.caches.group_bits.get(g)? {
            GroupSummary::Union(r) => return Some(r.clone()),
            GroupSummary::Unknown => return None,
            GroupSummary::Pending => {}
        }
        let inner = self.inner;
        let pf = inner.prefilter.as_ref()?;
        let group = &inner.reject_groups[g];
        let chain: &[Transform] = &inner.transform_chains[group.chain_id as usize];
        let mut parts = std::mem::take(&mut self.caches.group_parts);
        parts.clear();
        let mut known = true;
        'vars: for &(var, attrs) in &group.vars {
            for source in self.sources_of(var, if attrs { "@" } else { "" }) {
                let bits = match source {
                    Source::None => continue,
                    Source::List { list: [], .. } => continue,
                    Source::List { list, id, names } => {
                        self.list_union(list, id, names, group.chain_id, chain)
                    }
                    Source::Scalar(value, Some(id)) => {
                        self.value_bits((id as u8, 0, group.chain_id), chain, &value, pf)
                    }
                    Source::XmlAttrs(list) => {
                        // Attributes are keyed as `test_value` keys them: index + 1.
                        for (i, (_, value)) in list.iter().enumerate() {
                            match self.value_bits(
                                (Var::Xml as u8, i as u32 + 1, group.chain_id),
                                chain,
                                value,
                                pf,
                            ) {
                                Some(r) => parts.push(r),
                                None => {
                                    known = false;
                                    break 'vars;
                                }
                            }
                        }
                        continue;
                    }
                    _ => None,
                };
                match bits {
                    Some(r) => parts.push(r),
                    None => {
                        known = false;
                        break 'vars;
                    }
                }
            }
        }
        let summary = if known {
            GroupSummary::Union(self.or_words(&parts, pf.bits.div_ceil(64) as usize))
        } else {
            GroupSummary::Unknown
        };
        self.caches.group_parts = parts;
        self.caches.group_bits[g] = summary.clone();
        match summary {
            GroupSummary::Union(r) => Some(r),
            _ => None,
        }
    }

    /// The union of `transform::features` over a list's values (or names),
    /// cached per list and recomputed when the list grew.
    fn list_features(&mut self, list: &[(String, Vec<u8>)], id: Var, names: bool) -> u32 {
        if let Some(&(n, f)) = self.caches.list_features.get(&(id as u8)) {
            if n == list.len() {
                return f;
            }
        }
        let f = list.iter().fold(0, |a, (k, v)| {
            a | crate::transform::features(if names { k.as_bytes() } else { v })
        });
        self.caches.list_features.insert(id as u8, (list.len(), f));
        f
    }

    /// The prefilter bits of a raw list value, scanning it on first use.
    fn raw_bits(
        &mut self,
        v: u8,
        i: u32,
        value: &[u8],
        pf: &crate::prefilter::ChainPrefilter,
    ) -> std::ops::Range<usize> {
        if let Some(r) = self.caches.raw_bits.get(&(v, i)) {
            return r.clone();
        }
        let r = automaton_for(self.inner, v, pf).scan_into(value, &mut self.caches.bit_arena);
        self.caches.raw_bits.insert((v, i), r.clone());
        r
    }

    #[allow(clippy::too_many_arguments)]
    fn test_value(
        &mut self,
        link: &Rule,
        var: Var,
        key: &str,
        value: &[u8],
        cache_key: Option<(u8, u32)>,
        chain: &[Transform],
        found: &mut Vec<Found>,
    ) {
        let want_caps = link.actions.capture;
        if link.actions.multi_match {
            // The operator runs on the value before any transformation and
            // after each one that changed it, as ModSecurity's multiMatch does.
            let mut cur = std::mem::take(&mut self.caches.scratch);
            let mut next = std::mem::take(&mut self.caches.scratch2);
            cur.clear();
            cur.extend_from_slice(value);
            let mut first = true;
            let mut steps = chain.iter();
            loop {
                if !first {
                    match steps.next() {
                        Some(t) => {
                            if t.is_noop_on(&cur) {
                                continue;
                            }
                            t.apply(&cur, &mut next);
                            if next == cur {
                                continue;
                            }
                            std::mem::swap(&mut cur, &mut next);
                        }
                        None => break,
                    }
                }
                first = false;
                let mut caps = Vec::new();
                if self.run_op(link, &cur, if want_caps { Some(&mut caps) } else { None }) {
                    let v = push_range(&mut self.caches.found_buf, &cur);
                    let n = push_name(&mut self.caches.found_buf, var, key);
                    found.push(Found {
                        name: n,
                        value: v,
                        captures: want_caps.then_some(caps),
                    });
                }
            }
            self.caches.scratch = cur;
            self.caches.scratch2 = next;
            return;
        }
        let prefilter = link
            .pf_bit
            .and_then(|bit| Some((self.inner.prefilter.as_ref()?, bit)));
        let mut cached: Option<Option<std::ops::Range<usize>>> = None;
        if let Some((v, i)) = cache_key {
            let ck = (v, i, link.chain_id);
            if let Some((pf, bit)) = prefilter {
                let bits = self.value_bits(ck, chain, value, pf);
                if let Some(r) = bits {
                    let set = self.caches.bit_arena[r]
                        .get((bit / 64) as usize)
                        .is_some_and(|w| w & (1 << (bit % 64)) != 0);
                    if !set {
                        // None of the regex's required literals occurs: it
                        // cannot match, so its result is known without running it.
                        if link.negated {
                            let r = self.cached_value(ck, chain, value);
                            let Caches {
                                arena, found_buf, ..
                            } = &mut *self.caches;
                            let input: &[u8] = match &r {
                                Some(Some(r)) => &arena[r.clone()],
                                _ => value,
                            };
                            let v = push_range(found_buf, input);
                            let n = push_name(found_buf, var, key);
                            found.push(Found {
                                name: n,
                                value: v,
                                captures: None,
                            });
                        }
                        return;
                    }
                }
            }
            if !chain.is_empty() {
                cached = self.cached_value(ck, chain, value);
            }
        }
        let Caches {
            regex,
            scratch,
            scratch2,
            arena,
            found_buf,
            ..
        } = &mut *self.caches;
        let input: &[u8] = match cached {
            Some(Some(r)) => &arena[r],
            Some(None) => value,
            None if chain.is_empty() => value,
            None => {
                apply_chain(chain, value, scratch, scratch2);
                scratch
            }
        };
        let mut caps = Vec::new();
        let mut ctx = Ctx {
            req: self.req,
            st: self.st,
            meta: self.meta,
            regex,
            shared_regex: &self.inner.dynamic_regex,
            rule: link,
            started: self.started,
        };
        let m = link.op.eval(
            &mut ctx,
            input,
            if want_caps { Some(&mut caps) } else { None },
        ) != link.negated;
        if m {
            let v = push_range(found_buf, input);
            let n = push_name(found_buf, var, key);
            found.push(Found {
                name: n,
                value: v,
                captures: want_caps.then_some(caps),
            });
        }
    }

    /// The cached transformed value of a list value, computing it on first
    /// use; `Some(None)` means the value is used untransformed, `None` that
    /// the cache is full and the caller must transform it itself.
    fn cached_value(
        &mut self,
        key: (u8, u32, u32),
        chain: &[Transform],
        value: &[u8],
    ) -> Option<Option<std::ops::Range<usize>>> {
        self.cached_value_features(key, chain, value)
            .map(|(r, _)| r)
    }

    /// `cached_value` with the value's `transform::features`.
    fn cached_value_features(
        &mut self,
        key: (u8, u32, u32),
        chain: &[Transform],
        value: &[u8],
    ) -> Option<(Option<std::ops::Range<usize>>, u32)> {
        if let Some(e) = self.caches.transformed.get(&key) {
            return Some((e.value.clone(), e.features));
        }
        let Some((last, _)) = chain.split_last() else {
            let features = crate::transform::features(value);
            if !self.caches.transformed.insert(
                key,
                CacheEntry {
                    value: None,
                    bits: None,
                    features,
                },
            ) {
                return None;
            }
            return Some((None, features));
        };
        // One step from the cached parent pipeline: pipelines sharing a
        // prefix (most CRS ones start `urlDecodeUni,htmlEntityDecode,...`)
        // share its work.
        let parent_id = self
            .inner
            .chain_parent
            .get(key.2 as usize)
            .copied()
            .unwrap_or(u32::MAX);
        let (parent, parent_features) = if parent_id == u32::MAX {
            (None, crate::transform::features(value))
        } else {
            let parent_chain = &self.inner.transform_chains[parent_id as usize];
            self.cached_value_features((key.0, key.1, parent_id), parent_chain, value)?
        };
        let Caches {
            transformed,
            scratch,
            arena,
            ..
        } = &mut *self.caches;
        let input: &[u8] = match &parent {
            Some(r) => &arena[r.clone()],
            None => value,
        };
        let (r, features) = if last.is_noop_with(parent_features, input) {
            // The step cannot change the value: share the parent's bytes
            // without running it.
            (parent, parent_features)
        } else {
            last.apply(input, scratch);
            if scratch.as_slice() == input {
                (parent, parent_features)
            } else {
                if arena.len() + scratch.len() > MAX_CACHE_BYTES {
                    return None;
                }
                (
                    Some(push_range(arena, scratch)),
                    crate::transform::features(scratch),
                )
            }
        };
        if !transformed.insert(
            key,
            CacheEntry {
                value: r.clone(),
                bits: None,
                features,
            },
        ) {
            return None;
        }
        Some((r, features))
    }

    /// The prefilter bits of a list value after a pipeline, computing and
    /// caching them on first use.
    fn cached_bits(
        &mut self,
        key: (u8, u32, u32),
        chain: &[Transform],
        value: &[u8],
        pf: &crate::prefilter::ChainPrefilter,
    ) -> Option<std::ops::Range<usize>> {
        if let Some(Some(r)) = self.caches.transformed.get(&key).map(|e| e.bits.clone()) {
            return Some(r);
        }
        let v = self.cached_value(key, chain, value)?;
        // The scan is ASCII case-insensitive, so a pipeline whose output
        // equals the raw value ignoring case (the usual case for benign
        // values) reuses the raw value's bits: one scan per value.
        let same_as_raw = match &v {
            None => true,
            Some(r) => self.caches.arena[r.clone()].eq_ignore_ascii_case(value),
        };
        let r = if same_as_raw {
            self.raw_bits(key.0, key.1, value, pf)
        } else if has_own_automaton(self.inner, key.0) {
            // Not shared through `bits_by_content`: these bits cover only
            // the rules that read this variable.
            let Caches {
                arena, bit_arena, ..
            } = &mut *self.caches;
            let input = match &v {
                Some(vr) => &arena[vr.clone()],
                None => value,
            };
            automaton_for(self.inner, key.0, pf).scan_into(input, bit_arena)
        } else {
            let Caches {
                arena,
                bit_arena,
                bits_by_content,
                ..
            } = &mut *self.caches;
            match &v {
                Some(vr) => {
                    // Pipelines often produce the same bytes up to case (a
                    // decoded value and its lowercase form), and forms repeat
                    // values: transformed values equal ignoring case share
                    // one scan. The hash only finds the candidate; equality
                    // is checked on the bytes.
                    let input = &arena[vr.clone()];
                    let h = hash_ignore_case(input);
                    match bits_by_content.get(&h) {
                        Some((src, bits)) if arena[src.clone()].eq_ignore_ascii_case(input) => {
                            bits.clone()
                        }
                        _ => {
                            let bits = pf.scan_into(input, bit_arena);
                            bits_by_content.insert(h, (vr.clone(), bits.clone()));
                            bits
                        }
                    }
                }
                None => pf.scan_into(value, bit_arena),
            }
        };
        if let Some(e) = self.caches.transformed.get_mut(&key) {
            e.bits = Some(r.clone());
        }
        Some(r)
    }

    fn run_op(&mut self, link: &Rule, input: &[u8], caps: Option<&mut Vec<Vec<u8>>>) -> bool {
        let mut ctx = Ctx {
            req: self.req,
            st: self.st,
            meta: self.meta,
            regex: &mut self.caches.regex,
            shared_regex: &self.inner.dynamic_regex,
            rule: link,
            started: self.started,
        };
        link.op.eval(&mut ctx, input, caps) != link.negated
    }
}

/// The automaton that scans a value of variable `v` (as a cache key's
/// variable id): the variable's own, which holds only the literals of the
/// rules that read it (see `Inner::own_prefilters`), or the shared one.
fn automaton_for<'i>(
    inner: &'i crate::engine::Inner,
    v: u8,
    shared: &'i crate::prefilter::ChainPrefilter,
) -> &'i crate::prefilter::ChainPrefilter {
    match inner.own_prefilter_slot[v as usize] {
        0 => shared,
        slot => inner.own_prefilters[slot as usize - 1]
            .get()
            .unwrap_or(shared),
    }
}

/// Whether values of variable `v` are scanned with an automaton of their own.
fn has_own_automaton(inner: &crate::engine::Inner, v: u8) -> bool {
    inner.own_prefilter_slot[v as usize] != 0
}

/// A hash of bytes ignoring ASCII case (FxHash's step over 8-byte words).
fn hash_ignore_case(b: &[u8]) -> u64 {
    const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;
    let mut h = b.len() as u64;
    let mut chunks = b.chunks_exact(8);
    for c in &mut chunks {
        // Clearing bit 0x20 folds ASCII case (and merges a few other pairs,
        // which only costs an equality check).
        let w = u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]])
            & !0x2020_2020_2020_2020;
        h = (h.rotate_left(5) ^ w).wrapping_mul(SEED);
    }
    for &c in chunks.remainder() {
        h = (h.rotate_left(5) ^ u64::from(c & !0x20)).wrapping_mul(SEED);
    }
    h
}

/// Formats a count in decimal into a stack buffer.
fn format_count(mut n: usize, buf: &mut [u8; 20]) -> &[u8] {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    &buf[i..]
}

/// Formats a signed number in decimal into a stack buffer.
fn format_i64(n: i64, buf: &mut [u8; 24]) -> &[u8] {
    let mut i = buf.len();
    let neg = n < 0;
    let mut m = n.unsigned_abs();
    loop {
        i -= 1;
        buf[i] = b'0' + (m % 10) as u8;
        m /= 10;
        if m == 0 {
            break;
        }
    }
    if neg {
        i -= 1;
        buf[i] = b'-';
    }
    &buf[i..]
}

/// Appends what fits of `chunk` to a body held to `limit` bytes, and notes in `truncated` that
/// some did not fit (the INBOUND_DATA_ERROR / OUTBOUND_DATA_ERROR flags).
fn append_capped(body: &mut Vec<u8>, truncated: &mut bool, chunk: &[u8], limit: usize) {
    let room = limit.saturating_sub(body.len());
    if chunk.len() > room {
        *truncated = true;
    }
    body.extend_from_slice(&chunk[..chunk.len().min(room)]);
}
