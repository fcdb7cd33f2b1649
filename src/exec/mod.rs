//! Execution: runs authorized statements for a session against storage and DataFusion.
//!
//! [`Engine`] is the server-wide state (store, catalog, config); a [`Session`] is one
//! authenticated connection's view of it (its user, settings and DataFusion context). Statements
//! arrive here already parsed by `sql`; `exec` authorizes them through `sql::authorize`, runs
//! them and returns Arrow data or a command tag. It knows nothing of the wire protocol.

mod functions;
mod session;
mod settings;
mod system_tables;
mod users;

use std::sync::Arc;

use datafusion::catalog::{
    CatalogProvider, CatalogProviderList, MemoryCatalogProvider, MemoryCatalogProviderList,
    MemorySchemaProvider,
};
use datafusion::error::DataFusionError;

pub use session::{Outcome, PreparedStatement, Session};
pub use users::{AuthSecret, LoginOutcome};

use crate::config::Config;
use crate::sql::SqlError;
use crate::storage::{StorageError, Store};

/// The one database a KalamDB server holds, as `current_database()` and `\l` name it.
pub const DATABASE_NAME: &str = "kalamdb";
/// The PostgreSQL version KalamDB speaks, as reported in `server_version`.
pub const PG_SERVER_VERSION: &str = "16.6";
pub const PG_SERVER_VERSION_NUM: &str = "160006";

#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error(transparent)]
    Sql(#[from] SqlError),
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error(transparent)]
    DataFusion(#[from] DataFusionError),
    #[error("{0}")]
    UndefinedObject(String),
    #[error("{0}")]
    DuplicateObject(String),
    #[error("{0}")]
    InvalidParameterValue(String),
    #[error("{0}")]
    CantChangeRuntimeParam(String),
    #[error("current transaction is aborted, commands ignored until end of transaction block")]
    InFailedTransaction,
    #[error("{0}")]
    ObjectInUse(String),
    #[error("canceling statement due to user request")]
    QueryCanceled,
    #[error("internal error: {0}")]
    Internal(String),
}

pub type ExecResult<T> = Result<T, ExecError>;

/// Server-wide execution state shared by every session.
pub struct Engine {
    store: Arc<Store>,
    config: Arc<Config>,
    catalogs: Arc<dyn CatalogProviderList>,
}

impl Engine {
    /// Builds the engine over an opened store and creates the `root` user on first start.
    pub fn start(store: Arc<Store>, config: Arc<Config>) -> ExecResult<Arc<Engine>> {
        let catalog = MemoryCatalogProvider::new();
        catalog.register_schema("public", Arc::new(MemorySchemaProvider::new()))?;
        catalog.register_schema(
            crate::sql::SYSTEM_SCHEMA,
            Arc::new(system_tables::SystemSchema::new(store.clone())),
        )?;
        let catalogs = MemoryCatalogProviderList::new();
        catalogs.register_catalog(DATABASE_NAME.into(), Arc::new(catalog));
        let engine = Arc::new(Engine {
            store,
            config,
            catalogs: Arc::new(catalogs),
        });
        engine.bootstrap_root()?;
        Ok(engine)
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }
}

pub(crate) fn now_micros() -> i64 {
    chrono::Utc::now().timestamp_micros()
}
