//! Errors of the registration API.

/// Why a service name was refused. Nothing changed; fix the name and retry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ServiceNameError {
    /// The name is empty.
    #[error("service name must not be empty (1..=255 bytes of UTF-8)")]
    Empty,
    /// The name is longer than 255 bytes.
    #[error("service name is {len} bytes, the limit is 255")]
    TooLong {
        /// Length in bytes.
        len: usize,
    },
}

/// Checks a service name: 1..=255 bytes (a `&str` is always UTF-8).
pub fn validate_service_name(name: &str) -> Result<(), ServiceNameError> {
    match name.len() {
        0 => Err(ServiceNameError::Empty),
        len if len > super::message::SERVICE_NAME_LEN_MAX => Err(ServiceNameError::TooLong { len }),
        _ => Ok(()),
    }
}

/// Why [`super::State::register`] refused a registration. In every case nothing changed and
/// nothing was sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegisterError {
    /// The name is invalid. Retrying the same name fails again.
    #[error(transparent)]
    InvalidName(#[from] ServiceNameError),
    /// The metadata exceeds `meta_size_max`. Retrying fails again; shrink it.
    #[error("service metadata is {len} bytes, the limit is {len_max}")]
    MetaTooLarge {
        /// Size given, in bytes.
        len: usize,
        /// Configured `meta_size_max`.
        len_max: usize,
    },
    /// This node already has a live registration with this name and id. Retrying fails until
    /// it is unregistered; use another `reg_id`.
    #[error("service {name:?} already has a live registration {reg_id} on this node")]
    Duplicate {
        /// Service name.
        name: String,
        /// Registration id.
        reg_id: u64,
    },
    /// This node already owns `services_local_max` live registrations. A retry helps once
    /// some are unregistered.
    #[error("this node already owns {count_max} live registrations (services_local_max)")]
    TooManyServices {
        /// Configured `services_local_max`.
        count_max: usize,
    },
}

/// Why [`super::State::unregister`] refused. Nothing changed and nothing was sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnregisterError {
    /// The name is invalid. Retrying the same name fails again.
    #[error(transparent)]
    InvalidName(#[from] ServiceNameError),
    /// No live registration with this name and id on this node (never registered, or already
    /// removed). Retrying fails again.
    #[error("service {name:?} has no live registration {reg_id} on this node")]
    NotRegistered {
        /// Service name.
        name: String,
        /// Registration id.
        reg_id: u64,
    },
}
