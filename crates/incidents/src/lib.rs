//! Incidents: what the gateway saw, kept and told.
//!
//! Every layer's findings and actions become [`Event`]s. The gateway hands them
//! to a [`store::Recorder`] (a bounded channel that never blocks the request
//! path: when it is full, events are counted as dropped). A writer thread
//! stores them in SQLite (WAL mode, batched) and feeds the [`grouping`]
//! engine, which opens, escalates and closes [`Incident`]s. The [`report`] and
//! [`export`] modules turn an incident into a human report (Markdown, HTML) or
//! machine exports (JSON, STIX 2.1, MISP) that never carry personal data.
//!
//! The crate does file I/O for its store only; it knows nothing about sockets
//! or the proxy.

pub mod alert;
mod attacks;
pub mod export;
pub mod grouping;
pub mod model;
pub mod report;
mod scrub;
pub mod store;
mod time;
mod words;
pub mod writer;

pub use export::{Format, UnknownFormat};
pub use model::*;
