//! What a CRS release's regression suite says: the go-ftw YAML test files
//! (the v4 schema with `expect_ids`, and the older v3.3 schema with
//! `log_contains`), rule 900005 as CRS's test README gives it, and the
//! overrides file, in which every skipped or waived case has its reason.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde_yaml_ng::Value;

use crate::reflect::base64;

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
        input.raw = Some(base64(&e));
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
            serde_yaml_ng::from_str(&text).map_err(|e| format!("{}: {e}", f.display()))?;
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
            serde_yaml_ng::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
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
