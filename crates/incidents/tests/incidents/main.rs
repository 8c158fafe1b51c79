//! The incidents crate's integration tests: the event store on real SQLite
//! files, the writer, grouping, and the reports and exports. One test binary
//! with a module per subject, linked once rather than once per file;
//! `cargo test -p rampart-incidents --release --test incidents -- store_basic::`
//! runs one module.

mod report_fixture;
mod store_fixture;

mod grouping_kinds;
mod grouping_sequence;
mod report_privacy;
mod report_sections;
mod report_stix;
mod report_time;
mod store_basic;
mod store_retention;
mod writer_full;
mod writer_kill;
mod writer_restart;
