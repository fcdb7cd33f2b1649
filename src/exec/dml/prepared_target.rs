//! The table a prepared fast-path write names, resolved again only when the catalog or the
//! session's `search_path` changes, and only while it is still the table (and layout) the
//! statement was prepared against: otherwise the statement goes the general way, which plans
//! against whatever the name means now.

use std::sync::{Arc, Mutex};

use datafusion::sql::sqlparser::ast::ObjectName;

use crate::exec::table::UserTable;
use crate::exec::{ExecResult, Session};
use crate::sql::TableName;
use crate::storage::TableRecord;

/// The table as resolved at a catalog epoch under a `search_path`.
type ResolvedTable = (u64, String, Arc<TableRecord>, Arc<UserTable>);

/// The table a prepared write names, as it was when prepared.
#[derive(Debug, Clone)]
pub(super) struct PreparedTarget {
    table: TableName,
    table_id: u64,
    /// ALTER TABLE since (another column count or layout) leaves the statement to the
    /// general path.
    column_count: usize,
    layout_generation: u64,
    resolved: Arc<Mutex<Option<ResolvedTable>>>,
}

impl PreparedTarget {
    pub fn new(name: &ObjectName, record: &TableRecord) -> Option<PreparedTarget> {
        Some(PreparedTarget {
            table: TableName::from_object_name(name).ok()?,
            table_id: record.table_id,
            column_count: record.columns.len(),
            layout_generation: record.layout_generation,
            resolved: Arc::default(),
        })
    }
}

impl Session {
    /// The table `target` names as this session resolves it now, when it is still the table
    /// (and layout) the statement was prepared against; `None` otherwise, and while the
    /// session's transaction block has DDL of its own (not in the committed catalog read here).
    pub(super) fn prepared_table(
        &self,
        target: &PreparedTarget,
    ) -> ExecResult<Option<(Arc<TableRecord>, Arc<UserTable>)>> {
        if !self.pending.catalog_changes().is_empty() {
            return Ok(None);
        }
        let epoch = self.engine.store.catalog_epoch();
        let path = self.setting("search_path")?;
        let mut resolved = target.resolved.lock().expect("prepared target lock");
        if let Some((at, at_path, record, table)) = resolved.as_ref()
            && *at == epoch
            && *at_path == path
        {
            return Ok(Some((record.clone(), table.clone())));
        }
        let Ok(record) = self.table_for_write(&target.table) else {
            return Ok(None);
        };
        if record.table_id != target.table_id
            || record.columns.len() != target.column_count
            || record.layout_generation != target.layout_generation
        {
            return Ok(None);
        }
        let record = Arc::new(record);
        let table = Arc::new(UserTable::new(
            self.engine.store.clone(),
            record.clone(),
            true,
        ));
        *resolved = Some((epoch, path, record.clone(), table.clone()));
        Ok(Some((record, table)))
    }
}
