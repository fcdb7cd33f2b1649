//! Set-returning functions in FROM that read the rows before them, as PostgreSQL runs them
//! laterally: `FROM orders o, jsonb_array_elements(o.doc->'items') item` gives each order a row
//! per item. DataFusion cannot plan such a correlated derived table, so each becomes a join.
//!
//! By then the call is a derived table without FROM (`(SELECT unnest(...) AS item) item`, see
//! `set_returning`), whose column references can only be to the items before it. The derived
//! table computes the call once per distinct combination of those columns, read from the items
//! before it, and carries the combination out (`__lateral_key_<n>` columns) to be joined on:
//!
//! ```sql
//! FROM orders o JOIN (SELECT kalamdb_lateral_key(l.__lateral_1) AS __lateral_key_1,
//!                            unnest(... l.__lateral_1 ...) AS item
//!                     FROM (SELECT DISTINCT o.doc AS __lateral_1 FROM orders o) l) item
//!               ON item.__lateral_key_1 = o.doc
//! ```
//!
//! A NULL argument gives a set-returning function no rows, as the equality join gives none.
//! `LEFT JOIN LATERAL ... ON cond` keeps its condition beside the equalities, and a `*` of the
//! select list leaves the carried columns out.

use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{
    self, ExcludeSelectItem, Expr, Ident, Join, JoinConstraint, JoinOperator, ObjectName,
    SelectItem, SelectItemQualifiedWildcardKind, SetExpr, TableFactor, TableWithJoins, VisitMut,
    VisitorMut, WildcardAdditionalOptions,
};

/// The prefix of the columns that carry a call's arguments out to the join.
const CARRIED: &str = "__lateral_";

/// The executor's identity function the carried columns pass through. As plain columns they
/// would keep the uniqueness DISTINCT gives them, which DataFusion wrongly keeps across the
/// call's unnest: a join whose call columns go unused then became a semi join, one row per
/// item instead of one per element (`count(*)` of `FROM t, jsonb_each(t.doc)` counted rows
/// of `t`).
pub const CARRY_FUNCTION: &str = "kalamdb_lateral_key";

/// Joins every lateral call of `select` to the items before it.
pub(super) fn join_lateral_calls(select: &mut ast::Select) {
    // Each carried key with the alias of the derived table it leaves by.
    let mut carried: Vec<(Ident, Ident)> = Vec::new();
    // A comma item reading the items before it: all of them become one join tree, so that
    // the join condition may name any of them.
    let mut index = 1;
    while index < select.from.len() {
        let preceding = &select.from[..index];
        if let Some(joined) = lateral(&select.from[index].relation, preceding, &mut carried) {
            let later = select.from.split_off(index);
            let mut tree = merged(std::mem::take(&mut select.from));
            let mut later = later.into_iter();
            let item = later.next().expect("the item at index");
            tree.joins.push(Join {
                relation: joined.relation,
                global: false,
                join_operator: JoinOperator::Inner(JoinConstraint::On(joined.condition)),
            });
            tree.joins.extend(item.joins);
            select.from = std::iter::once(tree).chain(later).collect();
            index = 1;
            continue;
        }
        index += 1;
    }
    for item in 0..select.from.len() {
        for position in 0..select.from[item].joins.len() {
            let mut preceding: Vec<TableWithJoins> = select.from[..item].to_vec();
            preceding.push(TableWithJoins {
                relation: select.from[item].relation.clone(),
                joins: select.from[item].joins[..position].to_vec(),
            });
            let join = &select.from[item].joins[position];
            let Some(joined) = lateral(&join.relation, &preceding, &mut carried) else {
                continue;
            };
            let operator = match &join.join_operator {
                JoinOperator::CrossJoin(JoinConstraint::None)
                | JoinOperator::Join(JoinConstraint::None)
                | JoinOperator::Inner(JoinConstraint::None) => {
                    JoinOperator::Inner(JoinConstraint::On(joined.condition))
                }
                JoinOperator::Join(JoinConstraint::On(on))
                | JoinOperator::Inner(JoinConstraint::On(on)) => {
                    JoinOperator::Inner(JoinConstraint::On(and(joined.condition, on.clone())))
                }
                JoinOperator::Left(JoinConstraint::On(on))
                | JoinOperator::LeftOuter(JoinConstraint::On(on)) => {
                    JoinOperator::LeftOuter(JoinConstraint::On(and(joined.condition, on.clone())))
                }
                _ => continue,
            };
            let join = &mut select.from[item].joins[position];
            join.relation = joined.relation;
            join.join_operator = operator;
        }
    }
    if !carried.is_empty() {
        leave_out_of_wildcards(&mut select.projection, &carried);
    }
}

