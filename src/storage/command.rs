//! Commands: the only way durable state changes.

use rocksdb::{DB, WriteBatch};
use serde::{Deserialize, Serialize};

use super::records::{self, UserRecord};
use super::{CF_USERS, StorageResult, cf};

/// One atomic change to the database. Commands are serialisable so that a replicated log can
/// carry them; applying the same sequence of commands always yields the same state.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Command {
    /// Creates or replaces a user.
    PutUser(UserRecord),
    DropUser {
        user_id: String,
    },
}

impl Command {
    pub(super) fn write_into(&self, db: &DB, batch: &mut WriteBatch) -> StorageResult<()> {
        match self {
            Command::PutUser(user) => {
                batch.put_cf(
                    cf(db, CF_USERS),
                    user.user_id.as_bytes(),
                    records::encode(user),
                );
            }
            Command::DropUser { user_id } => {
                batch.delete_cf(cf(db, CF_USERS), user_id.as_bytes());
            }
        }
        Ok(())
    }
}
