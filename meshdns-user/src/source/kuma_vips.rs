//! Kuma's VIP lists: the `config` of kuma-cp's `kuma-<mesh>-dns-vips`
//! Config resource (in Kubernetes mode a ConfigMap of that name, data key
//! `config`), read into the names Kuma's data plane answers with them.
//! Protocol only: the caller reads the text from wherever it is.
//!
//! kuma-cp has written four shapes over the years (`pkg/dns/vips/
//! persistence.go` and its tests, Kuma 2.x); all four are read:
//!
//! 1. `{"backend": "240.0.0.1"}`: service to VIP;
//! 2. `{"0:backend_2": "240.0.1.1", "1:host.com": "240.0.1.4"}`: a type
//!    before the name, 0 service, 1 host, 2 fqdn;
//! 3. `{"0:backend": {"address": "240.0.0.1", "outbounds": [{"Port": 0,
//!    "TagSet": {"kuma.io/service": "backend"}, "Origin": ""}]}}`: today's;
//! 4. `{"v": {"<service>": {"oe": [{"ap": [{"a": "240.0.0.2", "p": 443,
//!    "o": "svc"}, {"a": "240.0.0.5", "d": "httpbin.mesh", "o":
//!    "virtual-outbound:default"}]}]}}}`: tag-first.
//!
//! What the names are follows `VIPOutbounds` (`pkg/xds/topology/dns.go`):
//! a service entry answers as `<service>.mesh` (the service is the
//! `kuma.io/service` tag of its first outbound) and, when it has
//! underscores, in the form with dots; a host or fqdn entry answers as
//! written if it is a DNS name (`govalidator.IsDNSName`: an address is
//! not). An entry without an address is not answered. A name that two
//! entries give answers with the later one's address, in Kuma's order of
//! entries (by type: service, host, fqdn; then by name): kuma-cp's DNS
//! generator builds its table so (`vips[domain] = addresses` in
//! `pkg/xds/generator/dns_generator.go`), which makes a virtual outbound's
//! `httpbin.mesh` win over the service `httpbin`'s.
//!
//! Not followed: that generator also answers AAAA with an IPv4 VIP's
//! IPv6 form for a proxy with IPv6 redirection; a node-wide server cannot
//! know which client is such a proxy, so a name known for one family is
//! NODATA for the other, as for every other name.

use std::{
    collections::{BTreeMap, HashMap, hash_map::Entry},
    net::IpAddr,
};

use serde::Deserialize;

/// The zone Kuma's data plane answers service entries in, unless kuma-cp
/// is set to another (`dns_server.domain`).
pub const KUMA_ZONE: &str = "mesh";

/// The tag that names a service (`mesh_proto.ServiceTag`).
const SERVICE_TAG: &str = "kuma.io/service";

/// What kind of entry gave a name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum EntryKind {
    /// A service (type 0, origin `svc`): `<service>.mesh`.
    Service,
    /// An external service's host or a Kubernetes host (type 1).
    Host,
    /// A virtual outbound's or a gateway's domain (type 2).
    Fqdn,
}

/// One name Kuma's data plane answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KumaName {
    /// Fully qualified, without a trailing dot, as written.
    pub name: String,
    pub address: IpAddr,
    pub kind: EntryKind,
}

/// An entry that gives no name, and why: logged as a warning, never a
/// reason to refuse the list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    /// The entry's key as written (`0:backend`, or the service of a
    /// tag-first entry).
    pub entry: String,
    pub reason: String,
}

/// A VIP list, read.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct VipList {
    /// Each name once (compared without case), in Kuma's order of entries.
    pub names: Vec<KumaName>,
    pub skipped: Vec<Skipped>,
}

/// Why a VIP list cannot be read: the whole list is refused, as kuma-cp
/// refuses it, and whoever had its names keeps them.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KumaVipsError {
    /// Not JSON, or not the JSON of any of the four shapes.
    #[error("line {line}, column {column}: {message}")]
    Json {
        line: usize,
        column: usize,
        message: String,
    },
    /// Valid JSON of no known shape (values neither all addresses nor all
    /// entries with outbounds).
    #[error("not a Kuma VIP list: {0}")]
    Shape(&'static str),
    /// kuma-cp refuses a list with such an entry (`NewVirtualOutboundView`).
    #[error("entry {0:?} has no outbounds")]
    NoOutbounds(String),
}

impl From<serde_json::Error> for KumaVipsError {
    fn from(error: serde_json::Error) -> Self {
        KumaVipsError::Json {
            line: error.line(),
            column: error.column(),
            message: error.to_string(),
        }
    }
}

