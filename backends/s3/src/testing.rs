//! Test and setup support for an S3-compatible test server (moto, MinIO): creating a bucket
//! and counting incomplete multipart uploads. Behind the `testing` cargo feature; not meant
//! for production endpoints.
//!
//! `object_store` has no call for either: its [`object_store::ObjectStore`] works inside one
//! existing bucket and has no bucket management, nor a listing of multipart uploads. So these
//! two requests are built here, signed with `object_store`'s public [`AwsAuthorizer`] (SigV4)
//! and sent through `object_store`'s own HTTP client ([`HttpClient`], the one its S3 client
//! uses, from [`ReqwestConnector`]), on a small runtime of this crate: no hand-made HTTP.

use object_store::ClientOptions;
use object_store::aws::{AwsAuthorizer, AwsCredential};
use object_store::client::{HttpConnector, HttpRequestBody, ReqwestConnector};

use crate::priority::ThreadPriority;
use crate::runtime::OwnedRuntime;

/// Why a bucket request failed.
#[derive(Debug, thiserror::Error)]
pub enum CreateBucketError {
    /// The request could not be built, signed or sent.
    #[error("{op} {bucket} at {endpoint}: {source}")]
    Request {
        /// The request (`CreateBucket`, `ListMultipartUploads`).
        op: &'static str,
        /// The endpoint.
        endpoint: String,
        /// The bucket.
        bucket: String,
        /// What failed.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The server refused.
    #[error("{op} {bucket} at {endpoint} refused: {status}: {response}")]
    Refused {
        /// The request (`CreateBucket`, `ListMultipartUploads`).
        op: &'static str,
        /// The endpoint.
        endpoint: String,
        /// The bucket.
        bucket: String,
        /// The HTTP status.
        status: u16,
        /// The server's response body.
        response: String,
    },
}

/// `PUT /bucket` (CreateBucket). An existing bucket owned by the same account is fine (S3
/// answers 200 in us-east-1). `endpoint` may be plain `http://`.
///
/// ```no_run
/// // Needs a server: `eval "$(ci/s3-server.sh)"` starts moto and sets the variables.
/// let endpoint = std::env::var("PERSIST_S3_ENDPOINT").unwrap();
/// persist_s3::testing::create_bucket(&endpoint, "us-east-1", "key id", "secret", "tests")?;
/// # Ok::<(), persist_s3::testing::CreateBucketError>(())
/// ```
pub fn create_bucket(
    endpoint: &str,
    region: &str,
    key_id: &str,
    secret: &str,
    bucket: &str,
) -> Result<(), CreateBucketError> {
    let request = Request {
        op: "CreateBucket",
        endpoint,
        region,
        key_id,
        secret,
        bucket,
    };
    let (status, response) = request.send("PUT", "")?;
    if status == 200 {
        Ok(())
    } else {
        Err(request.refused(status, response))
    }
}

/// The number of incomplete multipart uploads in `bucket` (`GET /bucket?uploads`,
/// ListMultipartUploads): an aborted upload must not be among them.
pub fn incomplete_multipart_uploads(
    endpoint: &str,
    region: &str,
    key_id: &str,
    secret: &str,
    bucket: &str,
) -> Result<usize, CreateBucketError> {
    let request = Request {
        op: "ListMultipartUploads",
        endpoint,
        region,
        key_id,
        secret,
        bucket,
    };
    let (status, response) = request.send("GET", "uploads=")?;
    if status != 200 {
        return Err(request.refused(status, response));
    }
    Ok(response.matches("<Upload>").count())
}

/// One bucket-level request with an empty body.
struct Request<'a> {
    op: &'static str,
    endpoint: &'a str,
    region: &'a str,
    key_id: &'a str,
    secret: &'a str,
    bucket: &'a str,
}

impl Request<'_> {
    fn error(
        &self,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> CreateBucketError {
        CreateBucketError::Request {
            op: self.op,
            endpoint: self.endpoint.to_string(),
            bucket: self.bucket.to_string(),
            source: source.into(),
        }
    }

    fn refused(&self, status: u16, response: String) -> CreateBucketError {
        CreateBucketError::Refused {
            op: self.op,
            endpoint: self.endpoint.to_string(),
            bucket: self.bucket.to_string(),
            status,
            response,
        }
    }

    /// Sends `method /bucket?query`, SigV4-signed, through `object_store`'s HTTP client;
    /// returns the status and the response body.
    fn send(&self, method: &str, query: &str) -> Result<(u16, String), CreateBucketError> {
        let mut url = format!("{}/{}", self.endpoint.trim_end_matches('/'), self.bucket);
        if !query.is_empty() {
            url.push('?');
            url.push_str(query);
        }
        let mut request = http::Request::builder()
            .method(method)
            .uri(url)
            .body(HttpRequestBody::empty())
            .map_err(|e| self.error(e))?;
        let credential = AwsCredential {
            key_id: self.key_id.to_string(),
            secret_key: self.secret.to_string(),
            token: None,
        };
        AwsAuthorizer::new(&credential, "s3", self.region)
            .try_authorize(&mut request, None)
            .map_err(|e| self.error(e))?;
        let options = ClientOptions::new().with_allow_http(true);
        let client = ReqwestConnector::default()
            .connect(&options)
            .map_err(|e| self.error(e))?;
        let runtime = OwnedRuntime::new(1, ThreadPriority::Normal).map_err(|e| self.error(e))?;
        let answer = runtime
            .run(async move {
                let response = client.execute(request).await?;
                let status = response.status().as_u16();
                let body = response.into_body().bytes().await?;
                Ok::<_, object_store::client::HttpError>((status, body))
            })
            .ok_or_else(|| self.error("the runtime shut down"))?;
        let (status, body) = answer.map_err(|e| self.error(e))?;
        Ok((status, String::from_utf8_lossy(&body).into_owned()))
    }
}
