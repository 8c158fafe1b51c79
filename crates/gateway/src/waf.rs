//! The WAF in the gateway: building a site's rule engine from its settings,
//! and the logs a WAF owes its operator.
//!
//! The engine itself lives in `rampart-waf` and knows nothing of Pingora;
//! this module turns a site's `[site.waf]` into the SecLang inputs ModSecurity
//! users would write by hand (recommended base settings, the CRS setup file,
//! paranoia and thresholds, exclusions, the rules), and writes the
//! ModSecurity-style error log and the JSON audit log.

use std::path::{Path, PathBuf};

use rampart_flood::pages::percent_decode;
use rampart_waf::{ConfigInput, Engine, FsSource, MatchedRule, RuleLoadOptions};
use serde_json::{json, Map, Value};

use crate::config::{ConfigError, WafMode, WafSettings, DEBIAN_CRS};

/// Where Debian keeps the CRS setup file and the operator's exclusion files
/// for the rules it installs under [`DEBIAN_CRS`].
const DEBIAN_CRS_ETC: &str = "/etc/modsecurity/crs";

/// ModSecurity's recommended base settings (modsecurity.conf-recommended),
/// which CRS assumes: bodies inspected, JSON and XML parsed by content type,
/// a body that cannot be parsed refused. The same text the CRS test runner
/// uses, so that what the suites prove is what the gateway runs.
use rampart_waf::BASE_SETTINGS;

/// The files that make up a CRS installation.
#[derive(Debug, Clone, PartialEq)]
pub struct CrsLayout {
    pub setup: PathBuf,
    pub rules: PathBuf,
    /// Debian's operator exclusion files, loaded around the rules.
    pub before: Option<PathBuf>,
    pub after: Option<PathBuf>,
}

/// Finds the setup file and rules of a CRS directory: `crs-setup.conf` or
/// `crs-setup.conf.example` beside `rules/`, or, for Debian's layout,
/// `/etc/modsecurity/crs/crs-setup.conf` beside `/usr/share/modsecurity-crs/rules`.
pub fn crs_layout(dir: &Path) -> Result<CrsLayout, String> {
    let rules = dir.join("rules");
    if !rules.is_dir() {
        return Err(format!(
            "`{}` is not a CRS directory: it has no `rules/` folder",
            dir.display()
        ));
    }
    let debian = dir == Path::new(DEBIAN_CRS);
    let etc = Path::new(DEBIAN_CRS_ETC);
    let mut candidates = vec![
        dir.join("crs-setup.conf"),
        dir.join("crs-setup.conf.example"),
    ];
    if debian {
        candidates.insert(0, etc.join("crs-setup.conf"));
    }
    let setup = candidates.into_iter().find(|p| p.is_file()).ok_or_else(|| {
        format!("`{}` has no crs-setup.conf or crs-setup.conf.example; copy the example from the CRS release next to `rules/`", dir.display())
    })?;
    let existing = |p: PathBuf| p.is_file().then_some(p);
    Ok(CrsLayout {
        setup,
        rules: rules.join("*.conf"),
        before: if debian {
            existing(etc.join("REQUEST-900-EXCLUSION-RULES-BEFORE-CRS.conf"))
        } else {
            None
        },
        after: if debian {
            existing(etc.join("RESPONSE-999-EXCLUSION-RULES-AFTER-CRS.conf"))
        } else {
            None
        },
    })
}

/// The SecLang a site's settings add between the CRS setup and its rules.
fn site_directives(settings: &WafSettings) -> String {
    let pl = settings.paranoia;
    // v4 reads blocking_paranoia_level, v3 reads paranoia_level; setting
    // both lets one setting drive either release.
    let text = format!(
        "SecAction \"id:900100,phase:1,pass,nolog,t:none,setvar:tx.paranoia_level={pl},setvar:tx.blocking_paranoia_level={pl},setvar:tx.inbound_anomaly_score_threshold={},setvar:tx.outbound_anomaly_score_threshold={}\"\n",
        settings.inbound_threshold, settings.outbound_threshold
    );
    // Exclusions are not written as `REQUEST_FILENAME @beginsWith` rules:
    // those match the raw path, which `/excluded/../target` walks around.
    // The gateway applies them per request from the normalised path
    // (`apply_exclusions`).
    text
}

/// An exclusion ready for a transaction: its target parsed once, at load.
#[derive(Debug, Clone)]
pub struct CompiledExclusion {
    pub prefix: String,
    pub rules: Vec<(u32, u32)>,
    pub target: Option<rampart_waf::TargetExclusion>,
}

