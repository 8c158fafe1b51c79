//! The CRS regression-test runner.
//!
//! It reads go-ftw YAML test files (the v4 schema with `expect_ids`, and the
//! older v3.3 schema with `log_contains`), runs each case through an
//! [`Engine`] configured the way CRS's test README asks (rule 900005:
//! DetectionOnly, paranoia level 4, ...), answers with a simulated backend
//! like CRS's test backend (any path answers 200; `/reflect` answers with the
//! status, headers and body given in its JSON request) and checks the error
//! log lines the engine wrote.
//!
//! Skips come only from an overrides file with a reason per case.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde_yaml::Value;

use crate::{ConfigInput, Engine, RuleLoadOptions, TxMeta, Verdict};

/// Which CRS regression-test schema a suite uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Schema {
    /// go-ftw, CRS v4 (`expect_ids`, `no_expect_ids`, `match_regex`).
    V4,
    /// ftw, CRS v3.3 (`log_contains`, `no_log_contains`).
    V3,
}

/// A CRS release on disk.
#[derive(Debug, Clone)]
pub struct Suite {
    /// The release directory (holding `rules/`, `crs-setup.conf.example`, `tests/`).
    pub root: PathBuf,
    /// The name used in the overrides file, e.g. `v4.28.0`.
    pub name: String,
    pub schema: Schema,
}

impl Suite {
    /// The suite for a release directory; v3 releases use the old schema.
    pub fn new(root: impl Into<PathBuf>) -> Suite {
        let root = root.into();
        let name = root
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let schema = if name.starts_with("v3") {
            Schema::V3
        } else {
            Schema::V4
        };
        Suite { root, name, schema }
    }
}

/// The CRS root: `RAMPART_CRS_ROOT`, or `<workspace>/../shared/crs`.
pub fn crs_root() -> PathBuf {
    if let Ok(p) = std::env::var("RAMPART_CRS_ROOT") {
        return PathBuf::from(p);
    }
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/crs");
    // Canonical, so error log lines name the rule files plainly.
    std::fs::canonicalize(&p).unwrap_or(p)
}

/// The modsecurity.conf-recommended settings that CRS's test containers run
/// with: request and response body access, and the JSON and XML body
/// processors switched on by content type.
pub const BASE_CONFIG: &str = r#"
SecRuleEngine On
SecRequestBodyAccess On
SecRule REQUEST_HEADERS:Content-Type "^(?:application(?:/soap\+|/)|text/)xml" "id:200000,phase:1,t:none,t:lowercase,pass,nolog,ctl:requestBodyProcessor=XML"
SecRule REQUEST_HEADERS:Content-Type "^application/json" "id:200001,phase:1,t:none,t:lowercase,pass,nolog,ctl:requestBodyProcessor=JSON"
SecRequestBodyLimit 13107200
SecRequestBodyNoFilesLimit 131072
SecRequestBodyLimitAction Reject
SecRule REQBODY_ERROR "!@eq 0" "id:200002,phase:2,t:none,log,deny,status:400,msg:'Failed to parse request body.',logdata:'%{reqbody_error_msg}',severity:2"
SecRule MULTIPART_STRICT_ERROR "!@eq 0" "id:200003,phase:2,t:none,log,deny,status:400,msg:'Multipart request body failed strict validation'"
SecRule MULTIPART_UNMATCHED_BOUNDARY "@eq 1" "id:200004,phase:2,t:none,log,deny,msg:'Multipart parser detected a possible unmatched boundary.'"
SecResponseBodyAccess On
SecResponseBodyMimeType text/plain text/html text/xml
SecResponseBodyLimit 524288
SecResponseBodyLimitAction ProcessPartial
"#;

