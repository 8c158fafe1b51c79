//! The crate's error type.

use std::fmt;

/// An error from building or loading flood-layer state: configuration,
/// address ranges or key material. Nothing on the request path returns it;
/// request-path problems become verdicts instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    kind: ErrorKind,
    detail: String,
}

/// What went wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// An address or CIDR range did not parse.
    BadCidr,
    /// A configuration value is out of range or inconsistent.
    BadConfig,
    /// Serialised key material is truncated, of an unknown version or corrupt.
    BadKeyMaterial,
}

impl Error {
    pub(crate) fn new(kind: ErrorKind, detail: impl Into<String>) -> Error {
        Error {
            kind,
            detail: detail.into(),
        }
    }

    /// The kind of failure.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// A human-readable explanation, naming the offending value where there is one.
    pub fn detail(&self) -> &str {
        &self.detail
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.kind {
            ErrorKind::BadCidr => "bad address range",
            ErrorKind::BadConfig => "bad flood configuration",
            ErrorKind::BadKeyMaterial => "bad key material",
        };
        write!(f, "{what}: {}", self.detail)
    }
}

impl std::error::Error for Error {}
