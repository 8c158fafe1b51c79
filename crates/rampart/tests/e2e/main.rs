//! End-to-end tests: real `rampart` processes in front of real upstreams,
//! over real sockets. One test binary with a module per suite, so that
//! Pingora and everything else is linked once rather than once per suite;
//! `cargo test -p rampart --release --test e2e -- drill::` runs one suite.
//!
//! The suites' tests run on the threads of one process, so what is
//! per-process is shared between them: `common::free_port` never hands out
//! the same port twice in the whole run, and `common::one_flood_at_a_time`
//! keeps the tests that flood a gateway (the browser suite's floods, the
//! drills, the slowloris ramp) from running alongside each other.

mod common;

mod browser;
mod cache;
mod cluster;
mod console;
mod drill;
mod evasion;
mod flood;
mod gateway;
mod incidents;
mod leak;
mod waf;
