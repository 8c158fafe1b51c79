//! Error types of the WAF library.
//!
//! Loading a rule set reports every problem it finds, each with the file and
//! line it came from, so that `rampart check` can show all mistakes at once.

use std::fmt;

/// What went wrong, without the position.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ErrorKind {
    /// A directive this engine does not know.
    UnknownDirective(String),
    /// A variable this engine does not know.
    UnknownVariable(String),
    /// An operator this engine does not know.
    UnknownOperator(String),
    /// A transformation this engine does not know.
    UnknownTransformation(String),
    /// An action this engine does not know.
    UnknownAction(String),
    /// A directive, variable, operator or action whose argument is malformed.
    Syntax(String),
    /// A regular expression that could not be compiled.
    Regex(String),
    /// A file that could not be read.
    Io(String),
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ErrorKind::UnknownDirective(s) => write!(f, "unknown directive `{s}`"),
            ErrorKind::UnknownVariable(s) => write!(f, "unknown variable `{s}`"),
            ErrorKind::UnknownOperator(s) => write!(f, "unknown operator `{s}`"),
            ErrorKind::UnknownTransformation(s) => write!(f, "unknown transformation `{s}`"),
            ErrorKind::UnknownAction(s) => write!(f, "unknown action `{s}`"),
            ErrorKind::Syntax(s) => write!(f, "syntax error: {s}"),
            ErrorKind::Regex(s) => write!(f, "regular expression error: {s}"),
            ErrorKind::Io(s) => write!(f, "cannot read: {s}"),
        }
    }
}

/// One problem found while loading rules, with where it was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadError {
    /// The file (or the name given to a configuration text).
    pub file: String,
    /// The 1-based line where the directive starts.
    pub line: usize,
    /// What went wrong.
    pub kind: ErrorKind,
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.file, self.line, self.kind)
    }
}

impl std::error::Error for LoadError {}

/// Every problem found while loading a rule set.
#[derive(Debug, Clone, Default)]
pub struct LoadErrors {
    /// The problems, in the order they were found.
    pub errors: Vec<LoadError>,
}

impl fmt::Display for LoadErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.errors.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for LoadErrors {}
