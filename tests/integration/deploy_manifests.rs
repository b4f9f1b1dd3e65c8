//! The deployment files (`deploy/kubernetes/*.yaml`, `deploy/systemd/
//! meshdns.service`) agree with the binary they run: every flag is one
//! `meshdns run --help` lists, the probes ask the metrics listener for
//! `/healthz` and `/readyz`, bpffs, the state folder and the services
//! ConfigMap are mounted where the flags point, and both grant exactly one
//! capability set.
//!
//! That set is proven, not guessed: the agent, run with exactly the
//! DaemonSet's capabilities (as uid 0, through `setpriv`), attaches in auto
//! mode, pins, binds port 53 and its metrics port, becomes ready and answers
//! `dig` from the XDP fast path, and after a restart takes its pinned link
//! over; with any one capability removed it fails to start.

use std::{
    collections::{BTreeMap, BTreeSet},
    fs::{self, File},
    net::Ipv4Addr,
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Stdio},
    time::{Duration, Instant},
};

use meshdns_common::Counter;
use meshdns_tests::lab::{Agent, Lab, sh};
use serde_json::Value;

pub(crate) fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy")
}

// ---- the Kubernetes manifests ----

/// Every document of every `deploy/kubernetes/*.yaml`.
pub(crate) fn manifests() -> Vec<Value> {
    let dir = deploy_dir().join("kubernetes");
    let mut docs = Vec::new();
    for entry in fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yaml") {
            let text = fs::read_to_string(&path).unwrap();
            let values: Vec<Value> = serde_saphyr::from_multiple(&text)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            docs.extend(values);
        }
    }
    docs
}

/// The one manifest of `kind` named `name`.
fn manifest(kind: &str, name: &str) -> Value {
    let found: Vec<Value> = manifests()
        .into_iter()
        .filter(|m| m["kind"] == kind && m["metadata"]["name"] == name)
        .collect();
    assert_eq!(found.len(), 1, "want one {kind} {name}, found {found:?}");
    found.into_iter().next().unwrap()
}

fn daemonset() -> Value {
    manifest("DaemonSet", "meshdns")
}

fn container() -> Value {
    let pod = &daemonset()["spec"]["template"]["spec"];
    let containers = pod["containers"].as_array().unwrap();
    assert_eq!(containers.len(), 1, "one container: the agent");
    containers[0].clone()
}

fn str_of(value: &Value) -> &str {
    value
        .as_str()
        .unwrap_or_else(|| panic!("not a string: {value:?}"))
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .unwrap_or_else(|| panic!("not a list: {value:?}"))
        .iter()
        .map(|v| str_of(v).to_string())
        .collect()
}

/// The container's args, which must be `run` and its flags.
fn container_args() -> Vec<String> {
    let args = strings(&container()["args"]);
    assert_eq!(args.first().map(String::as_str), Some("run"), "{args:?}");
    args[1..].to_vec()
}

/// `--name=value`, `--name value` and `--name` as (name, value) pairs;
/// words that are not flags (such as systemd's `$MESHDNS_ARGS`) are skipped.
fn flags(args: &[String]) -> Vec<(String, Option<String>)> {
    let mut out = Vec::new();
    let mut words = args.iter().peekable();
    while let Some(word) = words.next() {
        let Some(flag) = word.strip_prefix("--") else {
            continue;
        };
        let (name, value) = match flag.split_once('=') {
            Some((name, value)) => (name, Some(value.to_string())),
            None => match words.peek() {
                Some(next) if !next.starts_with('-') && !next.starts_with('$') => {
                    (flag, words.next().cloned())
                }
                _ => (flag, None),
            },
        };
        out.push((format!("--{name}"), value));
    }
    out
}

