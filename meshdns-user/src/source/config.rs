//! The sources as the services file writes them (`sources:`), and what
//! the schema cannot check.

use std::path::PathBuf;

use serde::Deserialize;

use super::{KUMA_TTL, Source, kuma_cp, kuma_vips};
use crate::config::MAX_TTL;

/// A source as the services file writes it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub enum SourceConfig {
    /// Kuma's VIP lists, each mesh's `kuma-<mesh>-dns-vips` ConfigMap's
    /// `config`: one file, or a folder of them (a ConfigMap volume, or a
    /// projected volume of several).
    KumaVips(KumaVipsConfig),
    /// kuma-cp's REST API: MeshService, MeshExternalService and
    /// MeshMultiZoneService hostnames with their VIPs.
    KumaCp(KumaCpConfig),
}

/// `kuma_cp: {url: URL, meshes: [...], interval: 5s, timeout: 5s, ttl: 30}`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KumaCpConfig {
    pub url: String,
    #[serde(default)]
    pub meshes: Option<Vec<String>>,
    #[serde(default = "default_interval")]
    pub interval: crate::config::Duration,
    #[serde(default)]
    pub timeout: Option<crate::config::Duration>,
    #[serde(default = "kuma_ttl")]
    pub ttl: u32,
}

fn default_interval() -> crate::config::Duration {
    crate::config::Duration::Seconds(5)
}

/// The longest request timeout taken by default.
const MAX_DEFAULT_TIMEOUT: u64 = 10;

/// `kuma_vips: PATH`, or `kuma_vips: {path: PATH, ttl: SECONDS, domain:
/// DOMAIN}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KumaVipsConfig {
    Path(PathBuf),
    Full(KumaVipsFull),
}

/// A string is the path; a map the long form, read as such so that its
/// errors (an unknown key, a TTL that is not a number) are its own, with
/// their position, not "no variant matched".
impl<'de> Deserialize<'de> for KumaVipsConfig {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = KumaVipsConfig;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a path, or {path, ttl, domain}")
            }

            fn visit_str<E: serde::de::Error>(self, path: &str) -> Result<Self::Value, E> {
                Ok(KumaVipsConfig::Path(PathBuf::from(path)))
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<Self::Value, A::Error> {
                KumaVipsFull::deserialize(serde::de::value::MapAccessDeserializer::new(map))
                    .map(KumaVipsConfig::Full)
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

/// The long form of `kuma_vips`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KumaVipsFull {
    pub path: PathBuf,
    #[serde(default = "kuma_ttl")]
    pub ttl: u32,
    /// kuma-cp's `dns_server.domain`: where service entries answer.
    #[serde(default = "kuma_domain")]
    pub domain: String,
}

fn kuma_domain() -> String {
    kuma_vips::KUMA_ZONE.to_string()
}

fn kuma_ttl() -> u32 {
    KUMA_TTL
}

impl SourceConfig {
    /// Checks what the schema cannot: a TTL a resolver accepts, a URL, a
    /// duration.
    pub fn check(&self) -> Result<Source, String> {
        let config = match self {
            SourceConfig::KumaVips(config) => config,
            SourceConfig::KumaCp(config) => return config.check(),
        };
        let (path, ttl, domain) = match config {
            KumaVipsConfig::Path(path) => (path.clone(), KUMA_TTL, kuma_domain()),
            KumaVipsConfig::Full(full) => (full.path.clone(), full.ttl, full.domain.clone()),
        };
        let domain = domain.strip_suffix('.').unwrap_or(&domain).to_string();
        if let Err(error) = crate::dns_name::from_text(&domain) {
            return Err(format!("kuma_vips domain {domain:?}: {error}"));
        }
        if ttl > MAX_TTL {
            return Err(format!("ttl {ttl} is more than {MAX_TTL}"));
        }
        if path.as_os_str().is_empty() {
            return Err("kuma_vips needs a path".into());
        }
        Ok(Source::KumaVips { path, ttl, domain })
    }
}

impl KumaCpConfig {
    fn check(&self) -> Result<Source, String> {
        let url: hyper::Uri = self
            .url
            .parse()
            .map_err(|e| format!("kuma_cp url {:?}: {e}", self.url))?;
        if url.authority().is_some_and(|a| a.as_str().contains('@')) {
            return Err(format!(
                "kuma_cp url {:?}: no user or password in the URL (it would be sent as the Host)",
                self.url
            ));
        }
        if url.scheme_str() != Some("http") || url.host().is_none() {
            return Err(format!(
                "kuma_cp url {:?}: http://HOST[:PORT] (kuma-cp's API on 5681) is what is supported",
                self.url
            ));
        }
        if let Some(meshes) = &self.meshes
            && let Some(bad) = meshes.iter().find(|m| {
                m.is_empty()
                    || !m
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
            })
        {
            return Err(format!("kuma_cp mesh {bad:?} is not a mesh name"));
        }
        let interval = self.interval.seconds()?;
        if interval == 0 {
            return Err("kuma_cp interval must be at least 1s".into());
        }
        let timeout = match &self.timeout {
            Some(timeout) => timeout.seconds()?,
            None => interval.min(MAX_DEFAULT_TIMEOUT),
        };
        if timeout == 0 {
            return Err("kuma_cp timeout must be at least 1s".into());
        }
        if self.ttl > MAX_TTL {
            return Err(format!("ttl {} is more than {MAX_TTL}", self.ttl));
        }
        Ok(Source::KumaCp {
            cp: kuma_cp::KumaCp {
                url,
                meshes: self.meshes.clone(),
                interval: std::time::Duration::from_secs(interval),
                timeout: std::time::Duration::from_secs(timeout),
            },
            ttl: self.ttl,
        })
    }
}
