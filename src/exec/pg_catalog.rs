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

/// The tables KalamDB adds to `pg_catalog`.
const KALAMDB_TABLES: [&str; 13] = [
    pg_derived::USER_VIEW,
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
        if name == TABLE_SIZES_TABLE {
            return Ok(Some(super::system_tables::store_backed(
                Arc::new(super::system_tables::TableSizesTable),
                self.store.clone(),
            )));
        }
        if name == DEFINITIONS_TABLE
            || name == RELATION_SIZES_TABLE
            || name == SEQUENCES_VIEW
            || name == pg_derived::INDEXES_VIEW
            || name == pg_derived::USER_VIEW
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
                Some(Arc::new(OnlyOurDatabase { inner: table }))
            }
            other => other,
        })
    }

    fn table_exist(&self, name: &str) -> bool {
        KALAMDB_TABLES.contains(&name)
            || name
                .strip_prefix(BASE_PREFIX)
                .is_some_and(|base| self.inner.table_exist(base))
            || self.inner.table_exist(name)
    }
}

#[derive(Debug)]
struct OnlyOurDatabase {
    inner: Arc<dyn TableProvider>,
}

#[async_trait]
impl TableProvider for OnlyOurDatabase {
    fn schema(&self) -> datafusion::arrow::datatypes::SchemaRef {
        self.inner.schema()
    }

    fn table_type(&self) -> datafusion::datasource::TableType {
        self.inner.table_type()
    }

    async fn scan(
        &self,
        state: &dyn datafusion::catalog::Session,
        projection: Option<&Vec<usize>>,
        filters: &[datafusion::logical_expr::Expr],
        limit: Option<usize>,
    ) -> datafusion::error::Result<Arc<dyn datafusion::physical_plan::ExecutionPlan>> {
        use datafusion::physical_expr::expressions::{BinaryExpr, Column, Literal};
        let plan = self.inner.scan(state, None, filters, limit).await?;
        let schema = plan.schema();
        let datname = schema.index_of("datname")?;
        let predicate = Arc::new(BinaryExpr::new(
            Arc::new(Column::new("datname", datname)),
            datafusion::logical_expr::Operator::Eq,
            Arc::new(Literal::new(datafusion::scalar::ScalarValue::Utf8(Some(
                DATABASE_NAME.into(),
            )))),
        ));
        let filtered = datafusion::physical_plan::filter::FilterExecBuilder::new(predicate, plan)
            .apply_projection(projection.cloned())?
            .build()?;
        Ok(Arc::new(filtered))
    }
}
