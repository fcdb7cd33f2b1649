//! `pg_catalog` tables KalamDB derives from its own catalog: the declared column types,
//! defaults and NOT NULL in `pg_attribute`/`pg_attrdef`, and the unique index and constraint
//! behind each primary key in `pg_class`/`pg_index`/`pg_constraint`, plus the text
//! `pg_get_indexdef`/`pg_get_constraintdef` return (`kalamdb_definitions`), and each table's
//! size by OID (`kalamdb_relation_sizes`). Each is a query
//! over datafusion-pg-catalog's tables and KalamDB's `kalamdb_columns`/`kalamdb_primary_keys`,
//! run in the asking session at every scan, so its OIDs agree with every other catalog table.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{RecordBatch, new_null_array};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::{Session, TableProvider};
use datafusion::datasource::TableType;
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::error::Result;
use datafusion::execution::SessionState;
use datafusion::logical_expr::Expr;
use datafusion::physical_plan::ExecutionPlan;

/// `pg_catalog.kalamdb_base_<name>` is datafusion-pg-catalog's own `<name>`, which the
/// tables here refine; it is not listed among the schema's tables.
pub const BASE_PREFIX: &str = "kalamdb_base_";

/// Every table column's declared type, NOT NULL and DEFAULT (see `ColumnsTable`).
pub const COLUMNS_TABLE: &str = "kalamdb_columns";

pub use crate::sql::{DEFINITIONS_TABLE, RELATION_SIZES_TABLE};

/// PostgreSQL's `pg_sequences` view: one row per sequence with its parameters.
pub const SEQUENCES_VIEW: &str = "pg_sequences";

/// `COMMENT ON` texts by table and column (see `CommentsTable`).
pub const COMMENTS_TABLE: &str = "kalamdb_comments";

/// Every sequence with its OID and parameters (see `SequencesTable`).
pub const SEQUENCES_TABLE: &str = "kalamdb_sequences";

/// Every column of every secondary index (see `index_catalog::IndexesTable`).
pub const INDEXES_TABLE: &str = "kalamdb_indexes";

/// Every CHECK constraint (see `index_catalog::ChecksTable`).
pub const CHECKS_TABLE: &str = "kalamdb_checks";

/// Every column pair of every foreign key (see `foreign_key_catalog::ForeignKeysTable`).
pub const FOREIGN_KEYS_TABLE: &str = "kalamdb_foreign_keys";

/// PostgreSQL's `pg_user` view: the roles that can log in, which are KalamDB's users.
pub const USER_VIEW: &str = "pg_user";

/// PostgreSQL's `pg_stat_user_tables` view, with PostgreSQL 15's columns.
pub const STAT_USER_TABLES: &str = "pg_stat_user_tables";

/// PostgreSQL's `pg_indexes` view.
pub const INDEXES_VIEW: &str = "pg_indexes";

/// PostgreSQL's `pg_stat_activity` view: one row per connected session.
pub const STAT_ACTIVITY_VIEW: &str = "pg_stat_activity";

/// Each table's size in bytes (see `Store::table_bytes`).
pub const TABLE_SIZES_TABLE: &str = "kalamdb_table_sizes";

use super::information_schema;

mod activity_view;
mod columns_view;
mod constraint_views;
mod dependencies;
mod foreign_key_parts;
mod index_parts;
mod listings;
mod queries;

use queries::definition;