/// Rule 900005 as CRS's test README gives it, per schema, with the
/// paranoia level and engine mode as parameters.
pub fn setup_rule(schema: Schema, detection_only: bool, pl: u8) -> String {
    let mode = if detection_only {
        "ctl:ruleEngine=DetectionOnly,"
    } else {
        ""
    };
    match schema {
        Schema::V4 => format!(
            "SecAction \"id:900005,phase:1,nolog,pass,{mode}ctl:ruleRemoveById=910000,setvar:tx.blocking_paranoia_level={pl},setvar:tx.crs_validate_utf8_encoding=1,setvar:tx.arg_name_length=100,setvar:tx.arg_length=400,setvar:tx.total_arg_length=64000,setvar:tx.max_num_args=255,setvar:tx.max_file_size=64100,setvar:tx.combined_file_sizes=65535\"\n"
        ),
        Schema::V3 => format!(
            "SecAction \"id:900005,phase:1,nolog,pass,{mode}ctl:ruleRemoveById=910000,setvar:tx.paranoia_level={pl},setvar:tx.crs_validate_utf8_encoding=1,setvar:tx.arg_name_length=100,setvar:tx.arg_length=400\"\n"
        ),
    }
}

/// Loads a suite's CRS with the test configuration.
pub fn load_engine(
    suite: &Suite,
    detection_only: bool,
    paranoia: u8,
) -> Result<Engine, crate::LoadErrors> {
    let inputs = vec![
        ConfigInput::Text {
            name: "<base>".into(),
            text: BASE_CONFIG.into(),
            base_dir: suite.root.clone(),
        },
        ConfigInput::File(suite.root.join("crs-setup.conf.example")),
        ConfigInput::Text {
            name: "<900005>".into(),
            text: setup_rule(suite.schema, detection_only, paranoia),
            base_dir: suite.root.clone(),
        },
        ConfigInput::File(suite.root.join("rules/*.conf")),
    ];
    Engine::load(&crate::FsSource, &inputs, &RuleLoadOptions::default())
}

/// One request of a test case.
#[derive(Debug, Clone, Default)]
pub struct Input {
    pub method: String,
    pub uri: String,
    pub version: String,
    pub headers: Vec<(String, String)>,
    pub data: Option<Vec<u8>>,
    pub raw: Option<Vec<u8>>,
    pub autocomplete: bool,
}

/// What a test case expects.
#[derive(Debug, Clone, Default)]
pub struct Expect {
    pub status: Vec<u16>,
    pub ids: Vec<u32>,
    pub no_ids: Vec<u32>,
    pub match_regex: Vec<String>,
    pub no_match_regex: Vec<String>,
    pub expect_error: bool,
}

/// One test case (one stage; CRS tests have one stage each).
#[derive(Debug, Clone)]
pub struct Case {
    /// `920100-4` (v4: rule id and test id; v3: the test title).
    pub name: String,
    /// The rule the file tests.
    pub rule_id: u32,
    /// The file's directory, e.g. `REQUEST-920-PROTOCOL-ENFORCEMENT`.
    pub group: String,
    pub stages: Vec<(Input, Expect)>,
}

fn s(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn ids(v: Option<&Value>) -> Vec<u32> {
    match v {
        Some(Value::Sequence(seq)) => seq.iter().filter_map(|x| s(x)?.parse().ok()).collect(),
        Some(x) => s(x).and_then(|x| x.parse().ok()).into_iter().collect(),
        None => Vec::new(),
    }
}

fn strings(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::Sequence(seq)) => seq.iter().filter_map(s).collect(),
        Some(x) => s(x).into_iter().collect(),
        None => Vec::new(),
    }
}

/// Decodes go-ftw's base64 fields (line breaks allowed) with the engine's own
/// `t:base64DecodeExt`, which skips what is not base64.
fn base64_decode(s: &str) -> Vec<u8> {
    let mut out = Vec::new();
    crate::transform::Transform::Base64DecodeExt.apply(s.as_bytes(), &mut out);
    out
}

