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
pub mod capture;
pub mod client;
pub mod cluster;
pub mod config;
pub mod flood;
pub mod incidents;
pub mod leak;
pub mod metrics;
pub mod net;
pub mod pages;
pub mod pool;
pub mod proxy;
pub mod resolve;
pub mod runtime;
pub mod server;
pub mod upstream;
pub mod verdict;
pub mod waf;

pub use config::{Config, ConfigError, ConfigErrors};
pub use server::{run, StartError};

#[cfg(test)]
mod test_support {
    use std::path::PathBuf;

    /// The CRS releases the tests read: `RAMPART_CRS_ROOT`, or `../shared/crs`
    /// beside the repository.
    pub fn crs_root() -> PathBuf {
        std::env::var_os("RAMPART_CRS_ROOT")
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/crs")
            })
    }
}
