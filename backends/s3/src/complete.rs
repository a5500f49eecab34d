//! A create-only `CompleteMultipartUpload`: the request `object_store` sends, plus
//! `If-None-Match: *`, so a multipart upload becomes visible only if its key is still free.
//!
//! `object_store` 0.14 completes uploads of its public multipart API in overwrite mode, and its
//! create-mode completion is private; this module signs the same request itself with the
//! public [`AwsAuthorizer`] and sends it through the client `object_store` uses.

use object_store::aws::{AmazonS3, AwsAuthorizer};
use object_store::client::{HttpClient, HttpRequestBody};
use object_store::multipart::PartId;
use object_store::path::Path;

/// The source of a [`CompleteError`]: the client's own error where there is one, the server's
/// answer otherwise.
type Source = Box<dyn std::error::Error + Send + Sync>;

/// Why a create-only completion failed.
#[derive(Debug)]
pub(crate) enum CompleteError {
    /// The key exists (412 Precondition Failed).
    AlreadyExists,
    /// Credentials or permissions were refused.
    Denied(Source),
    /// Anything else.
    Other(Source),
}

/// The request's target: `<bucket url>/<encoded path>?uploadId=<encoded id>`.
fn url(bucket_url: &str, path: &Path, upload_id: &str) -> String {
    format!(
        "{}/{}?uploadId={}",
        bucket_url.trim_end_matches('/'),
        uri_encode(path.as_ref(), true),
        uri_encode(upload_id, false)
    )
}

/// The request body listing the parts in order (part numbers are 1-based).
fn body(parts: &[PartId]) -> String {
    let mut xml = String::from("<CompleteMultipartUpload>");
    for (i, part) in parts.iter().enumerate() {
        xml.push_str(&format!(
            "<Part><PartNumber>{}</PartNumber><ETag>{}</ETag></Part>",
            i + 1,
            xml_escape(&part.content_id)
        ));
    }
    xml.push_str("</CompleteMultipartUpload>");
    xml
}

/// Completes `upload_id` at `path` only if `path` does not exist yet. Not retried: after a lost
/// response a retry would see its own object and report "already exists".
pub(crate) async fn complete_create(
    store: &AmazonS3,
    http: &HttpClient,
    region: &str,
    bucket_url: &str,
    path: &Path,
    upload_id: &str,
    parts: &[PartId],
) -> Result<(), CompleteError> {
    let credential = store
        .credentials()
        .get_credential()
        .await
        .map_err(|e| CompleteError::Denied(Box::new(e)))?;
    let mut request = http::Request::builder()
        .method("POST")
        .uri(url(bucket_url, path, upload_id))
        .header("If-None-Match", "*")
        .header("Content-Type", "application/xml")
        .body(HttpRequestBody::from(body(parts)))
        .map_err(|e| CompleteError::Other(Box::new(e)))?;
    AwsAuthorizer::new(&credential, "s3", region)
        .try_authorize(&mut request, None)
        .map_err(|e| CompleteError::Other(Box::new(e)))?;
    let response = http
        .execute(request)
        .await
        .map_err(|e| CompleteError::Other(Box::new(e)))?;
    let status = response.status();
    let text = match response.into_body().bytes().await {
        Ok(b) => String::from_utf8_lossy(&b).into_owned(),
        Err(e) => format!("(unreadable body: {e})"),
    };
    match status.as_u16() {
        // S3 may report a failure inside a 200 response.
        200 if !text.contains("<Error>") => Ok(()),
        412 => Err(CompleteError::AlreadyExists),
        401 | 403 => Err(CompleteError::Denied(
            format!("CompleteMultipartUpload {path}: {status}: {text}").into(),
        )),
        _ => Err(CompleteError::Other(
            format!("CompleteMultipartUpload {path}: {status}: {text}").into(),
        )),
    }
}

/// SigV4 URI encoding: everything but unreserved characters (and `/` in paths) as `%XX`.
fn uri_encode(s: &str, keep_slash: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) || (keep_slash && b == b'/') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_bodies_are_encoded() {
        let path = Path::from("a b/q/00000000000000000001.pst");
        assert_eq!(
            url("http://h:1/bkt/", &path, "x+y/z="),
            "http://h:1/bkt/a%20b/q/00000000000000000001.pst?uploadId=x%2By%2Fz%3D"
        );
        let parts = [
            PartId {
                content_id: "\"e1\"".into(),
            },
            PartId {
                content_id: "\"e2\"".into(),
            },
        ];
        assert_eq!(
            body(&parts),
            "<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>\"e1\"</ETag></Part>\
             <Part><PartNumber>2</PartNumber><ETag>\"e2\"</ETag></Part></CompleteMultipartUpload>"
        );
    }
}
