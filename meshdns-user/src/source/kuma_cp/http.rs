//! One HTTP/1.1 GET to kuma-cp (hyper's client connection, one per
//! request: a poll every few seconds needs no pool), with a deadline, a
//! bound on the body and `If-None-Match`.

use std::time::Duration;

use http_body_util::{BodyExt as _, Empty, Limited};
use hyper::{
    Request, StatusCode, Uri,
    body::Bytes,
    header::{ETAG, HOST, IF_NONE_MATCH},
};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// The largest body read: a mesh of 100,000 services lists in well under
/// this many bytes.
const MAX_BODY: usize = 256 << 20;

/// What a GET brought.
#[derive(Debug)]
pub enum Fetched {
    /// 200, with the body and its ETag if kuma-cp sent one.
    Body { etag: Option<String>, body: Bytes },
    /// 304: as the last time (the ETag sent matched).
    NotModified,
    /// 404: a kind of resource this kuma-cp does not have (before Kuma
    /// 2.9 there are no MeshServices).
    NotFound,
}

#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("{url}: no answer within {timeout:?}")]
    Timeout { url: String, timeout: Duration },
    #[error("{url}: {message}")]
    Failed { url: String, message: String },
    #[error("{url}: HTTP {status}")]
    Status { url: String, status: StatusCode },
}

/// GETs `uri` (http only), within `timeout` for the whole exchange.
pub async fn get(uri: &Uri, etag: Option<&str>, timeout: Duration) -> Result<Fetched, HttpError> {
    let url = uri.to_string();
    match tokio::time::timeout(timeout, exchange(uri, etag)).await {
        Ok(result) => result.map_err(|(status, message)| match status {
            Some(status) => HttpError::Status { url, status },
            None => HttpError::Failed { url, message },
        }),
        Err(_) => Err(HttpError::Timeout { url, timeout }),
    }
}

/// The exchange; an error is a status that is not 200, 304 or 404, or
/// what went wrong.
async fn exchange(uri: &Uri, etag: Option<&str>) -> Result<Fetched, (Option<StatusCode>, String)> {
    let failed = |e: &dyn std::fmt::Display| (None, e.to_string());
    let (Some(host), Some(authority)) = (uri.host(), uri.authority()) else {
        return Err((None, "no host in the URL".into()));
    };
    if uri.scheme_str() != Some("http") {
        return Err((None, "only http:// is supported".into()));
    }
    // An IPv6 literal is written in brackets, which are not the address.
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let stream = TcpStream::connect((host, uri.port_u16().unwrap_or(80)))
        .await
        .map_err(|e| failed(&e))?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| failed(&e))?;
    // Drives the connection while the request runs; ends with it.
    let driver = tokio::spawn(connection);
    let mut request = Request::get(uri.path_and_query().map_or("/", |p| p.as_str()))
        .header(HOST, authority.as_str());
    if let Some(etag) = etag {
        request = request.header(IF_NONE_MATCH, etag);
    }
    let request = request
        .body(Empty::<Bytes>::new())
        .map_err(|e| failed(&e))?;
    let result = async {
        let response = sender.send_request(request).await.map_err(|e| failed(&e))?;
        match response.status() {
            StatusCode::OK => {}
            StatusCode::NOT_MODIFIED => return Ok(Fetched::NotModified),
            StatusCode::NOT_FOUND => return Ok(Fetched::NotFound),
            status => return Err((Some(status), String::new())),
        }
        let etag = response
            .headers()
            .get(ETAG)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let body = Limited::new(response.into_body(), MAX_BODY)
            .collect()
            .await
            .map_err(|e| (None, format!("reading the body: {e}")))?
            .to_bytes();
        Ok(Fetched::Body { etag, body })
    }
    .await;
    driver.abort();
    result
}