/// Compiles exclusions already checked by [`WafExclusion::check`]; one
/// whose target does not parse (which the check refuses) is left out.
pub fn compile_exclusions<'a>(
    list: impl Iterator<Item = &'a crate::config::WafExclusion>,
) -> Vec<CompiledExclusion> {
    list.filter_map(|e| {
        let target = match &e.target {
            Some(t) => Some(rampart_waf::TargetExclusion::parse(t).ok()?),
            None => None,
        };
        Some(CompiledExclusion {
            prefix: e.prefix.clone(),
            rules: e.rule_ids.iter().map(|&id| (id, id)).collect(),
            target,
        })
    })
    .collect()
}

/// Applies a site's exclusions to a new transaction, chosen by the
/// request's matching path (see `resolve`), segment by segment and without
/// case (`rampart_console::triage::covers_path`): an exclusion for
/// `/search` does not reach `/search-admin`.
pub fn apply_exclusions(
    tx: &mut rampart_waf::Transaction,
    exclusions: &[CompiledExclusion],
    matching_path: &str,
) {
    for e in exclusions
        .iter()
        .filter(|e| rampart_console::triage::covers_path(&e.prefix, matching_path))
    {
        match &e.target {
            None => tx.remove_rules_by_id(&e.rules),
            Some(target) => tx.remove_target_by_id(&e.rules, target),
        }
    }
}

/// Compiles the engine for one site's settings. `None` when the WAF is off.
/// Errors carry the rule file and line.
pub fn build_engine(
    site: &str,
    settings: &WafSettings,
) -> Result<Option<Engine>, Vec<ConfigError>> {
    if settings.mode == WafMode::Off {
        return Ok(None);
    }
    let problem = |file: String, line: usize, message: String| ConfigError {
        file,
        line,
        column: 0,
        message,
    };
    let engine_mode = match settings.mode {
        WafMode::On => "SecRuleEngine On\n",
        _ => "SecRuleEngine DetectionOnly\n",
    };
    let base_dir = settings.crs.clone().unwrap_or_else(|| PathBuf::from("."));
    let text = |name: &str, text: String| ConfigInput::Text {
        name: name.to_string(),
        text,
        base_dir: base_dir.clone(),
    };
    // The base text switches the engine on; the site's mode comes after it
    // and wins.
    let mut inputs = vec![text(
        "<rampart base settings>",
        format!("{BASE_SETTINGS}{engine_mode}"),
    )];
    let layout = match &settings.crs {
        Some(dir) => {
            Some(crs_layout(dir).map_err(|m| vec![problem(dir.display().to_string(), 0, m)])?)
        }
        None => None,
    };
    if let Some(layout) = &layout {
        inputs.push(ConfigInput::File(layout.setup.clone()));
    }
    inputs.push(text(
        &format!("<site {site} waf settings>"),
        site_directives(settings),
    ));
    inputs.extend(settings.rules_before.iter().cloned().map(ConfigInput::File));
    if let Some(layout) = &layout {
        inputs.extend(layout.before.clone().map(ConfigInput::File));
        inputs.push(ConfigInput::File(layout.rules.clone()));
        inputs.extend(layout.after.clone().map(ConfigInput::File));
    }
    inputs.extend(settings.rules_after.iter().cloned().map(ConfigInput::File));
    Engine::load(&FsSource, &inputs, &RuleLoadOptions::default())
        .map(Some)
        .map_err(|errors| {
            errors
                .errors
                .iter()
                .map(|e| problem(e.file.clone(), e.line, e.kind.to_string()))
                .collect()
        })
}

/// Field names whose values never reach the audit log.
const SENSITIVE_FIELDS: [&str; 12] = [
    "pass", "pwd", "secret", "token", "card", "ccnum", "cc_", "cvv", "cvc", "iban", "account",
    "sortcode",
];

fn is_sensitive(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    SENSITIVE_FIELDS.iter().any(|s| lower.contains(s))
}

/// Headers whose values are credentials or sessions: never written to the
/// audit log, and neither is what a rule matched in them.
const SECRET_HEADERS: [&str; 4] = [
    "cookie",
    "authorization",
    "proxy-authorization",
    "set-cookie",
];

fn is_secret_header(name: &str) -> bool {
    SECRET_HEADERS.iter().any(|h| name.eq_ignore_ascii_case(h)) || is_sensitive(name)
}

/// Whether a matched variable (`REQUEST_COOKIES:session`,
/// `REQUEST_HEADERS:Authorization`, `ARGS:password`) comes from a field
/// whose values are masked, so the rule's data must be masked too.
fn is_masked_variable(var: &str) -> bool {
    let (collection, key) = var.split_once(':').unwrap_or((var, ""));
    let collection = collection.to_ascii_uppercase();
    collection.starts_with("REQUEST_COOKIES")
        || collection.starts_with("RESPONSE_COOKIES")
        || ((collection == "REQUEST_HEADERS" || collection == "RESPONSE_HEADERS")
            && is_secret_header(key))
        || is_sensitive(key)
}

