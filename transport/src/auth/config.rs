//! Authentication settings: the deployment seed's keys (`auth_enabled`, `auth_trust_mode`,
//! `auth_key_dir`, `auth_timestamp_window`, `cookie_only_nodes`, `dist_cookie`), with units in
//! the names. The handshake deadline (`auth_handshake_timeout_ms`) lives in the endpoint
//! settings because it also bounds the QUIC handshake.

use std::fmt;
use std::path::PathBuf;

use shoal_protocols::config::ConfigError;

use super::pattern::NodePattern;

/// The placeholder cookie (the seed's `barrel_p2p` default plays the same role): fine for a
/// laptop, refused together with `cookie_only_nodes`.
pub const DEFAULT_COOKIE: &str = "shoal";
/// Longest cookie, bytes (guess: far above any secret an operator generates).
pub const COOKIE_BYTES_MAX: usize = 1_024;
/// Most `cookie_only_nodes` entries (guess: the list is scanned per handshake).
pub const COOKIE_ONLY_NODES_MAX: usize = 256;

/// How unknown identity keys are treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrustMode {
    /// Trust on first use: the first key seen for a name is pinned; a different key later is
    /// refused (`key_mismatch`) until an operator removes the pin.
    Tofu,
    /// Only pinned keys are accepted (`untrusted_key` otherwise).
    Strict,
}

impl TrustMode {
    /// Parses `tofu` or `strict` (the TOML value).
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        match text {
            "tofu" => Ok(Self::Tofu),
            "strict" => Ok(Self::Strict),
            other => Err(ConfigError {
                section: "auth",
                key: "auth_trust_mode",
                value: other.to_owned(),
                fix: "use \"tofu\" or \"strict\"",
            }),
        }
    }
}

/// The cluster cookie: a pre-shared secret. Its `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct Cookie(Vec<u8>);

impl Cookie {
    /// A cookie from its text.
    pub fn new(secret: impl Into<Vec<u8>>) -> Self {
        Self(secret.into())
    }

    /// The secret bytes (the HMAC key).
    pub(crate) fn bytes(&self) -> &[u8] {
        &self.0
    }

    /// Whether this is the placeholder [`DEFAULT_COOKIE`].
    pub fn is_default(&self) -> bool {
        self.0 == DEFAULT_COOKIE.as_bytes()
    }
}

impl fmt::Debug for Cookie {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Cookie({} bytes{})",
            self.0.len(),
            if self.is_default() { ", default" } else { "" }
        )
    }
}

/// Authentication settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthConfig {
    /// Ed25519 identity proofs between peers (`auth_enabled`, seed default true). `false`
    /// makes every peer cookie-only: the node starts with a loud warning, and peers that do
    /// authenticate refuse it (`unexpected_auth_ok`) unless they list it in
    /// `cookie_only_nodes`.
    pub auth_enabled: bool,
    /// `tofu` or `strict` (`auth_trust_mode`, seed default tofu).
    pub auth_trust_mode: TrustMode,
    /// Directory of `node.key`, `node.pub`, `trusted/` and `backups/` (`auth_key_dir`, seed
    /// default `data/keys`). `None`: an identity generated in memory and pins kept in memory,
    /// for this run only (tests, benchmarks).
    pub auth_key_dir: Option<PathBuf>,
    /// Largest accepted difference between the peer's wall clock and ours, milliseconds
    /// (`auth_timestamp_window`, seed default 30,000). Bound 1,000..=3,600,000. Unlike the
    /// reference system (which allowed 2×), the window is the whole tolerance.
    pub auth_timestamp_window_ms: u64,
    /// The cluster cookie (`dist_cookie`, default [`DEFAULT_COOKIE`]). 1..=1,024 bytes.
    pub dist_cookie: Cookie,
    /// Peers allowed to skip the key proof (`cookie_only_nodes`, default empty; at most 256):
    /// both sides must list each other. Not allowed with the default cookie.
    pub cookie_only_nodes: Vec<String>,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            auth_enabled: true,
            auth_trust_mode: TrustMode::Tofu,
            auth_key_dir: Some(PathBuf::from(super::keys::DEFAULT_KEY_DIR)),
            auth_timestamp_window_ms: 30_000,
            dist_cookie: Cookie::new(DEFAULT_COOKIE),
            cookie_only_nodes: Vec::new(),
        }
    }
}

