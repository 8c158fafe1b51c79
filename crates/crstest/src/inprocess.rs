//! The CRS regression suites run in process: each case goes straight
//! through an [`Engine`] configured the way CRS's test README asks (rule
//! 900005: DetectionOnly, paranoia level 4, ...), a simulated backend like
//! CRS's test backend answers (any path answers 200; `/reflect` answers with
//! the status, headers and body given in its JSON request), and the error
//! log lines the engine wrote are checked.

use std::collections::HashSet;

use rampart_waf::{ConfigInput, Engine, FsSource, LoadErrors, RuleLoadOptions, TxMeta, Verdict};

use crate::cases::{setup_rule, Case, Input, OverrideAction, Overrides, Schema, Suite};
use crate::reflect::reflection;
use crate::report::{check, run_cases, Outcome, Report};

/// Loads a suite's CRS with the test configuration.
pub fn load_engine(
    suite: &Suite,
    detection_only: bool,
    paranoia: u8,
) -> Result<Engine, LoadErrors> {
    let inputs = vec![
        ConfigInput::Text {
            name: "<base>".into(),
            text: rampart_waf::BASE_SETTINGS.into(),
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
    Engine::load(&FsSource, &inputs, &RuleLoadOptions::default())
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
        if let Some(r) = reflection(&req.body) {
            return (r.status.unwrap_or(200) as u16, r.headers, r.body);
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

/// Runs every case of a suite in detection mode (the CRS configuration).
pub fn run_suite(engine: &Engine, suite: &Suite, cases: &[Case], overrides: &Overrides) -> Report {
    run_cases(suite, cases, overrides, |input, name, expect, reasons| {
        check(expect, run_request(engine, input, name).as_ref(), reasons);
        true
    })
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
        let mut reasons = Vec::new();
        if !ok {
            let why = if attack {
                "attack not blocked"
            } else {
                "benign request blocked"
            };
            reasons.push(why.into());
        }
        report.record(case, reasons);
    }
    report
}
