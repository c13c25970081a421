//! Error types.
use std::path::PathBuf;

/// Errors from estimators and generators.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SelfSimError {
    #[error("{method}: series is empty")]
    Empty { method: &'static str },
    #[error("{method}: series has {n} values, needs at least {min}")]
    TooShort {
        method: &'static str,
        n: usize,
        min: usize,
    },
    #[error("{method}: series is constant (variance 0); H is undefined")]
    Constant { method: &'static str },
    #[error("{method}: value {index} is not finite ({value})")]
    NonFinite {
        method: &'static str,
        index: usize,
        value: f64,
    },
    #[error("{method}: invalid parameter: {msg}")]
    InvalidParam { method: &'static str, msg: String },
    #[error("{method}: {msg}")]
    Numerical { method: &'static str, msg: String },
}

/// Errors from the series and event readers.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}:{line}: {msg}")]
    Parse {
        path: PathBuf,
        line: usize,
        msg: String,
    },
    #[error("{path}: {msg}")]
    Invalid { path: PathBuf, msg: String },
}