impl AuthConfig {
    /// Checks every key and parses the patterns; the error names the key and the fix.
    pub fn validate(&self) -> Result<Vec<NodePattern>, ConfigError> {
        let invalid = |key: &'static str, value: String, fix: &'static str| ConfigError {
            section: "auth",
            key,
            value,
            fix,
        };
        if !(1_000..=3_600_000).contains(&self.auth_timestamp_window_ms) {
            return Err(invalid(
                "auth_timestamp_window_ms",
                self.auth_timestamp_window_ms.to_string(),
                "use 1000..=3600000 milliseconds (keep clocks in sync with NTP rather than widening it)",
            ));
        }
        let cookie_bytes = self.dist_cookie.bytes().len();
        if !(1..=COOKIE_BYTES_MAX).contains(&cookie_bytes) {
            return Err(invalid(
                "dist_cookie",
                format!("{cookie_bytes} bytes"),
                "use a secret of 1..=1024 bytes, the same on every node",
            ));
        }
        if self.cookie_only_nodes.len() > COOKIE_ONLY_NODES_MAX {
            return Err(invalid(
                "cookie_only_nodes",
                format!("{} entries", self.cookie_only_nodes.len()),
                "use at most 256 patterns (*@host covers a whole host)",
            ));
        }
        let patterns = self
            .cookie_only_nodes
            .iter()
            .map(|text| NodePattern::parse(text))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|error| {
                invalid(
                    "cookie_only_nodes",
                    error.pattern,
                    "use name@host, *@host or name@* (a whole part only; *@* is refused)",
                )
            })?;
        if !patterns.is_empty() && self.dist_cookie.is_default() {
            return Err(invalid(
                "cookie_only_nodes",
                self.cookie_only_nodes.join(","),
                "cookie-only peers are authenticated by the cookie alone: set dist_cookie to a high-entropy secret shared by the cluster (the default is public)",
            ));
        }
        Ok(patterns)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_validate() {
        assert_eq!(AuthConfig::default().validate(), Ok(Vec::new()));
    }

    #[test]
    fn cookie_only_with_the_default_cookie_is_refused() {
        let config =
            AuthConfig { cookie_only_nodes: vec!["probe@*".into()], ..AuthConfig::default() };
        let error = config.validate().expect_err("default cookie");
        assert_eq!(error.key, "cookie_only_nodes");
        assert!(error.fix.contains("dist_cookie"));
        let config = AuthConfig { dist_cookie: Cookie::new("s3cret-long"), ..config };
        assert_eq!(config.validate().map(|p| p.len()), Ok(1));
    }

    #[test]
    fn every_bound_names_its_key() {
        let cases: [(AuthConfig, &str); 4] = [
            (
                AuthConfig { auth_timestamp_window_ms: 999, ..AuthConfig::default() },
                "auth_timestamp_window_ms",
            ),
            (AuthConfig { dist_cookie: Cookie::new(""), ..AuthConfig::default() }, "dist_cookie"),
            (
                AuthConfig { dist_cookie: Cookie::new(vec![b'x'; 1_025]), ..AuthConfig::default() },
                "dist_cookie",
            ),
            (
                AuthConfig {
                    dist_cookie: Cookie::new("s3cret"),
                    cookie_only_nodes: vec!["nope".into()],
                    ..AuthConfig::default()
                },
                "cookie_only_nodes",
            ),
        ];
        for (config, key) in cases {
            assert_eq!(config.validate().expect_err(key).key, key);
        }
    }

    #[test]
    fn trust_mode_parses_both_values_only() {
        assert_eq!(TrustMode::parse("tofu"), Ok(TrustMode::Tofu));
        assert_eq!(TrustMode::parse("strict"), Ok(TrustMode::Strict));
        assert_eq!(TrustMode::parse("TOFU").expect_err("case").key, "auth_trust_mode");
    }

    #[test]
    fn debug_never_shows_the_cookie() {
        let text = format!("{:?}", Cookie::new("hunter2"));
        assert!(!text.contains("hunter2"), "{text}");
    }
}
