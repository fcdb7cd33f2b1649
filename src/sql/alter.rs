//! ALTER TABLE: the one action each statement carries, as a KalamDB statement.

use datafusion::sql::sqlparser::ast;

use super::ddl::{self, TableName};
use super::foreign_keys::ForeignKeySpec;
use super::parse::fold_ident;
use super::{ColumnChange, SqlError, Statement};

pub(super) fn from_alter_table(alter: &ast::AlterTable) -> Result<Statement, SqlError> {
    let table = TableName::from_object_name(&alter.name)?;
    Ok(match alter.operations.as_slice() {
        [
            ast::AlterTableOperation::AddColumn {
                if_not_exists,
                column_def,
                column_position: None,
                ..
            },
        ] => {
            let (column, is_key) = ddl::column_spec(column_def)?;
            if is_key {
                return Err(SqlError::Unsupported(
                    "adding a PRIMARY KEY column is not supported".into(),
                ));
            }
            if column.unique.is_some() || !column.checks.is_empty() {
                return Err(SqlError::Unsupported(
                    "adding a column with a UNIQUE or CHECK constraint is not supported: add the column, then ADD CONSTRAINT".into(),
                ));
            }
            if column.foreign_keys.len() > 1 {
                return Err(SqlError::Unsupported(
                    "adding a column with several REFERENCES clauses is not supported".into(),
                ));
            }
            Statement::AddColumn {
                table,
                column,
                if_not_exists: *if_not_exists,
            }
        }
        [
            ast::AlterTableOperation::AddConstraint {
                constraint: ast::TableConstraint::Unique(unique),
                not_valid: false,
            },
        ] => Statement::AddUnique {
            table,
            unique: ddl::UniqueSpec::from_constraint(None, unique)?,
        },
        [
            ast::AlterTableOperation::AddConstraint {
                constraint: ast::TableConstraint::Check(check),
                not_valid: false,
            },
        ] => Statement::AddCheck {
            table,
            check: ddl::CheckSpec::from_constraint(None, check, None)?,
        },
        [
            ast::AlterTableOperation::AddConstraint {
                constraint: ast::TableConstraint::ForeignKey(fk),
                not_valid: false,
            },
        ] => Statement::AddForeignKey {
            table,
            foreign_key: ForeignKeySpec::from_constraint(None, fk, None)?,
        },
        [
            ast::AlterTableOperation::DropConstraint {
                if_exists,
                name,
                drop_behavior: None | Some(ast::DropBehavior::Restrict),
            },
        ] => Statement::DropConstraint {
            table,
            name: fold_ident(name),
            if_exists: *if_exists,
        },
        [
            ast::AlterTableOperation::DropColumn {
                column_names,
                if_exists,
                drop_behavior,
                ..
            },
        ] if column_names.len() == 1 => Statement::DropColumn {
            table,
            column: fold_ident(&column_names[0]),
            if_exists: *if_exists,
            cascade: matches!(drop_behavior, Some(ast::DropBehavior::Cascade)),
        },
        [ast::AlterTableOperation::RenameTable { table_name }] => {
            let (ast::RenameTableNameKind::To(new) | ast::RenameTableNameKind::As(new)) =
                table_name;
            let new = TableName::from_object_name(new)?;
            if new.namespace.is_some() {
                return Err(SqlError::Syntax(
                    "the new name of ALTER TABLE ... RENAME TO cannot be qualified (use SET SCHEMA)".into(),
                ));
            }
            Statement::RenameTable {
                table,
                new_name: new.name,
            }
        }
        [
            ast::AlterTableOperation::RenameColumn {
                old_column_name,
                new_column_name,
            },
        ] => Statement::RenameColumn {
            table,
            column: fold_ident(old_column_name),
            new_name: fold_ident(new_column_name),
        },
        [ast::AlterTableOperation::AlterColumn { column_name, op }] => {
            let change = match op {
                ast::AlterColumnOperation::SetDefault { value } => {
                    ddl::check_default(value)?;
                    ColumnChange::SetDefault(value.to_string())
                }
                ast::AlterColumnOperation::DropDefault => ColumnChange::DropDefault,
                ast::AlterColumnOperation::SetDataType {
                    data_type, using, ..
                } => ColumnChange::SetType {
                    sql_type: ddl::sql_type(data_type)?,
                    using: using.as_ref().map(ToString::to_string),
                },
                ast::AlterColumnOperation::SetNotNull => ColumnChange::SetNotNull,
                ast::AlterColumnOperation::DropNotNull => ColumnChange::DropNotNull,
                other => {
                    return Err(SqlError::Unsupported(format!(
                        "ALTER TABLE ... ALTER COLUMN ... {other} is not supported"
                    )));
                }
            };
            Statement::AlterColumn {
                table,
                column: fold_ident(column_name),
                change,
            }
        }
        _ => {
            return Err(SqlError::Unsupported(
                "ALTER TABLE supports one action at a time: ADD COLUMN, DROP COLUMN, ADD/DROP CONSTRAINT, RENAME TO, RENAME COLUMN, or ALTER COLUMN SET/DROP DEFAULT and SET/DROP NOT NULL".into(),
            ));
        }
    })
}
