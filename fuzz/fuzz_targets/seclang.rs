//! Arbitrary text as a SecLang configuration file. Loading must never panic
//! (errors are expected and fine); a rule set that loads is compiled in full
//! and runs one fixed request and response, which must not panic either.
//!
//! Files come from memory, never from the disk: `Include` and the
//! `@pmFromFile`-style operators see only the two files below.

#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use rampart_waf::{ConfigInput, Engine, MemSource, RuleLoadOptions, TxMeta};

fn source() -> &'static MemSource {
    static SOURCE: OnceLock<MemSource> = OnceLock::new();
    SOURCE.get_or_init(|| {
        let mut s = MemSource::new();
        s.insert(
            "/rules/extra.conf",
            "SecRule ARGS \"@contains evil\" \"id:9001,phase:2,pass,log\"\n",
        );
        s.insert("/rules/words.data", "evil\n# a comment\nunion select\n");
        s
    })
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data).into_owned();
    let inputs = [ConfigInput::Text {
        name: "fuzz.conf".into(),
        text,
        base_dir: PathBuf::from("/rules"),
    }];
    let engine = match Engine::load(source(), &inputs, &RuleLoadOptions::default()) {
        Ok(engine) => engine,
        Err(errors) => {
            assert!(!errors.errors.is_empty(), "a failed load reports no error");
            let _ = errors.to_string();
            return;
        }
    };
    let _ = engine.warm_up();
    let _ = engine.rule_count();
    let mut tx = engine.transaction(TxMeta::default());
    let _ = tx.process_request_headers(
        "POST",
        "/a/b.php?id=1%27%20or%201=1&x[]=<script>",
        "HTTP/1.1",
        [
            ("Host", "example.org"),
            ("User-Agent", "sqlmap/1.0"),
            ("Cookie", "session=abc; theme=dark"),
            ("Content-Type", "application/x-www-form-urlencoded"),
        ],
    );
    tx.append_request_body(b"name=evil&comment=union+select+1");
    let _ = tx.process_request_body();
    let _ = tx.process_response_headers(
        200,
        "HTTP/1.1",
        [("Content-Type", "text/html"), ("Content-Length", "27")],
    );
    if tx.response_body_wanted() {
        tx.append_response_body(b"<html>SQL syntax error</html>");
        let _ = tx.process_response_body();
    }
    tx.process_logging();
    let _ = tx.matched_rules();
});
