//! Hostile input never panics the engine: mutated rule files through the
//! parser, and random bodies through every body processor. A fixed-seed
//! generator keeps failures reproducible; a panic here names its seed and
//! input size. (A coverage-guided fuzzer would search deeper; this runs in
//! the ordinary test suite on the stable toolchain.)

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;

use rampart_waf::{Engine, TxMeta};

/// xorshift64*: small, fast, and the same sequence on every machine.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn crs_rules() -> Vec<(String, String)> {
    let root = std::env::var_os("RAMPART_CRS_ROOT")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/crs"));
    let dir = root.join("v4.28.0/rules");
    let mut files: Vec<(String, String)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("the CRS is expected at {} ({e})", dir.display()))
        .filter_map(|e| e.ok())
        .filter(|e| e.path().extension().is_some_and(|x| x == "conf"))
        .map(|e| {
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read_to_string(e.path()).unwrap(),
            )
        })
        .collect();
    files.sort();
    files
}

/// Deletes, duplicates, replaces or inserts a few bytes, favouring the
/// characters SecLang's lexer cares about.
fn mutate(rng: &mut Rng, text: &str) -> String {
    const SPECIAL: &[u8] = b"\"'\\:,|!&@%{}()[]^$*+?\n \t=#";
    let mut bytes = text.as_bytes().to_vec();
    for _ in 0..1 + rng.below(8) {
        if bytes.is_empty() {
            break;
        }
        let at = rng.below(bytes.len());
        match rng.below(4) {
            0 => {
                let end = (at + 1 + rng.below(16)).min(bytes.len());
                bytes.drain(at..end);
            }
            1 => {
                let end = (at + 1 + rng.below(32)).min(bytes.len());
                let piece = bytes[at..end].to_vec();
                bytes.splice(at..at, piece);
            }
            2 => bytes[at] = SPECIAL[rng.below(SPECIAL.len())],
            _ => bytes.insert(at, rng.next() as u8),
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

#[test]
fn mutated_rule_files_give_errors_not_panics() {
    let files = crs_rules();
    let mut rng = Rng(0x005E_C1A9_2019);
    let (mut accepted, mut refused) = (0, 0);
    for round in 0..300 {
        let (name, text) = &files[rng.below(files.len())];
        // A window of the file keeps each parse quick.
        let start = rng.below(text.len().saturating_sub(4000));
        let mut start_char = start;
        while !text.is_char_boundary(start_char) {
            start_char += 1;
        }
        let mut end = (start_char + 4000).min(text.len());
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        let input = mutate(&mut rng, &text[start_char..end]);
        let result = catch_unwind(AssertUnwindSafe(|| {
            Engine::from_str_with_name(&input, name).is_ok()
        }));
        match result {
            Ok(true) => accepted += 1,
            Ok(false) => refused += 1,
            Err(_) => panic!(
                "round {round}: the parser panicked on a mutation of {name} ({} bytes)",
                input.len()
            ),
        }
    }
    // Both paths were exercised: some mutations still parse, some are errors.
    assert!(
        accepted > 0 && refused > 0,
        "accepted {accepted}, refused {refused}"
    );
}

const RULES: &str = r#"
SecRuleEngine On
SecRequestBodyAccess On
SecRule REQUEST_HEADERS:Content-Type "^application/json" "id:1,phase:1,pass,nolog,ctl:requestBodyProcessor=JSON"
SecRule REQUEST_HEADERS:Content-Type "^(?:application|text)/xml" "id:2,phase:1,pass,nolog,ctl:requestBodyProcessor=XML"
SecRule ARGS|ARGS_NAMES|FILES|FILES_NAMES|XML:/* "@rx (?i)union\s+select" "id:3,phase:2,deny,status:403,msg:'sqli'"
SecRule REQBODY_ERROR "!@eq 0" "id:4,phase:2,deny,status:400,msg:'body error'"
SecRule MULTIPART_STRICT_ERROR "!@eq 0" "id:5,phase:2,deny,status:400,msg:'multipart'"
"#;

fn random_body(rng: &mut Rng, kind: usize) -> (String, Vec<u8>) {
    let seeds: [(&str, &[u8]); 4] = [
        ("application/x-www-form-urlencoded", b"a=1&b=%41%zz&c[]=x&&=&d=union+select"),
        ("multipart/form-data; boundary=XyZ", b"--XyZ\r\nContent-Disposition: form-data; name=\"f\"; filename=\"a.txt\"\r\nContent-Type: text/plain\r\n\r\nhello\r\n--XyZ\r\nContent-Disposition: form-data; name=\"q\"\r\n\r\nunion select\r\n--XyZ--\r\n"),
        ("application/json", br#"{"a":[1,{"b":"union select"},null,true],"c":{"d":{"e":"\u0041\ud800"}},"f":1e999}"#),
        ("application/xml", b"<?xml version=\"1.0\"?><!DOCTYPE x [<!ENTITY e \"union select\">]><a b=\"1\"><c>&e;</c><![CDATA[x]]></a>"),
    ];
    let (content_type, seed) = seeds[kind];
    let mut body = seed.to_vec();
    for _ in 0..rng.below(12) {
        if body.is_empty() {
            body.push(rng.next() as u8);
            continue;
        }
        let at = rng.below(body.len());
        match rng.below(4) {
            0 => {
                body.remove(at);
            }
            1 => body.insert(at, rng.next() as u8),
            2 => {
                let piece = body[at..(at + 1 + rng.below(20)).min(body.len())].to_vec();
                let copies = 1 + rng.below(50);
                for _ in 0..copies {
                    body.splice(at..at, piece.iter().copied());
                }
            }
            _ => body[at] = b"{}[]<>\"&=%\r\n-;:\\"[rng.below(16)],
        }
    }
    (content_type.to_string(), body)
}

#[test]
fn random_bodies_through_every_body_processor_never_panic() {
    let engine = Engine::from_str_with_name(RULES, "robustness").expect("the test rules load");
    let mut rng = Rng(0x00B0_D1E5);
    for round in 0..2000 {
        let kind = round % 4;
        let (content_type, body) = random_body(&mut rng, kind);
        let result = catch_unwind(AssertUnwindSafe(|| {
            let mut tx = engine.transaction(TxMeta::default());
            let length = body.len().to_string();
            let _ = tx.process_request_headers(
                "POST",
                "/submit?x=1",
                "HTTP/1.1",
                [
                    ("Host", "example.org"),
                    ("Content-Type", content_type.as_str()),
                    ("Content-Length", length.as_str()),
                ],
            );
            // Feed the body in uneven pieces, as a network would.
            let mut rest: &[u8] = &body;
            while !rest.is_empty() {
                let n = 1 + (rest.len() % 7).min(rest.len() - 1);
                tx.append_request_body(&rest[..n]);
                rest = &rest[n..];
            }
            let _ = tx.process_request_body();
            tx.process_logging();
        }));
        assert!(
            result.is_ok(),
            "round {round}: a {content_type} body of {} bytes panicked the engine",
            body.len()
        );
    }
}