/// A lateral call made joinable: the derived table and the condition that joins it.
struct Joinable {
    relation: TableFactor,
    condition: Expr,
}

/// `relation` as a join onto `preceding`, when it is a derived table without FROM whose
/// select list reads columns (which can only be those of `preceding`).
fn lateral(
    relation: &TableFactor,
    preceding: &[TableWithJoins],
    carried: &mut Vec<(Ident, Ident)>,
) -> Option<Joinable> {
    let TableFactor::Derived {
        subquery,
        alias: Some(alias),
        ..
    } = relation
    else {
        return None;
    };
    let SetExpr::Select(inner) = subquery.body.as_ref() else {
        return None;
    };
    if !inner.from.is_empty() || subquery.with.is_some() {
        return None;
    }
    let mut references = References::default();
    let mut projection = inner.projection.clone();
    let _ = VisitMut::visit(&mut projection, &mut references);
    if references.found.is_empty() || references.has_subquery {
        return None;
    }
    let first = carried.len() + 1;
    let names: Vec<Ident> = (first..first + references.found.len())
        .map(|n| Ident::new(format!("{CARRIED}{n}")))
        .collect();
    // Out of the derived table under names of their own (the source's stay beside them while
    // DataFusion plans the unnest).
    let keys: Vec<Ident> = (first..first + references.found.len())
        .map(|n| Ident::new(format!("{CARRIED}key_{n}")))
        .collect();
    carried.extend(keys.iter().map(|key| (alias.name.clone(), key.clone())));
    let source = Ident::new(format!("{CARRIED}source_{first}"));
    // Each reference, read from the source of distinct combinations.
    let mut replace = Replace {
        references: &references.found,
        names: &names,
        source: &source,
    };
    let _ = VisitMut::visit(&mut projection, &mut replace);
    let distinct: Vec<String> = references
        .found
        .iter()
        .zip(&names)
        .map(|(reference, name)| format!("{reference} AS {name}"))
        .collect();
    let carried_out: Vec<String> = names
        .iter()
        .zip(&keys)
        .map(|(n, key)| format!("{CARRY_FUNCTION}({source}.{n}) AS {key}"))
        .collect();
    let items: Vec<String> = projection.iter().map(ToString::to_string).collect();
    let preceding: Vec<String> = preceding.iter().map(ToString::to_string).collect();
    let sql = format!(
        "SELECT {}, {} FROM (SELECT DISTINCT {} FROM {}) AS {source}",
        carried_out.join(", "),
        items.join(", "),
        distinct.join(", "),
        preceding.join(", ")
    );
    let dialect = datafusion::sql::sqlparser::dialect::PostgreSqlDialect {};
    let query = datafusion::sql::sqlparser::parser::Parser::new(&dialect)
        .try_with_sql(&sql)
        .and_then(|mut parser| parser.parse_query())
        .ok()?;
    let condition = references
        .found
        .iter()
        .zip(&keys)
        .map(|(reference, key)| {
            super::parse_expr(&format!("{}.{key} = {reference}", alias.name)).ok()
        })
        .collect::<Option<Vec<Expr>>>()?
        .into_iter()
        .reduce(and)?;
    Some(Joinable {
        relation: TableFactor::Derived {
            lateral: false,
            subquery: query,
            alias: Some(alias.clone()),
            sample: None,
        },
        condition,
    })
}

/// The column references of a select list, each once, in order of appearance.
#[derive(Default)]
struct References {
    found: Vec<Expr>,
    has_subquery: bool,
}

impl VisitorMut for References {
    type Break = ();

    fn pre_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
        match expr {
            Expr::Identifier(_) | Expr::CompoundIdentifier(_) if !self.found.contains(expr) => {
                self.found.push(expr.clone());
            }
            Expr::Subquery(_) | Expr::Exists { .. } | Expr::InSubquery { .. } => {
                self.has_subquery = true
            }
            _ => {}
        }
        ControlFlow::Continue(())
    }
}

/// Replaces each reference with its carried column of `source`.
struct Replace<'a> {
    references: &'a [Expr],
    names: &'a [Ident],
    source: &'a Ident,
}

impl VisitorMut for Replace<'_> {
    type Break = ();

    fn post_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
        if let Some(at) = self.references.iter().position(|r| r == expr) {
            *expr = Expr::CompoundIdentifier(vec![self.source.clone(), self.names[at].clone()]);
        }
        ControlFlow::Continue(())
    }
}

/// Comma-separated items as one join tree, each cross-joined to the ones before.
fn merged(items: Vec<TableWithJoins>) -> TableWithJoins {
    let mut items = items.into_iter();
    let mut tree = items
        .next()
        .expect("at least one item precedes a lateral call");
    for item in items {
        tree.joins.push(Join {
            relation: item.relation,
            global: false,
            join_operator: JoinOperator::CrossJoin(JoinConstraint::None),
        });
        tree.joins.extend(item.joins);
    }
    tree
}

