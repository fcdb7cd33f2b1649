//! `pg_catalog` for PostgreSQL tools: datafusion-pg-catalog's tables and functions over
//! KalamDB's catalog, with our users as its roles and `kalamdb` as its only database.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::catalog::{SchemaProvider, TableProvider};
use datafusion::prelude::SessionContext;
use datafusion_pg_catalog::pg_catalog::context::{PgCatalogContextProvider, Role as PgRole};

use super::pg_derived::{
    self, BASE_PREFIX, COLUMNS_TABLE, COMMENTS_TABLE, DEFINITIONS_TABLE, RELATION_SIZES_TABLE,
    SEQUENCES_TABLE, SEQUENCES_VIEW, TABLE_SIZES_TABLE,
};
use super::{DATABASE_NAME, ExecError, ExecResult};
use crate::model::Role;
use crate::storage::Store;

/// KalamDB users, as `pg_roles` and `\du` list them.
#[derive(Clone)]
pub struct UsersAsRoles {
    store: Arc<Store>,
}

impl std::fmt::Debug for UsersAsRoles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("UsersAsRoles")
    }
}

#[async_trait]
impl PgCatalogContextProvider for UsersAsRoles {
    async fn roles(&self) -> Vec<String> {
        self.store
            .users()
            .map(|users| users.into_iter().map(|u| u.user_id).collect())
            .unwrap_or_default()
    }

    async fn role(&self, name: &str) -> Option<PgRole> {
        let user = self.store.user(name).ok()??;
        let admin = user.role >= Role::Dba;
        Some(PgRole {
            name: user.user_id,
            is_superuser: user.role == Role::System,
            can_login: true,
            can_create_db: false,
            can_create_role: admin,
            can_create_user: admin,
            can_replication: false,
            grants: Vec::new(),
            inherited_roles: Vec::new(),
        })
    }
}

const PRIMARY_KEYS_TABLE: &str = crate::sql::PRIMARY_KEYS_TABLE;
const AUTHID_TABLE: &str = "pg_authid";
const AGGREGATES_TABLE: &str = "pg_aggregate";

/// The tables KalamDB adds to `pg_catalog`.
const KALAMDB_TABLES: [&str; 15] = [
    pg_derived::USER_VIEW,
    pg_derived::STAT_ACTIVITY_VIEW,
    super::activity::ACTIVITY_TABLE,
    pg_derived::CHECKS_TABLE,
    pg_derived::INDEXES_TABLE,
    pg_derived::INDEXES_VIEW,
    super::view_table::VIEWS_TABLE,
    PRIMARY_KEYS_TABLE,
    SEQUENCES_VIEW,
    COMMENTS_TABLE,
    SEQUENCES_TABLE,
    COLUMNS_TABLE,
    DEFINITIONS_TABLE,
    TABLE_SIZES_TABLE,
    RELATION_SIZES_TABLE,
];

/// PostgreSQL's view of security labels, which pgAdmin reads for every table and column.
const SECURITY_LABELS_VIEW: &str = "pg_seclabels";

/// `pg_seclabels`: always empty, as KalamDB has no label providers.
fn security_labels() -> Arc<dyn TableProvider> {
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    let oid = |name: &str| Field::new(name, DataType::Int32, true);
    let text = |name: &str| Field::new(name, DataType::Utf8, true);
    let schema = Schema::new(vec![
        oid("objoid"),
        oid("classoid"),
        oid("objsubid"),
        text("objtype"),
        oid("objnamespace"),
        text("objname"),
        text("provider"),
        text("label"),
    ]);
    Arc::new(datafusion::datasource::empty::EmptyTable::new(Arc::new(
        schema,
    )))
}

/// Adds `pg_catalog` and PostgreSQL's catalog functions to a session's context.
pub fn install(ctx: &SessionContext, store: Arc<Store>) -> ExecResult<()> {
    datafusion_pg_catalog::setup_pg_catalog(ctx, DATABASE_NAME, UsersAsRoles { store })
        .map_err(|e| ExecError::DataFusion(*e))
}

/// `pg_catalog` as datafusion-pg-catalog builds it, except that `pg_database` lists only the
/// one database a KalamDB server has (the crate always adds a `postgres` entry).
/// Also holds `kalamdb_primary_keys` (namespace, table_name, column_name, key_seq, pk_name),
/// which pgJDBC's `getPrimaryKeys` query is rewritten to read (see `sql::catalog_queries`).
pub struct PgCatalogSchema {
    inner: Arc<dyn SchemaProvider>,
    store: Arc<Store>,
}

impl std::fmt::Debug for PgCatalogSchema {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PgCatalogSchema")
    }
}

impl PgCatalogSchema {
    pub fn wrap(inner: Arc<dyn SchemaProvider>, store: Arc<Store>) -> Arc<dyn SchemaProvider> {
        Arc::new(PgCatalogSchema { inner, store })
    }
}