fn parse_input(v: &Value, schema: Schema) -> Input {
    let get = |k: &str| v.get(k);
    let mut input = Input {
        method: get("method").and_then(s).unwrap_or_else(|| "GET".into()),
        uri: get("uri").and_then(s).unwrap_or_else(|| "/".into()),
        version: get("version")
            .and_then(s)
            .unwrap_or_else(|| "HTTP/1.1".into()),
        autocomplete: true,
        ..Input::default()
    };
    if let Some(Value::Mapping(m)) = get("headers") {
        for (k, val) in m {
            if let (Some(k), Some(val)) = (s(k), s(val)) {
                input.headers.push((k, val));
            }
        }
    }
    input.data = match get("data") {
        Some(Value::Sequence(lines)) => Some(
            lines
                .iter()
                .filter_map(s)
                .collect::<Vec<_>>()
                .join("\r\n")
                .into_bytes(),
        ),
        Some(x) => s(x).map(String::into_bytes),
        None => None,
    };
    if schema == Schema::V3 && get("stop_magic").and_then(Value::as_bool) == Some(true) {
        input.autocomplete = false;
    }
    if let Some(b) = get("autocomplete_headers").and_then(Value::as_bool) {
        input.autocomplete = b;
    }
    if let Some(e) = get("encoded_request").and_then(s) {
        input.raw = Some(base64_decode(&e));
    } else if let Some(r) = get("raw_request").and_then(s) {
        input.raw = Some(r.into_bytes());
    }
    input
}

fn parse_expect(v: &Value, schema: Schema) -> Expect {
    let mut e = Expect {
        status: ids(v.get("status")).into_iter().map(|x| x as u16).collect(),
        ..Expect::default()
    };
    e.expect_error = v
        .get("expect_error")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    match schema {
        Schema::V4 => {
            if let Some(log) = v.get("log") {
                e.ids = ids(log.get("expect_ids"));
                e.no_ids = ids(log.get("no_expect_ids"));
                e.match_regex = strings(log.get("match_regex"));
                e.no_match_regex = strings(log.get("no_match_regex"));
            }
        }
        Schema::V3 => {
            e.match_regex = strings(v.get("log_contains"));
            e.no_match_regex = strings(v.get("no_log_contains"));
        }
    }
    e
}

/// Reads every test file of a suite, sorted by path.
pub fn read_cases(suite: &Suite) -> Result<Vec<Case>, String> {
    let dir = suite.root.join("tests/regression/tests");
    let mut files = Vec::new();
    let mut stack = vec![dir.clone()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d)
            .map_err(|e| format!("{}: {e}", d.display()))?
            .flatten()
        {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "yaml") {
                files.push(p);
            }
        }
    }
    files.sort();
    let mut cases = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f).map_err(|e| format!("{}: {e}", f.display()))?;
        let doc: Value =
            serde_yaml::from_str(&text).map_err(|e| format!("{}: {e}", f.display()))?;
        let group = f
            .parent()
            .and_then(|p| p.file_name())
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let file_rule: u32 = doc
            .get("rule_id")
            .and_then(s)
            .and_then(|x| x.parse().ok())
            .or_else(|| {
                f.file_stem()
                    .and_then(|s| s.to_str())
                    .and_then(|s| s.parse().ok())
            })
            .unwrap_or(0);
        let Some(Value::Sequence(tests)) = doc.get("tests") else {
            continue;
        };
        for t in tests {
            let name = match suite.schema {
                Schema::V4 => format!(
                    "{}-{}",
                    file_rule,
                    t.get("test_id").and_then(s).unwrap_or_default()
                ),
                Schema::V3 => t.get("test_title").and_then(s).unwrap_or_default(),
            };
            let rule_id = name
                .split('-')
                .next()
                .and_then(|x| x.parse().ok())
                .unwrap_or(file_rule);
            let mut stages = Vec::new();
            if let Some(Value::Sequence(st)) = t.get("stages") {
                for stage in st {
                    let stage = stage.get("stage").unwrap_or(stage);
                    let (Some(i), Some(o)) = (stage.get("input"), stage.get("output")) else {
                        continue;
                    };
                    stages.push((parse_input(i, suite.schema), parse_expect(o, suite.schema)));
                }
            }
            cases.push(Case {
                name,
                rule_id,
                group: group.clone(),
                stages,
            });
        }
    }
    Ok(cases)
}

/// The request as the engine sees it, after go-ftw's header completion and
/// parsing of raw requests.
struct Request {
    method: String,
    uri: String,
    version: String,
    headers: Vec<(String, Vec<u8>)>,
    body: Vec<u8>,
}

