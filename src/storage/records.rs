//! Records kept in RocksDB and their encoding (JSON: small, versionable, readable in a dump).

use serde::{Deserialize, Serialize, de::DeserializeOwned};

use super::{StorageError, StorageResult};
use crate::model::{Role, TableKind, UNASSIGNED_COLUMN_ID};

/// A SCRAM-SHA-256 verifier as PostgreSQL stores it: enough to check a login, not enough to
/// recover or replay the password.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScramVerifier {
    #[serde(with = "hex")]
    pub salt: Vec<u8>,
    pub iterations: u32,
    #[serde(with = "hex")]
    pub stored_key: Vec<u8>,
    #[serde(with = "hex")]
    pub server_key: Vec<u8>,
}

impl std::fmt::Debug for ScramVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScramVerifier")
            .field("iterations", &self.iterations)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserRecord {
    pub user_id: String,
    pub role: Role,
    pub scram: ScramVerifier,
    /// Microseconds since the Unix epoch.
    pub created_at: i64,
    pub updated_at: i64,
    pub last_login_at: Option<i64>,
}

#[cfg(test)]
impl UserRecord {
    pub fn new_for_test(user_id: &str, role: Role) -> Self {
        UserRecord {
            user_id: user_id.into(),
            role,
            scram: ScramVerifier {
                salt: vec![1; 16],
                iterations: 4096,
                stored_key: vec![2; 32],
                server_key: vec![3; 32],
            },
            created_at: 0,
            updated_at: 0,
            last_login_at: None,
        }
    }
}

pub(super) fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).expect("records serialise")
}

pub(super) fn decode<T: DeserializeOwned>(cf: &'static str, bytes: &[u8]) -> StorageResult<T> {
    serde_json::from_slice(bytes).map_err(|e| StorageError::Corrupt {
        cf,
        message: e.to_string(),
    })
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NamespaceRecord {
    pub name: String,
    pub created_at: i64,
    /// Drawn from the relation id counter when the namespace is created (0 until then, and in
    /// namespaces written before namespaces had ids, until `NumberNamespaces` numbers them).
    #[serde(default)]
    pub namespace_id: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableRecord {
    /// Assigned when the table is created; row keys start with it.
    pub table_id: u64,
    pub namespace: String,
    pub name: String,
    pub kind: TableKind,
    #[serde(deserialize_with = "columns_with_ids")]
    pub columns: Vec<crate::model::ColumnDef>,
    /// Indexes into `columns`; empty when the table has no declared key (a hidden row id).
    pub primary_key: Vec<usize>,
    pub created_at: i64,
    /// `COMMENT ON TABLE` (`obj_description`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// How many times the definition has been written: a change computed from one version
    /// applies only while the table is still at it, so concurrent DDL cannot undo another's.
    #[serde(default)]
    pub version: u64,
    /// CHECK constraints, in the order they were added.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub checks: Vec<CheckConstraint>,
    /// The id the next column added gets (ids are never reused, even after a drop).
    #[serde(default)]
    pub next_column_id: u32,
    /// Bumped when stored rows change encoding (DROP COLUMN, ALTER COLUMN TYPE); adding a
    /// column keeps it, since shorter rows read the new column's missing value. Rows are
    /// written only under the generation they were encoded for.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub layout_generation: u64,
}

fn is_zero(value: &u64) -> bool {
    *value == 0
}

/// A table's stored layout generation (the catalog's `layout_generation` key; absent is 0).
pub(super) fn layout_generation(table_id: u64, stored: Option<&[u8]>) -> StorageResult<u64> {
    let Some(bytes) = stored else {
        return Ok(0);
    };
    bytes
        .try_into()
        .map(u64::from_be_bytes)
        .map_err(|_| StorageError::Corrupt {
            cf: super::keys::CF_CATALOG,
            message: format!("the layout generation of table {table_id} is not 8 bytes"),
        })
}

impl TableRecord {
    /// The id the next new column gets: above every id the table has or had.
    pub fn next_free_column_id(&self) -> u32 {
        let highest = self
            .columns
            .iter()
            .map(|c| c.id)
            .filter(|&id| id != UNASSIGNED_COLUMN_ID)
            .max();
        self.next_column_id
            .max(highest.map_or(0, |id| id.saturating_add(1)))
    }

    /// Gives every column still unnumbered (new in this definition) the next free id.
    pub fn number_columns(&mut self) {
        let mut next = self.next_free_column_id();
        for column in &mut self.columns {
            if column.id == UNASSIGNED_COLUMN_ID {
                column.id = next;
                next += 1;
            }
        }
        self.next_column_id = next;
    }

    /// The column with `id`, and where it is.
    pub fn column_by_id(&self, id: u32) -> Option<(usize, &crate::model::ColumnDef)> {
        self.columns.iter().enumerate().find(|(_, c)| c.id == id)
    }
}

/// Reads a table's columns; a definition written before columns had ids numbers them by
/// position, which is what its files' columns were matched by.
fn columns_with_ids<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Vec<crate::model::ColumnDef>, D::Error> {
    let mut columns: Vec<crate::model::ColumnDef> = Deserialize::deserialize(deserializer)?;
    if columns.iter().all(|c| c.id == UNASSIGNED_COLUMN_ID) {
        for (position, column) in columns.iter_mut().enumerate() {
            column.id = position as u32;
        }
    }
    Ok(columns)
}

/// A CHECK constraint: a boolean SQL expression over the table's columns that every row
/// written must not make false.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckConstraint {
    pub name: String,
    pub expr: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum JobStatus {
    Queued,
    Running,
    Completed,
    Failed,
    Cancelled,
}

impl JobStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Queued => "Queued",
            JobStatus::Running => "Running",
            JobStatus::Completed => "Completed",
            JobStatus::Failed => "Failed",
            JobStatus::Cancelled => "Cancelled",
        }
    }

    pub fn is_finished(self) -> bool {
        matches!(
            self,
            JobStatus::Completed | JobStatus::Failed | JobStatus::Cancelled
        )
    }
}

/// A background job as `system.jobs` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobRecord {
    pub job_id: String,
    /// `flush`, `backup`, `restore`, ...
    pub job_type: String,
    pub status: JobStatus,
    /// JSON text.
    pub parameters: String,
    pub message: Option<String>,
    pub created_by: String,
    pub created_at: i64,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
    pub updated_at: i64,
    pub bytes_total: Option<u64>,
    pub bytes_done: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_definition_written_before_column_ids_numbers_its_columns_by_place() {
        let stored = serde_json::json!({
            "table_id": 9, "namespace": "public", "name": "t", "kind": "regular",
            "columns": [
                {"name": "a", "sql_type": "integer", "nullable": true, "default": null},
                {"name": "b", "sql_type": "text", "nullable": true, "default": null}
            ],
            "primary_key": [], "created_at": 0, "version": 4
        });
        let mut table: TableRecord = serde_json::from_value(stored).unwrap();
        let ids: Vec<u32> = table.columns.iter().map(|c| c.id).collect();
        assert_eq!(ids, [0, 1]);
        assert_eq!(table.next_free_column_id(), 2);
        // A column added later takes the next id; a dropped one's id is never given again.
        table.columns.remove(1);
        table.next_column_id = 2;
        let mut added = table.columns[0].clone();
        added.id = UNASSIGNED_COLUMN_ID;
        added.name = "b".into();
        table.columns.push(added);
        table.number_columns();
        let ids: Vec<u32> = table.columns.iter().map(|c| c.id).collect();
        assert_eq!(ids, [0, 2]);
        assert_eq!(table.next_column_id, 3);
    }
}
