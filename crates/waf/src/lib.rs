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
mod engine;
mod error;
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
pub use tx::{MatchedRule, TargetExclusion, Transaction, TxMeta, Verdict, ARGUMENTS_LIMIT_RULE_ID};

/// The engine's internal maps, hashed with foldhash.
///
/// Keys are rule-controlled or short (TX variable names, cache keys), and the
/// maps live for one transaction, so flooding attacks on the hash are not a
/// concern that SipHash would need to answer here; speed is. The seed is
/// fixed rather than random so that a collection is walked in the same order
/// on every run and in every process, and a request's matches and error log
/// lines do not change from one to the next.
pub(crate) type FastMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::FixedState>;

/// A `HashSet` hashed as [`FastMap`] is.
pub(crate) type FastSet<K> = std::collections::HashSet<K, foldhash::fast::FixedState>;

/// The recommended base settings, from ModSecurity's
/// `modsecurity.conf-recommended` as CRS's test containers run them: request
/// and response body access, the JSON and XML body processors switched on by
/// content type, body limits, and the rules that refuse a body that failed to
/// parse. The gateway loads them before every site's rules, and the CRS
/// regression harness (`rampart-crstest`) before the suite's.
pub const BASE_SETTINGS: &str = r#"
SecRuleEngine On
SecRequestBodyAccess On
SecRule REQUEST_HEADERS:Content-Type "^(?:application(?:/soap\+|/)|text/)xml" "id:200000,phase:1,t:none,t:lowercase,pass,nolog,ctl:requestBodyProcessor=XML"
SecRule REQUEST_HEADERS:Content-Type "^application/json" "id:200001,phase:1,t:none,t:lowercase,pass,nolog,ctl:requestBodyProcessor=JSON"
SecRequestBodyLimit 13107200
SecRequestBodyNoFilesLimit 131072
SecRequestBodyLimitAction Reject
SecRule REQBODY_ERROR "!@eq 0" "id:200002,phase:2,t:none,log,deny,status:400,msg:'Failed to parse request body.',logdata:'%{reqbody_error_msg}',severity:2"
SecRule MULTIPART_STRICT_ERROR "!@eq 0" "id:200003,phase:2,t:none,log,deny,status:400,msg:'Multipart request body failed strict validation'"
SecRule MULTIPART_UNMATCHED_BOUNDARY "@eq 1" "id:200004,phase:2,t:none,log,deny,msg:'Multipart parser detected a possible unmatched boundary.'"
SecResponseBodyAccess On
SecResponseBodyMimeType text/plain text/html text/xml
SecResponseBodyLimit 524288
SecResponseBodyLimitAction ProcessPartial
"#;
