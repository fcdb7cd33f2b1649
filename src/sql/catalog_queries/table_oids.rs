//! The `tableoid` system column of catalog tables. PostgreSQL gives every row the OID of the
//! table holding it, and pgAdmin joins on it (`dep.classid = cls.tableoid`). All rows of a
//! catalog table live in that table, so `alias.tableoid` is the table's fixed `pg_class` OID.

use std::collections::HashMap;
use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{Expr, Query, SetExpr, TableFactor, Value, VisitorMut};

use crate::model::oids::pg_catalog_relation_oid;

const TABLEOID: &str = "tableoid";

/// Replaces `tableoid` of a catalog relation by the relation's OID, resolving the qualifier
/// through the enclosing queries' FROM clauses, innermost first.
#[derive(Default)]
pub(super) struct CatalogTableOids {
    scopes: Vec<Scope>,
}

struct Scope {
    /// Alias (or table name) of each catalog relation in FROM, lowercased, and its OID.
    catalog_relations: HashMap<String, i32>,
    /// Relations of any kind in FROM: a bare `tableoid` is the catalog table's only when it
    /// is the only relation.
    relations: usize,
}

impl VisitorMut for CatalogTableOids {
    type Break = ();

    fn pre_visit_query(&mut self, query: &mut Query) -> ControlFlow<()> {
        let mut scope = Scope {
            catalog_relations: HashMap::new(),
            relations: 0,
        };
        if let SetExpr::Select(select) = query.body.as_ref() {
            for from in &select.from {
                let joined = from.joins.iter().map(|join| &join.relation);
                for relation in std::iter::once(&from.relation).chain(joined) {
                    scope.relations += 1;
                    if let Some((name, oid)) = catalog_relation(relation) {
                        scope.catalog_relations.insert(name, oid);
                    }
                }
            }
        }
        self.scopes.push(scope);
        ControlFlow::Continue(())
    }

    fn post_visit_query(&mut self, _query: &mut Query) -> ControlFlow<()> {
        self.scopes.pop();
        ControlFlow::Continue(())
    }

    fn pre_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
        let oid = match expr {
            Expr::CompoundIdentifier(parts)
                if parts.len() == 2 && parts[1].value.eq_ignore_ascii_case(TABLEOID) =>
            {
                let qualifier = parts[0].value.to_ascii_lowercase();
                self.scopes
                    .iter()
                    .rev()
                    .find_map(|scope| scope.catalog_relations.get(&qualifier).copied())
            }
            Expr::Identifier(ident) if ident.value.eq_ignore_ascii_case(TABLEOID) => self
                .scopes
                .last()
                .filter(|scope| scope.relations == 1)
                .and_then(|scope| scope.catalog_relations.values().next().copied()),
            _ => None,
        };
        if let Some(oid) = oid {
            *expr = Expr::value(Value::Number(oid.to_string(), false));
        }
        ControlFlow::Continue(())
    }
}

/// The name a catalog relation is referred to by (its alias, else its table name) and its OID.
fn catalog_relation(relation: &TableFactor) -> Option<(String, i32)> {
    let TableFactor::Table { name, alias, .. } = relation else {
        return None;
    };
    let full = name.to_string().to_ascii_lowercase();
    let table = match full.split_once('.') {
        Some(("pg_catalog", table)) => table,
        Some(_) => return None,
        None => full.as_str(),
    };
    let oid = pg_catalog_relation_oid(table)?;
    let referred = alias
        .as_ref()
        .map_or_else(|| table.to_owned(), |a| a.name.value.to_ascii_lowercase());
    Some((referred, oid))
}
