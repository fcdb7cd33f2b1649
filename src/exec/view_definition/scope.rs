//! The relations a view's SELECT reads, with their columns: which relation a column
//! reference names, and what PostgreSQL prints as its qualifier (the alias, else the
//! relation's name).

use datafusion::sql::sqlparser::ast::Expr;

use super::types::Ty;
use crate::sql::fold;

pub(super) struct Relation {
    /// The alias, or the relation's own name.
    pub qualifier: String,
    pub namespace: String,
    pub name: String,
    pub aliased: bool,
    pub columns: Vec<(String, Ty)>,
}

#[derive(Default)]
pub(super) struct Scope {
    pub relations: Vec<Relation>,
}

impl Scope {
    /// The qualifier, name and type of the column `expr` references; `None` when it names
    /// no column of exactly one relation.
    pub(super) fn resolve(&self, expr: &Expr) -> Option<(String, String, Ty)> {
        let found = |relation: &Relation, column: &str| {
            relation
                .columns
                .iter()
                .find(|(name, _)| name == column)
                .map(|(name, ty)| (relation.qualifier.clone(), name.clone(), *ty))
        };
        match expr {
            Expr::Identifier(ident) => {
                let column = fold(ident);
                let mut matches = self.relations.iter().filter_map(|r| found(r, &column));
                let first = matches.next()?;
                matches.next().is_none().then_some(first)
            }
            Expr::CompoundIdentifier(parts) => {
                let names: Vec<String> = parts.iter().map(fold).collect();
                let (relation, column) = match names.as_slice() {
                    [relation, column] => (self.named(None, relation)?, column),
                    [namespace, relation, column] => {
                        (self.named(Some(namespace), relation)?, column)
                    }
                    _ => return None,
                };
                found(relation, column)
            }
            _ => None,
        }
    }

    /// The relation a qualifier names: an alias hides its relation's own name.
    pub(super) fn named(&self, namespace: Option<&str>, name: &str) -> Option<&Relation> {
        let mut matches = self.relations.iter().filter(|r| match namespace {
            Some(ns) => !r.aliased && r.namespace == ns && r.name == name,
            None => r.qualifier == name,
        });
        let first = matches.next()?;
        matches.next().is_none().then_some(first)
    }
}
