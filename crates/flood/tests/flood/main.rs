//! The flood layer's integration tests, through its public API. One test
//! binary with a module per subject, linked once rather than once per file;
//! `cargo test -p rampart-flood --release --test flood -- bans::` runs one
//! module.

mod common;

mod bans;
mod challenge;
mod config;
mod detector;
mod hostile_input;
mod limits;
mod waiting_room;