/// The schema a derived table presents: the base table's columns (their OID metadata
/// included), all nullable, with PostgreSQL's vector columns (`int2vector`, `oidvector`,
/// arrays) as lists; `pg_class` gains `reloptions` and `relacl`.
fn schema(name: &str, base: Option<&SchemaRef>) -> SchemaRef {
    let list = |item: DataType| DataType::List(Arc::new(Field::new("item", item, true)));
    let Some(base) = base else {
        return Arc::new(Schema::new(if name == RELATION_SIZES_TABLE {
            vec![
                Field::new("oid", DataType::Int32, true),
                Field::new("bytes", DataType::Int64, true),
            ]
        } else if name == information_schema::VIEWS {
            [
                "table_catalog",
                "table_schema",
                "table_name",
                "view_definition",
                "check_option",
                "is_updatable",
                "is_insertable_into",
                "is_trigger_updatable",
                "is_trigger_deletable",
                "is_trigger_insertable_into",
            ]
            .iter()
            .map(|n| Field::new(*n, DataType::Utf8, true))
            .collect()
        } else if name == information_schema::SEQUENCES {
            let text = |n: &str| Field::new(n, DataType::Utf8, true);
            let number = |n: &str| Field::new(n, DataType::Int32, true);
            vec![
                text("sequence_catalog"),
                text("sequence_schema"),
                text("sequence_name"),
                text("data_type"),
                number("numeric_precision"),
                number("numeric_precision_radix"),
                number("numeric_scale"),
                text("start_value"),
                text("minimum_value"),
                text("maximum_value"),
                text("increment"),
                text("cycle_option"),
            ]
        } else if name == USER_VIEW {
            vec![
                Field::new("usename", DataType::Utf8, true),
                Field::new("usesysid", DataType::Int32, true),
                Field::new("usecreatedb", DataType::Boolean, true),
                Field::new("usesuper", DataType::Boolean, true),
                Field::new("userepl", DataType::Boolean, true),
                Field::new("usebypassrls", DataType::Boolean, true),
                Field::new("passwd", DataType::Utf8, true),
                Field::new("valuntil", DataType::Utf8, true),
                Field::new("useconfig", list(DataType::Utf8), true),
            ]
        } else if let Some(fields) = activity_view::fields(name) {
            fields
        } else if let Some(fields) = listings::fields(name) {
            fields
        } else if name == information_schema::COLUMNS {
            information_schema::columns_fields()
        } else if let Some(fields) = information_schema::constraint_fields(name) {
            fields
        } else if name == INDEXES_VIEW {
            [
                "schemaname",
                "tablename",
                "indexname",
                "tablespace",
                "indexdef",
            ]
            .iter()
            .map(|n| Field::new(*n, DataType::Utf8, true))
            .collect()
        } else if name == SEQUENCES_VIEW {
            let mut fields: Vec<Field> =
                ["schemaname", "sequencename", "sequenceowner", "data_type"]
                    .iter()
                    .map(|n| Field::new(*n, DataType::Utf8, true))
                    .collect();
            for n in ["start_value", "min_value", "max_value", "increment_by"] {
                fields.push(Field::new(n, DataType::Int64, true));
            }
            fields.push(Field::new("cycle", DataType::Boolean, true));
            fields.push(Field::new("cache_size", DataType::Int64, true));
            fields.push(Field::new("last_value", DataType::Int64, true));
            fields
        } else {
            vec![
                Field::new("objid", DataType::Int32, true),
                Field::new("column_no", DataType::Int32, true),
                Field::new("definition", DataType::Utf8, true),
            ]
        }));
    };
    let mut fields: Vec<Field> = base
        .fields()
        .iter()
        .map(|f| {
            let field = f.as_ref().clone().with_nullable(true);
            // `int2vector` and `oidvector` columns are lists to queries (`indkey[0]`, unnest)
            // and go to clients as PostgreSQL sends them: `1 2`, under their own type OIDs.
            let vector = |field: Field, pg_type: &str| {
                field.with_metadata(std::collections::HashMap::from([(
                    crate::model::types::PG_TYPE_METADATA.to_owned(),
                    pg_type.to_owned(),
                )]))
            };
            match f.name().as_str() {
                "indkey" | "indoption" => {
                    vector(field.with_data_type(list(DataType::Int16)), "int2vector")
                }
                "conkey" | "confkey" | "confdelsetcols" => {
                    field.with_data_type(list(DataType::Int16))
                }
                "indcollation" | "indclass" | "proargtypes" => {
                    vector(field.with_data_type(list(DataType::Int32)), "oidvector")
                }
                "proallargtypes" => field.with_data_type(list(DataType::Int32)),
                "proargnames" | "proargmodes" => field.with_data_type(list(DataType::Utf8)),
                "conpfeqop" | "conppeqop" | "conffeqop" | "conexclop" => {
                    field.with_data_type(list(DataType::Int32))
                }
                // datafusion-pg-catalog misspells `pg_settings.boot_val`.
                "bool_val" if name == "pg_settings" => field.with_name("boot_val"),
                "enumvals" if name == "pg_settings" => field.with_data_type(list(DataType::Utf8)),
                _ => field,
            }
        })
        .collect();
    // PostgreSQL 15's pg_namespace has no `options` (the crate's has).
    if name == "pg_namespace" {
        fields.retain(|f| f.name() != "options");
    }
    if name == "pg_class" {
        for missing in ["reloptions", "relacl"] {
            if base.index_of(missing).is_err() {
                fields.push(Field::new(missing, list(DataType::Utf8), true));
            }
        }
        // PostgreSQL 15's pg_class ends with these, in this order (`SELECT c.*` shows it).
        for last in ["relacl", "reloptions", "relpartbound"] {
            if let Some(at) = fields.iter().position(|f| f.name() == last) {
                let field = fields.remove(at);
                fields.push(field);
            }
        }
    }
    Arc::new(Schema::new(fields))
}

