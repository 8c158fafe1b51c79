//! The leak guard's integration tests, through its public API. One test
//! binary with a module per subject, linked once rather than once per file;
//! `cargo test -p rampart-leakguard --release --test leakguard -- guard::`
//! runs one module.

mod demo_site;
mod evaluation;
mod guard;
mod recognisers;