/// The DaemonSet's pin folder: `--pin-dir`, else `MESHDNS_PIN_DIR` from
/// the container's environment, else the default.
fn daemonset_pin_dir() -> String {
    let args = container_args();
    if flags(&args).iter().any(|(name, _)| name == "--pin-dir") {
        return flag_or(&args, "--pin-dir", DEFAULT_PIN_DIR);
    }
    container()["env"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|e| e["name"] == "MESHDNS_PIN_DIR")
        .map_or(DEFAULT_PIN_DIR.to_string(), |e| {
            str_of(&e["value"]).to_string()
        })
}

/// The value of `--name` in `args`, or `default` when absent.
fn flag_or(args: &[String], name: &str, default: &str) -> String {
    flags(args)
        .into_iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.unwrap_or_else(|| panic!("{name} has no value")))
        .unwrap_or_else(|| default.to_string())
}

fn port_of(addr: &str) -> u16 {
    addr.rsplit_once(':')
        .and_then(|(_, port)| port.parse().ok())
        .unwrap_or_else(|| panic!("no port in {addr}"))
}

/// The container port a probe names, by number or by port name.
fn probe_port(probe: &Value) -> u16 {
    let port = &probe["httpGet"]["port"];
    if let Some(number) = port.as_u64() {
        return number as u16;
    }
    let name = str_of(port);
    container()["ports"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == name)
        .and_then(|p| p["containerPort"].as_u64())
        .unwrap_or_else(|| panic!("no container port named {name}")) as u16
}

