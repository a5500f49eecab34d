//! Test and setup support: creating a bucket on a plain-HTTP S3-compatible server (moto,
//! MinIO), which `object_store` has no call for. Not for production endpoints (no TLS).

use std::io::{Read, Write};
use std::net::TcpStream;

use object_store::aws::{AwsAuthorizer, AwsCredential};
use object_store::client::HttpRequestBody;

/// Why a bucket could not be created.
#[derive(Debug, thiserror::Error)]
pub enum CreateBucketError {
    /// The endpoint is not `http://host:port`.
    #[error("endpoint {0:?} is not a plain http://host:port URL")]
    Endpoint(String),
    /// The request could not be built or signed.
    #[error("cannot sign CreateBucket: {0}")]
    Sign(String),
    /// The connection failed.
    #[error("CreateBucket {bucket} at {endpoint}: {source}")]
    Io {
        /// The endpoint.
        endpoint: String,
        /// The bucket.
        bucket: String,
        /// The error.
        source: std::io::Error,
    },
    /// The server refused.
    #[error("CreateBucket {bucket} at {endpoint} refused: {response}")]
    Refused {
        /// The endpoint.
        endpoint: String,
        /// The bucket.
        bucket: String,
        /// The server's response.
        response: String,
    },
}

/// `PUT /bucket` signed with SigV4 over a plain TCP connection. An existing bucket owned by the
/// same account is fine (S3 answers 200 in us-east-1).
pub fn create_bucket(
    endpoint: &str,
    region: &str,
    key_id: &str,
    secret: &str,
    bucket: &str,
) -> Result<(), CreateBucketError> {
    let hostport = endpoint
        .strip_prefix("http://")
        .map(|h| h.trim_end_matches('/'))
        .filter(|h| !h.is_empty() && !h.contains('/'))
        .ok_or_else(|| CreateBucketError::Endpoint(endpoint.to_string()))?;
    let mut request = http::Request::builder()
        .method("PUT")
        .uri(format!("http://{hostport}/{bucket}"))
        .body(HttpRequestBody::empty())
        .map_err(|e| CreateBucketError::Sign(e.to_string()))?;
    let credential = AwsCredential {
        key_id: key_id.to_string(),
        secret_key: secret.to_string(),
        token: None,
    };
    AwsAuthorizer::new(&credential, "s3", region)
        .try_authorize(&mut request, None)
        .map_err(|e| CreateBucketError::Sign(e.to_string()))?;
    let mut head = format!("PUT /{bucket} HTTP/1.1\r\nHost: {hostport}\r\n");
    for (name, value) in request.headers() {
        let value = value
            .to_str()
            .map_err(|e| CreateBucketError::Sign(e.to_string()))?;
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("Content-Length: 0\r\nConnection: close\r\n\r\n");
    let io = |source| CreateBucketError::Io {
        endpoint: endpoint.to_string(),
        bucket: bucket.to_string(),
        source,
    };
    let mut stream = TcpStream::connect(hostport).map_err(io)?;
    stream.write_all(head.as_bytes()).map_err(io)?;
    let mut response = String::new();
    stream.read_to_string(&mut response).map_err(io)?;
    if response.starts_with("HTTP/1.1 200") || response.starts_with("HTTP/1.0 200") {
        Ok(())
    } else {
        Err(CreateBucketError::Refused {
            endpoint: endpoint.to_string(),
            bucket: bucket.to_string(),
            response,
        })
    }
}