fn dechunk(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < body.len() {
        let Some(eol) = body[i..].windows(2).position(|w| w == b"\r\n") else {
            break;
        };
        let size_line = String::from_utf8_lossy(&body[i..i + eol]).to_string();
        let size = usize::from_str_radix(size_line.split(';').next().unwrap_or("").trim(), 16)
            .unwrap_or(0);
        i += eol + 2;
        if size == 0 {
            break;
        }
        let end = (i + size).min(body.len());
        out.extend_from_slice(&body[i..end]);
        i = end + 2;
    }
    out
}

fn build_request(input: &Input) -> Option<Request> {
    if let Some(raw) = &input.raw {
        let head_end = raw
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .map(|p| (p, p + 4))
            .or_else(|| {
                raw.windows(2)
                    .position(|w| w == b"\n\n")
                    .map(|p| (p, p + 2))
            })?;
        let head = String::from_utf8_lossy(&raw[..head_end.0]).into_owned();
        let mut lines = head.split('\n').map(|l| l.trim_end_matches('\r'));
        let rl = lines.next()?;
        let mut parts = rl.split(' ');
        let method = parts.next()?.to_string();
        let uri = parts.next()?.to_string();
        let version = parts.next().unwrap_or("HTTP/1.0").to_string();
        let mut headers = Vec::new();
        for l in lines {
            if let Some((k, v)) = l.split_once(':') {
                headers.push((k.trim().to_string(), v.trim().as_bytes().to_vec()));
            }
        }
        let mut body = raw[head_end.1..].to_vec();
        if headers.iter().any(|(k, v)| {
            k.eq_ignore_ascii_case("transfer-encoding") && v.eq_ignore_ascii_case(b"chunked")
        }) {
            body = dechunk(&body);
        }
        return Some(Request {
            method,
            uri,
            version,
            headers,
            body,
        });
    }
    let mut headers: Vec<(String, Vec<u8>)> = input
        .headers
        .iter()
        .map(|(k, v)| (k.clone(), v.as_bytes().to_vec()))
        .collect();
    let mut body = input.data.clone().unwrap_or_default();
    let chunked = headers.iter().any(|(k, v)| {
        k.eq_ignore_ascii_case("transfer-encoding") && v.eq_ignore_ascii_case(b"chunked")
    });
    if chunked {
        // RFC 9112 6.3: with Transfer-Encoding, Content-Length is ignored;
        // a server (httpd, Pingora) drops it before the WAF sees the request.
        headers.retain(|(k, _)| !k.eq_ignore_ascii_case("content-length"));
    } else if !input.autocomplete {
        // HTTP/1.1 framing: without Content-Length the request has no body.
        let len = headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
            .and_then(|(_, v)| std::str::from_utf8(v).ok()?.trim().parse::<usize>().ok());
        body.truncate(len.unwrap_or(0));
    }
    if input.autocomplete
        && !body.is_empty()
        && !chunked
        && !headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("content-length"))
    {
        headers.push(("Content-Length".into(), body.len().to_string().into_bytes()));
    }
    // go-ftw, like ftw before it, sends a form content type with a body that
    // has none when it completes headers.
    if input.autocomplete
        && !body.is_empty()
        && !headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("content-type"))
    {
        headers.push((
            "Content-Type".into(),
            b"application/x-www-form-urlencoded".to_vec(),
        ));
    }
    let body = if chunked { dechunk(&body) } else { body };
    // A request line without a version is HTTP/0.9.
    let version = if input.version.is_empty() {
        "HTTP/0.9".to_string()
    } else {
        input.version.clone()
    };
    Some(Request {
        method: input.method.clone(),
        uri: input.uri.clone(),
        version,
        headers,
        body,
    })
}

/// The result of sending one request through the engine and backend.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The status the client got.
    pub status: u16,
    /// Whether a rule denied or dropped the request.
    pub blocked: bool,
    /// The error log lines of the transaction.
    pub log: Vec<String>,
}