/// The volume mounted at a container path, with its mount.
fn volume_for_mount(mount_path: &str) -> (Value, Value) {
    let mount = container()["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["mountPath"] == mount_path)
        .cloned()
        .unwrap_or_else(|| panic!("nothing mounted at {mount_path}"));
    let volume = daemonset()["spec"]["template"]["spec"]["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == mount["name"])
        .cloned()
        .unwrap_or_else(|| panic!("no volume {:?}", mount["name"]));
    (volume, mount)
}

/// The mount whose volume is the host folder `host_path`.
fn mount_of_host_path(host_path: &str) -> Value {
    let volumes = daemonset()["spec"]["template"]["spec"]["volumes"].clone();
    let volume = volumes
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["hostPath"]["path"] == host_path)
        .cloned()
        .unwrap_or_else(|| panic!("no hostPath volume for {host_path}"));
    container()["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == volume["name"])
        .cloned()
        .unwrap_or_else(|| panic!("hostPath {host_path} is not mounted"))
}

/// The capabilities the DaemonSet adds, as Kubernetes names them (`BPF`).
fn daemonset_capabilities() -> BTreeSet<String> {
    strings(&container()["securityContext"]["capabilities"]["add"])
        .into_iter()
        .collect()
}

// ---- the systemd unit ----

/// The unit's `Key=value` lines (sections ignored; keys may repeat).
fn unit() -> BTreeMap<String, Vec<String>> {
    let text = fs::read_to_string(deploy_dir().join("systemd/meshdns.service")).unwrap();
    let mut keys: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for line in text.lines().map(str::trim) {
        if line.starts_with('#') || line.starts_with('[') {
            continue;
        }
        if let Some((key, value)) = line.split_once('=') {
            keys.entry(key.trim().to_string())
                .or_default()
                .push(value.trim().to_string());
        }
    }
    keys
}

fn unit_value(key: &str) -> String {
    let values = unit().remove(key).unwrap_or_default();
    assert_eq!(values.len(), 1, "one {key}= in the unit: {values:?}");
    values[0].clone()
}

/// ExecStart's flags, after `/usr/local/bin/meshdns run`.
fn exec_start_args() -> Vec<String> {
    let words: Vec<String> = unit_value("ExecStart")
        .split_whitespace()
        .map(String::from)
        .collect();
    assert_eq!(words[..2], ["/usr/local/bin/meshdns", "run"], "{words:?}");
    words[2..].to_vec()
}

// ---- the binary ----

/// The flags `meshdns run --help` lists.
fn run_flags() -> BTreeSet<String> {
    let output = Command::new(Agent::binary().unwrap())
        .args(["run", "--help"])
        .output()
        .unwrap();
    assert!(output.status.success());
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .filter(|word| word.starts_with("--"))
        .map(|word| word.trim_end_matches(',').to_string())
        .collect()
}

/// Where `meshdns run` pins, keeps state and serves metrics by default.
const DEFAULT_PIN_DIR: &str = "/sys/fs/bpf/meshdns";
const DEFAULT_STATE_DIR: &str = "/var/lib/meshdns";
const DEFAULT_METRICS_ADDR: &str = "127.0.0.1:9153";

#[test]
fn every_flag_in_the_daemonset_and_the_unit_is_one_meshdns_run_knows() {
    let known = run_flags();
    assert!(
        known.contains("--iface") && known.contains("--pin-dir"),
        "{known:?}"
    );
    for (source, args) in [
        ("DaemonSet", container_args()),
        ("meshdns.service", exec_start_args()),
    ] {
        let given = flags(&args);
        assert!(!given.is_empty(), "{source}: no flags");
        for (flag, _) in given {
            assert!(known.contains(&flag), "{source}: meshdns run has no {flag}");
        }
    }
}

#[test]
fn every_variable_the_daemonset_args_use_is_set_and_iface_comes_from_the_configmap() {
    let env = container()["env"].as_array().unwrap().clone();
    let defined: BTreeSet<&str> = env.iter().map(|e| str_of(&e["name"])).collect();
    for arg in container_args() {
        let mut rest = arg.as_str();
        while let Some(start) = rest.find("$(") {
            let end = rest[start..].find(')').expect("unclosed $(") + start;
            let name = &rest[start + 2..end];
            assert!(defined.contains(name), "{arg}: {name} is not in env");
            rest = &rest[end..];
        }
    }
    // The interface is set in one place: a key of a ConfigMap in the set.
    let iface = flag_or(&container_args(), "--iface", "");
    let var = iface
        .strip_prefix("$(")
        .and_then(|v| v.strip_suffix(')'))
        .unwrap_or_else(|| panic!("--iface={iface}: not from the environment"));
    let source = &env.iter().find(|e| e["name"] == var).unwrap()["valueFrom"]["configMapKeyRef"];
    let configmap = manifest("ConfigMap", str_of(&source["name"]));
    let value = str_of(&configmap["data"][str_of(&source["key"])]);
    assert!(!value.is_empty() && !value.contains(char::is_whitespace));
}

#[test]
fn probes_ask_the_metrics_listener_for_healthz_and_readyz() {
    let container = container();
    let metrics = port_of(&flag_or(
        &container_args(),
        "--metrics-addr",
        DEFAULT_METRICS_ADDR,
    ));
    for (probe, path) in [("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")] {
        let probe = &container[probe];
        assert_eq!(str_of(&probe["httpGet"]["path"]), path);
        assert_eq!(probe_port(probe), metrics, "{path} on the metrics port");
    }
    // Kubelet reaches a hostNetwork pod at the node's IP: a metrics
    // listener on loopback (the default) would fail every probe.
    let addr = flag_or(&container_args(), "--metrics-addr", DEFAULT_METRICS_ADDR);
    assert!(
        !addr.starts_with("127.") && !addr.starts_with("[::1]"),
        "{addr}"
    );
    assert_eq!(daemonset()["spec"]["template"]["spec"]["hostNetwork"], true);
}

#[test]
fn the_container_declares_dns_on_53_udp_and_tcp_and_the_metrics_port() {
    let metrics = port_of(&flag_or(
        &container_args(),
        "--metrics-addr",
        DEFAULT_METRICS_ADDR,
    ));
    let declared: BTreeSet<(u64, String)> = container()["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let protocol = p["protocol"].as_str().unwrap_or("TCP").to_string();
            (p["containerPort"].as_u64().unwrap(), protocol)
        })
        .collect();
    for want in [
        (53, "UDP".to_string()),
        (53, "TCP".to_string()),
        (u64::from(metrics), "TCP".to_string()),
    ] {
        assert!(declared.contains(&want), "{want:?} not in {declared:?}");
    }
}

#[test]
fn bpffs_and_the_state_folder_are_host_folders_mounted_where_the_flags_point() {
    let args = container_args();
    let pin_dir = daemonset_pin_dir();
    let bpffs = mount_of_host_path("/sys/fs/bpf");
    assert!(
        Path::new(&pin_dir).starts_with(str_of(&bpffs["mountPath"])),
        "--pin-dir={pin_dir} is not on the host's bpffs mount {bpffs:?}"
    );
    let state_dir = flag_or(&args, "--state-dir", DEFAULT_STATE_DIR);
    let state = mount_of_host_path("/var/lib/meshdns");
    assert!(
        Path::new(&state_dir).starts_with(str_of(&state["mountPath"])),
        "--state-dir={state_dir} is not on the host's state folder {state:?}"
    );
    for mount in [bpffs, state] {
        assert_ne!(mount["readOnly"], true, "{mount:?}");
    }
}

#[test]
fn meshdns_run_in_the_container_finds_the_agents_pins_without_a_flag() {
    // `kubectl exec ds/meshdns -- meshdns status` gets the container's
    // environment, not the agent's arguments: the pins must come from
    // MESHDNS_PIN_DIR, which the binary must read.
    let args = container_args();
    assert!(
        !flags(&args).iter().any(|(name, _)| name == "--pin-dir"),
        "--pin-dir in the args: `meshdns status` in the container would not see it"
    );
    assert_ne!(
        daemonset_pin_dir(),
        DEFAULT_PIN_DIR,
        "MESHDNS_PIN_DIR is not set"
    );
    for command in ["run", "status", "lookup", "dump", "detach"] {
        let help = Command::new(Agent::binary().unwrap())
            .args([command, "--help"])
            .output()
            .unwrap();
        let help = String::from_utf8_lossy(&help.stdout);
        assert!(
            help.contains("env: MESHDNS_PIN_DIR"),
            "meshdns {command} does not read MESHDNS_PIN_DIR:\n{help}"
        );
    }
}

#[test]
fn the_services_configmap_is_mounted_as_the_config_folder_and_holds_a_valid_file() {
    let config = PathBuf::from(flag_or(&container_args(), "--config", ""));
    let folder = config.parent().unwrap().to_str().unwrap();
    let (volume, mount) = volume_for_mount(folder);
    // subPath mounts never see ConfigMap updates; a folder mount does.
    assert!(mount.get("subPath").is_none(), "{mount:?}");
    let configmap = manifest("ConfigMap", str_of(&volume["configMap"]["name"]));
    let key = config.file_name().unwrap().to_str().unwrap();
    let text = str_of(&configmap["data"][key]);
    let parsed = meshdns::config::Config::parse(text);
    assert!(parsed.is_ok(), "{key}: {:?}", parsed.err());
    // Its commented NodeLocal DNSCache-style forwarding and search
    // expansions, uncommented, are a valid file too, with the four zones
    // and the three suffixes they list.
    let lines: Vec<&str> = text.lines().collect();
    let start = lines
        .iter()
        .position(|l| l.trim() == "# forward:")
        .expect("a commented forward: example");
    let example: String = lines[start..]
        .iter()
        .map_while(|l| l.trim_start().strip_prefix("# "))
        .map(|l| format!("{l}\n"))
        .collect();
    let uncommented = format!("{text}{example}");
    let services = meshdns::config::Services::parse(&uncommented)
        .unwrap_or_else(|error| panic!("{example}: {error:?}"));
    let zones: Vec<&str> = services
        .resolver
        .forward
        .iter()
        .map(|z| z.shown())
        .collect();
    assert_eq!(zones, ["cluster.local", "in-addr.arpa", "ip6.arpa", "."]);
    assert!(services.search.is_on(), "{example}");
    assert_eq!(services.search.suffixes.len(), 3, "{example}");
}

/// What the agent needs, shown by the proof below; the manifests and the
/// unit must grant exactly this.
const PROVEN: [&str; 4] = ["BPF", "NET_ADMIN", "NET_BIND_SERVICE", "PERFMON"];

#[test]
fn both_grant_exactly_the_proven_capabilities_and_nothing_privileged() {
    let security = &container()["securityContext"];
    assert_eq!(strings(&security["capabilities"]["drop"]), ["ALL"]);
    let proven: BTreeSet<String> = PROVEN.iter().map(|c| c.to_string()).collect();
    assert_eq!(daemonset_capabilities(), proven);
    assert_ne!(security["privileged"], true);
    assert_eq!(security["allowPrivilegeEscalation"], false);
    let pod = &daemonset()["spec"]["template"]["spec"];
    for shared in ["hostPID", "hostIPC"] {
        assert_ne!(pod[shared], true, "{shared}");
    }

    let with_prefix: BTreeSet<String> = PROVEN.iter().map(|c| format!("CAP_{c}")).collect();
    for key in ["CapabilityBoundingSet", "AmbientCapabilities"] {
        let granted: BTreeSet<String> = unit_value(key)
            .split_whitespace()
            .map(String::from)
            .collect();
        assert_eq!(granted, with_prefix, "{key}");
    }
    assert_eq!(unit_value("NoNewPrivileges"), "yes");
}

#[test]
fn the_unit_provides_the_folders_its_flags_use_and_neither_detaches_on_exit() {
    let args = exec_start_args();
    let state_dir = flag_or(&args, "--state-dir", DEFAULT_STATE_DIR);
    assert_eq!(
        Path::new("/var/lib").join(unit_value("StateDirectory")),
        Path::new(&state_dir)
    );
    // ProtectSystem=strict makes everything else read-only.
    let pin_dir = flag_or(&args, "--pin-dir", DEFAULT_PIN_DIR);
    let writable = unit_value("ReadWritePaths");
    assert!(
        writable
            .split_whitespace()
            .any(|p| Path::new(&pin_dir).starts_with(p)),
        "--pin-dir={pin_dir} not in ReadWritePaths={writable}"
    );
    // Upgrades are gapless because the old agent leaves the program attached.
    for (source, args) in [("DaemonSet", container_args()), ("meshdns.service", args)] {
        assert!(
            flags(&args).iter().all(|(f, _)| f != "--detach-on-exit"),
            "{source} detaches on exit"
        );
    }
}

// ---- the proof ----

/// The numbers of capabilities, by name: `setpriv --list-caps` lists them
/// in order.
fn capability_mask(names: &BTreeSet<String>) -> u64 {
    let list = sh("setpriv", &["--list-caps"]).unwrap();
    let numbers: BTreeMap<String, u32> = list
        .lines()
        .enumerate()
        .map(|(i, name)| (name.trim().to_uppercase(), i as u32))
        .collect();
    names
        .iter()
        .map(|name| 1u64 << numbers[name.as_str()])
        .fold(0, |mask, bit| mask | bit)
}

/// A started agent, stopped on drop so that a failed check leaves none.
struct Running(Child);

impl Running {
    /// SIGTERM, and the exit status.
    fn stop(&mut self) -> ExitStatus {
        // SAFETY: kill has no memory preconditions; setpriv and nsenter
        // exec, so the child is the agent.
        unsafe { libc::kill(self.0.id() as libc::pid_t, libc::SIGTERM) };
        self.0.wait().unwrap()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            self.stop();
        }
    }
}

