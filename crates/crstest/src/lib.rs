//! The OWASP CRS regression suites, go-ftw style, against rampart's WAF.
//!
//! [`read_cases`] reads a CRS release's go-ftw YAML test files (the v4
//! schema and the older v3.3 ftw schema) and [`Overrides`] the cases that
//! are skipped or answered differently on purpose, each with its reason.
//! The cases then run one of two ways:
//!
//! - in process ([`run_suite`], [`run_blocking`]): each request goes
//!   straight through a `rampart_waf::Engine` loaded by [`load_engine`],
//!   with a simulated test backend; this is what the engine's regression
//!   tests, benchmark and profiling driver use;
//! - over real HTTP ([`run_suite_http`]): each request goes to a running
//!   gateway, bracketed by marker requests, and the gateway's WAF error log
//!   is read between the markers, as go-ftw does against ModSecurity.
//!
//! [`ReflectBackend`] is CRS's test backend (albedo) for the HTTP runs: every
//! path answers 200, and `/reflect` answers with the status, headers and body
//! given in the JSON request, so the response-side rules have something to
//! judge.

mod cases;
mod http;
mod inprocess;
mod reflect;
mod report;

pub use cases::{
    crs_root, default_overrides_path, read_cases, setup_rule, Case, Expect, Input, OverrideAction,
    Overrides, Schema, Suite,
};
pub use http::{
    default_http_overrides_path, run_suite_http, send, wire_request, HttpTarget, MARKER_RULE,
};
pub use inprocess::{load_engine, run_blocking, run_request, run_suite};
pub use reflect::ReflectBackend;
pub use report::{check, Failure, Outcome, Report};
