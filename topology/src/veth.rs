//! A veth pair between the host (or a namespace) and a namespace.

use crate::Netns;

/// One end of a veth pair: its interface name and its addresses.
#[derive(Clone, Copy)]
pub struct End<'a> {
    pub iface: &'a str,
    /// Addresses with their prefix length (`198.18.0.1/24`,
    /// `2001:db8::1/64`). IPv6 ones are added without duplicate address
    /// detection, so they are usable at once.
    pub addresses: &'a [&'a str],
}

/// A veth pair, addressed and up; deleted on drop (deleting one end
/// deletes both).
pub struct Veth {
    /// Where the near end is: its namespace (`None`: the host's) and name.
    netns: Option<String>,
    iface: String,
}

impl Veth {
    /// Creates a veth pair with `near` in `near_netns` (`None`: this
    /// process's namespace) and `far` in `far_netns`, gives each end its
    /// addresses and sets both up.
    pub fn create(
        near_netns: Option<&Netns>,
        near: End<'_>,
        far_netns: &Netns,
        far: End<'_>,
    ) -> anyhow::Result<Self> {
        let netns = near_netns.map(|netns| netns.name.as_str());
        crate::ip(
            netns,
            &[
                "link",
                "add",
                near.iface,
                "type",
                "veth",
                "peer",
                "name",
                far.iface,
                "netns",
                &far_netns.name,
            ],
        )?;
        let veth = Self {
            netns: netns.map(str::to_string),
            iface: near.iface.to_string(),
        };
        for (netns, end) in [(netns, near), (Some(far_netns.name.as_str()), far)] {
            for address in end.addresses {
                if address.contains(':') {
                    crate::ip(
                        netns,
                        &["-6", "addr", "add", address, "dev", end.iface, "nodad"],
                    )?;
                } else {
                    crate::ip(netns, &["addr", "add", address, "dev", end.iface])?;
                }
            }
            crate::ip(netns, &["link", "set", end.iface, "up"])?;
        }
        Ok(veth)
    }

    /// Deletes the pair now, and says if that fails (drop does not).
    pub fn delete(mut self) -> anyhow::Result<()> {
        let iface = std::mem::take(&mut self.iface);
        crate::ip(self.netns.as_deref(), &["link", "delete", &iface])?;
        Ok(())
    }

    /// Deletes the veth `iface` of this process's namespace if there is
    /// one: what a run that was killed left behind, for callers whose names
    /// are fixed.
    pub fn delete_leftover(iface: &str) {
        crate::ip_quietly(None, &["link", "delete", iface]);
    }
}

impl Drop for Veth {
    fn drop(&mut self) {
        // Empty once `delete` has deleted it.
        if !self.iface.is_empty() {
            crate::ip_quietly(self.netns.as_deref(), &["link", "delete", &self.iface]);
        }
    }
}
