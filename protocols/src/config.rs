//! The configuration error shared by every protocol layer.

use std::fmt::Display;

/// A configuration value outside its documented range. Nothing was started and nothing
/// changed; fix the named key (retrying with the same value fails the same way).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{section} config: `{key}` = {value} is invalid: {fix}")]
pub struct ConfigError {
    /// Protocol layer (`hyparview`, `plumtree`, `registry`).
    pub section: &'static str,
    /// Configuration key.
    pub key: &'static str,
    /// Offending value.
    pub value: String,
    /// What to change.
    pub fix: &'static str,
}

impl ConfigError {
    /// An error for `section.key = value`.
    pub(crate) fn new(
        section: &'static str,
        key: &'static str,
        value: &dyn Display,
        fix: &'static str,
    ) -> Self {
        Self { section, key, value: value.to_string(), fix }
    }
}
