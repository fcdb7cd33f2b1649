//! View statements: `CREATE [OR REPLACE] VIEW` and `DROP VIEW`, and the qualification that
//! pins a view's relation names to the namespaces they meant when it was created.

use std::collections::HashSet;
use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast;

use super::parse::fold_ident;
use super::{SqlError, Statement, TableName};

pub(super) fn create_view(create: ast::CreateView) -> Result<Statement, SqlError> {
    let unsupported = |what: &str| Err(SqlError::Unsupported(format!("{what} is not supported")));
    if create.materialized {
        return unsupported("CREATE MATERIALIZED VIEW");
    }
    if create.temporary {
        return unsupported("CREATE TEMPORARY VIEW");
    }
    if create.if_not_exists {
        // PostgreSQL has no CREATE VIEW IF NOT EXISTS either.
        return Err(SqlError::Syntax(
            "syntax error at or near \"NOT\": CREATE VIEW has no IF NOT EXISTS".into(),
        ));
    }
    if create.columns.iter().any(|c| c.data_type.is_some()) {
        return Err(SqlError::Syntax(
            "a view's column list names columns only, without types".into(),
        ));
    }
    Ok(Statement::CreateView {
        name: TableName::from_object_name(&create.name)?,
        or_replace: create.or_replace,
        columns: create.columns.iter().map(|c| fold_ident(&c.name)).collect(),
        query: create.query,
    })
}

/// The text of a view's query with each unqualified relation name given the namespace
/// `namespace_of` says it resolves to (names of the query's own CTEs and names that resolve
/// to nothing, such as table functions, stay as written).
pub fn qualify_relations(
    query: &ast::Query,
    mut namespace_of: impl FnMut(&str) -> Option<String>,
) -> ast::Query {
    let mut query = query.clone();
    let ctes = cte_names(&query);
    let _ = ast::visit_relations_mut(&mut query, |name| {
        if let [part] = name.0.as_slice()
            && let Some(ident) = part.as_ident()
        {
            let folded = fold_ident(ident);
            if !ctes.contains(&folded)
                && let Some(namespace) = namespace_of(&folded)
            {
                name.0.insert(
                    0,
                    ast::ObjectNamePart::Identifier(ast::Ident::with_quote('"', namespace)),
                );
            }
        }
        ControlFlow::<()>::Continue(())
    });
    query
}

/// A stored (qualified) view query reading `namespace.old` as `new_namespace.new` instead (a
/// renamed table, or one moved to another namespace).
pub fn rename_relation(
    query: &ast::Query,
    (namespace, old): (&str, &str),
    (new_namespace, new): (&str, &str),
) -> ast::Query {
    let mut query = query.clone();
    let _ = ast::visit_relations_mut(&mut query, |name| {
        let parts: Vec<Option<String>> = name
            .0
            .iter()
            .map(|p| p.as_ident().map(fold_ident))
            .collect();
        let names_it = match parts.as_slice() {
            [.., Some(ns), Some(table)] => ns == namespace && table == old,
            _ => false,
        };
        if names_it {
            let parts = name.0.len();
            name.0[parts - 1] = ast::ObjectNamePart::Identifier(ast::Ident::with_quote('"', new));
            name.0[parts - 2] =
                ast::ObjectNamePart::Identifier(ast::Ident::with_quote('"', new_namespace));
        }
        ControlFlow::<()>::Continue(())
    });
    query
}

/// The names a query's WITH clauses (at any depth) define.
fn cte_names(query: &ast::Query) -> HashSet<String> {
    struct Ctes<'a>(&'a mut HashSet<String>);
    impl ast::Visitor for Ctes<'_> {
        type Break = ();
        fn pre_visit_query(&mut self, query: &ast::Query) -> ControlFlow<()> {
            if let Some(with) = &query.with {
                for cte in &with.cte_tables {
                    self.0.insert(fold_ident(&cte.alias.name));
                }
            }
            ControlFlow::Continue(())
        }
    }
    let mut names = HashSet::new();
    let _ = ast::Visit::visit(query, &mut Ctes(&mut names));
    names
}

/// Parses a stored view query back into its AST.
pub fn parse_view_query(text: &str) -> Result<ast::Query, SqlError> {
    match super::parse(text)?.as_slice() {
        [Statement::Query(statement)] => match statement.as_ref() {
            ast::Statement::Query(query) => Ok(query.as_ref().clone()),
            _ => Err(SqlError::Syntax(format!(
                "view query {text} is not a query"
            ))),
        },
        _ => Err(SqlError::Syntax(format!(
            "view query {text} is not one query"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(sql: &str) -> ast::Query {
        match super::super::parse(sql).unwrap().remove(0) {
            Statement::Query(s) => match *s {
                ast::Statement::Query(q) => *q,
                _ => unreachable!(),
            },
            _ => unreachable!(),
        }
    }

    #[test]
    fn unqualified_relations_get_their_namespace_but_ctes_do_not() {
        let q = query(
            "WITH recent AS (SELECT * FROM orders) \
             SELECT * FROM recent JOIN app.users u ON true WHERE EXISTS (SELECT 1 FROM items)",
        );
        let qualified = qualify_relations(&q, |name| (name != "nothing").then(|| "ns".into()));
        let text = qualified.to_string();
        assert!(text.contains("FROM \"ns\".orders"), "{text}");
        assert!(text.contains("FROM recent"), "{text}");
        assert!(text.contains("app.users"), "{text}");
        assert!(text.contains("FROM \"ns\".items"), "{text}");
        assert_eq!(parse_view_query(&text).unwrap().to_string(), text);
        let renamed = rename_relation(&qualified, ("ns", "orders"), ("ns", "Orders2")).to_string();
        assert!(renamed.contains("FROM \"ns\".\"Orders2\""), "{renamed}");
        assert!(renamed.contains("FROM \"ns\".items"), "{renamed}");
    }
}
