//! The fast path as the agent runs it: loaded with its pinned maps and
//! filled, before [`super::interfaces`] attaches it where it serves.

use std::sync::Arc;

use super::{FastPathStep, Options, Result, bpffs};
use crate::{fastpath::FastPath, table::Table};

/// Loads the fast path with its pinned maps and fills its table; attached
/// nowhere yet.
pub fn load(options: &Options, table: &Arc<Table>) -> Result<FastPath> {
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
    Ok(fast_path)
}
