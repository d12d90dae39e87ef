//! `cookie_only_nodes` patterns: exact `name@host`, `*@host` (any name on a host) or `name@*`
//! (one name on any host). `*` stands for a whole part only; there is no partial globbing, and
//! `*@*` is refused (it would exempt every node: that is `auth_enabled = false`).

use std::fmt;

use shoal_protocols::NodeName;

/// One `cookie_only_nodes` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodePattern {
    /// Exactly this node.
    Exact(NodeName),
    /// Every node on `host` (`*@host`).
    AnyName {
        /// The host part.
        host: String,
    },
    /// Node `name` on any host (`name@*`).
    AnyHost {
        /// The name part.
        name: String,
    },
}

/// Why a pattern was refused; the text says what a valid one looks like.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cookie_only_nodes entry {pattern:?}: {why}; use name@host, *@host or name@*")]
pub struct PatternError {
    /// The refused entry.
    pub pattern: String,
    /// What is wrong with it.
    pub why: &'static str,
}

impl NodePattern {
    /// Parses one entry.
    pub fn parse(text: &str) -> Result<Self, PatternError> {
        let fail = |why| PatternError { pattern: text.to_owned(), why };
        let Some((name, host)) = text.split_once('@') else {
            return Err(fail("no '@'"));
        };
        match (name, host) {
            ("*", "*") => {
                Err(fail("*@* would exempt every node (set auth_enabled = false instead)"))
            }
            ("*", host) => {
                // Validate the host part as a node name would be.
                NodeName::parse(&format!("x@{host}")).map_err(|_| fail("invalid host part"))?;
                Ok(Self::AnyName { host: host.to_owned() })
            }
            (name, "*") => {
                NodeName::parse(&format!("{name}@x")).map_err(|_| fail("invalid name part"))?;
                Ok(Self::AnyHost { name: name.to_owned() })
            }
            _ => NodeName::parse(text).map(Self::Exact).map_err(|_| fail("invalid node name")),
        }
    }

    /// Whether `node` matches.
    pub fn matches(&self, node: &NodeName) -> bool {
        match self {
            Self::Exact(exact) => exact == node,
            Self::AnyName { host } => host == node.host_part(),
            Self::AnyHost { name } => name == node.name_part(),
        }
    }
}

impl fmt::Display for NodePattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Exact(node) => write!(f, "{node}"),
            Self::AnyName { host } => write!(f, "*@{host}"),
            Self::AnyHost { name } => write!(f, "{name}@*"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(text: &str) -> NodeName {
        NodeName::parse(text).expect("valid")
    }

    #[test]
    fn the_three_forms_match_what_they_say() {
        let exact = NodePattern::parse("probe@db1").expect("valid");
        let any_name = NodePattern::parse("*@db1").expect("valid");
        let any_host = NodePattern::parse("probe@*").expect("valid");
        assert!(exact.matches(&node("probe@db1")));
        assert!(!exact.matches(&node("probe@db2")));
        assert!(any_name.matches(&node("other@db1")));
        assert!(!any_name.matches(&node("other@db10")));
        assert!(any_host.matches(&node("probe@anywhere")));
        assert!(!any_host.matches(&node("probes@anywhere")));
        for (pattern, text) in [(exact, "probe@db1"), (any_name, "*@db1"), (any_host, "probe@*")] {
            assert_eq!(pattern.to_string(), text);
        }
    }

    #[test]
    fn invalid_entries_are_refused_with_the_reason() {
        for (text, why) in [
            ("probe", "no '@'"),
            ("*@*", "*@* would exempt every node (set auth_enabled = false instead)"),
            ("pro*be@h", "invalid node name"),
            ("*@-h", "invalid host part"),
            (".x@*", "invalid name part"),
            ("a@b@c", "invalid node name"),
        ] {
            let error = NodePattern::parse(text).expect_err(text);
            assert_eq!(error.why, why, "{text}");
            assert!(error.to_string().contains(text));
        }
    }
}