/// Shape 3's value (`VirtualOutbound`). Go's JSON matches field names
/// without regard to case; kuma-cp writes these spellings.
#[derive(Deserialize)]
struct VirtualOutbound {
    #[serde(default, alias = "Address")]
    address: String,
    #[serde(default, alias = "Outbounds")]
    outbounds: Vec<OutboundEntry>,
}

#[derive(Deserialize)]
struct OutboundEntry {
    #[serde(rename = "TagSet", alias = "tagSet", alias = "tagset", default)]
    tag_set: BTreeMap<String, String>,
}

/// Shape 4 (`TagFirstVirtualOutboundView`).
#[derive(Deserialize)]
struct TagFirst {
    v: BTreeMap<String, TagFirstOutbound>,
}

#[derive(Deserialize)]
struct TagFirstOutbound {
    #[serde(default)]
    oe: Vec<TagFirstEntry>,
}

#[derive(Deserialize)]
struct TagFirstEntry {
    #[serde(default)]
    ap: Vec<AddressPort>,
}

#[derive(Deserialize)]
struct AddressPort {
    a: Option<String>,
    d: Option<String>,
    o: Option<String>,
}

/// One hostname entry, whichever shape it came from.
struct HostnameEntry {
    kind: Result<EntryKind, u64>,
    /// The service (service entries) or the host or domain.
    name: String,
    address: String,
    /// The key as written, for warnings.
    key: String,
}

/// Reads a VIP list whose services answer in `domain` (Kuma's default,
/// [`KUMA_ZONE`], or kuma-cp's `dns_server.domain`). An empty text is an
/// empty list, as kuma-cp reads an empty `config`.
pub fn parse(text: &str, domain: &str) -> Result<VipList, KumaVipsError> {
    if text.trim().is_empty() {
        return Ok(VipList::default());
    }
    let document: serde_json::Value = serde_json::from_str(text)?;
    let serde_json::Value::Object(object) = &document else {
        return Err(KumaVipsError::Shape("not a JSON object"));
    };
    let mut entries = if object.get("v").is_some_and(|v| v.is_object()) {
        tag_first(serde_json::from_str(text)?)
    } else if object.values().all(|value| value.is_string()) {
        legacy(serde_json::from_str(text)?)
    } else if object.values().all(|value| value.is_object()) {
        with_outbounds(serde_json::from_str(text)?)?
    } else {
        return Err(KumaVipsError::Shape(
            "values are neither all addresses nor all entries with outbounds",
        ));
    };
    // Kuma's order (`HostnameEntries`): by type, then by name; stable, so
    // a tag-first service's addresses stay in the order written.
    entries.sort_by(|a, b| (a.kind, &a.name).cmp(&(b.kind, &b.name)));
    Ok(names_of(entries, domain))
}

/// Shapes 1 and 2: kuma-cp reads every key as `<type>:<name>` if every
/// key is so, else every key as a service.
fn legacy(map: BTreeMap<String, String>) -> Vec<HostnameEntry> {
    let typed = map.keys().all(|key| typed_key(key).is_some());
    map.into_iter()
        .map(|(key, address)| {
            let (kind, name) = match typed.then(|| typed_key(&key)).flatten() {
                Some((kind, name)) => (kind, name.to_string()),
                None => (Ok(EntryKind::Service), key.clone()),
            };
            HostnameEntry {
                kind,
                name,
                address,
                key,
            }
        })
        .collect()
}

/// Shape 3.
fn with_outbounds(
    map: BTreeMap<String, VirtualOutbound>,
) -> Result<Vec<HostnameEntry>, KumaVipsError> {
    let mut entries = Vec::with_capacity(map.len());
    for (key, outbound) in map {
        let Some((kind, name)) = typed_key(&key) else {
            return Err(KumaVipsError::Shape(
                "an entry with outbounds has a key that is not <type>:<name>",
            ));
        };
        let Some(first) = outbound.outbounds.first() else {
            return Err(KumaVipsError::NoOutbounds(key));
        };
        // A service answers by its first outbound's service tag.
        let name = match kind {
            Ok(EntryKind::Service) => first
                .tag_set
                .get(SERVICE_TAG)
                .cloned()
                .unwrap_or_else(|| name.to_string()),
            _ => name.to_string(),
        };
        entries.push(HostnameEntry {
            kind,
            name,
            address: outbound.address,
            key,
        });
    }
    Ok(entries)
}

