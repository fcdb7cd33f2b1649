//! Casts to `regproc` and `regprocedure` (`'now'::regproc`, `p.oid::regprocedure`) become
//! calls of the executor's functions that read a name, a signature or an OID as such a value
//! (see `exec::function_names`). DataFusion has no such types, and datafusion-pg-catalog's
//! rewrite looked the name up alone, ignoring schemas, signatures and ambiguity.

use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{self, Expr, VisitMut, VisitorMut};

/// The function a cast to `regproc` becomes.
pub const REGPROC_FUNCTION: &str = "kalamdb_regproc";
/// The function a cast to `regprocedure` becomes.
pub const REGPROCEDURE_FUNCTION: &str = "kalamdb_regprocedure";

/// Rewrites every such cast of the statement.
pub fn casts_to_function_references(statement: &mut ast::Statement) {
    let _ = VisitMut::visit(statement, &mut FunctionCasts);
}

struct FunctionCasts;

impl VisitorMut for FunctionCasts {
    type Break = ();

    fn post_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
        let Expr::Cast {
            expr: operand,
            data_type: ast::DataType::Custom(name, modifiers),
            ..
        } = expr
        else {
            return ControlFlow::Continue(());
        };
        if !modifiers.is_empty() {
            return ControlFlow::Continue(());
        }
        let parts: Vec<String> = name
            .0
            .iter()
            .filter_map(|part| part.as_ident().map(|i| i.value.to_lowercase()))
            .collect();
        let type_name = match parts.as_slice() {
            [type_name] => type_name,
            [schema, type_name] if schema == "pg_catalog" => type_name,
            _ => return ControlFlow::Continue(()),
        };
        let function = match type_name.as_str() {
            "regproc" => REGPROC_FUNCTION,
            "regprocedure" => REGPROCEDURE_FUNCTION,
            _ => return ControlFlow::Continue(()),
        };
        if let Ok(call) = super::parse_expr(&format!("{function}({operand})")) {
            *expr = call;
        }
        ControlFlow::Continue(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn casts_to_regproc_and_regprocedure_become_calls() {
        assert_eq!(
            crate::sql::rewritten_by(
                "SELECT 'now'::regproc, CAST(p.oid AS pg_catalog.regprocedure), x::regclass FROM p",
                casts_to_function_references,
            ),
            "SELECT kalamdb_regproc('now'), kalamdb_regprocedure(p.oid), x::REGCLASS FROM p"
        );
    }
}
