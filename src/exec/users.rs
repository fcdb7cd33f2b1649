//! Users: the root bootstrap, SCRAM secrets, login bookkeeping and user DDL.

use pgwire::api::auth::sasl::scram::{ScramSecret, gen_salted_password};
use ring::rand::{SecureRandom, SystemRandom};

use super::{Engine, ExecError, ExecResult, now_micros};
use crate::config::SHIPPED_ROOT_PASSWORD;
use crate::model::Role;
use crate::storage::{Command, ScramVerifier, UserRecord};

pub use crate::model::ROOT_USER;
const SALT_LEN: usize = 16;

/// What authentication needs to know about a user name.
pub enum AuthSecret {
    Known(ScramVerifier),
    /// No such user: the caller runs a mock exchange so that the reply does not reveal it.
    Unknown,
}

#[derive(Debug)]
pub enum LoginOutcome {
    Allowed {
        role: Role,
    },
    /// The user vanished between the SCRAM exchange and now.
    Gone,
}

pub(crate) fn scram_verifier(password: &str, iterations: u32) -> ExecResult<ScramVerifier> {
    let mut salt = vec![0u8; SALT_LEN];
    SystemRandom::new()
        .fill(&mut salt)
        .map_err(|_| ExecError::Internal("system random source failed".into()))?;
    Ok(verifier_with_salt(password, salt, iterations))
}

fn verifier_with_salt(password: &str, salt: Vec<u8>, iterations: u32) -> ScramVerifier {
    let salted = gen_salted_password(password, &salt, iterations as usize);
    match ScramSecret::verifier_from_salted_password(salt, salted, iterations as usize) {
        ScramSecret::Verifier {
            salt,
            iterations,
            stored_key,
            server_key,
        } => ScramVerifier {
            salt,
            iterations: iterations as u32,
            stored_key,
            server_key,
        },
        ScramSecret::SaltedPassword { .. } => unreachable!("verifier_from_salted_password"),
    }
}

/// True when `verifier` was made from `password` (used to spot the shipped root password).
pub(crate) fn verifier_matches(verifier: &ScramVerifier, password: &str) -> bool {
    // Only used at startup, never on a login path, so a plain comparison is fine.
    verifier_with_salt(password, verifier.salt.clone(), verifier.iterations).stored_key
        == verifier.stored_key
}

impl Engine {
    pub(super) fn bootstrap_root(&self) -> ExecResult<()> {
        let root = match self.store.user(ROOT_USER)? {
            Some(root) => root,
            None => {
                let now = now_micros();
                let record = UserRecord {
                    user_id: ROOT_USER.into(),
                    role: Role::System,
                    scram: scram_verifier(
                        &self.config.auth.root_password,
                        self.config.auth.scram_iterations,
                    )?,
                    created_at: now,
                    updated_at: now,
                    last_login_at: None,
                };
                self.apply(&Command::PutUser(record.clone()))?;
                tracing::info!("created user root (role system)");
                record
            }
        };
        if !self.config.listens_on_loopback()
            && verifier_matches(&root.scram, SHIPPED_ROOT_PASSWORD)
        {
            return Err(ExecError::InvalidParameterValue(format!(
                "refusing to listen on {} while root still has the shipped default password: \
                 set [auth] root_password or {} before first start, or change it with \
                 ALTER USER root WITH PASSWORD '...' while listening on loopback",
                self.config.server.host,
                crate::config::ROOT_PASSWORD_ENV
            )));
        }
        Ok(())
    }

    /// The secret to authenticate `user_id` against.
    pub fn auth_secret(&self, user_id: &str) -> ExecResult<AuthSecret> {
        Ok(match self.store.user(user_id)? {
            Some(user) => AuthSecret::Known(user.scram),
            None => AuthSecret::Unknown,
        })
    }

    /// Records a successful login (shortly after, see `logins`) and returns the user's role.
    pub fn record_login(&self, user_id: &str) -> ExecResult<LoginOutcome> {
        let Some(user) = self.store.user(user_id)? else {
            return Ok(LoginOutcome::Gone);
        };
        // Written on the engine's runtime, which outlives the connection's lane.
        let _on_engine_runtime = self.compute.as_ref().map(|runtime| runtime.enter());
        self.logins.note(&self.store, user_id, now_micros());
        Ok(LoginOutcome::Allowed { role: user.role })
    }

    pub(super) fn create_user(&self, user_id: &str, password: &str, role: Role) -> ExecResult<()> {
        if self.store.user(user_id)?.is_some() {
            return Err(ExecError::DuplicateObject(format!(
                "role \"{user_id}\" already exists"
            )));
        }
        let now = now_micros();
        self.apply(&Command::PutUser(UserRecord {
            user_id: user_id.into(),
            role,
            scram: scram_verifier(password, self.config.auth.scram_iterations)?,
            created_at: now,
            updated_at: now,
            last_login_at: None,
        }))?;
        Ok(())
    }

    pub(super) fn alter_user(
        &self,
        user_id: &str,
        password: Option<&str>,
        role: Option<Role>,
    ) -> ExecResult<()> {
        let mut user = self.existing_user(user_id)?;
        if let Some(password) = password {
            user.scram = scram_verifier(password, self.config.auth.scram_iterations)?;
        }
        if let Some(role) = role {
            if user_id == ROOT_USER && role != Role::System {
                return Err(ExecError::ObjectInUse(
                    "the role of root cannot be changed".into(),
                ));
            }
            user.role = role;
        }
        user.updated_at = now_micros();
        self.apply(&Command::PutUser(user))?;
        Ok(())
    }

    pub(super) fn drop_user(&self, user_id: &str, if_exists: bool, caller: &str) -> ExecResult<()> {
        if user_id == ROOT_USER || user_id == caller {
            return Err(ExecError::ObjectInUse(format!(
                "user \"{user_id}\" cannot be dropped{}",
                if user_id == caller { " by itself" } else { "" }
            )));
        }
        if self.store.user(user_id)?.is_none() {
            return if if_exists {
                Ok(())
            } else {
                Err(ExecError::UndefinedObject(format!(
                    "role \"{user_id}\" does not exist"
                )))
            };
        }
        self.apply(&Command::DropUser {
            user_id: user_id.into(),
        })?;
        Ok(())
    }

    /// A user's current role, cached until the next catalog change (every statement asks).
    pub(super) fn role_of(&self, user_id: &str) -> Option<Role> {
        let epoch = self.store.catalog_epoch();
        let mut cache = self.roles.lock().expect("role cache");
        if cache.0 != epoch {
            *cache = (epoch, Default::default());
        }
        if let Some(role) = cache.1.get(user_id) {
            return *role;
        }
        let role = self.store.user(user_id).ok().flatten().map(|u| u.role);
        cache.1.insert(user_id.to_owned(), role);
        role
    }

    fn existing_user(&self, user_id: &str) -> ExecResult<UserRecord> {
        self.store
            .user(user_id)?
            .ok_or_else(|| ExecError::UndefinedObject(format!("role \"{user_id}\" does not exist")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_verifier_matches_only_its_own_password() {
        let verifier = scram_verifier("correct horse", 4096).unwrap();
        assert!(verifier_matches(&verifier, "correct horse"));
        assert!(!verifier_matches(&verifier, "battery staple"));
        assert_eq!(verifier.salt.len(), SALT_LEN);
        assert_eq!(verifier.stored_key.len(), 32);
    }
}
