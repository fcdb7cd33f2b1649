//! KalamDB: a PostgreSQL-wire-compatible database server with built-in backup and restore.
//!
//! A statement travels one way through the crate:
//!
//! - [`server`] speaks the PostgreSQL protocol (TLS, SCRAM-SHA-256 login, simple and extended
//!   query, cancel) and encodes results; it holds no SQL semantics.
//! - [`sql`] parses statement text and decides which role a statement requires.
//! - [`exec`] runs authorized statements for a session on DataFusion and storage.
//! - [`storage`] owns the data directory and RocksDB; every durable change is a
//!   [`storage::Command`] applied as one atomic write batch.
//!
//! [`node`] starts and stops everything: a staged restore, the store, the engine, housekeeping,
//! and the server. [`jobs`] runs background work (flush, stream eviction, backup, restore) as rows of
//! `system.jobs`; [`backup`] owns the archive format, BACKUP and RESTORE jobs, the start-up swap
//! of a staged restore, and CLUSTER SNAPSHOT. [`cluster`] binds the Raft engine to the store:
//! the replicated log of commands and the state machine that applies them. [`config`] describes `server.toml`; [`allocator`]
//! tunes the process's memory allocator; [`durable`] publishes files crash-safely. [`model`] holds the domain types every layer shares and
//! depends on nothing in the crate.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let config = kalamdb::config::Config::load(None)?;
//! kalamdb::node::run(config, kalamdb::node::shutdown_signal()).await?;
//! # Ok(()) }
//! ```

pub mod allocator;
pub mod backup;
pub mod cluster;
pub mod config;
pub mod durable;
pub mod exec;
pub mod fault;
pub mod jobs;
pub mod model;
pub mod node;
pub mod server;
pub mod sql;
pub mod storage;
