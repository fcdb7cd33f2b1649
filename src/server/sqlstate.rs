//! The one place where KalamDB errors become PostgreSQL SQLSTATEs.

use datafusion::arrow::error::ArrowError;
use datafusion::error::DataFusionError;
use pgwire::error::{ErrorInfo, PgWireError};

use crate::backup::PathError;
use crate::exec::ExecError;
use crate::jobs::JobError;
use crate::sql::SqlError;
use crate::storage::{Conflict, StorageError};

pub const SEVERITY_ERROR: &str = "ERROR";
pub const SEVERITY_FATAL: &str = "FATAL";

pub const INVALID_PASSWORD: &str = "28P01";
pub const INVALID_AUTHORIZATION: &str = "28000";
pub const TOO_MANY_CONNECTIONS: &str = "53300";
pub const FEATURE_NOT_SUPPORTED: &str = "0A000";
pub const INVALID_PARAMETER_VALUE: &str = "22023";
pub const PROTOCOL_VIOLATION: &str = "08P01";
pub const INVALID_TEXT_REPRESENTATION: &str = "22P02";
pub const ADMIN_SHUTDOWN: &str = "57P01";
pub const INSUFFICIENT_PRIVILEGE: &str = "42501";
pub const INTERNAL_ERROR: &str = "XX000";
pub const IDLE_IN_TRANSACTION_TIMEOUT: &str = "25P03";
pub const PROGRAM_LIMIT_EXCEEDED: &str = "54000";

/// SQLSTATE and message for an execution-layer error.
pub fn exec_error(err: &ExecError) -> ErrorInfo {
    let message = match err {
        ExecError::DataFusion(e) => datafusion_message(e),
        other => other.to_string(),
    };
    error(exec_code(err), message)
}

fn exec_code(err: &ExecError) -> &'static str {
    match err {
        ExecError::Sql(e) => sql_code(e),
        ExecError::Storage(e) => storage_code(e),
        ExecError::DataFusion(e) => datafusion_code(e),
        ExecError::UndefinedObject(_) => "42704",
        ExecError::DuplicateObject(_) => "42710",
        ExecError::InvalidParameterValue(_) => INVALID_PARAMETER_VALUE,
        ExecError::CantChangeRuntimeParam(_) => "55P02",
        ExecError::InFailedTransaction => "25P02",
        ExecError::ObjectInUse(_) => "55006",
        ExecError::QueryCanceled | ExecError::StatementTimeout => "57014",
        ExecError::UndefinedTable(_) => "42P01",
        ExecError::UndefinedColumn(_) => "42703",
        ExecError::DuplicateColumn(_) => "42701",
        ExecError::NotNullViolation(_) => "23502",
        ExecError::UniqueViolation(_) => "23505",
        ExecError::StringTooLong(_) => "22001",
        ExecError::NumericOutOfRange(_) => "22003",
        ExecError::InvalidText(_) => INVALID_TEXT_REPRESENTATION,
        ExecError::WrongObjectType(_) => "42809",
        ExecError::InvalidColumnReference(_) => "42P10",
        ExecError::CardinalityViolation(_) => "21000",
        ExecError::InvalidSchemaName(_) => "3F000",
        ExecError::ReservedName(_) => "42939",
        ExecError::NoActiveTransaction(_) => "25P01",
        ExecError::InvalidSavepoint(_) => "3B001",
        ExecError::BackupPath(PathError::Invalid(_)) => INVALID_PARAMETER_VALUE,
        ExecError::BackupPath(PathError::Forbidden(_)) => INSUFFICIENT_PRIVILEGE,
        ExecError::Job(e) => match e {
            JobError::Storage(e) => storage_code(e),
            JobError::NoSuchJob(_) => "42704",
            JobError::AlreadyFinished(_) => "55000",
            JobError::Failed(_) | JobError::Cancelled => "XX000",
        },
        ExecError::RoleDropped(_) => INVALID_AUTHORIZATION,
        ExecError::Internal(_) => "XX000",
    }
}

pub fn sql_error(err: &SqlError) -> ErrorInfo {
    error(sql_code(err), err.to_string())
}

pub fn error(code: &str, message: impl Into<String>) -> ErrorInfo {
    ErrorInfo::new(SEVERITY_ERROR.into(), code.into(), message.into())
}

pub fn fatal(code: &str, message: impl Into<String>) -> PgWireError {
    PgWireError::UserError(Box::new(fatal_info(code, message)))
}

/// A FATAL error: the last message a connection receives.
pub fn fatal_info(code: &str, message: impl Into<String>) -> ErrorInfo {
    ErrorInfo::new(SEVERITY_FATAL.into(), code.into(), message.into())
}

