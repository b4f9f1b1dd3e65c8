//! The fast path as the agent runs it: loaded with its pinned maps, its
//! scope set and its table filled, before [`super::interfaces`] attaches
//! it where it serves.

use std::sync::Arc;

use super::scope::ScopeSource;
use super::{FastPathStep, Options, Result, bpffs};
use crate::{fastpath::FastPath, resolver::Resolver, table::Table};

/// Loads the fast path with its pinned maps, gives it the scope of `scope`
/// and `resolver`, and fills its table; attached nowhere yet. The scope
/// comes first: the table's zones turn answering on.
pub fn load(
    options: &Options,
    table: &Arc<Table>,
    scope: &mut ScopeSource,
    resolver: &Resolver,
) -> Result<FastPath> {
    bpffs::ensure_bpffs(&options.pins.dir)?;
    let mut fast_path =
        FastPath::load_pinned(&options.pins).map_err(FastPathStep::Load.failed())?;
    scope
        .apply(resolver, &mut fast_path)
        .map_err(FastPathStep::Scope.failed())?;
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