impl PgCatalogSchema {
    /// datafusion-pg-catalog's table `name`, with stable OIDs (`catalog_oids`).
    async fn crate_table(
        &self,
        name: &str,
    ) -> datafusion::error::Result<Option<Arc<dyn TableProvider>>> {
        Ok(self
            .inner
            .table(name)
            .await?
            .map(|table| super::catalog_oids::stable(name, table, &self.inner, &self.store)))
    }
}

#[async_trait]
impl SchemaProvider for PgCatalogSchema {
    /// KalamDB's helper relations resolve by name for the rewritten catalog queries but are not
    /// listed: PostgreSQL has no such relations, so `pg_class` and `information_schema` must
    /// not show them.
    fn table_names(&self) -> Vec<String> {
        self.inner.table_names()
    }

    async fn table(&self, name: &str) -> datafusion::error::Result<Option<Arc<dyn TableProvider>>> {
        if name == PRIMARY_KEYS_TABLE {
            return Ok(Some(super::system_tables::store_backed(
                Arc::new(super::system_tables::PrimaryKeysTable),
                self.store.clone(),
            )));
        }
        if name == pg_derived::CHECKS_TABLE {
            return Ok(Some(super::system_tables::store_backed(
                Arc::new(super::index_catalog::ChecksTable),
                self.store.clone(),
            )));
        }
        if name == pg_derived::FOREIGN_KEYS_TABLE {
            return Ok(Some(super::system_tables::store_backed(
                Arc::new(super::foreign_key_catalog::ForeignKeysTable),
                self.store.clone(),
            )));
        }
        if name == pg_derived::INDEXES_TABLE {
            return Ok(Some(super::system_tables::store_backed(
                Arc::new(super::index_catalog::IndexesTable),
                self.store.clone(),
            )));
        }
        if name == COMMENTS_TABLE {
            return Ok(Some(super::system_tables::store_backed(
                Arc::new(super::system_tables::CommentsTable),
                self.store.clone(),
            )));
        }
        if name == super::view_table::VIEWS_TABLE {
            return Ok(Some(super::system_tables::store_backed(
                Arc::new(super::view_table::ViewsTable),
                self.store.clone(),
            )));
        }
        if name == SEQUENCES_TABLE {
            return Ok(Some(super::system_tables::store_backed(
                Arc::new(super::system_tables::SequencesTable),
                self.store.clone(),
            )));
        }
        if name == COLUMNS_TABLE {
            return Ok(Some(super::system_tables::store_backed(
                Arc::new(super::system_tables::ColumnsTable),
                self.store.clone(),
            )));
        }
        // The crate ships static pg_authid rows, a verifier among them; ours are the users,
        // under either name.
        if name == AUTHID_TABLE || name.strip_prefix(BASE_PREFIX) == Some(AUTHID_TABLE) {
            return Ok(match self.inner.table(AUTHID_TABLE).await? {
                Some(base) => Some(super::system_tables::store_backed(
                    Arc::new(super::system_tables::AuthIdTable::new(base.schema())),
                    self.store.clone(),
                )),
                None => None,
            });
        }
        if let Some(base) = name.strip_prefix(BASE_PREFIX) {
            return self.crate_table(base).await;
        }
        if name == SECURITY_LABELS_VIEW {
            return Ok(Some(security_labels()));
        }
        if name == AGGREGATES_TABLE
            && let (Some(aggregates), Some(functions)) = (
                self.crate_table(AGGREGATES_TABLE).await?,
                self.crate_table("pg_proc").await?,
            )
        {
            return Ok(Some(Arc::new(
                super::aggregate_catalog::AggregatesByFunctionOid::new(aggregates, functions),
            )));
        }
        if name == super::activity::ACTIVITY_TABLE {
            return Ok(Some(Arc::new(super::activity::ActivityTable)));
        }
        if name == TABLE_SIZES_TABLE {
            return Ok(Some(super::system_tables::store_backed(
                Arc::new(super::system_tables::TableSizesTable),
                self.store.clone(),
            )));
        }
        if name == DEFINITIONS_TABLE
            || name == pg_derived::STAT_USER_TABLES
            || name == RELATION_SIZES_TABLE
            || name == SEQUENCES_VIEW
            || name == pg_derived::INDEXES_VIEW
            || name == pg_derived::USER_VIEW
            || name == pg_derived::STAT_ACTIVITY_VIEW
        {
            return Ok(pg_derived::table(name, None));
        }
        let table = self.crate_table(name).await?;
        if let Some(derived) = table
            .as_ref()
            .and_then(|base| pg_derived::table(name, Some(base.schema())))
        {
            return Ok(Some(derived));
        }
        Ok(match table {
            Some(table) if name.eq_ignore_ascii_case("pg_database") => {
                Some(Arc::new(OnlyOurDatabase::new(table)))
            }
            other => other,
        })
    }