/// `meshdns run` in the lab's server namespace as uid 0 with exactly
/// `caps` (Kubernetes names) in every set, as the container runtime starts
/// it; its output goes to `log`.
fn start_with_capabilities(
    lab: &Lab,
    config: &Path,
    caps: &BTreeSet<String>,
    log: &Path,
) -> Running {
    // "-all,+bpf,+net_admin,...": nothing but these.
    let set = std::iter::once("-all".to_string())
        .chain(caps.iter().map(|c| format!("+{}", c.to_lowercase())))
        .collect::<Vec<_>>()
        .join(",");
    let output = File::create(log).unwrap();
    lab.server
        .nsenter("setpriv")
        .arg(format!("--inh-caps={set}"))
        .arg(format!("--ambient-caps={set}"))
        .arg(format!("--bounding-set={set}"))
        .arg("--")
        .arg(Agent::binary().unwrap())
        .args(["run", "--iface", &lab.server_if, "--config"])
        .arg(config)
        .arg("--pin-dir")
        .arg(&lab.pin_dir)
        .arg("--state-dir")
        .arg(&lab.state_dir)
        // As the lab's agents: the resolver on loopback (port 53 all the
        // same), and never forwarding beyond the namespace.
        .args(["--listen", "127.0.0.1:53", "--upstream", "127.0.0.1:54"])
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .env("RUST_LIB_BACKTRACE", "0")
        .env("RUST_BACKTRACE", "0")
        .stdout(output.try_clone().unwrap())
        .stderr(output)
        .stdin(Stdio::null())
        .spawn()
        .map(Running)
        .unwrap()
}

