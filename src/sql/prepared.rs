//! SQL-level prepared statements and the reset of session state: `PREPARE name [(types)] AS
//! statement`, `EXECUTE name [(values)]` and `DISCARD {ALL | PLANS | SEQUENCES | TEMP}`, which
//! connection poolers (PgBouncer's `server_reset_query`, pgpool) and hand-written SQL send.

use datafusion::sql::sqlparser::ast;

use super::{SqlError, Statement};

/// `PREPARE name [(type, ...)] AS statement`.
#[derive(Debug, Clone)]
pub struct Preparation {
    pub name: String,
    /// The declared parameter types as written (each a type KalamDB stores), in order;
    /// parameters past them are inferred.
    pub param_types: Vec<String>,
    /// The statement, as a planned statement sees it.
    pub statement: Box<Statement>,
}

/// What `DISCARD` resets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Discarded {
    /// Every piece of session state below, and the settings, cursors, prepared statements and
    /// advisory locks.
    All,
    /// Cached plans (`DISCARD PLANS`).
    Plans,
    /// `currval`/`lastval` state.
    Sequences,
    /// Temporary tables (`DISCARD TEMP` / `TEMPORARY`).
    Temporary,
}

impl Discarded {
    pub fn tag(self) -> &'static str {
        match self {
            Discarded::All => "DISCARD ALL",
            Discarded::Plans => "DISCARD PLANS",
            Discarded::Sequences => "DISCARD SEQUENCES",
            Discarded::Temporary => "DISCARD TEMP",
        }
    }
}

/// A PREPARE as sqlparser read it. Only statements that plan (SELECT, VALUES, INSERT, UPDATE,
/// DELETE) can be prepared, as in PostgreSQL; `standard` converts the statement with the
/// rewrites every statement gets.
pub(super) fn preparation(
    name: &ast::Ident,
    data_types: &[ast::DataType],
    mut statement: ast::Statement,
    standard: impl FnOnce(ast::Statement) -> Result<Statement, SqlError>,
) -> Result<Statement, SqlError> {
    let preparable = matches!(
        statement,
        ast::Statement::Query(_)
            | ast::Statement::Insert(_)
            | ast::Statement::Update(_)
            | ast::Statement::Delete(_)
    );
    if !preparable {
        return Err(SqlError::Syntax(format!(
            "syntax error at or near \"{}\": PREPARE takes SELECT, VALUES, INSERT, UPDATE or DELETE",
            first_word(&statement)
        )));
    }
    if name.value.is_empty() {
        return Err(SqlError::Syntax(
            "zero-length delimited identifier at or near \"\"\"\"".into(),
        ));
    }
    let param_types = data_types
        .iter()
        .map(|data_type| super::ddl::sql_type(data_type).map(|_| data_type.to_string()))
        .collect::<Result<Vec<_>, _>>()?;
    type_declared_parameters(&mut statement, data_types);
    Ok(Statement::Prepare(Box::new(Preparation {
        name: super::parse::fold_ident(name),
        param_types,
        statement: Box::new(standard(statement)?),
    })))
}

/// Casts each `$n` that PREPARE declared a type for to that type, so that planning types it
/// as declared (PostgreSQL's `PREPARE p(int) AS SELECT $1` returns an integer) where it would
/// otherwise infer a type from the context or none. LIMIT, OFFSET and FETCH keep their bare
/// placeholders, which they must be to plan.
fn type_declared_parameters(statement: &mut ast::Statement, data_types: &[ast::DataType]) {
    if data_types.is_empty() {
        return;
    }
    if let ast::Statement::Query(query) = statement {
        name_bare_parameters(query);
    }
    let mut casts = DeclaredCasts {
        data_types,
        row_limits: Vec::new(),
    };
    let _ = ast::VisitMut::visit(statement, &mut casts);
}

struct DeclaredCasts<'a> {
    data_types: &'a [ast::DataType],
    /// The row limits of the queries being visited, set aside until each query's end.
    row_limits: Vec<(Option<ast::LimitClause>, Option<ast::Fetch>)>,
}

impl ast::VisitorMut for DeclaredCasts<'_> {
    type Break = ();

    fn pre_visit_query(&mut self, query: &mut ast::Query) -> std::ops::ControlFlow<()> {
        self.row_limits
            .push((query.limit_clause.take(), query.fetch.take()));
        std::ops::ControlFlow::Continue(())
    }

    fn post_visit_query(&mut self, query: &mut ast::Query) -> std::ops::ControlFlow<()> {
        if let Some((limit_clause, fetch)) = self.row_limits.pop() {
            query.limit_clause = limit_clause;
            query.fetch = fetch;
        }
        std::ops::ControlFlow::Continue(())
    }

    fn post_visit_expr(&mut self, expr: &mut ast::Expr) -> std::ops::ControlFlow<()> {
        let declared = match expr {
            ast::Expr::Value(value) => match &value.value {
                ast::Value::Placeholder(p) => p
                    .strip_prefix('$')
                    .and_then(|n| n.parse::<usize>().ok())
                    .and_then(|n| n.checked_sub(1))
                    .and_then(|i| self.data_types.get(i)),
                _ => None,
            },
            _ => None,
        };
        if let Some(data_type) = declared {
            let placeholder = std::mem::replace(expr, ast::Expr::value(ast::Value::Null));
            *expr = ast::Expr::Cast {
                kind: ast::CastKind::Cast,
                expr: Box::new(placeholder),
                data_type: data_type.clone(),
                array: false,
                format: None,
            };
        }
        std::ops::ControlFlow::Continue(())
    }
}