/// Runs one request: phases 1–2, the simulated backend, phases 3–5.
pub fn run_request(engine: &Engine, input: &Input, unique_id: &str) -> Option<Outcome> {
    let req = build_request(input)?;
    // An HTTP/1.1 front end (httpd in CRS's setup, Pingora in rampart's)
    // rejects a header with a bare CR or LF before any WAF sees it.
    if req
        .headers
        .iter()
        .any(|(k, v)| k.contains(['\r', '\n']) || v.contains(&b'\r') || v.contains(&b'\n'))
    {
        return Some(Outcome {
            status: 400,
            blocked: false,
            log: Vec::new(),
        });
    }
    let meta = TxMeta {
        remote_addr: "127.0.0.1".into(),
        remote_port: 40000,
        server_addr: "127.0.0.1".into(),
        server_port: 80,
        unique_id: unique_id.into(),
    };
    let mut tx = engine.transaction(meta);
    let mut verdict = tx.process_request_headers(
        &req.method,
        &req.uri,
        &req.version,
        req.headers.iter().map(|(k, v)| (k.as_str(), v.as_slice())),
    );
    if verdict == Verdict::Continue {
        tx.append_request_body(&req.body);
        verdict = tx.process_request_body();
    }
    let mut status = 200;
    let mut blocked = false;
    match &verdict {
        Verdict::Deny { status: s, .. } => {
            status = *s;
            blocked = true;
        }
        Verdict::Drop { .. } => blocked = true,
        Verdict::Redirect { status: s, .. } => {
            status = *s;
            blocked = true;
        }
        _ => {}
    }
    if !blocked {
        let (st, headers, body) = backend(&req);
        status = st;
        let v = tx.process_response_headers(
            st,
            "HTTP/1.1",
            headers.iter().map(|(k, v)| (k.as_str(), v.as_bytes())),
        );
        let v = if v == Verdict::Continue {
            tx.append_response_body(&body);
            tx.process_response_body()
        } else {
            v
        };
        if let Verdict::Deny { status: s, .. } = v {
            status = s;
            blocked = true;
        }
    }
    tx.process_logging();
    Some(Outcome {
        status,
        blocked,
        log: tx.error_log_lines().to_vec(),
    })
}

/// CRS's test backend (albedo): `/reflect` answers with the JSON request's
/// status, headers and body; anything else answers 200.
fn backend(req: &Request) -> (u16, Vec<(String, String)>, Vec<u8>) {
    let path = req.uri.split('?').next().unwrap_or("");
    if path == "/reflect" {
        if let Ok(serde_json::Value::Object(m)) =
            serde_json::from_slice::<serde_json::Value>(&req.body)
        {
            let status = m.get("status").and_then(|v| v.as_u64()).unwrap_or(200) as u16;
            let mut headers = Vec::new();
            if let Some(serde_json::Value::Object(h)) = m.get("headers") {
                for (k, v) in h {
                    headers.push((
                        k.clone(),
                        v.as_str()
                            .map(str::to_string)
                            .unwrap_or_else(|| v.to_string()),
                    ));
                }
            }
            let mut body = m
                .get("body")
                .and_then(|v| v.as_str())
                .map(|s| s.as_bytes().to_vec())
                .unwrap_or_default();
            if let Some(b) = m.get("encodedBody").and_then(|v| v.as_str()) {
                body = base64_decode(b);
            }
            if !headers
                .iter()
                .any(|(k, _)| k.eq_ignore_ascii_case("content-type"))
            {
                headers.push(("Content-Type".into(), "text/plain".into()));
            }
            return (status, headers, body);
        }
    }
    (
        200,
        vec![
            ("Content-Type".into(), "text/plain; charset=utf-8".into()),
            ("Content-Length".into(), "0".into()),
        ],
        Vec::new(),
    )
}

/// What an override does to a case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OverrideAction {
    /// The case is not run.
    Skip,
    /// The case runs, but its expected HTTP status is not checked: the status
    /// is decided by the HTTP front end (httpd in CRS's reference setup), not
    /// by the WAF. Its log expectations are still checked.
    IgnoreStatus,
}

/// Overrides read from the overrides file: suite name → case name →
/// (action, reason). Every entry must give a reason.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    entries: HashMap<String, HashMap<String, (OverrideAction, String)>>,
}

