//! A native SecLang engine for rampart's WAF layer.
//!
//! It parses and evaluates the OWASP Core Rule Set (v4 and v3.3) unchanged:
//! [`Engine`] holds the compiled rules, [`Transaction`] carries one request
//! and its response through phases 1 to 5 and answers each step with a
//! [`Verdict`]. Matching uses Rust's linear-time regex engine; the few
//! PCRE-only CRS patterns are handled as listed in PCRE-ONLY.md.
//!
//! The crate knows nothing about sockets: the gateway hands it bytes.
//! Files are read only while loading, through [`FileSource`].
//!
//! ```
//! use rampart_waf::{Engine, TxMeta, Verdict};
//! let engine = Engine::from_str_with_name(
//!     "SecRuleEngine On\nSecRule ARGS \"@contains evil\" \"id:1,phase:1,deny,status:403,msg:'evil'\"",
//!     "inline",
//! ).unwrap();
//! let mut tx = engine.transaction(TxMeta::default());
//! let v = tx.process_request_headers("GET", "/?q=evil", "HTTP/1.1", [("Host", "example.com")]);
//! assert_eq!(v, Verdict::Deny { status: 403, rule_id: 1 });
//! ```

mod body;
pub mod crs_test;
mod engine;
mod error;
mod fxhash;
mod hash;
mod lexer;
mod macros;
mod operator;
mod pcre;
mod pcre_only;
mod prefilter;
mod rule;
mod source;
mod transform;
mod tx;
mod vars;

pub use engine::{ConfigInput, Engine, RuleLoadOptions};
pub use error::{ErrorKind, LoadError, LoadErrors};
pub use rule::EngineMode;
pub use source::{FileSource, FsSource, MemSource};
pub use tx::{MatchedRule, Transaction, TxMeta, Verdict, ARGUMENTS_LIMIT_RULE_ID};
