//! The named prepared statements and portals one connection holds. PostgreSQL sets no limit,
//! but it frees a connection's portals at each transaction end; pgwire keeps both until Close,
//! so a client parsing under ever-new names would grow the server without bound. Each kind is
//! capped at `[server] max_prepared_statements` (`54000`), and the statement names also let
//! DEALLOCATE ALL and DISCARD ALL find every statement to drop. The session's SQL-level
//! statements (PREPARE) share the namespace and are capped on their own, in the session.

use std::collections::HashSet;

use pgwire::api::store::PortalStore;
use pgwire::error::PgWireResult;

use super::sqlstate::user_error;
use super::{Connection, sqlstate};
use crate::exec::ExecError;

/// Names this connection has stored; pgwire's store holds the objects themselves.
#[derive(Debug, Default)]
pub struct NamedObjects {
    pub statements: HashSet<String>,
    pub portals: HashSet<String>,
}

impl NamedObjects {
    pub fn held(&self) -> usize {
        self.statements.len() + self.portals.len()
    }
}

/// Past this many named objects, a closing connection hands its freed memory back.
pub const MANY: usize = 1_000;

/// Records `name` in `names` unless that would pass `cap`. Names the store no longer holds
/// (closed with Close) are forgotten first, so only live objects count.
pub fn admit(
    names: &mut HashSet<String>,
    name: &str,
    cap: usize,
    still_stored: impl Fn(&str) -> bool,
) -> bool {
    if name.is_empty() || names.contains(name) {
        // The unnamed object is replaced by the next one; a reused name replaces its object.
        return true;
    }
    if names.len() >= cap {
        names.retain(|n| still_stored(n));
    }
    if names.len() >= cap {
        return false;
    }
    names.insert(name.to_owned());
    true
}

impl Connection {
    /// Drops the protocol's named statements that a DEALLOCATE or DISCARD ALL names, which
    /// share one namespace with the session's SQL-level ones (`dropped_here`: the session had
    /// one of that name).
    pub(super) fn deallocate<S: PortalStore>(
        &self,
        store: &S,
        name: Option<&str>,
        dropped_here: bool,
    ) -> Result<(), ExecError> {
        let mut named = self.named.lock().expect("named objects");
        match name {
            Some(name) => {
                if !dropped_here && store.get_statement(name).is_none() {
                    return Err(ExecError::UndefinedPreparedStatement(name.to_owned()));
                }
                store.rm_statement(name);
                named.statements.remove(name);
            }
            None => {
                for name in named.statements.drain() {
                    store.rm_statement(&name);
                }
                named.portals.clear();
                store.clear_portals();
            }
        }
        Ok(())
    }

    /// A PREPARE may not take a name the protocol's statements hold: PostgreSQL has one
    /// namespace for both (`42P05`).
    pub(super) fn prepare_name_free<S: PortalStore>(
        &self,
        store: &S,
        statement: &crate::sql::Statement,
    ) -> Result<(), ExecError> {
        match statement {
            crate::sql::Statement::Prepare(preparation)
                if store.get_statement(&preparation.name).is_some() =>
            {
                Err(ExecError::DuplicatePreparedStatement(
                    preparation.name.clone(),
                ))
            }
            _ => Ok(()),
        }
    }

    /// A Parse that failed stores nothing (pgwire leaves any older statement of that name).
    pub(super) fn forget_statement<S: PortalStore>(&self, name: &str, store: &S) {
        if store.get_statement(name).is_none() {
            self.named
                .lock()
                .expect("named objects")
                .statements
                .remove(name);
        }
    }

    fn max_named(&self) -> usize {
        self.shared.engine.config().server.max_prepared_statements
    }

    /// Fails with 54000 when `name` is new and the connection already holds its cap of `what`.
    pub(super) fn admit_named(
        &self,
        pick: fn(&mut NamedObjects) -> &mut std::collections::HashSet<String>,
        name: &str,
        what: &str,
        still_stored: impl Fn(&str) -> bool,
    ) -> PgWireResult<()> {
        let cap = self.max_named();
        let mut named = self.named.lock().expect("named objects");
        if admit(pick(&mut named), name, cap, still_stored) {
            return Ok(());
        }
        Err(user_error(sqlstate::error(
            sqlstate::PROGRAM_LIMIT_EXCEEDED,
            format!(
                "this connection already holds {cap} named {what} ([server] max_prepared_statements); close or DEALLOCATE some first"
            ),
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn live_names_are_capped_and_closed_ones_free_their_place() {
        let mut names = HashSet::new();
        let live = std::cell::RefCell::new(HashSet::new());
        for name in ["a", "b", "c"] {
            assert!(admit(&mut names, name, 3, |n| live.borrow().contains(n)));
            live.borrow_mut().insert(name.to_owned());
        }
        assert!(!admit(&mut names, "d", 3, |n| live.borrow().contains(n)));
        assert!(
            admit(&mut names, "a", 3, |n| live.borrow().contains(n)),
            "reused name"
        );
        assert!(
            admit(&mut names, "", 3, |n| live.borrow().contains(n)),
            "unnamed"
        );
        live.borrow_mut().remove("b");
        assert!(admit(&mut names, "d", 3, |n| live.borrow().contains(n)));
        live.borrow_mut().insert("d".to_owned());
        assert!(!admit(&mut names, "e", 3, |n| live.borrow().contains(n)));
    }
}
