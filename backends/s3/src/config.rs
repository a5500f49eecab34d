//! Building an [`S3Backend`]: from the standard AWS environment, from an `s3://bucket/prefix`
//! URL and from explicit settings.

use std::sync::Arc;
use std::time::Duration;

use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey, S3ConditionalPut};
use object_store::client::{HttpConnector, ReqwestConnector};
use object_store::path::Path;
use object_store::{BackoffConfig, ClientOptions, RetryConfig};

use crate::backend::S3Backend;
use crate::client::Client;
use crate::error::S3Error;
use crate::priority::ThreadPriority;
use crate::runtime::OwnedRuntime;

/// Default size above which a generation goes up as a multipart upload: 8 MiB.
pub const DEFAULT_MULTIPART_THRESHOLD: usize = 8 << 20;
/// Default size of one multipart part: 8 MiB (S3's minimum is 5 MiB).
pub const DEFAULT_PART_SIZE: usize = 8 << 20;
const MIN_PART_SIZE: usize = 5 << 20;

/// A parsed `s3://bucket[/prefix]` URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct S3Url {
    /// The bucket.
    pub bucket: String,
    /// The key prefix, without leading or trailing `/` (may be empty).
    pub prefix: String,
}

impl S3Url {
    /// Parses `s3://bucket[/prefix]`.
    ///
    /// ```
    /// let url = persist_s3::S3Url::parse("s3://backups/agents/exit").unwrap();
    /// assert_eq!((url.bucket.as_str(), url.prefix.as_str()), ("backups", "agents/exit"));
    /// assert!(persist_s3::S3Url::parse("/tmp/state").is_err());
    /// ```
    pub fn parse(url: &str) -> Result<Self, S3Error> {
        let invalid = |reason| S3Error::InvalidUrl {
            url: url.to_string(),
            reason,
        };
        let rest = url
            .strip_prefix("s3://")
            .ok_or_else(|| invalid("it does not start with s3://"))?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(invalid("the bucket name is empty"));
        }
        Ok(S3Url {
            bucket: bucket.to_string(),
            prefix: prefix.trim_matches('/').to_string(),
        })
    }

    /// True when `s` looks like an S3 URL (`s3://…`).
    pub fn is_s3(s: &str) -> bool {
        s.starts_with("s3://")
    }
}

/// Settings of an [`S3Backend`]. Start from [`S3BackendBuilder::from_env`] (the standard
/// `AWS_*` variables) or [`S3BackendBuilder::new`] (nothing), then override.
///
/// (Compiled, not run: `build` only configures, but using the backend needs a server at the
/// endpoint, such as the moto that `ci/s3-server.sh` starts.)
///
/// ```no_run
/// let backend = persist_s3::S3BackendBuilder::from_env()
///     .url("s3://backups/agents")?
///     .endpoint("http://127.0.0.1:9000")
///     .allow_http(true)
///     .build()?;
/// # Ok::<(), persist_s3::S3Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct S3BackendBuilder {
    inner: AmazonS3Builder,
    bucket: Option<String>,
    prefix: String,
    endpoint: Option<String>,
    region: Option<String>,
    allow_http: bool,
    path_style: bool,
    multipart_threshold: usize,
    part_size: usize,
    max_retries: usize,
    retry_timeout: Duration,
    connect_timeout: Duration,
    request_timeout: Duration,
    thread_priority: ThreadPriority,
}

impl Default for S3BackendBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl S3BackendBuilder {
    /// No settings: give at least a bucket and credentials.
    pub fn new() -> Self {
        S3BackendBuilder {
            inner: AmazonS3Builder::new(),
            bucket: None,
            prefix: String::new(),
            endpoint: None,
            region: None,
            allow_http: false,
            path_style: true,
            multipart_threshold: DEFAULT_MULTIPART_THRESHOLD,
            part_size: DEFAULT_PART_SIZE,
            max_retries: 3,
            retry_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(300),
            thread_priority: ThreadPriority::Normal,
        }
    }

    /// Settings from the standard environment: `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
    /// `AWS_SESSION_TOKEN`, `AWS_REGION` (or `AWS_DEFAULT_REGION`), `AWS_ENDPOINT_URL` (or
    /// `AWS_ENDPOINT`), `AWS_ALLOW_HTTP=true`, `AWS_BUCKET`, and
    /// `AWS_VIRTUAL_HOSTED_STYLE_REQUEST=true` to leave path-style addressing (the default,
    /// which MinIO and moto need).
    pub fn from_env() -> Self {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let mut b = Self::new();
        b.inner = AmazonS3Builder::from_env();
        b.endpoint = var("AWS_ENDPOINT_URL").or_else(|| var("AWS_ENDPOINT"));
        b.region = var("AWS_REGION").or_else(|| var("AWS_DEFAULT_REGION"));
        b.bucket = var("AWS_BUCKET").or_else(|| var("AWS_BUCKET_NAME"));
        b.allow_http = var("AWS_ALLOW_HTTP").is_some_and(|v| is_true(&v));
        b.path_style = !var("AWS_VIRTUAL_HOSTED_STYLE_REQUEST").is_some_and(|v| is_true(&v));
        b
    }

    /// Bucket and prefix from `s3://bucket[/prefix]`.
    pub fn url(mut self, url: &str) -> Result<Self, S3Error> {
        let parsed = S3Url::parse(url)?;
        self.bucket = Some(parsed.bucket);
        self.prefix = parsed.prefix;
        Ok(self)
    }

    /// The bucket.
    pub fn bucket(mut self, bucket: impl Into<String>) -> Self {
        self.bucket = Some(bucket.into());
        self
    }

