//! Test and setup support for a plain-HTTP S3-compatible server (moto, MinIO): creating a
//! bucket and counting incomplete multipart uploads, which `object_store` has no calls for.
//! Not for production endpoints (no TLS).

use std::io::{Read, Write};
use std::net::TcpStream;

use object_store::aws::{AwsAuthorizer, AwsCredential};
use object_store::client::HttpRequestBody;

/// Why a bucket request failed.
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
    let (status, response) = signed_request(endpoint, region, key_id, secret, "PUT", bucket, "")?;
    if status == 200 {
        Ok(())
    } else {
        Err(CreateBucketError::Refused {
            endpoint: endpoint.to_string(),
            bucket: bucket.to_string(),
            response,
        })
    }
}

/// The number of incomplete multipart uploads in `bucket` (`GET /bucket?uploads`): an aborted
/// upload must not be among them.
pub fn incomplete_multipart_uploads(
    endpoint: &str,
    region: &str,
    key_id: &str,
    secret: &str,
    bucket: &str,
) -> Result<usize, CreateBucketError> {
    let (status, response) =
        signed_request(endpoint, region, key_id, secret, "GET", bucket, "uploads=")?;
    if status != 200 {
        return Err(CreateBucketError::Refused {
            endpoint: endpoint.to_string(),
            bucket: bucket.to_string(),
            response,
        });
    }
    Ok(response.matches("<Upload>").count())
}

/// One SigV4-signed request with an empty body to `endpoint/bucket?query`; returns the status
/// and the whole response text.
fn signed_request(
    endpoint: &str,
    region: &str,
    key_id: &str,
    secret: &str,
    method: &str,
    bucket: &str,
    query: &str,
) -> Result<(u16, String), CreateBucketError> {
    let hostport = endpoint
        .strip_prefix("http://")
        .map(|h| h.trim_end_matches('/'))
        .filter(|h| !h.is_empty() && !h.contains('/'))
        .ok_or_else(|| CreateBucketError::Endpoint(endpoint.to_string()))?;
    let target = if query.is_empty() {
        format!("/{bucket}")
    } else {
        format!("/{bucket}?{query}")
    };
    let mut request = http::Request::builder()
        .method(method)
        .uri(format!("http://{hostport}{target}"))
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
    let mut head = format!("{method} {target} HTTP/1.1\r\nHost: {hostport}\r\n");
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
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    Ok((status, response))
}