impl Overrides {
    /// Reads an overrides file:
    /// `overrides: [{suite, tests: [..], action: skip|ignore_status, reason}]`.
    pub fn load(path: &Path) -> Result<Overrides, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let doc: Value =
            serde_yaml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        let mut o = Overrides::default();
        if let Some(Value::Sequence(list)) = doc.get("overrides") {
            for entry in list {
                let suite = entry.get("suite").and_then(s).unwrap_or_default();
                let reason = entry.get("reason").and_then(s).unwrap_or_default();
                if reason.trim().is_empty() {
                    return Err(format!("{}: an override without a reason", path.display()));
                }
                let action = match entry.get("action").and_then(s).as_deref() {
                    None | Some("skip") => OverrideAction::Skip,
                    Some("ignore_status") => OverrideAction::IgnoreStatus,
                    Some(other) => {
                        return Err(format!(
                            "{}: unknown override action `{other}`",
                            path.display()
                        ))
                    }
                };
                for t in strings(entry.get("tests")) {
                    o.entries
                        .entry(suite.clone())
                        .or_default()
                        .insert(t, (action.clone(), reason.clone()));
                }
            }
        }
        Ok(o)
    }

    /// The override for one case of one suite, if any.
    pub fn action(&self, suite: &str, case: &str) -> Option<&OverrideAction> {
        self.entries.get(suite)?.get(case).map(|(a, _)| a)
    }

    /// Every override of one suite, grouped by reason: what a report lists
    /// so that each case answered differently on purpose is named with why.
    pub fn listing(&self, suite: &str) -> String {
        let mut by_reason: BTreeMap<(String, String), Vec<&str>> = BTreeMap::new();
        for (case, (action, reason)) in self.entries.get(suite).into_iter().flatten() {
            let action = match action {
                OverrideAction::Skip => "skipped",
                OverrideAction::IgnoreStatus => "status waived",
            };
            by_reason
                .entry((action.to_string(), reason.clone()))
                .or_default()
                .push(case);
        }
        let mut out = String::new();
        for ((action, reason), mut cases) in by_reason {
            cases.sort_unstable();
            let _ = writeln!(
                out,
                "{action}: {}\n  why: {}",
                cases.join(", "),
                reason.trim()
            );
        }
        out
    }
}

/// The default overrides file of this crate.
pub fn default_overrides_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("crs-overrides.yaml")
}

/// A failed case and why.
#[derive(Debug, Clone)]
pub struct Failure {
    pub case: String,
    pub rule_id: u32,
    pub reasons: Vec<String>,
}

/// The result of running a suite.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub passed: usize,
    pub failed: usize,
    pub skipped: usize,
    /// Cases whose status expectation was waived by an override.
    pub status_waived: usize,
    pub failures: Vec<Failure>,
}

impl Report {
    /// The share of run (not skipped) cases that passed, in percent.
    pub fn pass_rate(&self) -> f64 {
        let total = self.passed + self.failed;
        if total == 0 {
            return 0.0;
        }
        100.0 * self.passed as f64 / total as f64
    }

    /// Failures grouped by rule, then the closing `N passed, M failed, K skipped` line.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let mut by_rule: BTreeMap<u32, Vec<&Failure>> = BTreeMap::new();
        for f in &self.failures {
            by_rule.entry(f.rule_id).or_default().push(f);
        }
        for (rule, fs) in &by_rule {
            let _ = writeln!(out, "rule {rule}: {} failed", fs.len());
            for f in fs {
                let _ = writeln!(out, "  {}: {}", f.case, f.reasons.join("; "));
            }
        }
        if self.status_waived > 0 {
            let _ = writeln!(
                out,
                "({} cases ran with their HTTP status expectation waived by overrides)",
                self.status_waived
            );
        }
        let _ = writeln!(
            out,
            "{} passed, {} failed, {} skipped",
            self.passed, self.failed, self.skipped
        );
        out
    }
}

fn log_has_id(log: &[String], id: u32) -> bool {
    let needle = format!("[id \"{id}\"]");
    log.iter().any(|l| l.contains(&needle))
}