/// The derived table `name` (with `base`, datafusion-pg-catalog's table of that name), if
/// KalamDB derives one.
pub fn table(name: &str, base: Option<SchemaRef>) -> Option<Arc<dyn TableProvider>> {
    let parts = definition(name)?;
    let schema = schema(name, base.as_ref());
    let selects: Vec<String> = parts
        .iter()
        .map(|part| {
            let columns: Vec<String> = schema
                .fields()
                .iter()
                .map(|field| {
                    let column = field.name();
                    let in_base = base.as_ref().is_some_and(|b| b.index_of(column).is_ok());
                    let value = match part.values.iter().find(|(c, _)| c == column) {
                        Some((_, value)) => value.clone(),
                        None if part.copies_base && in_base => format!("a.{column}"),
                        None => "NULL".to_owned(),
                    };
                    format!("{value} AS {column}")
                })
                .collect();
            format!("SELECT {} {}", columns.join(", "), part.from)
        })
        .collect();
    Some(Arc::new(DerivedCatalogTable {
        schema,
        sql: selects.join(" UNION ALL "),
    }))
}

/// A `pg_catalog` table defined by a query, planned and run in the asking session at
/// every scan (catalog tables are small; their rows must be current).
#[derive(Debug)]
struct DerivedCatalogTable {
    schema: SchemaRef,
    sql: String,
}

#[async_trait]
impl TableProvider for DerivedCatalogTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::View
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let Some(state) = state.as_any().downcast_ref::<SessionState>() else {
            return datafusion::common::internal_err!("catalog tables need a SessionState");
        };
        let plan = state.create_logical_plan(&self.sql).await?;
        let plan = state.create_physical_plan(&plan).await?;
        let batches = datafusion::physical_plan::collect(plan, state.task_ctx()).await?;
        let conformed = batches
            .iter()
            .map(|batch| {
                let columns = self
                    .schema
                    .fields()
                    .iter()
                    .zip(batch.columns())
                    .map(|(field, column)| {
                        if column.data_type() == &DataType::Null {
                            Ok(new_null_array(field.data_type(), column.len()))
                        } else {
                            datafusion::arrow::compute::cast(column, field.data_type())
                        }
                    })
                    .collect::<std::result::Result<Vec<_>, _>>()?;
                Ok(RecordBatch::try_new(self.schema.clone(), columns)?)
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(MemorySourceConfig::try_new_exec(
            &[conformed],
            self.schema.clone(),
            projection.cloned(),
        )?)
    }
}
