//! The fast path as the agent runs it: loaded with its pinned maps, filled,
//! attached to every interface (taking over pinned links), and attached
//! again to an interface that went away and came back.

use std::sync::Arc;

use super::{FastPathStep, Options, Result, bpffs};
use crate::{
    fastpath::{self, AttachMode, FastPath, NotServing},
    netif::{self, XdpAttachMode},
    table::Table,
};

/// Loads the fast path with its pinned maps, fills its table and attaches
/// it (taking over a pinned link if there is one).
pub fn attach(options: &Options, mode: AttachMode, table: &Arc<Table>) -> Result<FastPath> {
    bpffs::ensure_bpffs(&options.pins.dir)?;
    let mut fast_path =
        FastPath::load_pinned(&options.pins).map_err(FastPathStep::Load.failed())?;
    let report = fast_path
        .sync(table.clone())
        .map_err(FastPathStep::Fill.failed())?;
    tracing::info!(
        names = table.len(),
        added = report.added,
        updated = report.updated,
        removed = report.removed,
        unchanged = report.unchanged,
        "table loaded from {}",
        options.config.display()
    );
    for iface in &options.ifaces {
        let attachment = fast_path
            .attach_pinned(iface, mode, &options.pins)
            .map_err(FastPathStep::attach(iface).failed())?;
        let (took_over, running) = (attachment.took_over, attachment.mode);
        let shown = XdpAttachMode::name_of(running);
        if !took_over {
            tracing::info!(iface, mode = shown, "fast path attached");
            continue;
        }
        tracing::info!(
            iface,
            mode = shown,
            "fast path attached: took over the pinned link, program replaced in place"
        );
        // The link keeps the mode it was created with, whatever is asked now.
        if let Some(running) = running
            && !mode.allows(running)
        {
            tracing::warn!(
                iface,
                mode = shown,
                asked = ?mode,
                "the pinned link keeps its mode; to change it, `meshdns detach --iface {iface}` and start again (the fast path is off in between)"
            );
        }
    }
    options.pins.remove_stale_maps();
    Ok(fast_path)
}

/// Interfaces whose link went defunct, followed until they come back.
#[derive(Default)]
pub struct Returning {
    /// The interfaces reported missing, to say it once.
    gone: Vec<String>,
}

impl Returning {
    /// Attaches the program again to each interface that went away (its
    /// link is defunct) and has come back: a CNI bridge re-created, a veth
    /// replaced. A link detached on purpose (`meshdns detach`), or an
    /// interface running another program, is left alone.
    pub fn reattach(&mut self, options: &Options, mode: AttachMode, fast_path: &mut FastPath) {
        for iface in &options.ifaces {
            let link = options.pins.link(iface);
            if !matches!(
                fastpath::check_pinned_serving(&link),
                Err(NotServing::InterfaceGone)
            ) {
                continue;
            }
            if netif::index(iface).is_none() {
                if !self.gone.contains(iface) {
                    tracing::warn!(
                        iface,
                        "the interface is gone; the fast path will attach again when it is back"
                    );
                    self.gone.push(iface.clone());
                }
                continue;
            }
            match fast_path.attach_pinned(iface, mode, &options.pins) {
                Ok(attachment) => {
                    tracing::info!(
                        iface,
                        mode = XdpAttachMode::name_of(attachment.mode),
                        "fast path attached again: the interface is back"
                    );
                    self.gone.retain(|g| g != iface);
                }
                Err(error) => tracing::error!(iface, "attaching again: {error}"),
            }
        }
    }
}