/// `GET /readyz` on the default metrics listener in the server namespace.
fn ready(lab: &Lab) -> bool {
    lab.server
        .http_get(DEFAULT_METRICS_ADDR, "/readyz")
        .is_ok_and(|(status, _)| status.starts_with("HTTP/1.1 200"))
}

/// Waits until the agent is ready (`Ok`) or has exited (`Err` with its
/// status), for at most 30 s.
fn ready_or_exit(lab: &Lab, agent: &mut Running, log: &Path) -> Result<(), ExitStatus> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = agent.0.try_wait().unwrap() {
            return Err(status);
        }
        if ready(lab) {
            return Ok(());
        }
        assert!(
            Instant::now() < deadline,
            "neither ready nor exited in 30 s:\n{}",
            fs::read_to_string(log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The first service of the ConfigMap's services file that has an IPv4
/// VIP: its name in the zone, and the VIP.
fn example_name(services: &str) -> (String, Ipv4Addr) {
    let file: Value = serde_saphyr::from_str(services).unwrap();
    let zone = file["zone"].as_str().unwrap_or("mesh");
    for service in file["services"].as_array().unwrap() {
        let vips = service["vips"].as_array().cloned().unwrap_or_default();
        if let Some(v4) = vips.iter().find_map(|v| v.as_str()?.parse().ok()) {
            return (format!("{}.{zone}", str_of(&service["name"])), v4);
        }
    }
    panic!("the example services file has no service with an IPv4 VIP")
}

/// The agent's error and its causes, one line each, and the verifier's
/// verdict if it printed its log: the evidence a reader wants.
fn error_summary(output: &str) -> String {
    let lines: Vec<&str> = output
        .lines()
        .skip_while(|l| !l.starts_with("Error"))
        .collect();
    let verdict = lines
        .iter()
        .position(|l| l.trim_start().starts_with("verification time"))
        .map(|i| lines[i - 1].trim());
    lines
        .iter()
        // Causes are indented a little; the verifier's log much more.
        .filter(|l| !l.trim().is_empty() && l.len() - l.trim_start().len() < 6)
        .map(|l| l.chars().take(120).collect::<String>())
        .chain(verdict.map(|v| format!("verifier: {v}")))
        .map(|l| format!("  {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn the_proven_capabilities_are_enough_and_each_is_necessary() {
    let caps = daemonset_capabilities();
    let (volume, _) = volume_for_mount("/etc/meshdns");
    let services = str_of(
        &manifest("ConfigMap", str_of(&volume["configMap"]["name"]))["data"]["services.yaml"],
    )
    .to_string();
    let (name, vip) = example_name(&services);

    // Enough: attached (auto mode), pinned, listening on 53 and the metrics
    // port, ready, answering from XDP.
    let mut lab = Lab::new().unwrap();
    lab.enable_peer_napi().unwrap();
    let config = lab.write_services(&services);
    let log = lab.state_dir.with_extension("log");
    let mut agent = start_with_capabilities(&lab, &config, &caps, &log);
    let started = ready_or_exit(&lab, &mut agent, &log);
    let output = fs::read_to_string(&log).unwrap();
    assert!(started.is_ok(), "{started:?} with {caps:?}:\n{output}");
    // Started within the set (the bounding set is the runtime's limit),
    // and once ready down to CAP_BPF, which the table updates need.
    let status = fs::read_to_string(format!("/proc/{}/status", agent.0.id())).unwrap();
    let mask = |field: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(field))
            .map(|hex| u64::from_str_radix(hex.trim(), 16).unwrap())
    };
    assert_eq!(mask("CapBnd:"), Some(capability_mask(&caps)), "{status}");
    let bpf: BTreeSet<String> = ["BPF".to_string()].into();
    assert_eq!(mask("CapEff:"), Some(capability_mask(&bpf)), "{status}");
    assert!(output.contains("fast path attached"), "{output}");
    assert!(lab.pin_dir.join("links").join(&lab.server_if).exists());

    let before = lab.fast_path_counters().unwrap();
    assert_eq!(
        lab.dig(&[&name, "A", "+short", "+time=2"]).trim(),
        vip.to_string()
    );
    let moved = lab.fast_path_counters().unwrap().since(&before);
    assert_eq!(moved.get(Counter::AnsweredA), 1, "{moved}");
    // The resolver's port 53 over TCP.
    let tcp = lab
        .server
        .command("dig")
        .args(["@127.0.0.1", "+tcp", "+short", "+tries=1", &name])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&tcp.stdout).trim(), vip.to_string());
    assert!(agent.stop().success());

    // An upgrade: a new agent with the same set takes the pinned link over.
    let mut agent = start_with_capabilities(&lab, &config, &caps, &log);
    let restarted = ready_or_exit(&lab, &mut agent, &log);
    let output = fs::read_to_string(&log).unwrap();
    assert!(restarted.is_ok(), "{restarted:?}:\n{output}");
    assert!(output.contains("took over the pinned link"), "{output}");
    assert_eq!(
        lab.dig(&[&name, "A", "+short", "+time=2"]).trim(),
        vip.to_string()
    );
    assert!(agent.stop().success());
    fs::remove_file(&config).ok();
    fs::remove_file(&log).ok();
    drop(lab);

    // Necessary: without any one of them the agent fails to start.
    for missing in &caps {
        let fewer: BTreeSet<String> = caps.iter().filter(|c| *c != missing).cloned().collect();
        let lab = Lab::new().unwrap();
        let config = lab.write_services(&services);
        let log = lab.state_dir.with_extension("log");
        let mut agent = start_with_capabilities(&lab, &config, &fewer, &log);
        let outcome = ready_or_exit(&lab, &mut agent, &log);
        let output = fs::read_to_string(&log).unwrap();
        eprintln!(
            "without CAP_{missing}: {outcome:?}\n{}",
            error_summary(&output)
        );
        assert!(
            matches!(outcome, Err(status) if !status.success()),
            "the agent started without CAP_{missing}: it is not needed\n{output}"
        );
        // Refused for want of a privilege, not failing for another reason.
        assert!(
            output.contains("Operation not permitted") || output.contains("Permission denied"),
            "without CAP_{missing} the agent failed, but not on a permission:\n{output}"
        );
        fs::remove_file(&config).ok();
        fs::remove_file(&log).ok();
    }
}