    /// The key prefix under which the store's keys live (`a/b` puts `q/…pst` at `a/b/q/…pst`).
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into().trim_matches('/').to_string();
        self
    }

    /// The endpoint URL of an S3-compatible server (MinIO, moto, …).
    pub fn endpoint(mut self, endpoint: impl Into<String>) -> Self {
        self.endpoint = Some(endpoint.into());
        self
    }

    /// The region (default `us-east-1`).
    pub fn region(mut self, region: impl Into<String>) -> Self {
        self.region = Some(region.into());
        self
    }

    /// Static credentials.
    pub fn credentials(mut self, access_key_id: &str, secret_access_key: &str) -> Self {
        self.inner = self
            .inner
            .with_access_key_id(access_key_id)
            .with_secret_access_key(secret_access_key);
        self
    }

    /// Permits plain-HTTP endpoints (a local MinIO or moto). Off by default.
    pub fn allow_http(mut self, allow: bool) -> Self {
        self.allow_http = allow;
        self
    }

    /// Path-style addressing (`endpoint/bucket/key`, the default) or virtual-hosted style
    /// (`bucket.endpoint/key`).
    pub fn path_style(mut self, path_style: bool) -> Self {
        self.path_style = path_style;
        self
    }

    /// Objects larger than this go up as multipart uploads (default 8 MiB).
    pub fn multipart_threshold(mut self, bytes: usize) -> Self {
        self.multipart_threshold = bytes;
        self
    }

    /// The size of one multipart part (default 8 MiB, at least 5 MiB).
    pub fn part_size(mut self, bytes: usize) -> Self {
        self.part_size = bytes;
        self
    }

    /// Retries of one request on transient errors, and the time after which it gives up
    /// (default 3 retries within 30 s: a replicator retries on its own with longer backoff).
    pub fn retries(mut self, max_retries: usize, timeout: Duration) -> Self {
        self.max_retries = max_retries;
        self.retry_timeout = timeout;
        self
    }

    /// Connection timeout (default 5 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// The CPU priority of the backend's own threads: its two runtime workers and any blocking
    /// threads they start (default [`ThreadPriority::Normal`]). For a backend that only a
    /// [`crate::Replicator`] fills, [`ThreadPriority::Idle`] keeps the upload's hashing,
    /// signing and copying off the program's cores (off-site writing must never slow the
    /// program down); not for a store's primary backend, whose requests the program waits for
    /// (a restore through an idle-priority backend runs on idle CPU too).
    pub fn thread_priority(mut self, priority: ThreadPriority) -> Self {
        self.thread_priority = priority;
        self
    }

    /// Builds the backend with its own two-thread runtime.
    pub fn build(self) -> Result<S3Backend, S3Error> {
        let bucket = self.bucket.clone().ok_or(S3Error::NoBucket)?;
        if self.part_size < MIN_PART_SIZE {
            return Err(S3Error::PartTooSmall(self.part_size));
        }
        let prefix = if self.prefix.is_empty() {
            None
        } else {
            Some(
                Path::parse(&self.prefix).map_err(|e| S3Error::InvalidPrefix {
                    prefix: self.prefix.clone(),
                    message: e.to_string(),
                })?,
            )
        };
        let region = self.region.clone().unwrap_or_else(|| "us-east-1".into());
        let endpoint_desc = self
            .endpoint
            .clone()
            .unwrap_or_else(|| format!("AWS S3 {region}"));
        let location = if self.prefix.is_empty() {
            format!("s3://{bucket} at {endpoint_desc}")
        } else {
            format!("s3://{bucket}/{} at {endpoint_desc}", self.prefix)
        };
        let client_options = ClientOptions::new()
            .with_allow_http(self.allow_http)
            .with_connect_timeout(self.connect_timeout)
            .with_timeout(self.request_timeout);
        let bucket_url = match (&self.endpoint, self.path_style) {
            (Some(endpoint), true) => format!("{}/{bucket}", endpoint.trim_end_matches('/')),
            (Some(endpoint), false) => endpoint.trim_end_matches('/').to_string(),
            (None, true) => format!("https://s3.{region}.amazonaws.com/{bucket}"),
            (None, false) => format!("https://{bucket}.s3.{region}.amazonaws.com"),
        };
        let client_error = |e: object_store::Error| S3Error::Client {
            location: location.clone(),
            message: e.to_string(),
        };
        let http = ReqwestConnector::default()
            .connect(&client_options)
            .map_err(client_error)?;
        let mut inner = self
            .inner
            .with_bucket_name(&bucket)
            .with_region(&region)
            .with_virtual_hosted_style_request(!self.path_style)
            .with_conditional_put(S3ConditionalPut::ETagMatch)
            .with_client_options(client_options.clone())
            .with_retry(RetryConfig {
                backoff: BackoffConfig::default(),
                max_retries: self.max_retries,
                retry_timeout: self.retry_timeout,
            });
        if let Some(endpoint) = &self.endpoint {
            inner = inner.with_config(AmazonS3ConfigKey::Endpoint, endpoint);
        }
        let store = inner.build().map_err(client_error)?;
        let runtime = OwnedRuntime::new(2, self.thread_priority).map_err(S3Error::Runtime)?;
        Ok(S3Backend::new(Client {
            store: Arc::new(store),
            runtime: Arc::new(runtime),
            prefix,
            bucket,
            location,
            multipart_threshold: self.multipart_threshold,
            part_size: self.part_size,
            http,
            region,
            bucket_url,
        }))
    }
}

fn is_true(v: &str) -> bool {
    matches!(v.to_ascii_lowercase().as_str(), "1" | "true" | "yes" | "on")
}
