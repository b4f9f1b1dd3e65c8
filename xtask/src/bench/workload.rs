//! The bench's workload: the services every target serves, the query files
//! the load generators send, and what each name must answer.

use std::{
    fmt::Write as _,
    fs,
    net::{Ipv4Addr, Ipv6Addr},
    path::{Path, PathBuf},
};

/// The names, the query files, and what each name must answer.
pub struct Workload {
    pub services: PathBuf,
    /// The same services as a JSON document (which the agent reads with a
    /// JSON parser, faster at a million names).
    pub services_json: PathBuf,
    /// `name TYPE [E]` lines for kxdpgun: half with EDNS.
    pub kxdpgun: PathBuf,
    /// `name TYPE` lines for dnsperf.
    pub dnsperf: PathBuf,
    pub unbound_data: String,
    pub knot_zone: PathBuf,
    pub queries: usize,
    /// A sample of (name, IPv4, IPv6 if any) to check answers with.
    pub sample: Vec<(String, Ipv4Addr, Option<Ipv6Addr>)>,
    /// Forwarded names (`fwd-N.test.`): the upstream's local-data, the
    /// query files, and a sample.
    pub upstream_data: String,
    pub forward_kxdpgun: PathBuf,
    pub forward_dnsperf: PathBuf,
    pub forward_sample: Vec<(String, Ipv4Addr, Option<Ipv6Addr>)>,
}

impl Workload {
    pub fn generate(names: usize, dir: &Path) -> anyhow::Result<Self> {
        let mut services = String::from("zone: mesh\nttl: 60\nservices:\n");
        let mut services_json = String::from(r#"{"zone": "mesh", "ttl": 60, "services": ["#);
        let mut kxdpgun = String::new();
        let mut dnsperf = String::new();
        let mut unbound_data = String::from(
            "  local-data: 'mesh. 3600 IN SOA ns.mesh. hostmaster.mesh. 1 3600 600 86400 30'\n",
        );
        let mut zone = String::from(
            "$ORIGIN mesh.\n$TTL 60\n@ 3600 SOA ns.mesh. hostmaster.mesh. 1 3600 600 86400 30\n@ NS ns\nns A 198.18.0.1\n",
        );
        let mut sample = Vec::new();
        for i in 0..names {
            let name = format!("svc-{i}.ns-{}", i % 97);
            let [_, b, c, d] = (i as u32).to_be_bytes();
            let v4 = Ipv4Addr::new(240, b, c, d);
            // Every other service is IPv4-only: half the AAAA queries are NODATA.
            let v6 = (i % 2 == 0)
                .then(|| Ipv6Addr::new(0xfd00, 0xfd00, 0, 0, 0, 0, (i >> 16) as u16, i as u16));
            let vips: Vec<String> = std::iter::once(v4.to_string())
                .chain(v6.map(|v6| v6.to_string()))
                .collect();
            let comma = if i == 0 { "" } else { "," };
            write!(
                services_json,
                "{comma}\n  {{\"name\": \"{name}\", \"vips\": {}}}",
                serde_json::to_string(&vips)?
            )?;
            match v6 {
                Some(v6) => {
                    writeln!(services, "  - name: {name}\n    vips: [{v4}, \"{v6}\"]")?;
                    writeln!(unbound_data, "  local-data: '{name}.mesh. 60 IN AAAA {v6}'")?;
                    writeln!(zone, "{name} AAAA {v6}")?;
                }
                None => writeln!(services, "  - name: {name}\n    vips: [{v4}]")?,
            }
            writeln!(unbound_data, "  local-data: '{name}.mesh. 60 IN A {v4}'")?;
            writeln!(zone, "{name} A {v4}")?;
            // Some clients send mixed case (DNS 0x20).
            let asked = if i % 4 == 3 {
                name.to_uppercase()
            } else {
                name.clone()
            };
            for qtype in ["A", "AAAA"] {
                let edns = if i % 2 == 0 { " E" } else { "" };
                writeln!(kxdpgun, "{asked}.mesh {qtype}{edns}")?;
                writeln!(dnsperf, "{asked}.mesh {qtype}")?;
            }
            if i % (names / 20).max(1) == 0 {
                sample.push((format!("{asked}.mesh"), v4, v6));
            }
        }
        // Names outside the mesh, for the cache-hit targets: A records only.
        let mut upstream_data = String::from(
            "  local-data: 'test. 3600 IN SOA ns.test. hostmaster.test. 1 3600 600 86400 60'\n",
        );
        let (mut forward_kxdpgun, mut forward_dnsperf, mut forward_sample) =
            (String::new(), String::new(), vec![]);
        for i in 0..names {
            let [_, b, c, d] = (i as u32).to_be_bytes();
            let v4 = Ipv4Addr::new(198, 19, c, d.wrapping_add(b));
            let name = format!("fwd-{i}.test");
            writeln!(upstream_data, "  local-data: '{name}. 3600 IN A {v4}'")?;
            let edns = if i % 2 == 0 { " E" } else { "" };
            writeln!(forward_kxdpgun, "{name} A{edns}")?;
            writeln!(forward_dnsperf, "{name} A")?;
            if i % (names / 20).max(1) == 0 {
                forward_sample.push((name, v4, None));
            }
        }
        let path = |name: &str| dir.join(name);
        fs::write(path("forward.kxdpgun"), forward_kxdpgun)?;
        fs::write(path("forward.dnsperf"), forward_dnsperf)?;
        fs::write(path("services.yaml"), services)?;
        services_json.push_str("\n]}\n");
        fs::write(path("services.json"), services_json)?;
        fs::write(path("queries.kxdpgun"), kxdpgun)?;
        fs::write(path("queries.dnsperf"), dnsperf)?;
        fs::write(path("mesh.zone"), zone)?;
        Ok(Self {
            services: path("services.yaml"),
            services_json: path("services.json"),
            kxdpgun: path("queries.kxdpgun"),
            dnsperf: path("queries.dnsperf"),
            unbound_data,
            knot_zone: path("mesh.zone"),
            queries: 2 * names,
            sample,
            upstream_data,
            forward_kxdpgun: path("forward.kxdpgun"),
            forward_dnsperf: path("forward.dnsperf"),
            forward_sample,
        })
    }
}
