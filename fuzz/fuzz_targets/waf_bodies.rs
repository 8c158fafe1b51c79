//! The WAF's request body processors (URL-encoded, multipart, JSON, XML)
//! through a whole transaction: phase 1 headers, the body appended in two
//! pieces, phase 2. Must never panic, whatever the body.
//!
//! Input: the first byte picks the processor (low two bits) and, with its
//! top bit set, takes the Content-Type from the input's first line (so the
//! multipart boundary and parameters are fuzzed too); the second byte is
//! where the body is split between the two appends; the rest is the body.

#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use rampart_waf::{Engine, TxMeta, Verdict};

/// Rules that read everything the body processors fill. They only `pass`
/// and log, so every rule runs on every input.
const RULES: &str = r#"
SecRuleEngine On
SecRequestBodyAccess On
SecRule REQUEST_HEADERS:Content-Type "^application/json" "id:1,phase:1,t:none,t:lowercase,pass,nolog,ctl:requestBodyProcessor=JSON"
SecRule REQUEST_HEADERS:Content-Type "^(?:application(?:/soap\+|/)|text/)xml" "id:2,phase:1,t:none,t:lowercase,pass,nolog,ctl:requestBodyProcessor=XML"
SecRule ARGS|ARGS_NAMES|REQUEST_BODY "@rx (?i)union\s+select" "id:10,phase:2,pass,log,t:none,t:urlDecodeUni,t:htmlEntityDecode,msg:'sqli'"
SecRule ARGS_POST "@pm evil <script" "id:11,phase:2,pass,log,t:lowercase"
SecRule XML:/* "@contains evil" "id:12,phase:2,pass,log"
SecRule XML://@* "@rx ." "id:13,phase:2,pass,nolog"
SecRule FILES|FILES_NAMES|FILES_SIZES "@rx \.php$" "id:14,phase:2,pass,log"
SecRule FILES_COMBINED_SIZE "@gt 100" "id:15,phase:2,pass,log"
SecRule MULTIPART_PART_HEADERS "@rx (?i)content-type" "id:16,phase:2,pass,nolog"
SecRule REQBODY_ERROR "!@eq 0" "id:20,phase:2,pass,log,msg:'body error: %{REQBODY_ERROR_MSG}'"
SecRule MULTIPART_STRICT_ERROR "!@eq 0" "id:21,phase:2,pass,log"
SecRule MULTIPART_UNMATCHED_BOUNDARY "@eq 1" "id:22,phase:2,pass,log"
SecRule &ARGS "@gt 500" "id:23,phase:2,pass,log"
"#;

fn engine() -> &'static Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE.get_or_init(|| {
        let engine = Engine::from_str_with_name(RULES, "waf_bodies").expect("the rules load");
        engine.warm_up().expect("the rules compile");
        engine
    })
}

const CONTENT_TYPES: [&str; 4] = [
    "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=XyZ",
    "application/json",
    "application/xml",
];

fuzz_target!(|data: &[u8]| {
    let [selector, split, rest @ ..] = data else {
        return;
    };
    let kind = (selector & 3) as usize;
    let (content_type, body) = if selector & 0x80 != 0 {
        // "multipart/form-data; " + the fuzzed line, and so on.
        let end = rest.iter().position(|&b| b == b'\n').unwrap_or(rest.len());
        let base = CONTENT_TYPES[kind].split(';').next().unwrap_or_default();
        let params = String::from_utf8_lossy(&rest[..end]);
        let body = rest.get(end + 1..).unwrap_or_default();
        (format!("{base}; {params}"), body)
    } else {
        (CONTENT_TYPES[kind].to_string(), rest)
    };
    let length = body.len().to_string();
    let mut tx = engine().transaction(TxMeta::default());
    let v = tx.process_request_headers(
        "POST",
        "/submit?x=1",
        "HTTP/1.1",
        [
            ("Host", "example.org"),
            ("Content-Type", content_type.as_str()),
            ("Content-Length", length.as_str()),
        ],
    );
    assert_eq!(v, Verdict::Continue, "phase 1 only passes");
    let at = (*split as usize).min(body.len());
    tx.append_request_body(&body[..at]);
    tx.append_request_body(&body[at..]);
    let _ = tx.process_request_body();
    let _ = tx.request_body_error();
    for m in tx.matched_rules() {
        let _ = format!("{m:?}");
    }
});
