//! rampart's gateway: the Pingora adapter that wires the security layers
//! into a reverse proxy.
//!
//! * [`config`]: the TOML configuration and its validation.
//! * [`runtime`]: the compiled, reloadable configuration.
//! * [`admission`]: connection caps and deadlines, before HTTP is parsed.
//! * [`proxy`]: the `ProxyHttp` hooks.
//! * [`server`]: assembling and running the Pingora server.

pub mod accesslog;
pub mod admin;
pub mod admission;
pub mod config;
pub mod metrics;
pub mod net;
pub mod pages;
pub mod pool;
pub mod proxy;
pub mod runtime;
pub mod server;

pub use config::{Config, ConfigError, ConfigErrors};
pub use server::{run, StartError};