/// Compares one outcome with its expectations, adding a reason per miss.
pub fn check(expect: &Expect, out: Option<&Outcome>, reasons: &mut Vec<String>) {
    let Some(out) = out else {
        if !expect.expect_error {
            reasons.push("request could not be built".into());
        }
        return;
    };
    let text = out.log.join("\n");
    for id in &expect.ids {
        if !log_has_id(&out.log, *id) {
            reasons.push(format!("expected id {id} not in log"));
        }
    }
    for id in &expect.no_ids {
        if log_has_id(&out.log, *id) {
            reasons.push(format!("unexpected id {id} in log"));
        }
    }
    for r in &expect.match_regex {
        match regex::Regex::new(r) {
            Ok(re) if re.is_match(&text) => {}
            Ok(_) => reasons.push(format!("log does not match `{r}`")),
            Err(e) => reasons.push(format!("bad regex `{r}`: {e}")),
        }
    }
    for r in &expect.no_match_regex {
        if let Ok(re) = regex::Regex::new(r) {
            if re.is_match(&text) {
                reasons.push(format!("log matches `{r}`"));
            }
        }
    }
    if !expect.status.is_empty() && !expect.status.contains(&out.status) {
        reasons.push(format!("status {} not in {:?}", out.status, expect.status));
    }
}

/// Runs every case of a suite in detection mode (the CRS configuration).
pub fn run_suite(engine: &Engine, suite: &Suite, cases: &[Case], overrides: &Overrides) -> Report {
    let mut report = Report::default();
    for case in cases {
        let action = overrides.action(&suite.name, &case.name);
        if action == Some(&OverrideAction::Skip) {
            report.skipped += 1;
            continue;
        }
        let mut reasons = Vec::new();
        for (k, (input, expect)) in case.stages.iter().enumerate() {
            let out = run_request(engine, input, &format!("{}-{k}", case.name));
            if action == Some(&OverrideAction::IgnoreStatus) {
                let mut e = expect.clone();
                e.status.clear();
                check(&e, out.as_ref(), &mut reasons);
                report.status_waived += 1;
            } else {
                check(expect, out.as_ref(), &mut reasons);
            }
        }
        if reasons.is_empty() {
            report.passed += 1;
        } else {
            report.failed += 1;
            report.failures.push(Failure {
                case: case.name.clone(),
                rule_id: case.rule_id,
                reasons,
            });
        }
    }
    report
}

/// The blocking pass: with the engine On at paranoia level 1, attack cases
/// of REQUEST-93x/94x whose expected rule is a PL1 rule must be blocked, and
/// the cases that expect no id at all must not be.
pub fn run_blocking(
    engine: &Engine,
    suite: &Suite,
    cases: &[Case],
    overrides: &Overrides,
) -> Report {
    let pl1: HashSet<u32> = engine
        .rules_with_tag("paranoia-level/1")
        .into_iter()
        .collect();
    let mut report = Report::default();
    for case in cases {
        if !(case.group.starts_with("REQUEST-93") || case.group.starts_with("REQUEST-94")) {
            continue;
        }
        if case.group.starts_with("REQUEST-949") {
            continue;
        }
        if overrides.action(&suite.name, &case.name) == Some(&OverrideAction::Skip) {
            report.skipped += 1;
            continue;
        }
        let Some((input, expect)) = case.stages.first() else {
            continue;
        };
        let expected_ids: Vec<u32> = match suite.schema {
            Schema::V4 => expect.ids.clone(),
            Schema::V3 => expect
                .match_regex
                .iter()
                .filter_map(|r| {
                    r.split(|c: char| !c.is_ascii_digit())
                        .find(|p| p.len() == 6)
                        .and_then(|p| p.parse().ok())
                })
                .collect(),
        };
        let attack = expected_ids.iter().any(|id| pl1.contains(id));
        let benign =
            expected_ids.is_empty() && expect.no_match_regex.iter().any(|r| r.contains("\\d+"));
        if !attack && !benign {
            continue;
        }
        let Some(out) = run_request(engine, input, &case.name) else {
            continue;
        };
        let ok = if attack { out.blocked } else { !out.blocked };
        if ok {
            report.passed += 1;
        } else {
            report.failed += 1;
            let why = if attack {
                "attack not blocked"
            } else {
                "benign request blocked"
            };
            report.failures.push(Failure {
                case: case.name.clone(),
                rule_id: case.rule_id,
                reasons: vec![why.into()],
            });
        }
    }
    report
}