/// Shape 4, as `ToVirtualOutboundView` reads it: each address of each
/// outbound is an entry, its type from its origin; the first address of an
/// entry (type and name) is its address, later ones only add outbounds.
fn tag_first(view: TagFirst) -> Vec<HostnameEntry> {
    let mut entries = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for (service, outbound) in view.v {
        for address in outbound.oe.into_iter().flat_map(|entry| entry.ap) {
            let origin = address.o.unwrap_or_default();
            let kind = kind_of_origin(&origin);
            let written = address.a.unwrap_or_default();
            let name = match kind {
                EntryKind::Service => service.clone(),
                EntryKind::Host | EntryKind::Fqdn => address.d.unwrap_or_else(|| written.clone()),
            };
            if !seen.insert((kind, name.clone())) {
                continue;
            }
            entries.push(HostnameEntry {
                kind: Ok(kind),
                name,
                address: written,
                key: service.clone(),
            });
        }
    }
    entries
}

/// `originToEntryType`.
fn kind_of_origin(origin: &str) -> EntryKind {
    if origin == "svc" {
        EntryKind::Service
    } else if origin == "k8s" || origin.starts_with("external-service:") {
        EntryKind::Host
    } else if origin.starts_with("virtual-outbound:") || origin.starts_with("mesh-gateway:") {
        EntryKind::Fqdn
    } else {
        EntryKind::Service
    }
}

/// `<type>:<name>` as `HostnameEntry.UnmarshalText` reads it (`%v:%s`):
/// the type, known or not (`Err(type)`), and the name.
fn typed_key(key: &str) -> Option<(Result<EntryKind, u64>, &str)> {
    let (number, name) = key.split_once(':')?;
    if number.is_empty() || !number.bytes().all(|b| b.is_ascii_digit()) || name.is_empty() {
        return None;
    }
    let kind = match number.parse::<u64>().ok()? {
        0 => Ok(EntryKind::Service),
        1 => Ok(EntryKind::Host),
        2 => Ok(EntryKind::Fqdn),
        other => Err(other),
    };
    Some((kind, name))
}

/// The names each entry answers as (`VIPOutbounds`), each once: the
/// last entry to give a name wins.
fn names_of(entries: Vec<HostnameEntry>, domain: &str) -> VipList {
    let mut list = VipList::default();
    let mut at = HashMap::<String, usize>::new();
    let mut add = |list: &mut VipList, name: String, address, kind| {
        let named = KumaName {
            name,
            address,
            kind,
        };
        match at.entry(named.name.to_ascii_lowercase()) {
            Entry::Occupied(i) => list.names[*i.get()] = named,
            Entry::Vacant(slot) => {
                slot.insert(list.names.len());
                list.names.push(named);
            }
        }
    };
    for entry in entries {
        let skip = |reason: String| Skipped {
            entry: entry.key.clone(),
            reason,
        };
        let kind = match entry.kind {
            Ok(kind) => kind,
            Err(other) => {
                list.skipped
                    .push(skip(format!("unknown entry type {other}")));
                continue;
            }
        };
        if entry.address.is_empty() {
            // Not an error: kuma-cp's data plane skips these too.
            continue;
        }
        let Ok(address) = entry.address.parse::<IpAddr>() else {
            list.skipped
                .push(skip(format!("{:?} is not an IP address", entry.address)));
            continue;
        };
        match kind {
            EntryKind::Service => {
                let name = format!("{}.{domain}", entry.name);
                let dotted = format!("{}.{domain}", entry.name.replace('_', "."));
                let distinct = dotted != name;
                add(&mut list, name, address, kind);
                if distinct {
                    add(&mut list, dotted, address, kind);
                }
            }
            EntryKind::Host | EntryKind::Fqdn => {
                if !is_dns_name(&entry.name) {
                    // A Kubernetes host named by its ClusterIP, typically.
                    continue;
                }
                let name = entry.name.strip_suffix('.').unwrap_or(&entry.name);
                add(&mut list, name.to_string(), address, kind);
            }
        }
    }
    list
}

/// `govalidator.IsDNSName`: labels of letters, digits, `_` and `-` (not
/// first), at most 63 bytes each, 255 in all, a trailing dot allowed; and
/// not an IP address.
pub fn is_dns_name(text: &str) -> bool {
    if text.is_empty() || text.replace('.', "").len() > 255 || text.parse::<IpAddr>().is_ok() {
        return false;
    }
    let text = text.strip_suffix('.').unwrap_or(text);
    text.split('.').all(|label| {
        let bytes = label.as_bytes();
        !bytes.is_empty()
            && bytes.len() <= 63
            && bytes[0] != b'-'
            && bytes
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || *b == b'_' || *b == b'-')
    })
}

#[cfg(test)]
mod tests;