fn sql_code(err: &SqlError) -> &'static str {
    match err {
        SqlError::Syntax(_) => "42601",
        SqlError::Unsupported(_) => FEATURE_NOT_SUPPORTED,
        SqlError::PermissionDenied { .. } | SqlError::PermissionDeniedDetail(_) => {
            INSUFFICIENT_PRIVILEGE
        }
        SqlError::DuplicateColumn(_) => "42701",
        SqlError::UndefinedColumn(_) => "42703",
        SqlError::StackDepth(_) => "54001",
        SqlError::TooManyColumns(_) => "54011",
        SqlError::UndefinedParameter(_) => "42P02",
    }
}

fn storage_code(err: &StorageError) -> &'static str {
    match err {
        StorageError::Io { .. } => "58030",
        StorageError::Locked(..) => "55006",
        StorageError::Rocks(_) | StorageError::Corrupt { .. } => "XX000",
        StorageError::Conflict(conflict) => match conflict {
            Conflict::NamespaceExists(_) => "42P06",
            Conflict::NoSuchNamespace(_) => "3F000",
            Conflict::NamespaceNotEmpty(_) => "2BP01",
            Conflict::TableExists(..) => "42P07",
            Conflict::NoSuchTable(..) => "42P01",
            Conflict::DuplicateKey { .. } => "23505",
            Conflict::TableChanged(_) | Conflict::RowChanged { .. } => "40001",
        },
    }
}

fn datafusion_code(err: &DataFusionError) -> &'static str {
    match err.find_root() {
        DataFusionError::SQL(..) => "42601",
        DataFusionError::NotImplemented(_) => FEATURE_NOT_SUPPORTED,
        DataFusionError::SchemaError(e, _) => match **e {
            datafusion::common::SchemaError::FieldNotFound { .. } => "42703",
            datafusion::common::SchemaError::AmbiguousReference { .. } => "42702",
            datafusion::common::SchemaError::DuplicateQualifiedField { .. }
            | datafusion::common::SchemaError::DuplicateUnqualifiedField { .. } => "42701",
        },
        DataFusionError::ArrowError(e, _) => arrow_code(e),
        DataFusionError::Plan(message) if message.contains("not found") => {
            if message.contains("table") {
                "42P01"
            } else if message.contains("function") {
                "42883"
            } else {
                "42704"
            }
        }
        DataFusionError::Plan(message) if message.contains("Invalid function") => "42883",
        DataFusionError::Plan(_) => "42804",
        DataFusionError::Execution(message) if message.contains("Divide by zero") => "22012",
        DataFusionError::Execution(message) if message.contains("Cannot cast") => {
            INVALID_TEXT_REPRESENTATION
        }
        DataFusionError::External(inner) => {
            if let Some(e) = inner.downcast_ref::<ExecError>() {
                exec_code(e)
            } else if let Some(e) = inner.downcast_ref::<StorageError>() {
                storage_code(e)
            } else {
                "XX000"
            }
        }
        DataFusionError::ResourcesExhausted(_) => "53200",
        _ => "XX000",
    }
}

fn arrow_code(err: &ArrowError) -> &'static str {
    match err {
        ArrowError::DivideByZero => "22012",
        ArrowError::CastError(_) | ArrowError::ParseError(_) => INVALID_TEXT_REPRESENTATION,
        ArrowError::ArithmeticOverflow(_) => "22003",
        _ => "XX000",
    }
}

/// DataFusion wraps messages in context ("Error during planning: ..."); clients want the cause.
fn datafusion_message(err: &DataFusionError) -> String {
    match err.find_root() {
        DataFusionError::Plan(m) if m.starts_with("table '") && m.ends_with("' not found") => {
            let name = &m["table '".len()..m.len() - "' not found".len()];
            let name = name.strip_prefix("kalamdb.").unwrap_or(name);
            format!("relation \"{name}\" does not exist")
        }
        DataFusionError::SchemaError(e, _) => match e.as_ref() {
            datafusion::common::SchemaError::FieldNotFound { field, .. } => {
                format!("column \"{}\" does not exist", field.name)
            }
            other => other.to_string(),
        },
        DataFusionError::Plan(m)
        | DataFusionError::Execution(m)
        | DataFusionError::NotImplemented(m) => m.clone(),
        DataFusionError::ArrowError(e, _) => match e.as_ref() {
            ArrowError::DivideByZero => "division by zero".into(),
            other => other.to_string(),
        },
        DataFusionError::External(inner) => inner.to_string(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permission_denied_is_42501_and_names_the_role() {
        let info = sql_error(&SqlError::PermissionDenied {
            statement: "CREATE USER",
            required: crate::model::Role::Dba,
        });
        assert_eq!(info.code, "42501");
        assert!(info.message.contains("dba"));
    }

    #[test]
    fn division_by_zero_is_22012() {
        let err = ExecError::DataFusion(DataFusionError::ArrowError(
            Box::new(ArrowError::DivideByZero),
            None,
        ));
        let info = exec_error(&err);
        assert_eq!(info.code, "22012");
        assert_eq!(info.message, "division by zero");
    }
}
