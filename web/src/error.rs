//! The site's one error type: what went wrong, worded for the person at the form (controls by
//! their labels, never command-line flags), so a page shows it as it is.

use thiserror::Error;

/// Everything the site can fail at, each with what to do about it.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum WebError {
    /// A setting of the calculator is wrong: the control's label and the problem.
    #[error("{control}: {problem}")]
    Setting {
        /// The control's label, e.g. "Weight format".
        control: &'static str,
        /// What is wrong and what to do.
        problem: String,
    },
    /// Core cannot answer the question; its message, worded with the site's control names.
    #[error("{0}")]
    Answer(String),
    /// The model cannot be read (catalog, config.json, a link's model).
    #[error("{0}")]
    Model(String),
    /// The Hugging Face Hub did not give the model's config.
    #[error("{0}")]
    Hub(String),
    /// A dropped or chosen file cannot be read; the message starts with the file's name.
    #[error("{0}")]
    File(String),
    /// The device cannot be used (a link's device, a custom device's figures).
    #[error("{0}")]
    Device(String),
    /// A request found no server (offline, blocked, DNS).
    #[error("{0}")]
    Network(String),
    /// The browser refused an operation (a download, a missing window).
    #[error("{0}")]
    Browser(String),
}
