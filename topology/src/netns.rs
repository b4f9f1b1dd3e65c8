//! A network namespace owned by a value.

use std::{ffi::OsStr, fs::File, os::fd::AsRawFd, path::Path, process::Command, thread};

use anyhow::{Context as _, bail};

/// A network namespace (an `ip netns` one, under /run/netns), deleted on
/// drop if this value created it.
pub struct Netns {
    /// Its `ip netns` name.
    pub name: String,
    owned: bool,
}

impl Netns {
    /// Creates a namespace with its loopback up, to be deleted on drop.
    pub fn create(name: impl Into<String>) -> anyhow::Result<Self> {
        let name = name.into();
        crate::run("ip", &["netns", "add", &name])?;
        let netns = Self { name, owned: true };
        netns.ip(&["link", "set", "lo", "up"])?;
        Ok(netns)
    }

    /// An existing namespace, left alone on drop.
    pub fn existing(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            owned: false,
        }
    }

    /// Deletes the namespace `name` if there is one: what a run that was
    /// killed left behind, for callers whose names are fixed.
    pub fn delete_leftover(name: &str) {
        crate::ip_quietly(None, &["netns", "delete", name]);
    }

    /// `ip -n <ns> ARGS`.
    pub fn ip(&self, args: &[&str]) -> anyhow::Result<String> {
        crate::ip(Some(&self.name), args)
    }

    /// Sets the namespace's kernel parameters, each `KEY=VALUE`
    /// (`sysctl -qw` inside it); fails with sysctl's output.
    pub fn sysctl(&self, settings: &[&str]) -> anyhow::Result<()> {
        let mut args = vec!["netns", "exec", &self.name, "sysctl", "-qw"];
        args.extend_from_slice(settings);
        crate::run("ip", &args).map(drop)
    }

    /// A command that runs `program` inside the namespace (`ip netns exec`).
    pub fn command(&self, program: impl AsRef<OsStr>) -> Command {
        let mut command = Command::new("ip");
        command.args(["netns", "exec", &self.name]).arg(program);
        command
    }

    /// A command that runs `program` in the namespace's network only, with
    /// the host's mounts: unlike `ip netns exec`, which mounts a sysfs of
    /// its own, the program sees the host's bpffs and its pins.
    pub fn nsenter(&self, program: impl AsRef<OsStr>) -> Command {
        let mut command = Command::new("nsenter");
        command
            .arg(format!("--net=/run/netns/{}", self.name))
            .arg(program);
        command
    }

    /// `GET path` over HTTP/1.1 to `addr` from this namespace: the status
    /// line and the body.
    pub fn http_get(&self, addr: &str, path: &str) -> anyhow::Result<(String, String)> {
        use std::io::{Read as _, Write as _};
        let (addr, path) = (addr.to_string(), path.to_string());
        self.run(move || {
            let mut stream = std::net::TcpStream::connect(&addr)?;
            stream.set_read_timeout(Some(std::time::Duration::from_secs(5)))?;
            write!(
                stream,
                "GET {path} HTTP/1.1\r\nHost: meshdns\r\nConnection: close\r\n\r\n"
            )?;
            let mut response = String::new();
            stream.read_to_string(&mut response)?;
            let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
            Ok((
                head.lines().next().unwrap_or_default().to_string(),
                body.to_string(),
            ))
        })
    }

    /// Runs `f` on a thread that has entered the namespace, and returns its
    /// result. The calling thread's namespace does not change.
    pub fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> anyhow::Result<T> + Send + 'static,
    ) -> anyhow::Result<T> {
        self.spawn(f)
            .join()
            .map_err(|_| anyhow::anyhow!("thread in namespace panicked"))?
    }

    /// Starts `f` on a thread that has entered the namespace.
    pub fn spawn<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> anyhow::Result<T> + Send + 'static,
    ) -> thread::JoinHandle<anyhow::Result<T>> {
        let path = Path::new("/run/netns").join(&self.name);
        thread::spawn(move || {
            let file = File::open(&path).with_context(|| format!("opening {}", path.display()))?;
            // SAFETY: a valid namespace fd; setns affects only this thread.
            if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                bail!(
                    "setns {}: {}",
                    path.display(),
                    std::io::Error::last_os_error()
                );
            }
            f()
        })
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        if !self.owned {
            return;
        }
        // Deleting the namespace also deletes the veth end inside it, and
        // with it the peer.
        crate::ip_quietly(None, &["netns", "delete", &self.name]);
    }
}
