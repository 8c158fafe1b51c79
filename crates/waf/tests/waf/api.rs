//! Behaviour of the public API on small rule sets: verdicts, chains, flow
//! control, ctl, macros, body processors, the error log and load errors.

use rampart_waf::{
    ConfigInput, Engine, EngineMode, ErrorKind, MemSource, RuleLoadOptions, Transaction, TxMeta,
    Verdict,
};

fn engine(rules: &str) -> Engine {
    Engine::from_str_with_name(rules, "test.conf").unwrap_or_else(|e| panic!("{e}"))
}

fn meta() -> TxMeta {
    TxMeta {
        remote_addr: "192.0.2.1".into(),
        unique_id: "abc123".into(),
        ..TxMeta::default()
    }
}

/// Sends a request through phases 1 and 2.
fn request(
    e: &Engine,
    method: &str,
    uri: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (Verdict, Transaction) {
    let mut tx = e.transaction(meta());
    let v = tx.process_request_headers(
        method,
        uri,
        "HTTP/1.1",
        headers.iter().map(|(k, v)| (*k, v.as_bytes())),
    );
    if v != Verdict::Continue {
        return (v, tx);
    }
    tx.append_request_body(body);
    let v = tx.process_request_body();
    (v, tx)
}

fn ids(tx: &Transaction) -> Vec<u32> {
    tx.matched_rules()
        .iter()
        .filter(|m| m.logged)
        .map(|m| m.id)
        .collect()
}

#[test]
fn deny_in_phase_1_with_status() {
    let e = engine("SecRuleEngine On\nSecRule ARGS:q \"@contains evil\" \"id:1,phase:1,deny,status:418,msg:'evil'\"");
    let (v, _) = request(&e, "GET", "/?q=so+evil", &[], b"");
    assert_eq!(
        v,
        Verdict::Deny {
            status: 418,
            rule_id: 1
        }
    );
    let (v, _) = request(&e, "GET", "/?q=good", &[], b"");
    assert_eq!(v, Verdict::Continue);
}

#[test]
fn detection_only_logs_but_never_disrupts() {
    let e = engine("SecRuleEngine DetectionOnly\nSecRule ARGS \"@rx evil\" \"id:2,phase:1,deny,log,msg:'evil'\"");
    let (v, tx) = request(&e, "GET", "/?a=evil", &[], b"");
    assert_eq!(v, Verdict::Continue);
    assert_eq!(ids(&tx), [2]);
}

#[test]
fn error_log_line_has_modsecurity_fields() {
    let e = engine(
        "SecRuleEngine On\nSecRule ARGS \"@rx (ev)il\" \"id:3,phase:2,pass,capture,log,msg:'Found %{TX.1}',logdata:'Matched %{TX.0} in %{MATCHED_VAR_NAME}',severity:CRITICAL,tag:'attack-x',tag:'paranoia-level/1'\"",
    );
    let (_, tx) = request(&e, "GET", "/?name=devil", &[], b"");
    let lines = tx.error_log_lines();
    assert_eq!(lines.len(), 1, "{lines:?}");
    let l = &lines[0];
    for part in [
        r#"[id "3"]"#,
        r#"[msg "Found ev"]"#,
        r#"[data "Matched evil in ARGS:name"]"#,
        r#"[severity "CRITICAL"]"#,
        r#"[tag "attack-x"]"#,
        r#"[tag "paranoia-level/1"]"#,
        r#"[unique_id "abc123"]"#,
    ] {
        assert!(l.contains(part), "{part} missing in {l}");
    }
}

#[test]
fn chain_and_setvar_arithmetic() {
    let e = engine(
        r#"SecRuleEngine On
SecAction "id:10,phase:1,nolog,pass,setvar:tx.score=0,setvar:tx.limit=5"
SecRule REQUEST_METHOD "@streq POST" "id:11,phase:1,pass,nolog,chain"
    SecRule ARGS:x "@eq 1" "setvar:tx.score=+3"
SecRule ARGS:y "@rx ." "id:12,phase:1,pass,nolog,setvar:tx.score=+4,setvar:tx.score=-2"
SecRule TX:score "@ge %{tx.limit}" "id:13,phase:1,deny,status:403,msg:'score %{tx.score}'"
"#,
    );
    let (v, _) = request(&e, "POST", "/?x=1&y=a", &[], b"");
    assert_eq!(
        v,
        Verdict::Deny {
            status: 403,
            rule_id: 13
        }
    );
    let (v, _) = request(&e, "GET", "/?x=1&y=a", &[], b"");
    assert_eq!(v, Verdict::Continue);
}

#[test]
fn skip_after_and_markers() {
    let e = engine(
        r#"SecRuleEngine On
SecRule ARGS:skip "@eq 1" "id:20,phase:1,pass,nolog,skipAfter:END"
SecRule ARGS "@rx ." "id:21,phase:1,deny,status:403"
SecMarker END
SecRule ARGS:after "@rx ." "id:22,phase:1,deny,status:401"
"#,
    );
    assert_eq!(
        request(&e, "GET", "/?skip=1", &[], b"").0,
        Verdict::Continue
    );
    assert_eq!(
        request(&e, "GET", "/?skip=1&after=x", &[], b"").0,
        Verdict::Deny {
            status: 401,
            rule_id: 22
        }
    );
    assert_eq!(
        request(&e, "GET", "/?a=x", &[], b"").0,
        Verdict::Deny {
            status: 403,
            rule_id: 21
        }
    );
}

#[test]
fn ctl_removes_rules_and_targets_at_runtime() {
    let e = engine(
        r#"SecRuleEngine On
SecRule REQUEST_URI "@beginsWith /api" "id:30,phase:1,pass,nolog,ctl:ruleRemoveById=31-32,ctl:ruleRemoveTargetById=33;ARGS:password"
SecRule ARGS "@contains x" "id:31,phase:1,deny"
SecRule ARGS "@contains x" "id:32,phase:1,deny"
SecRule ARGS "@contains secret" "id:33,phase:1,deny,status:403"
"#,
    );
    assert_eq!(
        request(&e, "GET", "/api?password=secret&a=x", &[], b"").0,
        Verdict::Continue
    );
    assert_eq!(
        request(&e, "GET", "/api?other=secret", &[], b"").0,
        Verdict::Deny {
            status: 403,
            rule_id: 33
        }
    );
    assert_eq!(
        request(&e, "GET", "/web?a=x", &[], b"").0,
        Verdict::Deny {
            status: 403,
            rule_id: 31
        }
    );
}

#[test]
fn exclusions_counts_and_regex_keys() {
    let e = engine(
        r#"SecRuleEngine On
SecRule &ARGS "@gt 2" "id:40,phase:1,deny,status:413"
SecRule ARGS:/^user_/|!ARGS:user_ok "@contains bad" "id:41,phase:1,deny,status:403"
"#,
    );
    assert_eq!(
        request(&e, "GET", "/?a=1&b=2&c=3", &[], b"").0,
        Verdict::Deny {
            status: 413,
            rule_id: 40
        }
    );
    assert_eq!(
        request(&e, "GET", "/?user_ok=bad", &[], b"").0,
        Verdict::Continue
    );
    assert_eq!(
        request(&e, "GET", "/?USER_x=bad", &[], b"").0,
        Verdict::Deny {
            status: 403,
            rule_id: 41
        }
    );
}

#[test]
fn body_processors_fill_args() {
    let e = engine(
        r#"SecRuleEngine On
SecRequestBodyAccess On
SecRule REQUEST_HEADERS:Content-Type "^application/json" "id:50,phase:1,pass,nolog,ctl:requestBodyProcessor=JSON"
SecRule REQUEST_HEADERS:Content-Type "^application/xml" "id:51,phase:1,pass,nolog,ctl:requestBodyProcessor=XML"
SecRule ARGS:json.user.name "@streq root" "id:52,phase:2,deny,status:403"
SecRule ARGS_POST:field "@streq v" "id:53,phase:2,deny,status:401"
SecRule FILES "@endsWith .php" "id:54,phase:2,deny,status:415"
SecRule XML:/* "@contains attack" "id:55,phase:2,deny,status:402"
SecRule XML://@* "@streq evil" "id:56,phase:2,deny,status:409"
SecRule REQBODY_ERROR "!@eq 0" "id:57,phase:2,deny,status:400"
"#,
    );
    let json = [("Content-Type", "application/json")];
    assert_eq!(
        request(&e, "POST", "/", &json, br#"{"user":{"name":"root"}}"#).0,
        Verdict::Deny {
            status: 403,
            rule_id: 52
        }
    );
    assert_eq!(
        request(&e, "POST", "/", &json, br#"{"user":"#).0,
        Verdict::Deny {
            status: 400,
            rule_id: 57
        }
    );
    let form = [("Content-Type", "application/x-www-form-urlencoded")];
    assert_eq!(
        request(&e, "POST", "/", &form, b"field=v").0,
        Verdict::Deny {
            status: 401,
            rule_id: 53
        }
    );
    let mp = [("Content-Type", "multipart/form-data; boundary=B")];
    let body = b"--B\r\nContent-Disposition: form-data; name=\"up\"; filename=\"shell.php\"\r\n\r\n<?php\r\n--B--\r\n";
    assert_eq!(
        request(&e, "POST", "/", &mp, body).0,
        Verdict::Deny {
            status: 415,
            rule_id: 54
        }
    );
    let xml = [("Content-Type", "application/xml")];
    assert_eq!(
        request(&e, "POST", "/", &xml, b"<a><b>an attack</b></a>").0,
        Verdict::Deny {
            status: 402,
            rule_id: 55
        }
    );
    assert_eq!(
        request(&e, "POST", "/", &xml, b"<a k=\"evil\"/>").0,
        Verdict::Deny {
            status: 409,
            rule_id: 56
        }
    );
    // A body of another type is never parsed into ARGS.
    let text = [("Content-Type", "text/plain")];
    assert_eq!(
        request(&e, "POST", "/", &text, b"field=v").0,
        Verdict::Continue
    );
}

#[test]
fn response_phases() {
    let e = engine(
        r#"SecRuleEngine On
SecResponseBodyAccess On
SecResponseBodyMimeType text/html
SecRule RESPONSE_STATUS "@streq 500" "id:60,phase:3,deny,status:502"
SecRule RESPONSE_BODY "@contains ORA-00933" "id:61,phase:4,deny,status:503"
"#,
    );
    let mut tx = e.transaction(meta());
    assert_eq!(
        tx.process_request_headers("GET", "/", "HTTP/1.1", [("Host", "x")]),
        Verdict::Continue
    );
    assert_eq!(tx.process_request_body(), Verdict::Continue);
    assert_eq!(
        tx.process_response_headers(
            200,
            "HTTP/1.1",
            [("Content-Type", "text/html; charset=utf-8")]
        ),
        Verdict::Continue
    );
    tx.append_response_body(b"error: ORA-00933: SQL command not properly ended");
    assert_eq!(
        tx.process_response_body(),
        Verdict::Deny {
            status: 503,
            rule_id: 61
        }
    );
    let mut tx = e.transaction(meta());
    tx.process_request_headers("GET", "/", "HTTP/1.1", [("Host", "x")]);
    tx.process_request_body();
    assert_eq!(
        tx.process_response_headers(500, "HTTP/1.1", [("Content-Type", "text/html")]),
        Verdict::Deny {
            status: 502,
            rule_id: 60
        }
    );
}

#[test]
fn load_errors_are_all_reported_with_positions() {
    let text = "SecRuleEngine On\nSecBogus x\nSecRule NOPE \"@rx a\" \"id:1\"\nSecRule ARGS \"@nope a\" \"id:2\"\nSecRule ARGS \"@rx a\" \"id:3,frobnicate\"\nSecRule ARGS \"@rx (\" \"id:4\"\nSecRule ARGS \"@rx a\" \"id:5,t:nope\"\n";
    let err = Engine::from_str_with_name(text, "bad.conf").unwrap_err();
    let got: Vec<(String, usize)> = err
        .errors
        .iter()
        .map(|e| (e.file.clone(), e.line))
        .collect();
    assert_eq!(
        got,
        [
            ("bad.conf".to_string(), 2),
            ("bad.conf".into(), 3),
            ("bad.conf".into(), 4),
            ("bad.conf".into(), 5),
            ("bad.conf".into(), 7),
            ("bad.conf".into(), 6)
        ],
        "{err}"
    );
    assert!(matches!(err.errors[0].kind, ErrorKind::UnknownDirective(_)));
    assert!(matches!(err.errors[1].kind, ErrorKind::UnknownVariable(_)));
    assert!(matches!(err.errors[2].kind, ErrorKind::UnknownOperator(_)));
    assert!(matches!(err.errors[3].kind, ErrorKind::UnknownAction(_)));
    assert!(err.to_string().contains("bad.conf:2:"));
}

#[test]
fn include_globs_through_a_file_source() {
    let mut src = MemSource::new();
    src.insert(
        "/rules/main.conf",
        "SecRuleEngine On\nInclude /rules/conf.d/*.conf\n",
    );
    src.insert(
        "/rules/conf.d/b.conf",
        "SecRule ARGS \"@pmFromFile words.data\" \"id:2,phase:1,deny,status:402\"\n",
    );
    src.insert(
        "/rules/conf.d/a.conf",
        "SecRule ARGS:first \"@rx .\" \"id:1,phase:1,deny,status:401\"\n",
    );
    src.insert("/rules/conf.d/words.data", "# words\nbadword\n");
    let e = Engine::load(
        &src,
        &[ConfigInput::File("/rules/main.conf".into())],
        &RuleLoadOptions::default(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(e.rule_count(), 2);
    assert_eq!(
        request(&e, "GET", "/?first=1&x=badword", &[], b"").0,
        Verdict::Deny {
            status: 401,
            rule_id: 1
        }
    );
    assert_eq!(
        request(&e, "GET", "/?x=a+BADWORD", &[], b"").0,
        Verdict::Deny {
            status: 402,
            rule_id: 2
        }
    );
}

#[test]
fn prelude_sets_mode_before_rules() {
    let opts = RuleLoadOptions {
        prelude: Some("SecRuleEngine DetectionOnly".into()),
        epilogue: None,
    };
    let e = Engine::load(
        &MemSource::new(),
        &[ConfigInput::Text {
            name: "r".into(),
            text: "SecRule ARGS \"@rx x\" \"id:1,phase:1,deny\"".into(),
            base_dir: ".".into(),
        }],
        &opts,
    )
    .unwrap();
    assert_eq!(request(&e, "GET", "/?a=x", &[], b"").0, Verdict::Continue);
    let _ = EngineMode::On;
}

/// No input makes the engine panic: random bytes through every entry point.
#[test]
fn hostile_input_never_panics() {
    let e = engine(
        r#"SecRuleEngine On
SecRequestBodyAccess On
SecResponseBodyAccess On
SecRule REQUEST_HEADERS:Content-Type "json" "id:1,phase:1,pass,nolog,ctl:requestBodyProcessor=JSON"
SecRule REQUEST_HEADERS:Content-Type "xml" "id:2,phase:1,pass,nolog,ctl:requestBodyProcessor=XML"
SecRule ARGS|ARGS_NAMES|REQUEST_HEADERS|REQUEST_COOKIES|XML:/*|FILES|MULTIPART_PART_HEADERS "@rx \x{00}" "id:3,phase:2,pass,t:urlDecodeUni,t:htmlEntityDecode,t:jsDecode,t:cssDecode,t:cmdLine,t:normalisePath,t:base64Decode,t:utf8toUnicode"
SecRule ARGS "@detectSQLi" "id:4,phase:2,pass"
SecRule ARGS "@detectXSS" "id:5,phase:2,pass"
SecRule RESPONSE_BODY "@pm a b" "id:6,phase:4,pass"
"#,
    );
    let mut seed: u64 = 0x9e3779b97f4a7c15;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let alphabet: &[u8] = b"%u0&;=<>\"'\\/-*#{}[]:,aZ09\r\n \x00\xff\xc3\xa9+?";
    for round in 0..400 {
        let len = (next() % 300) as usize;
        let bytes: Vec<u8> = (0..len)
            .map(|_| alphabet[(next() % alphabet.len() as u64) as usize])
            .collect();
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let ct = [
            "application/json",
            "application/xml",
            "multipart/form-data; boundary=\"a\"",
            "application/x-www-form-urlencoded",
            "text/plain",
        ][round % 5];
        let mut tx = e.transaction(meta());
        tx.process_request_headers(
            "POST",
            &format!("/{text}?{text}"),
            "HTTP/1.1",
            [
                ("Content-Type", ct.as_bytes()),
                ("Cookie", &bytes[..]),
                (text.as_str(), &bytes[..]),
            ],
        );
        tx.append_request_body(&bytes);
        tx.process_request_body();
        tx.process_response_headers(200, "HTTP/1.1", [("Content-Type", "text/html")]);
        tx.append_response_body(&bytes);
        tx.process_response_body();
        tx.process_logging();
    }
}

#[test]
fn body_limits_reject_in_blocking_mode() {
    let e = engine("SecRuleEngine On\nSecRequestBodyAccess On\nSecRequestBodyLimit 100\nSecRequestBodyNoFilesLimit 10\nSecRequestBodyLimitAction Reject\n");
    let form = [("Content-Type", "application/x-www-form-urlencoded")];
    assert_eq!(
        request(&e, "POST", "/", &form, b"a=0123456789").0,
        Verdict::Deny {
            status: 413,
            rule_id: 0
        }
    );
    assert_eq!(request(&e, "POST", "/", &form, b"a=1").0, Verdict::Continue);
    let mp = [("Content-Type", "multipart/form-data; boundary=B")];
    let body = b"--B\r\nContent-Disposition: form-data; name=\"f\"; filename=\"a\"\r\n\r\n0123456789\r\n--B--\r\n";
    assert_eq!(request(&e, "POST", "/", &mp, body).0, Verdict::Continue);
}

#[test]
fn one_log_line_per_rule_but_actions_per_match() {
    let e = engine(
        r#"SecRuleEngine On
SecRule ARGS "@contains x" "id:70,phase:1,pass,log,msg:'x in %{MATCHED_VAR_NAME}',setvar:tx.hits=+1"
"#,
    );
    let (_, tx) = request(&e, "GET", "/?a=x&b=x&c=y", &[], b"");
    assert_eq!(tx.error_log_lines().len(), 1, "{:?}", tx.error_log_lines());
    assert_eq!(tx.matched_rules().len(), 1);
    assert_eq!(tx.matched_rules()[0].msg, "x in ARGS:b");
    assert_eq!(tx.tx_var("hits"), Some(&b"2"[..]));
}

/// The gateway shares one engine between worker threads and may move a
/// transaction between them across await points.
#[test]
fn engine_is_shareable_and_transactions_movable() {
    fn shared<T: Send + Sync>() {}
    fn movable<T: Send>() {}
    shared::<Engine>();
    movable::<Transaction>();
}

/// The bodies are scanned with automata of only their own readers'
/// literals (`Inner::own_prefilters`); the bits
/// of such a scan must never answer for a rule
/// that reads something else, even when a transformed argument and the
/// transformed body are the same bytes.
#[test]
fn body_automata_answer_only_for_their_own_readers() {
    let e = engine(
        r#"SecRuleEngine DetectionOnly
SecRequestBodyAccess On
SecResponseBodyAccess On
SecResponseBodyMimeType text/html
SecRule REQUEST_BODY "@rx bodyword\d" "id:71,phase:2,pass,log,t:none,t:urlDecodeUni,t:urlDecodeUni,t:lowercase"
SecRule ARGS_NAMES "@rx argword\d" "id:72,phase:2,pass,log,t:none,t:urlDecodeUni,t:lowercase"
SecRule ARGS_NAMES|REQUEST_BODY "@pm sharedword" "id:73,phase:2,pass,log,t:none,t:lowercase"
SecRule RESPONSE_BODY "@rx leakword\d" "id:74,phase:4,pass,log,t:none,t:lowercase"
SecRule ARGS_NAMES "@rx leakword\d" "id:75,phase:2,pass,log,t:none,t:lowercase"
"#,
    );
    let form = [("Content-Type", "application/x-www-form-urlencoded")];
    // The body is one argument name: after the pipelines the body and the
    // name are the same bytes (the body decoded twice, the name, which the
    // form parser decoded once, decoded again), and each rule must still
    // see its own.
    for (body, want) in [
        (&b"ARGWORD%2531"[..], vec![72]),
        (b"BODYWORD%2531", vec![71]),
        (b"ARGWORD1", vec![72]),
        (b"BODYWORD1", vec![71]),
        (b"SHAREDWORD", vec![73]),
        (b"LEAKWORD1", vec![75]),
        (b"plain", vec![]),
    ] {
        let (v, mut tx) = request(&e, "POST", "/", &form, body);
        assert_eq!(v, Verdict::Continue);
        tx.process_response_headers(200, "HTTP/1.1", [("Content-Type", "text/html")]);
        tx.append_response_body(b"<p>LEAKWORD7 and ARGWORD2 and BODYWORD3</p>");
        tx.process_response_body();
        let mut got = ids(&tx);
        got.dedup();
        got.sort_unstable();
        let mut want = want.clone();
        want.push(74);
        want.sort_unstable();
        assert_eq!(got, want, "body {:?}", String::from_utf8_lossy(body));
    }
}

/// A TX comparison with a literal operand takes a fast path; a transformed
/// one (`t:lowercase` leaves these values alone) takes the general one. Every
/// shape must give the same matches and the same MATCHED_VAR_NAME and
/// MATCHED_VAR to its own actions, including under a removed target.
#[test]
fn tx_comparisons_match_the_general_path() {
    let shapes = [
        "TX:LEVEL \"@lt 3\"",
        "TX:LEVEL \"@lt 2\"",
        "TX:LEVEL \"@eq 2\"",
        "TX:LEVEL \"!@eq 2\"",
        "TX:LEVEL \"@ge 2\"",
        "TX:LEVEL \"@gt 2\"",
        "TX:LEVEL \"@le 1\"",
        "TX:LEVEL \"@eq 0\"",
        "TX:words \"@eq 0\"",
        "TX:words \"@gt -1\"",
        "TX:missing \"@eq 0\"",
        "TX:missing \"!@eq 5\"",
        "&TX:LEVEL \"@eq 0\"",
        "&TX:LEVEL \"@eq 1\"",
        "&TX:missing \"@eq 0\"",
        "&TX:missing \"!@eq 0\"",
        "TX:LEVEL \"@lt \"",
    ];
    for shape in shapes {
        for removed in ["", "ctl:ruleRemoveTargetById=10;TX:level,"] {
            let outcome = |transform: &str| {
                let rules = format!(
                    "SecRuleEngine On\n\
                     SecAction \"id:1,phase:1,pass,nolog,{removed}setvar:tx.level=2,setvar:'tx.words=  7 apples'\"\n\
                     SecRule {shape} \"id:10,phase:1,pass,log,{transform}setvar:tx.hits=+1,setvar:'tx.name=%{{MATCHED_VAR_NAME}}',setvar:'tx.value=%{{MATCHED_VAR}}'\"\n"
                );
                let (_, tx) = request(&engine(&rules), "GET", "/", &[], b"");
                let var = |k: &str| {
                    tx.tx_var(k)
                        .map(|v| String::from_utf8_lossy(v).into_owned())
                };
                (ids(&tx), var("hits"), var("name"), var("value"))
            };
            let fast = outcome("");
            assert_eq!(fast, outcome("t:lowercase,"), "{shape} {removed}");
        }
    }
    let matched = |shape: &str| {
        let rules = format!("SecRuleEngine On\nSecAction \"id:1,phase:1,pass,nolog,setvar:tx.level=2\"\nSecRule {shape} \"id:10,phase:1,pass,log\"");
        !ids(&request(&engine(&rules), "GET", "/", &[], b"").1).is_empty()
    };
    assert!(matched("TX:LEVEL \"@lt 3\"") && !matched("TX:LEVEL \"@lt 2\""));
    assert!(matched("&TX:missing \"@eq 0\"") && !matched("&TX:LEVEL \"@eq 0\""));
}

/// The injection the argument-limit tests hide behind dummy arguments.
const SQLI: &str = "x' UNION SELECT name, sql FROM sqlite_master--";

/// Rules for the argument-limit tests: an SQLi rule on every argument, and a
/// rule that logs REQBODY_ERROR.
fn limits_engine(mode: &str, extra: &str) -> Engine {
    engine(&format!(
        r#"SecRuleEngine {mode}
SecRequestBodyAccess On
{extra}
SecRule REQUEST_HEADERS:Content-Type "^application/json" "id:50,phase:1,pass,nolog,ctl:requestBodyProcessor=JSON"
SecRule ARGS "@rx (?i)union\s+select" "id:942100,phase:2,deny,status:403,log,msg:'SQL injection'"
SecRule REQBODY_ERROR "@eq 1" "id:57,phase:2,pass,log,msg:'body error %{{REQBODY_ERROR_MSG}}'"
"#
    ))
}

/// Form-encodes a value.
fn form(v: &str) -> String {
    v.bytes()
        .map(|c| match c {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' => (c as char).to_string(),
            b' ' => "+".into(),
            _ => format!("%{c:02X}"),
        })
        .collect()
}

/// A request whose last argument is the injection.
struct Crowded {
    what: &'static str,
    uri: String,
    content_type: &'static str,
    body: Vec<u8>,
}

impl Crowded {
    fn send(&self, e: &Engine) -> (Verdict, Transaction) {
        let method = if self.body.is_empty() { "GET" } else { "POST" };
        let mut headers = vec![("Host", "example.com")];
        if !self.content_type.is_empty() {
            headers.push(("Content-Type", self.content_type));
        }
        request(e, method, &self.uri, &headers, &self.body)
    }
}

/// `n` arguments, the last of them the injection, in each place arguments
/// are parsed from; and the injection under a JSON name of `json_name`
/// bytes, one long key or many nested ones (the name cap is 1024).
fn crowded(n: usize, json_name: usize) -> Vec<Crowded> {
    let pairs: Vec<String> = (0..n - 1)
        .map(|i| format!("a{i}=1"))
        .chain([format!("q={}", form(SQLI))])
        .collect();
    let query = pairs.join("&");
    let mut multipart = String::new();
    for i in 0..n - 1 {
        multipart.push_str(&format!(
            "--B\r\nContent-Disposition: form-data; name=\"a{i}\"\r\n\r\n1\r\n"
        ));
    }
    multipart.push_str(&format!(
        "--B\r\nContent-Disposition: form-data; name=\"q\"\r\n\r\n{SQLI}\r\n--B--\r\n"
    ));
    let items: Vec<String> = (0..n - 1)
        .map(|_| "\"1\"".to_string())
        .chain([format!("\"{SQLI}\"")])
        .collect();
    let keys: Vec<String> = (0..n - 1)
        .map(|i| format!("\"k{i}\":1"))
        .chain([format!("\"q\":\"{SQLI}\"")])
        .collect();
    // `json.` and one key.
    let long_key = "k".repeat(json_name - "json.".len());
    // `json`, levels of `.abcdefgh` and a last key.
    let levels = (json_name - 4 - 2) / 9;
    let last = "z".repeat(json_name - 4 - 9 * levels - 1);
    let deep = format!(
        "{{\"a\":1,\"abcdefgh\":{}{{\"{last}\":\"{SQLI}\"}}{}",
        "{\"abcdefgh\":".repeat(levels - 1),
        "}".repeat(levels)
    );
    let json = "application/json";
    let c = |what, uri: &str, content_type, body: String| Crowded {
        what,
        uri: uri.to_string(),
        content_type,
        body: body.into_bytes(),
    };
    vec![
        c(
            "query string",
            &format!("/search?{query}"),
            "",
            String::new(),
        ),
        c(
            "url-encoded body",
            "/",
            "application/x-www-form-urlencoded",
            query.clone(),
        ),
        c(
            "multipart body",
            "/",
            "multipart/form-data; boundary=B",
            multipart,
        ),
        c(
            "JSON array",
            "/",
            json,
            format!("{{\"items\":[{}]}}", items.join(",")),
        ),
        c("JSON object", "/", json, format!("{{{}}}", keys.join(","))),
        c(
            "long JSON name",
            "/",
            json,
            format!("{{\"a\":1,\"{long_key}\":\"{SQLI}\"}}"),
        ),
        c("deep JSON name", "/", json, deep),
    ]
}

#[test]
fn arguments_past_the_limit_are_refused_in_blocking_mode() {
    let e = limits_engine("On", "");
    for n in [1001, 1200] {
        for case in crowded(n, 1025) {
            let (v, tx) = case.send(&e);
            assert_eq!(
                v,
                Verdict::Deny {
                    status: 400,
                    rule_id: rampart_waf::ARGUMENTS_LIMIT_RULE_ID
                },
                "{} of {n}",
                case.what
            );
            let lines = tx.error_log_lines();
            let line = lines
                .iter()
                .find(|l| l.contains(r#"[id "200007"]"#))
                .unwrap_or_else(|| panic!("{}: no log line in {lines:?}", case.what));
            assert!(
                line.contains("Access denied with code 400")
                    && line.contains("refused rather than inspected in part")
                    && line.contains(r#"[unique_id "abc123"]"#),
                "{line}"
            );
            let over_count = line.contains("more than 1000");
            let long_name = line.contains("argument name longer than 1024 bytes");
            assert!(over_count || long_name, "{line}");
            assert_eq!(ids(&tx).last(), Some(&200007), "{}", case.what);
        }
    }
    // The query string is refused in phase 1, before any body is awaited.
    let case = &crowded(1001, 1025)[0];
    let mut tx = e.transaction(meta());
    let v = tx.process_request_headers("GET", &case.uri, "HTTP/1.1", [("Host", "a")]);
    assert_eq!(
        v,
        Verdict::Deny {
            status: 400,
            rule_id: 200007
        }
    );
    assert_eq!(tx.process_request_body(), v);
    assert!(tx.error_log_lines()[0].contains("Query string has more than 1000 arguments"));
}

#[test]
fn arguments_past_the_limit_are_flagged_in_detection_only() {
    let e = limits_engine("DetectionOnly", "");
    for case in crowded(1001, 1025) {
        let (v, tx) = case.send(&e);
        assert_eq!(v, Verdict::Continue, "{}", case.what);
        let got = ids(&tx);
        // The flag is what tells: the injection itself was left out.
        assert!(
            got.contains(&200007) && got.contains(&57),
            "{}: {got:?}",
            case.what
        );
        assert!(!got.contains(&942100), "{}: {got:?}", case.what);
        let error = tx.request_body_error().unwrap_or_default();
        assert!(
            error.contains("more than 1000") || error.contains("longer than 1024 bytes"),
            "{}: {error}",
            case.what
        );
        let line = tx
            .error_log_lines()
            .iter()
            .find(|l| l.contains(r#"[id "200007"]"#))
            .unwrap_or_else(|| panic!("{}: no log line", case.what));
        assert!(
            line.starts_with("ModSecurity: Warning. ") && line.contains("inspected in part only"),
            "{line}"
        );
    }
}

#[test]
fn arguments_at_the_limit_are_inspected_whole() {
    // Exactly 1000 arguments, and JSON names of exactly 1024 bytes: the
    // injection is seen and denied by the SQLi rule, not refused unseen.
    let e = limits_engine("On", "");
    for case in crowded(1000, 1024) {
        let (v, tx) = case.send(&e);
        assert_eq!(
            v,
            Verdict::Deny {
                status: 403,
                rule_id: 942100
            },
            "{}",
            case.what
        );
        assert_eq!(tx.request_body_error(), None, "{}", case.what);
    }
    // With a higher limit the same crowded requests are inspected whole: the
    // injection was the last argument, and the refusal above is what stood
    // between it and being missed.
    let e = limits_engine("On", "SecArgumentsLimit 1200");
    for case in crowded(1200, 1024) {
        assert_eq!(
            case.send(&e).0,
            Verdict::Deny {
                status: 403,
                rule_id: 942100
            },
            "{}",
            case.what
        );
    }
}

#[test]
fn argument_limit_holds_under_process_partial() {
    // A body over SecRequestBodyLimit is inspected in part under
    // ProcessPartial (its documented behaviour), but arguments left out of
    // what was read are still refused.
    let e = limits_engine(
        "On",
        "SecRequestBodyLimit 12000\nSecRequestBodyNoFilesLimit 12000\nSecRequestBodyLimitAction ProcessPartial",
    );
    let form = [("Content-Type", "application/x-www-form-urlencoded")];
    let body: Vec<String> = (0..3000).map(|i| format!("a{i}=1")).collect();
    let body = body.join("&");
    assert!(body.len() > 12000);
    assert_eq!(
        request(&e, "POST", "/", &form, body.as_bytes()).0,
        Verdict::Deny {
            status: 400,
            rule_id: 200007
        }
    );
    // Under the argument limit, the partial body goes on as before.
    let body = format!("a={}", "1".repeat(20000));
    assert_eq!(
        request(&e, "POST", "/", &form, body.as_bytes()).0,
        Verdict::Continue
    );
}

#[test]
fn remove_rules_by_id_acts_like_ctl_before_phase_1() {
    let rules = r#"SecRule ARGS "@contains x" "id:31,phase:1,deny,status:403"
SecRule ARGS "@contains x" "id:32,phase:2,deny,status:401"
SecRule ARGS "@contains x" "id:45,phase:2,deny,status:402"
SecRule ARGS "@contains x" "id:46,phase:2,deny,status:405"
"#;
    let e = engine(&format!("SecRuleEngine On\n{rules}"));
    let run = |ranges: &[(u32, u32)]| {
        let mut tx = e.transaction(meta());
        tx.remove_rules_by_id(ranges);
        let v = tx.process_request_headers("GET", "/?a=x", "HTTP/1.1", [("Host", "a")]);
        if v != Verdict::Continue {
            return v;
        }
        tx.process_request_body()
    };
    let deny = |status, rule_id| Verdict::Deny { status, rule_id };
    assert_eq!(run(&[]), deny(403, 31));
    assert_eq!(run(&[(31, 31)]), deny(401, 32));
    assert_eq!(run(&[(31, 31), (30, 45)]), deny(405, 46));
    assert_eq!(run(&[(1, 100)]), Verdict::Continue);
    // A reversed range removes nothing, as in ctl.
    assert_eq!(run(&[(32, 31)]), deny(403, 31));
    // The same as the ctl it replaces.
    let ctl = engine(&format!(
        "SecRuleEngine On\nSecAction \"id:1,phase:1,pass,nolog,ctl:ruleRemoveById=31,ctl:ruleRemoveById=30-45\"\n{rules}"
    ));
    assert_eq!(request(&ctl, "GET", "/?a=x", &[], b"").0, deny(405, 46));
    // It does not lift the engine's own refusal of a crowded request.
    let e = limits_engine("On", "");
    let case = &crowded(1001, 1025)[0];
    let mut tx = e.transaction(meta());
    tx.remove_rules_by_id(&[(1, u32::MAX)]);
    let v = tx.process_request_headers("GET", &case.uri, "HTTP/1.1", [("Host", "a")]);
    assert_eq!(v, deny(400, 200007));
}
