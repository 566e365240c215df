//! The one error type of `headroom-core`. Every message names what was wrong and what to do.

use thiserror::Error;

/// Everything that can go wrong in core. Messages are written for the person who typed the input.
#[derive(Debug, Error, Clone, PartialEq)]
#[non_exhaustive]
pub enum CoreError {
    /// The text is not valid JSON (or not the expected JSON shape).
    #[error("malformed JSON in {what}: {detail}")]
    MalformedJson {
        /// What was being read, e.g. `config.json`.
        what: String,
        /// The parser's message (line and column).
        detail: String,
    },
    /// A required field is missing or has the wrong type.
    #[error("{what}: field `{field}` {problem}")]
    BadField {
        /// What was being read.
        what: String,
        /// The field's name (dotted path for nested fields).
        field: String,
        /// What is wrong with it and what to do.
        problem: String,
    },
    /// The config's `model_type` is not supported and its fields do not suffice for an estimate.
    #[error(
        "unsupported model_type `{model_type}` and its config lacks {missing}; supported: {supported}"
    )]
    UnsupportedArchitecture {
        /// The `model_type` found.
        model_type: String,
        /// The fields that would have been needed for an approximate estimate.
        missing: String,
        /// Comma-separated list of supported architectures.
        supported: String,
    },
    /// A name that is not in a catalog (model, device, format, runtime).
    #[error("unknown {kind} `{name}`; {hint}")]
    Unknown {
        /// `model`, `device`, `format`, `runtime`, ...
        kind: String,
        /// What the user typed.
        name: String,
        /// Close matches or where to list the valid names.
        hint: String,
    },
    /// A number outside what makes sense (context 0, batch 10^12, ...).
    #[error("{field} = {value} is out of range: {problem}")]
    OutOfRange {
        /// The setting's name.
        field: String,
        /// The value given.
        value: String,
        /// The valid range and what to do.
        problem: String,
    },
    /// A combination that cannot be computed (e.g. a GGUF format with training).
    #[error("{0}")]
    Unsupported(String),
}