/// A select item that is a bare `$n` is named `?column?` in PostgreSQL, which the cast around
/// it would change to the type's name: it keeps its name by an alias.
fn name_bare_parameters(query: &mut ast::Query) {
    let ast::SetExpr::Select(select) = query.body.as_mut() else {
        return;
    };
    for item in &mut select.projection {
        if let ast::SelectItem::UnnamedExpr(expr) = item
            && matches!(expr, ast::Expr::Value(v) if matches!(v.value, ast::Value::Placeholder(_)))
        {
            *item = ast::SelectItem::ExprWithAlias {
                expr: expr.clone(),
                alias: ast::Ident::with_quote('"', "?column?"),
            };
        }
    }
}

/// An EXECUTE as sqlparser read it: PostgreSQL's form only, a name and values.
pub(super) fn execution(statement: ast::Statement) -> Result<Statement, SqlError> {
    let ast::Statement::Execute {
        name: Some(name),
        parameters,
        immediate: false,
        into,
        using,
        output: false,
        default: false,
        ..
    } = statement
    else {
        return Err(SqlError::Unsupported(
            "EXECUTE takes a prepared statement's name and values: EXECUTE name [(value, ...)]"
                .into(),
        ));
    };
    if !into.is_empty() || !using.is_empty() || name.0.len() != 1 {
        return Err(SqlError::Unsupported(
            "EXECUTE takes a prepared statement's name and values: EXECUTE name [(value, ...)]"
                .into(),
        ));
    }
    let name = match name.0.first().and_then(|part| part.as_ident()) {
        Some(ident) => super::parse::fold_ident(ident),
        None => return Err(SqlError::Syntax("EXECUTE needs a statement name".into())),
    };
    Ok(Statement::Execute {
        name,
        params: parameters,
    })
}

pub(super) fn discard(object_type: ast::DiscardObject) -> Statement {
    Statement::Discard(match object_type {
        ast::DiscardObject::ALL => Discarded::All,
        ast::DiscardObject::PLANS => Discarded::Plans,
        ast::DiscardObject::SEQUENCES => Discarded::Sequences,
        ast::DiscardObject::TEMP => Discarded::Temporary,
    })
}

/// The query that evaluates an EXECUTE's values, each cast to its declared type where there
/// is one: PostgreSQL coerces them to the parameters' types before the statement runs.
pub fn values_query(params: &[ast::Expr], declared: &[String]) -> String {
    let values: Vec<String> = params
        .iter()
        .enumerate()
        .map(|(i, value)| match declared.get(i) {
            Some(sql_type) => format!("CAST(({value}) AS {sql_type})"),
            None => format!("({value})"),
        })
        .collect();
    format!("SELECT {}", values.join(", "))
}

fn first_word(statement: &ast::Statement) -> String {
    statement
        .to_string()
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sql::parse;

    fn one(text: &str) -> Statement {
        let mut statements = parse(text).unwrap();
        assert_eq!(statements.len(), 1, "{text}");
        statements.pop().unwrap()
    }

    #[test]
    fn prepare_keeps_its_name_types_and_statement() {
        let Statement::Prepare(preparation) =
            one("PREPARE Find (int, text) AS SELECT $1::int + 1, $2")
        else {
            panic!("not a PREPARE")
        };
        assert_eq!(preparation.name, "find");
        assert_eq!(preparation.param_types, vec!["INT", "TEXT"]);
        assert!(matches!(*preparation.statement, Statement::Query(_)));
    }

    #[test]
    fn prepare_takes_dml_and_refuses_utility_statements() {
        assert!(matches!(
            one("PREPARE ins AS INSERT INTO t VALUES ($1)"),
            Statement::Prepare(p) if matches!(*p.statement, Statement::Insert(_))
        ));
        assert!(matches!(
            parse("PREPARE p AS CREATE TABLE t (a int)"),
            Err(SqlError::Syntax(_))
        ));
    }

    #[test]
    fn execute_keeps_its_name_and_values() {
        let Statement::Execute { name, params } = one("EXECUTE Find(1, 'a' || 'b')") else {
            panic!("not an EXECUTE")
        };
        assert_eq!(name, "find");
        assert_eq!(params.len(), 2);
        assert!(matches!(one("EXECUTE p"), Statement::Execute { params, .. } if params.is_empty()));
    }

    #[test]
    fn values_are_cast_to_their_declared_types() {
        let Statement::Execute { params, .. } = one("EXECUTE p('1', 2, 3)") else {
            panic!("not an EXECUTE")
        };
        assert_eq!(
            values_query(&params, &["INT".into(), "TEXT".into()]),
            "SELECT CAST(('1') AS INT), CAST((2) AS TEXT), (3)"
        );
    }

    #[test]
    fn discard_names_what_it_resets() {
        for (text, discarded) in [
            ("DISCARD ALL", Discarded::All),
            ("DISCARD PLANS", Discarded::Plans),
            ("DISCARD SEQUENCES", Discarded::Sequences),
            ("DISCARD TEMP", Discarded::Temporary),
            ("DISCARD TEMPORARY", Discarded::Temporary),
        ] {
            assert!(
                matches!(one(text), Statement::Discard(d) if d == discarded),
                "{text}"
            );
        }
    }
}
