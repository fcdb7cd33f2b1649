//! What a row write needs to know about its table besides the rows: the layout generation
//! the writer encoded against, the indexes to keep in step and the foreign keys the table
//! takes part in. Reading them is three catalog scans and their decoding, inside the apply
//! lock every writer waits on, and they change only with DDL: so they are kept per table
//! between commands and forgotten whenever a command writes the catalog.
//!
//! Only commands applied under the apply lock use and fill the cache (a dry run may race
//! with an apply), and a command that has written the catalog itself reads it afresh: the
//! cache holds the committed catalog, not the command's own changes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::apply_context::ApplyContext;
use super::foreign_keys::{self, Links};
use super::indexes::{self, IndexRecord};
use super::{StorageResult, table_ddl};

/// A table's write-relevant catalog, as of the last command that wrote the catalog.
#[derive(Debug)]
pub(super) struct WriteShape {
    pub layout_generation: u64,
    pub indexes: Vec<IndexRecord>,
    pub links: Links,
}

/// Shapes by table id.
#[derive(Debug, Default)]
pub(super) struct WriteShapes {
    by_table: Mutex<HashMap<u64, Arc<WriteShape>>>,
}

impl WriteShapes {
    /// After a command that wrote the catalog: every shape may be stale.
    pub fn forget_all(&self) {
        self.by_table.lock().expect("write shapes lock").clear();
    }
}

/// `table_id`'s shape as `ctx`'s command sees it.
pub(super) fn shape_of(ctx: &ApplyContext, table_id: u64) -> StorageResult<Arc<WriteShape>> {
    let cache = ctx.write_shapes.filter(|_| !ctx.wrote_catalog());
    if let Some(cache) = cache
        && let Some(shape) = cache
            .by_table
            .lock()
            .expect("write shapes lock")
            .get(&table_id)
    {
        return Ok(shape.clone());
    }
    let shape = Arc::new(WriteShape {
        layout_generation: table_ddl::layout_generation(ctx, table_id)?,
        indexes: indexes::of_table(ctx, table_id)?,
        links: foreign_keys::links_of(ctx, table_id)?,
    });
    if let Some(cache) = cache {
        cache
            .by_table
            .lock()
            .expect("write shapes lock")
            .insert(table_id, shape.clone());
    }
    Ok(shape)
}
