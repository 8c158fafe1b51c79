//! The WAF engine's integration tests, through its public API. One test
//! binary with a module per subject, linked once rather than once per file;
//! `cargo test -p rampart-waf --release --test waf -- api::` runs one module.

mod api;
mod robustness;