    fn table_exist(&self, name: &str) -> bool {
        KALAMDB_TABLES.contains(&name)
            || name == SECURITY_LABELS_VIEW
            || name
                .strip_prefix(BASE_PREFIX)
                .is_some_and(|base| self.inner.table_exist(base))
            || self.inner.table_exist(name)
    }
}

/// PostgreSQL 15's `pg_database` columns, in its order. datafusion-pg-catalog's table mixes
/// in `datlastsysoid` (dropped in 15) and `daticurules` (added in 16), and lacks
/// `datcollversion`, which KalamDB's C collation has no version for (NULL, as in PostgreSQL).
/// The locale columns say what KalamDB does: the libc provider's C locale.
const DATABASE_COLUMNS: [&str; 16] = [
    "oid",
    "datname",
    "datdba",
    "encoding",
    "datlocprovider",
    "datistemplate",
    "datallowconn",
    "datconnlimit",
    "datfrozenxid",
    "datminmxid",
    "dattablespace",
    "datcollate",
    "datctype",
    "daticulocale",
    "datcollversion",
    "datacl",
];

/// `pg_database` as PostgreSQL 15 shows it, with the one database a KalamDB server has.
#[derive(Debug)]
struct OnlyOurDatabase {
    inner: Arc<dyn TableProvider>,
    schema: datafusion::arrow::datatypes::SchemaRef,
}

impl OnlyOurDatabase {
    fn new(inner: Arc<dyn TableProvider>) -> Self {
        use datafusion::arrow::datatypes::{DataType, Field, Schema};
        let base = inner.schema();
        let fields: Vec<Field> = DATABASE_COLUMNS
            .iter()
            .map(|name| match base.field_with_name(name) {
                Ok(field) => field.clone(),
                Err(_) => Field::new(*name, DataType::Utf8, true),
            })
            .collect();
        OnlyOurDatabase {
            inner,
            schema: Arc::new(Schema::new(fields)),
        }
    }
}

#[async_trait]
impl TableProvider for OnlyOurDatabase {
    fn schema(&self) -> datafusion::arrow::datatypes::SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> datafusion::datasource::TableType {
        self.inner.table_type()
    }

    async fn scan(
        &self,
        state: &dyn datafusion::catalog::Session,
        projection: Option<&Vec<usize>>,
        _filters: &[datafusion::logical_expr::Expr],
        _limit: Option<usize>,
    ) -> datafusion::error::Result<Arc<dyn datafusion::physical_plan::ExecutionPlan>> {
        use datafusion::physical_expr::PhysicalExpr;
        use datafusion::physical_expr::expressions::{BinaryExpr, Column, Literal};
        use datafusion::physical_plan::projection::{ProjectionExec, ProjectionExpr};
        use datafusion::scalar::ScalarValue;
        // Filters and limits are DataFusion's to apply above: a limit taken below the filter
        // could drop our database's row.
        let plan = self.inner.scan(state, None, &[], None).await?;
        let base = plan.schema();
        let datname = base.index_of("datname")?;
        let predicate = Arc::new(BinaryExpr::new(
            Arc::new(Column::new("datname", datname)),
            datafusion::logical_expr::Operator::Eq,
            Arc::new(Literal::new(ScalarValue::Utf8(Some(DATABASE_NAME.into())))),
        ));
        let filtered =
            datafusion::physical_plan::filter::FilterExecBuilder::new(predicate, plan).build()?;
        let columns: Vec<usize> = match projection {
            Some(columns) => columns.clone(),
            None => (0..self.schema.fields().len()).collect(),
        };
        let exprs = columns
            .iter()
            .map(|&i| {
                let name = self.schema.field(i).name();
                let expr: Arc<dyn PhysicalExpr> = match base.index_of(name) {
                    // PostgreSQL's code for the libc provider (the crate spells it out).
                    Ok(_) if name == "datlocprovider" => {
                        Arc::new(Literal::new(ScalarValue::Utf8(Some("c".into()))))
                    }
                    // Text compares byte by byte: the C collation, whatever the crate says.
                    Ok(_) if name == "datcollate" || name == "datctype" => {
                        Arc::new(Literal::new(ScalarValue::Utf8(Some("C".into()))))
                    }
                    Ok(at) => Arc::new(Column::new(name, at)),
                    Err(_) => Arc::new(Literal::new(ScalarValue::Utf8(None))),
                };
                ProjectionExpr::new(expr, name.clone())
            })
            .collect::<Vec<_>>();
        Ok(Arc::new(ProjectionExec::try_new(
            exprs,
            Arc::new(filtered),
        )?))
    }
}
