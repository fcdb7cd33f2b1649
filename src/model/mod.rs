//! The domain model every layer shares: SQL types with their PostgreSQL identities, column
//! definitions, roles, table kinds and the database's name. It depends on nothing else in the
//! crate (only serde and Arrow's type definitions), so any layer may use it and it never changes
//! because a layer above it did.

pub mod datetime_input;
pub mod float_text;
pub mod interval_fields;
pub mod interval_text;
pub mod numeric_text;
pub mod oids;
mod roles;
mod tables;
pub mod types;

pub use roles::{ROOT_USER, Role};
pub use tables::{DATABASE_NAME, ReferentialAction, TableKind};
pub use types::{ColumnDef, SqlType, UNASSIGNED_COLUMN_ID};
