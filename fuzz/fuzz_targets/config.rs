//! Arbitrary text through the gateway's configuration reader. It must never
//! panic; a rejected text must come with at least one error, each placed
//! within the text (or at line 0 when it has no single position).

#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use rampart_gateway::Config;

fuzz_target!(|data: &[u8]| {
    // The reader only ever sees UTF-8 (a file that is not is refused first).
    let text = &*String::from_utf8_lossy(data);
    match Config::parse(text, "fuzz.toml", Path::new("/nonexistent/rampart")) {
        Ok(config) => {
            let _ = format!("{config:?}");
        }
        Err(errors) => {
            assert!(
                !errors.0.is_empty(),
                "a rejected configuration reports no error"
            );
            let lines = text.matches('\n').count() + 1;
            for e in &errors.0 {
                assert!(e.line <= lines, "error on line {} of {lines}: {e}", e.line);
                assert_eq!(e.line == 0, e.column == 0, "half a position: {e}");
            }
            let _ = errors.to_string();
        }
    }
});