/// A matched rule as a WAF event keeps it: its data masked as the logs
/// mask it, and cut to 200 characters.
pub fn rule_match(m: &MatchedRule) -> rampart_incidents::RuleMatch {
    let data = if is_masked_variable(&m.matched_var_name) {
        "*****".to_string()
    } else {
        m.data.chars().take(200).collect()
    };
    rampart_incidents::RuleMatch {
        rule: m.id,
        target: m.matched_var_name.clone(),
        msg: m.msg.chars().take(200).collect(),
        data,
        severity: m.severity,
    }
}

/// The request body as the audit log shows it: form and JSON fields with
/// sensitive names masked; other bodies only by size, since they cannot be
/// masked field by field.
pub fn masked_body(content_type: &str, body: &[u8]) -> String {
    const SHOWN: usize = 16 * 1024;
    let ct = content_type.to_ascii_lowercase();
    if body.is_empty() {
        return String::new();
    }
    if ct.starts_with("application/x-www-form-urlencoded") {
        let text = String::from_utf8_lossy(&body[..body.len().min(SHOWN)]);
        return text
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((k, _)) if is_sensitive(&percent_decode(k)) => format!("{k}=*****"),
                _ => pair.to_string(),
            })
            .collect::<Vec<_>>()
            .join("&");
    }
    if ct.starts_with("application/json") && body.len() <= 1024 * 1024 {
        if let Ok(mut v) = serde_json::from_slice::<Value>(body) {
            mask_json(&mut v, false);
            let mut s = v.to_string();
            s.truncate(SHOWN);
            return s;
        }
    }
    format!(
        "[{} bytes of {} not logged]",
        body.len(),
        if ct.is_empty() { "unknown type" } else { &ct }
    )
}

