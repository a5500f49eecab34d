//! Errors of the S3 backend's configuration, and the mapping of `object_store` errors onto
//! [`BackendError`].

use persist_core::BackendError;

/// Why an S3 backend could not be built.
#[derive(Debug, thiserror::Error)]
pub enum S3Error {
    /// No bucket was configured.
    #[error("no bucket configured (give s3://bucket/prefix or set the bucket on the builder)")]
    NoBucket,
    /// A URL that is not `s3://bucket[/prefix]`.
    #[error("invalid S3 URL {url:?}: {reason}")]
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A key prefix that is not a valid object path.
    #[error("invalid key prefix {prefix:?}: {message}")]
    InvalidPrefix {
        /// The prefix as given.
        prefix: String,
        /// The parser's message.
        message: String,
    },
    /// A multipart part size below S3's minimum of 5 MiB.
    #[error("multipart part size {0} is below S3's minimum of 5 MiB")]
    PartTooSmall(usize),
    /// The `object_store` client refused the configuration.
    #[error("S3 client configuration for {location}: {message}")]
    Client {
        /// The endpoint and bucket.
        location: String,
        /// The client's message.
        message: String,
    },
    /// The backend's runtime could not be started.
    #[error("starting the S3 backend's runtime: {0}")]
    Runtime(#[source] std::io::Error),
}

/// Maps an `object_store` error for `key` onto the backend error the store understands.
pub(crate) fn map_error(location: &str, key: &str, error: object_store::Error) -> BackendError {
    use object_store::Error as E;
    match error {
        E::NotFound { .. } => BackendError::NotFound {
            location: location.to_string(),
            key: key.to_string(),
        },
        E::AlreadyExists { .. } | E::Precondition { .. } => BackendError::AlreadyExists {
            location: location.to_string(),
            key: key.to_string(),
        },
        E::PermissionDenied { .. } | E::Unauthenticated { .. } => BackendError::AccessDenied {
            location: location.to_string(),
            source: Box::new(error),
        },
        other => {
            // The error itself is the source (typed, for callers that downcast it); its text
            // with all its sources only decides whether it is an authentication failure.
            if is_auth_failure(&source_chain(&other)) {
                BackendError::AccessDenied {
                    location: location.to_string(),
                    source: Box::new(other),
                }
            } else {
                BackendError::Other {
                    location: location.to_string(),
                    source: Box::new(other),
                }
            }
        }
    }
}

/// Some requests (`LIST`, multipart calls) come back as generic errors that carry the HTTP
/// status and the S3 error code only in their text.
fn is_auth_failure(message: &str) -> bool {
    const MARKERS: [&str; 6] = [
        "403 Forbidden",
        "401 Unauthorized",
        "SignatureDoesNotMatch",
        "InvalidAccessKeyId",
        "<Code>AccessDenied</Code>",
        "InvalidClientTokenId",
    ];
    MARKERS.iter().any(|m| message.contains(m))
}

/// An error with its sources, `: `-separated (object_store's messages are terse at the top).
fn source_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut out = error.to_string();
    let mut next = error.source();
    while let Some(e) = next {
        let s = e.to_string();
        if !out.contains(&s) {
            out.push_str(": ");
            out.push_str(&s);
        }
        next = e.source();
    }
    out
}

/// A backend error for a runtime that is shutting down.
pub(crate) fn shut_down(location: &str) -> BackendError {
    BackendError::Other {
        location: location.to_string(),
        source: "the S3 backend's runtime is shutting down".into(),
    }
}
