//! What tests of sources need, here and in the tests crate (feature
//! `test-helpers`): a ConfigMap volume, and a stand-in for kuma-cp (which
//! cannot run here) answering in its exact format.

use std::{
    collections::HashMap,
    convert::Infallible,
    net::SocketAddr,
    os::unix::fs::symlink,
    path::PathBuf,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use http_body_util::Full;
use hyper::{Request, Response, StatusCode, body::Bytes, body::Incoming, service::service_fn};
use hyper_util::rt::TokioIo;
use tokio::net::TcpSocket;

/// A folder laid out as the kubelet lays out a ConfigMap volume: the data
/// in a timestamped folder, `..data` a symlink to it, and each key a
/// symlink through `..data`. Removed on drop.
pub struct ConfigMapVolume {
    pub dir: PathBuf,
    version: usize,
}

impl ConfigMapVolume {
    /// A fresh folder in the temp dir, named after `name` and the process.
    pub fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("meshdns-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Self { dir, version: 0 }
    }

    /// Publishes `files` (key, text) as the kubelet does an update: a new
    /// timestamped folder, `..data` swapped to it by a rename, the old
    /// folder removed.
    pub fn publish(&mut self, files: &[(&str, &str)]) {
        self.version += 1;
        let data = format!("..2026_12_01_00_00_00.{}", self.version);
        std::fs::create_dir(self.dir.join(&data)).unwrap();
        for (key, text) in files {
            std::fs::write(self.dir.join(&data).join(key), text).unwrap();
        }
        symlink(&data, self.dir.join("..data_tmp")).unwrap();
        std::fs::rename(self.dir.join("..data_tmp"), self.dir.join("..data")).unwrap();
        for (key, _) in files {
            let link = self.dir.join(key);
            if std::fs::symlink_metadata(&link).is_err() {
                symlink(format!("..data/{key}"), link).unwrap();
            }
        }
        if self.version > 1 {
            let old = format!("..2026_12_01_00_00_00.{}", self.version - 1);
            std::fs::remove_dir_all(self.dir.join(old)).unwrap();
        }
    }
}

impl Drop for ConfigMapVolume {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// How the stand-in answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// The pages, with ETags, and 304s.
    Serve,
    /// 500 to everything.
    Fail,
    /// No answer for 30 s.
    Hang,
}

/// The stand-in's documents, by path and query, and how it behaves.
struct Script {
    pages: HashMap<String, String>,
    mode: Mode,
}

pub struct FakeKumaCp {
    pub addr: SocketAddr,
    script: Arc<Mutex<Script>>,
    /// 304s sent so far.
    pub not_modified: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeKumaCp {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A MeshService page as kuma-cp lists it: `total` the whole list's,
/// `next` pointing at `next`.
fn services_page(
    base: &str,
    total: usize,
    items: &[(&str, &str, &str)],
    next: Option<&str>,
) -> String {
    let items: Vec<String> = items
        .iter()
        .map(|(name, hostname, ip)| {
            format!(
                r#"{{"type":"MeshService","mesh":"default","name":"{name}","labels":{{}},"spec":{{"ports":[{{"port":80}}]}},"status":{{"addresses":[{{"hostname":"{hostname}","origin":"HostnameGenerator"}}],"vips":[{{"ip":"{ip}"}}]}}}}"#
            )
        })
        .collect();
    let next = next.map_or("null".to_string(), |n| format!("\"{base}{n}\""));
    format!(
        r#"{{"total":{total},"items":[{}],"next":{next}}}"#,
        items.join(",")
    )
}

/// What a kuma-cp with mesh `default` lists: MeshServices `redis` (at
/// `redis_vip`) and `web` on two pages, a MeshExternalService `httpbin`,
/// and no MeshMultiZoneService list (an older kuma-cp: 404). `base` is the
/// server's URL, for the pages' absolute `next`.
pub fn kuma_cp_pages(base: &str, redis_vip: &str) -> HashMap<String, String> {
    HashMap::from([
        (
            "/meshes".to_string(),
            r#"{"total":1,"items":[{"type":"Mesh","name":"default"}],"next":null}"#.to_string(),
        ),
        (
            "/meshes/default".to_string(),
            r#"{"type":"Mesh","name":"default"}"#.to_string(),
        ),
        (
            "/meshes/default/meshservices".to_string(),
            services_page(
                base,
                2,
                &[("redis", "redis.svc.mesh.local", redis_vip)],
                Some("/meshes/default/meshservices?offset=1"),
            ),
        ),
        (
            "/meshes/default/meshservices?offset=1".to_string(),
            services_page(base, 2, &[("web", "web.svc.mesh.local", "241.0.0.2")], None),
        ),
        (
            "/meshes/default/meshexternalservices".to_string(),
            r#"{"total":1,"items":[{"type":"MeshExternalService","mesh":"default","name":"httpbin","status":{"vip":{"ip":"242.0.0.1"},"addresses":[{"hostname":"httpbin.extsvc.mesh.local"}]}}],"next":null}"#.to_string(),
        ),
        // No MeshMultiZoneService list: an older kuma-cp, a 404.
    ])
}

impl FakeKumaCp {
    /// Serves on 127.0.0.1:`port` (0: any) the pages `pages` gives for the
    /// server's URL.
    pub async fn start(port: u16, pages: impl FnOnce(&str) -> HashMap<String, String>) -> Self {
        let socket = TcpSocket::new_v4().unwrap();
        socket.set_reuseaddr(true).unwrap();
        socket
            .bind(SocketAddr::from(([127, 0, 0, 1], port)))
            .unwrap();
        Self::serve(socket.listen(16).unwrap(), pages)
    }

    /// Serves on `listener` (one made in another network namespace, say).
    pub fn serve(
        listener: tokio::net::TcpListener,
        pages: impl FnOnce(&str) -> HashMap<String, String>,
    ) -> Self {
        let addr = listener.local_addr().unwrap();
        let script = Arc::new(Mutex::new(Script {
            pages: pages(&format!("http://{addr}")),
            mode: Mode::Serve,
        }));
        let not_modified = Arc::new(AtomicUsize::new(0));
        let (served, counted) = (script.clone(), not_modified.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let (script, counted) = (served.clone(), counted.clone());
                tokio::spawn(async move {
                    let service = service_fn(move |request: Request<Incoming>| {
                        let (script, counted) = (script.clone(), counted.clone());
                        async move { Ok::<_, Infallible>(answer(&script, &counted, &request).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Self {
            addr,
            script,
            not_modified,
            task,
        }
    }

    /// How it answers from now on.
    pub fn set(&self, mode: Mode) {
        self.script.lock().unwrap().mode = mode;
    }
}

/// The stand-in's answer: the page, with an ETag of its bytes, or 304
/// (kuma-cp's list endpoints send no ETag as of 2.14; a proxy in front of
/// it, or a later version, may: the poller handles both).
async fn answer(
    script: &Mutex<Script>,
    not_modified: &AtomicUsize,
    request: &Request<Incoming>,
) -> Response<Full<Bytes>> {
    let (mode, page) = {
        let script = script.lock().unwrap();
        let key = request.uri().path_and_query().map_or("", |p| p.as_str());
        (script.mode, script.pages.get(key).cloned())
    };
    let status = |status| {
        Response::builder()
            .status(status)
            .body(Full::new(Bytes::new()))
            .unwrap()
    };
    match mode {
        Mode::Fail => return status(StatusCode::INTERNAL_SERVER_ERROR),
        Mode::Hang => {
            tokio::time::sleep(Duration::from_secs(30)).await;
            return status(StatusCode::OK);
        }
        Mode::Serve => {}
    }
    let Some(page) = page else {
        return status(StatusCode::NOT_FOUND);
    };
    // FNV-1a of the bytes: any change is another tag.
    let hash = page.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    let etag = format!("\"{hash:016x}\"");
    if request
        .headers()
        .get("if-none-match")
        .and_then(|v| v.to_str().ok())
        == Some(&etag)
    {
        not_modified.fetch_add(1, Ordering::Relaxed);
        return status(StatusCode::NOT_MODIFIED);
    }
    Response::builder()
        .header("etag", etag)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(page)))
        .unwrap()
}
