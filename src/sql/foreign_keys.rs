//! FOREIGN KEY and REFERENCES clauses, as a table constraint, a column constraint, or an
//! ALTER TABLE ... ADD CONSTRAINT.

use datafusion::sql::sqlparser::ast;

use super::SqlError;
use super::ddl::TableName;
use super::parse::fold_ident;
use crate::model::ReferentialAction;

/// A foreign key as declared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForeignKeySpec {
    pub name: Option<String>,
    pub columns: Vec<String>,
    pub parent: TableName,
    /// Empty: the referenced table's primary key.
    pub parent_columns: Vec<String>,
    pub on_delete: ReferentialAction,
    pub on_update: ReferentialAction,
    pub deferrable: bool,
    pub initially_deferred: bool,
}

impl ForeignKeySpec {
    /// A foreign key constraint; `column` for a column's REFERENCES clause (whose own column
    /// list is empty), `name` for a name given before it (`CONSTRAINT name REFERENCES ...`).
    pub(super) fn from_constraint(
        name: Option<&ast::Ident>,
        fk: &ast::ForeignKeyConstraint,
        column: Option<&str>,
    ) -> Result<ForeignKeySpec, SqlError> {
        if matches!(
            fk.match_kind,
            Some(
                ast::ConstraintReferenceMatchKind::Full
                    | ast::ConstraintReferenceMatchKind::Partial
            )
        ) {
            return Err(SqlError::Unsupported(
                "MATCH FULL and MATCH PARTIAL are not supported (foreign keys are MATCH SIMPLE)"
                    .into(),
            ));
        }
        let characteristics = fk.characteristics.unwrap_or_default();
        if characteristics.enforced == Some(false) {
            return Err(SqlError::Unsupported(
                "NOT ENFORCED constraints are not supported".into(),
            ));
        }
        let initially_deferred =
            characteristics.initially == Some(ast::DeferrableInitial::Deferred);
        if initially_deferred && characteristics.deferrable == Some(false) {
            return Err(SqlError::Syntax(
                "constraint declared INITIALLY DEFERRED must be DEFERRABLE".into(),
            ));
        }
        let columns = match column {
            Some(column) if fk.columns.is_empty() => vec![column.to_owned()],
            _ => fk.columns.iter().map(fold_ident).collect(),
        };
        Ok(ForeignKeySpec {
            name: name.or(fk.name.as_ref()).map(fold_ident),
            columns,
            parent: TableName::from_object_name(&fk.foreign_table)?,
            parent_columns: fk.referred_columns.iter().map(fold_ident).collect(),
            on_delete: action(fk.on_delete),
            on_update: action(fk.on_update),
            deferrable: characteristics.deferrable.unwrap_or(initially_deferred),
            initially_deferred,
        })
    }
}

fn action(action: Option<ast::ReferentialAction>) -> ReferentialAction {
    match action {
        None | Some(ast::ReferentialAction::NoAction) => ReferentialAction::NoAction,
        Some(ast::ReferentialAction::Restrict) => ReferentialAction::Restrict,
        Some(ast::ReferentialAction::Cascade) => ReferentialAction::Cascade,
        Some(ast::ReferentialAction::SetNull) => ReferentialAction::SetNull,
        Some(ast::ReferentialAction::SetDefault) => ReferentialAction::SetDefault,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sql::{Statement, parse};

    fn created(sql: &str) -> Vec<ForeignKeySpec> {
        match parse(sql).unwrap().remove(0) {
            Statement::CreateTable(create) => create.foreign_keys,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn column_and_table_foreign_keys_with_actions_and_deferral() {
        let keys = created(
            "CREATE TABLE c (id int PRIMARY KEY, p int REFERENCES parent ON DELETE CASCADE, \
             a int, b int, CONSTRAINT c_ab FOREIGN KEY (a, b) REFERENCES s.other (x, y) \
             ON UPDATE SET NULL DEFERRABLE INITIALLY DEFERRED)",
        );
        assert_eq!(keys.len(), 2);
        assert_eq!(keys[0].columns, ["p"]);
        assert!(keys[0].parent_columns.is_empty());
        assert_eq!(keys[0].on_delete, ReferentialAction::Cascade);
        assert_eq!(keys[0].on_update, ReferentialAction::NoAction);
        assert!(!keys[0].deferrable);
        assert_eq!(keys[1].name.as_deref(), Some("c_ab"));
        assert_eq!(keys[1].columns, ["a", "b"]);
        assert_eq!(keys[1].parent.namespace.as_deref(), Some("s"));
        assert_eq!(keys[1].parent_columns, ["x", "y"]);
        assert_eq!(keys[1].on_update, ReferentialAction::SetNull);
        assert!(keys[1].deferrable && keys[1].initially_deferred);
    }

    #[test]
    fn match_full_is_refused() {
        let err = parse("CREATE TABLE c (p int REFERENCES parent MATCH FULL)").unwrap_err();
        assert!(matches!(err, SqlError::Unsupported(_)), "{err:?}");
    }
}
