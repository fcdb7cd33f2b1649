//! The named prepared statements and portals one connection holds. PostgreSQL sets no limit,
//! but it frees a connection's portals at each transaction end; pgwire keeps both until Close,
//! so a client parsing under ever-new names would grow the server without bound. Each kind is
//! capped at `[server] max_prepared_statements` (`54000`), and the statement names also let
//! DEALLOCATE ALL find every statement to drop.

use std::collections::HashSet;

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
