//! `/metrics`, `/healthz` and `/readyz` over HTTP/1.1, served by hyper.
//!
//! The listener is for probes and a scraper: requests carry no body, so the
//! request head is capped small, and a connection that says nothing for
//! [`IDLE`] is closed, as is any beyond [`MAX_CONNECTIONS`] at once.

use std::{convert::Infallible, sync::Arc, time::Duration};

use http_body_util::Full;
use hyper::{
    Method, Request, Response, StatusCode,
    body::{Bytes, Incoming},
    header::{CONTENT_TYPE, HeaderValue},
    server::conn::http1,
    service::service_fn,
};
use hyper_util::rt::{TokioIo, TokioTimer};
use prometheus_client::registry::Registry;
use tokio::{net::TcpListener, sync::Semaphore};

use super::{Metrics, exposition};

/// The largest request head read: a GET from a probe or a scraper is far
/// smaller.
const MAX_HEAD: usize = 8 * 1024;
/// How long a connection may wait for its request head.
const IDLE: Duration = Duration::from_secs(10);
/// Connections served at once; more wait to be accepted.
const MAX_CONNECTIONS: usize = 64;

/// OpenMetrics text, what `prometheus-client` writes.
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Serves the three paths on `listener` until dropped.
pub async fn serve(listener: TcpListener, metrics: Arc<Metrics>) {
    let registry = Arc::new(exposition::registry(metrics.clone()));
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let (metrics, registry) = (metrics.clone(), registry.clone());
        tokio::spawn(async move {
            let service = service_fn(move |request| {
                let reply = respond(&request, &metrics, &registry);
                async move { Ok::<_, Infallible>(reply) }
            });
            let _ = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(IDLE)
                .max_buf_size(MAX_HEAD)
                .serve_connection(TokioIo::new(stream), service)
                .await;
            drop(slot);
        });
    }
}

fn respond(
    request: &Request<Incoming>,
    metrics: &Metrics,
    registry: &Registry,
) -> Response<Full<Bytes>> {
    let text = |status: StatusCode, body: String| reply(status, "text/plain; charset=utf-8", body);
    if request.method() != Method::GET && request.method() != Method::HEAD {
        return text(StatusCode::METHOD_NOT_ALLOWED, "GET only\n".into());
    }
    match request.uri().path() {
        "/metrics" => reply(StatusCode::OK, OPENMETRICS, exposition::render(registry)),
        "/healthz" => text(StatusCode::OK, "ok\n".into()),
        "/readyz" => {
            let interfaces = metrics.interface_lines();
            match metrics.readiness() {
                Ok(()) => text(StatusCode::OK, format!("ready\n{interfaces}")),
                Err(why) => text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!("not ready: {why}\n{interfaces}"),
                ),
            }
        }
        _ => text(StatusCode::NOT_FOUND, "not found\n".into()),
    }
}

fn reply(status: StatusCode, content_type: &'static str, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}