fn and(left: Expr, right: Expr) -> Expr {
    Expr::BinaryOp {
        left: Box::new(left),
        op: ast::BinaryOperator::And,
        right: Box::new(right),
    }
}

/// `*` and `alias.*` of the select list without the carried columns (an `alias.*` of a table
/// that carries none stays as it is).
fn leave_out_of_wildcards(projection: &mut [SelectItem], carried: &[(Ident, Ident)]) {
    for item in projection {
        let (options, keys): (&mut WildcardAdditionalOptions, Vec<&Ident>) = match item {
            SelectItem::Wildcard(options) => (options, carried.iter().map(|(_, k)| k).collect()),
            SelectItem::QualifiedWildcard(
                SelectItemQualifiedWildcardKind::ObjectName(qualifier),
                options,
            ) => {
                let table = qualifier
                    .0
                    .last()
                    .and_then(|p| p.as_ident())
                    .map(super::fold);
                let keys = carried
                    .iter()
                    .filter(|(alias, _)| Some(super::fold(alias)) == table)
                    .map(|(_, k)| k)
                    .collect();
                (options, keys)
            }
            _ => continue,
        };
        if options.opt_exclude.is_none() && !keys.is_empty() {
            options.opt_exclude = Some(ExcludeSelectItem::Multiple(
                keys.into_iter()
                    .map(|name| ObjectName::from(vec![name.clone()]))
                    .collect(),
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    fn rewritten(sql: &str) -> String {
        crate::sql::rewritten_by(sql, |statement| {
            if let ast::Statement::Query(query) = statement
                && let SetExpr::Select(select) = query.body.as_mut()
            {
                join_lateral_calls(select)
            }
        })
    }

    use super::*;

    #[test]
    fn a_call_reading_earlier_items_is_joined_on_its_distinct_arguments() {
        assert_eq!(
            rewritten("SELECT o.id, e.k FROM orders o, (SELECT unnest(f(o.doc)) AS k) e"),
            "SELECT o.id, e.k FROM orders o INNER JOIN (SELECT \
             kalamdb_lateral_key(__lateral_source_1.__lateral_1) AS __lateral_key_1, \
             unnest(f(__lateral_source_1.__lateral_1)) AS k FROM (SELECT DISTINCT o.doc AS \
             __lateral_1 FROM orders o) AS __lateral_source_1) e ON e.__lateral_key_1 = o.doc"
        );
    }

    #[test]
    fn a_left_lateral_join_keeps_its_condition_and_wildcards_leave_the_carried_columns_out() {
        let sql = rewritten(
            "SELECT * FROM a JOIN b ON a.x = b.x LEFT JOIN LATERAL (SELECT b.y + a.z AS s) l ON l.s > 0",
        );
        assert!(
            sql.starts_with("SELECT * EXCLUDE (__lateral_key_1, __lateral_key_2) FROM a"),
            "{sql}"
        );
        assert!(
            sql.contains("FROM (SELECT DISTINCT b.y AS __lateral_1, a.z AS __lateral_2 FROM a JOIN b ON a.x = b.x)"),
            "{sql}"
        );
        assert!(
            sql.ends_with("LEFT OUTER JOIN (SELECT kalamdb_lateral_key(__lateral_source_1.__lateral_1) AS __lateral_key_1, \
             kalamdb_lateral_key(__lateral_source_1.__lateral_2) AS __lateral_key_2, \
             __lateral_source_1.__lateral_1 + __lateral_source_1.__lateral_2 AS s FROM (SELECT DISTINCT b.y AS __lateral_1, \
             a.z AS __lateral_2 FROM a JOIN b ON a.x = b.x) AS __lateral_source_1) l ON l.__lateral_key_1 = b.y AND \
             l.__lateral_key_2 = a.z AND l.s > 0"),
            "{sql}"
        );
    }

    #[test]
    fn a_qualified_wildcard_leaves_out_only_its_own_tables_carried_columns() {
        let sql = rewritten("SELECT t.*, e.* FROM t, (SELECT unnest(f(t.doc)) AS k) e");
        assert!(
            sql.starts_with("SELECT t.*, e.* EXCLUDE (__lateral_key_1) FROM t"),
            "{sql}"
        );
    }

    #[test]
    fn calls_without_column_references_stay() {
        let sql = "SELECT * FROM t, (SELECT unnest(generate_series(1, 3)) AS g) AS g";
        assert_eq!(
            rewritten(sql),
            "SELECT * FROM t, (SELECT unnest(generate_series(1, 3)) AS g) AS g"
        );
    }
}
