//! Node names (`name@host`) and their validation.
//!
//! Rules (DESIGN §4): 1..=255 bytes, exactly one `@`, both parts non-empty, characters
//! `[A-Za-z0-9_.-]`, neither part starting with `.` or `-`. Names are validated wherever they
//! enter (configuration, wire, API); a [`NodeName`] value is always valid.

use std::fmt;
use std::sync::Arc;

/// Maximum length of a node name in bytes.
pub const NODE_NAME_LEN_MAX: usize = 255;

/// A validated node name. Cheap to clone (a shared, immutable string): the transport tags every
/// received message with its sender's name.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NodeName(Arc<str>);

/// Why a string is not a valid node name. Nothing was changed; fix the name and retry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// Empty string or longer than 255 bytes.
    #[error("node name must be 1..=255 bytes, got {len}")]
    Length {
        /// Length in bytes of the rejected name.
        len: usize,
    },
    /// Zero or several `@`.
    #[error("node name must contain exactly one '@' (name@host), found {count}")]
    AtCount {
        /// Number of `@` found.
        count: usize,
    },
    /// The part before or after `@` is empty.
    #[error("node name has an empty {part} part (expected name@host)")]
    EmptyPart {
        /// `"name"` or `"host"`.
        part: &'static str,
    },
    /// A character outside `[A-Za-z0-9_.-]`.
    #[error("node name contains the invalid character {ch:?} (allowed: A-Z a-z 0-9 _ . -)")]
    InvalidChar {
        /// The offending character.
        ch: char,
    },
    /// A part starts with `.` or `-`.
    #[error("the {part} part of a node name must not start with '.' or '-'")]
    BadStart {
        /// `"name"` or `"host"`.
        part: &'static str,
    },
}

impl NodeName {
    /// Validates and wraps a name.
    pub fn parse(text: &str) -> Result<Self, NameError> {
        validate(text)?;
        Ok(Self(Arc::from(text)))
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The part before `@`.
    pub fn name_part(&self) -> &str {
        // Invariant: validated names contain exactly one '@'.
        self.0.split_once('@').map(|(n, _)| n).unwrap_or_default()
    }

    /// The part after `@`.
    pub fn host_part(&self) -> &str {
        self.0.split_once('@').map(|(_, h)| h).unwrap_or_default()
    }
}

/// Checks `text` against the node-name rules without allocating.
pub fn validate(text: &str) -> Result<(), NameError> {
    let len = text.len();
    if len == 0 || len > NODE_NAME_LEN_MAX {
        return Err(NameError::Length { len });
    }
    let count = text.bytes().filter(|b| *b == b'@').count();
    if count != 1 {
        return Err(NameError::AtCount { count });
    }
    if let Some(ch) =
        text.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-' | '@')))
    {
        return Err(NameError::InvalidChar { ch });
    }
    let (name, host) = text.split_once('@').ok_or(NameError::AtCount { count })?;
    for (part, label) in [(name, "name"), (host, "host")] {
        match part.as_bytes().first() {
            None => return Err(NameError::EmptyPart { part: label }),
            Some(b'.' | b'-') => return Err(NameError::BadStart { part: label }),
            Some(_) => {}
        }
    }
    Ok(())
}

impl fmt::Display for NodeName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for NodeName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NodeName({})", self.0)
    }
}

impl std::str::FromStr for NodeName {
    type Err = NameError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_valid_names() {
        for ok in ["a@b", "node-1@host.example", "x_y@10.0.0.1", "A9@b-c"] {
            assert!(NodeName::parse(ok).is_ok(), "{ok}");
        }
        let n = NodeName::parse("alpha@beta").unwrap();
        assert_eq!(n.name_part(), "alpha");
        assert_eq!(n.host_part(), "beta");
    }

    #[test]
    fn rejects_each_rule() {
        assert_eq!(validate(""), Err(NameError::Length { len: 0 }));
        assert_eq!(
            validate(&format!("a@{}", "b".repeat(254))),
            Err(NameError::Length { len: 256 })
        );
        assert_eq!(validate("ab"), Err(NameError::AtCount { count: 0 }));
        assert_eq!(validate("a@b@c"), Err(NameError::AtCount { count: 2 }));
        assert_eq!(validate("@b"), Err(NameError::EmptyPart { part: "name" }));
        assert_eq!(validate("a@"), Err(NameError::EmptyPart { part: "host" }));
        assert_eq!(validate("a b@c"), Err(NameError::InvalidChar { ch: ' ' }));
        assert_eq!(validate(".a@b"), Err(NameError::BadStart { part: "name" }));
        assert_eq!(validate("a@-b"), Err(NameError::BadStart { part: "host" }));
    }
}