fn mask_json(v: &mut Value, masked: bool) {
    match v {
        Value::Object(map) => {
            for (k, child) in map.iter_mut() {
                mask_json(child, masked || is_sensitive(k));
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|c| mask_json(c, masked)),
        other if masked => *other = Value::String("*****".into()),
        _ => {}
    }
}

/// What the audit log needs to know about one transaction.
pub struct AuditEntry<'a> {
    pub time: String,
    pub unique_id: &'a str,
    pub client_ip: String,
    pub client_port: u16,
    pub host_ip: String,
    pub host_port: u16,
    pub method: &'a str,
    pub uri: &'a str,
    pub http_version: &'a str,
    pub request_headers: Vec<(&'a str, String)>,
    pub request_body: String,
    pub response_status: u16,
    pub response_headers: Vec<(String, String)>,
    pub engine_mode: WafMode,
    pub matched: &'a [MatchedRule],
    pub intervened: bool,
}

/// One line of ModSecurity v3's JSON audit log layout, so that SIEM
/// pipelines built for ModSecurity can take it unchanged.
pub fn audit_line(e: &AuditEntry<'_>) -> String {
    let headers = |list: &[(&str, String)]| -> Map<String, Value> {
        list.iter()
            .map(|(k, v)| {
                (
                    k.to_string(),
                    Value::String(if is_secret_header(k) {
                        "*****".into()
                    } else {
                        v.clone()
                    }),
                )
            })
            .collect()
    };
    let response_headers: Map<String, Value> = e
        .response_headers
        .iter()
        .map(|(k, v)| {
            (
                k.clone(),
                Value::String(if is_secret_header(k) {
                    "*****".into()
                } else {
                    v.clone()
                }),
            )
        })
        .collect();
    let messages: Vec<Value> = e
        .matched
        .iter()
        .filter(|m| m.logged)
        .map(|m| {
            json!({
                "message": m.msg,
                "details": {
                    "match": format!("Matched {}", m.matched_var_name),
                    "reference": "",
                    "ruleId": m.id.to_string(),
                    "file": "",
                    "lineNumber": "",
                    "data": if is_masked_variable(&m.matched_var_name) { "*****" } else { m.data.as_str() },
                    "severity": m.severity.map(|s| s.to_string()).unwrap_or_default(),
                    "ver": "",
                    "rev": "",
                    "tags": m.tags,
                    "maturity": "0",
                    "accuracy": "0"
                }
            })
        })
        .collect();
    let record = json!({
        "transaction": {
            "client_ip": e.client_ip,
            "time_stamp": e.time,
            "server_id": "rampart",
            "client_port": e.client_port,
            "host_ip": e.host_ip,
            "host_port": e.host_port,
            "unique_id": e.unique_id,
            "request": {
                "method": e.method,
                "http_version": e.http_version.trim_start_matches("HTTP/").parse::<f64>().unwrap_or(1.1),
                "uri": e.uri,
                "headers": headers(&e.request_headers),
                "body": e.request_body,
            },
            "response": {
                "http_code": e.response_status,
                "headers": response_headers,
            },
            "producer": {
                "modsecurity": "rampart-waf",
                "connector": concat!("rampart ", env!("CARGO_PKG_VERSION")),
                "secrules_engine": if e.engine_mode == WafMode::On { "Enabled" } else { "DetectionOnly" },
                "components": [],
            },
            "messages": messages,
            "intervened": e.intervened,
        }
    });
    record.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Credentials and sessions never reach the audit log: not as header
    /// values, and not as what a rule matched in them.
    #[test]
    fn secret_headers_and_what_matched_in_them_are_masked() {
        let matched = vec![
            MatchedRule {
                id: 942100,
                phase: 2,
                msg: "SQLi".into(),
                data: "Matched Data: s3cr3t-session found within REQUEST_COOKIES:sid".into(),
                severity: Some(2),
                tags: vec![],
                matched_var_name: "REQUEST_COOKIES:sid".into(),
                logged: true,
            },
            MatchedRule {
                id: 942101,
                phase: 1,
                msg: "x".into(),
                data: "Basic dXNlcjpwYXNz".into(),
                severity: Some(2),
                tags: vec![],
                matched_var_name: "REQUEST_HEADERS:Authorization".into(),
                logged: true,
            },
            MatchedRule {
                id: 942102,
                phase: 2,
                msg: "x".into(),
                data: "visible-arg".into(),
                severity: Some(2),
                tags: vec![],
                matched_var_name: "ARGS:q".into(),
                logged: true,
            },
        ];
        let entry = AuditEntry {
            time: "t".into(),
            unique_id: "id",
            client_ip: "192.0.2.1".into(),
            client_port: 1,
            host_ip: "192.0.2.2".into(),
            host_port: 80,
            method: "GET",
            uri: "/",
            http_version: "HTTP/1.1",
            request_headers: vec![
                ("Cookie", "sid=s3cr3t-session".into()),
                ("Authorization", "Basic dXNlcjpwYXNz".into()),
                ("Proxy-Authorization", "Basic cHJveHk=".into()),
                ("User-Agent", "visible-agent".into()),
            ],
            request_body: String::new(),
            response_status: 200,
            response_headers: vec![("Set-Cookie".into(), "sid=n3w-s3ss10n".into())],
            engine_mode: WafMode::On,
            matched: &matched,
            intervened: true,
        };
        let line = audit_line(&entry);
        for secret in ["s3cr3t-session", "dXNlcjpwYXNz", "cHJveHk=", "n3w-s3ss10n"] {
            assert!(!line.contains(secret), "{secret} in {line}");
        }
        assert!(
            line.contains("visible-agent") && line.contains("visible-arg"),
            "{line}"
        );
    }

    #[test]
    fn sensitive_form_and_json_fields_are_masked() {
        let form = masked_body(
            "application/x-www-form-urlencoded",
            b"user=ann&password=hunter2&card_number=4111111111111111&q=hello",
        );
        assert_eq!(form, "user=ann&password=*****&card_number=*****&q=hello");
        let json = masked_body(
            "application/json",
            br#"{"user":"ann","auth":{"Password":"x","token":["a","b"]},"n":1}"#,
        );
        assert!(
            !json.contains("hunter") && !json.contains("\"x\"") && !json.contains("\"a\""),
            "{json}"
        );
        assert!(json.contains("\"user\":\"ann\""), "{json}");
        assert_eq!(
            masked_body(
                "application/x-www-form-urlencoded",
                b"pass%77ord=x&%e2%82=1"
            ),
            "pass%77ord=*****&%e2%82=1"
        );
        assert_eq!(
            masked_body("application/octet-stream", b"\x00\x01"),
            "[2 bytes of application/octet-stream not logged]"
        );
    }

    #[test]
    fn crs_directories_are_recognised() {
        let root = crate::test_support::crs_root();
        let v4 = crs_layout(&root.join("v4.28.0")).unwrap();
        assert!(v4.setup.ends_with("crs-setup.conf.example"));
        assert!(crs_layout(Path::new("/nonexistent"))
            .unwrap_err()
            .contains("not a CRS directory"));
    }

    #[test]
    fn broken_extra_rules_are_reported_with_file_and_line() {
        let dir = std::env::temp_dir().join(format!("rampart-waf-broken-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("extra.conf");
        std::fs::write(
            &file,
            "SecRule ARGS \"@rx a\" \"id:1,phase:2,deny\"\nSecRuel ARGS \"@rx b\" \"id:2\"\n",
        )
        .unwrap();
        let settings = WafSettings {
            mode: WafMode::On,
            rules_after: vec![file.clone()],
            ..WafSettings::default()
        };
        let errors = build_engine("www", &settings).unwrap_err();
        assert!(
            errors
                .iter()
                .any(|e| e.file.ends_with("extra.conf") && e.line == 2),
            "{errors:?}"
        );
    }
}
