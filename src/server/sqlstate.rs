//! The one place where KalamDB errors become PostgreSQL SQLSTATEs.

use datafusion::arrow::error::ArrowError;
use datafusion::error::DataFusionError;
use pgwire::error::{ErrorInfo, PgWireError};

use crate::exec::ExecError;
use crate::sql::SqlError;

// PostgreSQL's SQLSTATE codes (Appendix A of its manual), by its condition names. Every code
// the server sends is named here, and chosen below by error type.

pub const SEVERITY_ERROR: &str = "ERROR";
pub const SEVERITY_FATAL: &str = "FATAL";

pub const INVALID_PASSWORD: &str = "28P01";
pub const INVALID_AUTHORIZATION: &str = "28000";
pub const TOO_MANY_CONNECTIONS: &str = "53300";
pub const FEATURE_NOT_SUPPORTED: &str = "0A000";
pub const INVALID_PARAMETER_VALUE: &str = "22023";
pub const PROTOCOL_VIOLATION: &str = "08P01";
pub const INVALID_TEXT_REPRESENTATION: &str = "22P02";
pub const INVALID_BINARY_REPRESENTATION: &str = "22P03";
pub const BAD_COPY_FILE_FORMAT: &str = "22P04";
pub const CHARACTER_NOT_IN_REPERTOIRE: &str = "22021";
pub const ADMIN_SHUTDOWN: &str = "57P01";
pub const INSUFFICIENT_PRIVILEGE: &str = "42501";
pub const INTERNAL_ERROR: &str = "XX000";
pub const IDLE_IN_TRANSACTION_TIMEOUT: &str = "25P03";
pub const PROGRAM_LIMIT_EXCEEDED: &str = "54000";
pub const AMBIGUOUS_COLUMN: &str = "42702";
pub const AMBIGUOUS_FUNCTION: &str = "42725";
pub const CANT_CHANGE_RUNTIME_PARAM: &str = "55P02";
pub const CARDINALITY_VIOLATION: &str = "21000";
pub const DATATYPE_MISMATCH: &str = "42804";
pub const DEPENDENT_OBJECTS_STILL_EXIST: &str = "2BP01";
pub const DIVISION_BY_ZERO: &str = "22012";
pub const DATETIME_FIELD_OVERFLOW: &str = "22008";
pub const INVALID_DATETIME_FORMAT: &str = "22007";
pub const INVALID_ARGUMENT_FOR_WIDTH_BUCKET: &str = "2201G";
pub const INVALID_REGULAR_EXPRESSION: &str = "2201B";
pub const ARRAY_SUBSCRIPT_ERROR: &str = "2202E";
pub const INTERVAL_FIELD_OVERFLOW: &str = "22015";
pub const DUPLICATE_COLUMN: &str = "42701";
pub const DUPLICATE_OBJECT: &str = "42710";
pub const DUPLICATE_ALIAS: &str = "42712";
pub const DUPLICATE_SCHEMA: &str = "42P06";
pub const DUPLICATE_TABLE: &str = "42P07";
pub const DUPLICATE_CURSOR: &str = "42P03";
pub const INVALID_CURSOR_NAME: &str = "34000";
pub const INVALID_SQL_STATEMENT_NAME: &str = "26000";
pub const DUPLICATE_PREPARED_STATEMENT: &str = "42P05";
pub const INVALID_COLUMN_REFERENCE: &str = "42P10";
pub const INVALID_SAVEPOINT_SPECIFICATION: &str = "3B001";
pub const INVALID_SCHEMA_NAME: &str = "3F000";
pub const IN_FAILED_SQL_TRANSACTION: &str = "25P02";
pub const ACTIVE_SQL_TRANSACTION: &str = "25001";
pub const NULL_VALUE_NOT_ALLOWED: &str = "22004";
pub const IO_ERROR: &str = "58030";
/// What PostgreSQL answers while it cannot yet serve (starting up, recovering): the client may
/// try again later. Cluster mode answers it when no leader or quorum is reachable in time.
pub const CANNOT_CONNECT_NOW: &str = "57P03";
/// A statement that may or may not have taken effect (also CockroachDB's code for an
/// ambiguous commit).
pub const STATEMENT_COMPLETION_UNKNOWN: &str = "40003";
pub const DATA_CORRUPTED: &str = "XX001";
pub const NOT_NULL_VIOLATION: &str = "23502";
pub const NO_ACTIVE_SQL_TRANSACTION: &str = "25P01";
pub const NUMERIC_VALUE_OUT_OF_RANGE: &str = "22003";
pub const OBJECT_IN_USE: &str = "55006";
pub const OBJECT_NOT_IN_PREREQUISITE_STATE: &str = "55000";
pub const OUT_OF_MEMORY: &str = "53200";
pub const QUERY_CANCELED: &str = "57014";
pub const RESERVED_NAME: &str = "42939";
pub const SERIALIZATION_FAILURE: &str = "40001";
pub const DEADLOCK_DETECTED: &str = "40P01";
pub const STATEMENT_TOO_COMPLEX: &str = "54001";
pub const STRING_DATA_RIGHT_TRUNCATION: &str = "22001";
pub const SYNTAX_ERROR: &str = "42601";
pub const INVALID_ESCAPE_SEQUENCE: &str = "22025";
pub const SUBSTRING_ERROR: &str = "22011";
pub const TOO_MANY_COLUMNS: &str = "54011";
pub const UNDEFINED_COLUMN: &str = "42703";
pub const UNDEFINED_FUNCTION: &str = "42883";
pub const UNDEFINED_OBJECT: &str = "42704";
pub const UNDEFINED_PARAMETER: &str = "42P02";
pub const UNDEFINED_TABLE: &str = "42P01";
pub const UNIQUE_VIOLATION: &str = "23505";
pub const FOREIGN_KEY_VIOLATION: &str = "23503";
pub const INVALID_FOREIGN_KEY: &str = "42830";
pub const CHECK_VIOLATION: &str = "23514";
pub const WRONG_OBJECT_TYPE: &str = "42809";
pub const SEQUENCE_GENERATOR_LIMIT_EXCEEDED: &str = "2200H";
pub const GENERATED_ALWAYS: &str = "428C9";
pub const INVALID_TABLE_DEFINITION: &str = "42P16";
pub const INVALID_OBJECT_DEFINITION: &str = "42P17";

/// An error the client is told of, as pgwire returns it from a handler.
pub fn user_error(info: ErrorInfo) -> PgWireError {
    PgWireError::UserError(Box::new(info))
}

/// SQLSTATE and message for an execution-layer error.
pub fn exec_error(err: &ExecError) -> ErrorInfo {
    // An error a function raised inside a query carries its own SQLSTATE and detail.
    if let ExecError::DataFusion(e) = err
        && let DataFusionError::External(inner) = e.find_root()
        && let Some(raised) = inner.downcast_ref::<ExecError>()
    {
        return exec_error(raised);
    }
    let message = match err {
        ExecError::DataFusion(e) => datafusion_message(e),
        other => other.to_string(),
    };
    if let ExecError::InCopy { source, context } = err {
        let mut info = exec_error(source);
        info.where_context = Some(context.clone());
        return info;
    }
    let mut info = error(exec_code(err), message);
    if let ExecError::KeyViolation { detail, .. }
    | ExecError::CheckViolation { detail, .. }
    | ExecError::ForeignKeyViolation { detail, .. }
    | ExecError::Deadlock { detail }
    | ExecError::InvalidJson { detail } = err
    {
        info.detail = Some(detail.clone());
    }
    if let ExecError::NoMatchingSignature { hint, .. } = err {
        info.hint = Some((*hint).to_owned());
    }
    if let ExecError::WrongParameterCount {
        expected, given, ..
    } = err
    {
        info.detail = Some(format!("Expected {expected} parameters but got {given}."));
    }
    if let ExecError::ForwardOnlyCursor = err {
        info.hint = Some("Declare it with SCROLL option to enable backward scan.".to_owned());
    }
    if let ExecError::InvalidJsonArray { detail, hint, .. } = err {
        info.detail = detail.clone();
        info.hint = hint.clone();
    }
    info
}

fn exec_code(err: &ExecError) -> &'static str {
    match err {
        ExecError::InCopy { source, .. } => exec_code(source),
        ExecError::Sql(e) => sql_code(e),
        ExecError::DataFusion(e) => datafusion_code(e),
        ExecError::UndefinedObject(_) => UNDEFINED_OBJECT,
        ExecError::DuplicateObject(_) => DUPLICATE_OBJECT,
        ExecError::DuplicateAlias(_) => DUPLICATE_ALIAS,
        ExecError::InvalidParameterValue(_) => INVALID_PARAMETER_VALUE,
        ExecError::CantChangeRuntimeParam(_) => CANT_CHANGE_RUNTIME_PARAM,
        ExecError::InFailedTransaction => IN_FAILED_SQL_TRANSACTION,
        ExecError::ActiveSqlTransaction(_) => ACTIVE_SQL_TRANSACTION,
        ExecError::NullValueNotAllowed(_) => NULL_VALUE_NOT_ALLOWED,
        ExecError::ObjectInUse(_) => OBJECT_IN_USE,
        ExecError::QueryCanceled | ExecError::StatementTimeout => QUERY_CANCELED,
        ExecError::UndefinedTable(_) => UNDEFINED_TABLE,
        ExecError::UndefinedColumn(_) => UNDEFINED_COLUMN,
        ExecError::UndefinedFunction(_) | ExecError::NoMatchingSignature { .. } => {
            UNDEFINED_FUNCTION
        }
        ExecError::AmbiguousFunction(_) => AMBIGUOUS_FUNCTION,
        ExecError::DuplicateColumn(_) => DUPLICATE_COLUMN,
        ExecError::NotNullViolation(_) => NOT_NULL_VIOLATION,
        ExecError::UniqueViolation(_)
        | ExecError::DuplicateKey { .. }
        | ExecError::KeyViolation { .. } => UNIQUE_VIOLATION,
        ExecError::CheckViolation { .. } => CHECK_VIOLATION,
        ExecError::ForeignKeyViolation { .. } => FOREIGN_KEY_VIOLATION,
        ExecError::InvalidForeignKey(_) => INVALID_FOREIGN_KEY,
        ExecError::DatatypeMismatch(_) => DATATYPE_MISMATCH,
        ExecError::StringTooLong(_) => STRING_DATA_RIGHT_TRUNCATION,
        ExecError::NumericOutOfRange(_) => NUMERIC_VALUE_OUT_OF_RANGE,
        ExecError::DatetimeOutOfRange(_) => DATETIME_FIELD_OVERFLOW,
        ExecError::InvalidDatetimeFormat(_) => INVALID_DATETIME_FORMAT,
        ExecError::SubstringError(_) => SUBSTRING_ERROR,
        ExecError::InvalidWidthBucketArgument(_) => INVALID_ARGUMENT_FOR_WIDTH_BUCKET,
        ExecError::InvalidRegularExpression(_) => INVALID_REGULAR_EXPRESSION,
        ExecError::ArraySubscriptError(_) => ARRAY_SUBSCRIPT_ERROR,
        ExecError::InvalidText(_)
        | ExecError::InvalidJson { .. }
        | ExecError::InvalidJsonArray { .. } => INVALID_TEXT_REPRESENTATION,
        ExecError::WrongObjectType(_) => WRONG_OBJECT_TYPE,
        ExecError::InvalidColumnReference(_) => INVALID_COLUMN_REFERENCE,
        ExecError::CardinalityViolation(_) => CARDINALITY_VIOLATION,
        ExecError::InvalidSchemaName(_) => INVALID_SCHEMA_NAME,
        ExecError::ReservedName(_) => RESERVED_NAME,
        ExecError::NoActiveTransaction(_) => NO_ACTIVE_SQL_TRANSACTION,
        ExecError::UndefinedCursor(_) => INVALID_CURSOR_NAME,
        ExecError::DuplicateCursor(_) => DUPLICATE_CURSOR,
        ExecError::UndefinedPreparedStatement(_) => INVALID_SQL_STATEMENT_NAME,
        ExecError::DuplicatePreparedStatement(_) => DUPLICATE_PREPARED_STATEMENT,
        ExecError::TooManyPreparedStatements(_) => PROGRAM_LIMIT_EXCEEDED,
        ExecError::WrongParameterCount { .. } => SYNTAX_ERROR,
        ExecError::ForwardOnlyCursor => OBJECT_NOT_IN_PREREQUISITE_STATE,
        ExecError::InvalidSavepoint(_) => INVALID_SAVEPOINT_SPECIFICATION,
        ExecError::DuplicateSchema(_) => DUPLICATE_SCHEMA,
        ExecError::DuplicateTable(_) => DUPLICATE_TABLE,
        ExecError::DependentObjectsStillExist(_) => DEPENDENT_OBJECTS_STILL_EXIST,
        ExecError::ConcurrentUpdate(_) | ExecError::ConcurrentDefinitionChange(_) => {
            SERIALIZATION_FAILURE
        }
        ExecError::Deadlock { .. } => DEADLOCK_DETECTED,
        ExecError::CachedPlanChanged => FEATURE_NOT_SUPPORTED,
        ExecError::Io(_) => IO_ERROR,
        ExecError::ClusterUnavailable(_) => CANNOT_CONNECT_NOW,
        ExecError::OutcomeUnknown(_) => STATEMENT_COMPLETION_UNKNOWN,
        ExecError::StorageFailure(_) | ExecError::JobFailed(_) => INTERNAL_ERROR,
        ExecError::ObjectNotInPrerequisiteState(_) => OBJECT_NOT_IN_PREREQUISITE_STATE,
        ExecError::PathForbidden(_) | ExecError::InsufficientPrivilege(_) => INSUFFICIENT_PRIVILEGE,
        ExecError::DataCorrupted(_) => DATA_CORRUPTED,
        ExecError::RoleDropped(_) => INVALID_AUTHORIZATION,
        ExecError::Internal(_) => INTERNAL_ERROR,
        ExecError::SequenceLimit(_) => SEQUENCE_GENERATOR_LIMIT_EXCEEDED,
        ExecError::GeneratedAlways(_) => GENERATED_ALWAYS,
        ExecError::InvalidTableDefinition(_) => INVALID_TABLE_DEFINITION,
        ExecError::InvalidObjectDefinition(_) => INVALID_OBJECT_DEFINITION,
    }
}

pub fn sql_error(err: &SqlError) -> ErrorInfo {
    let mut info = error(sql_code(err), err.to_string());
    if let SqlError::InvalidEscapeString = err {
        info.hint = Some("Escape string must be empty or one character.".into());
    }
    info
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
        SqlError::Syntax(_) => SYNTAX_ERROR,
        SqlError::Unsupported(_) => FEATURE_NOT_SUPPORTED,
        SqlError::UndefinedType(_) => UNDEFINED_OBJECT,
        SqlError::PermissionDenied { .. } | SqlError::PermissionDeniedDetail(_) => {
            INSUFFICIENT_PRIVILEGE
        }
        SqlError::DuplicateColumn(_) => DUPLICATE_COLUMN,
        SqlError::UndefinedColumn(_) => UNDEFINED_COLUMN,
        SqlError::AmbiguousColumn(_) => AMBIGUOUS_COLUMN,
        SqlError::StackDepth(_) => STATEMENT_TOO_COMPLEX,
        SqlError::TooManyColumns(_) => TOO_MANY_COLUMNS,
        SqlError::UndefinedParameter(_) => UNDEFINED_PARAMETER,
        SqlError::InvalidParameter(_) => INVALID_PARAMETER_VALUE,
        SqlError::InvalidDatetimeFormat(_) => INVALID_DATETIME_FORMAT,
        SqlError::DatetimeFieldOverflow(_) => INTERVAL_FIELD_OVERFLOW,
        SqlError::InvalidEscapeString => INVALID_ESCAPE_SEQUENCE,
    }
}

fn datafusion_code(err: &DataFusionError) -> &'static str {
    match err.find_root() {
        DataFusionError::SQL(..) => SYNTAX_ERROR,
        DataFusionError::NotImplemented(_) => FEATURE_NOT_SUPPORTED,
        DataFusionError::SchemaError(e, _) => match **e {
            datafusion::common::SchemaError::FieldNotFound { .. } => UNDEFINED_COLUMN,
            datafusion::common::SchemaError::AmbiguousReference { .. } => AMBIGUOUS_COLUMN,
            datafusion::common::SchemaError::DuplicateQualifiedField { .. }
            | datafusion::common::SchemaError::DuplicateUnqualifiedField { .. } => DUPLICATE_COLUMN,
        },
        DataFusionError::ArrowError(e, _) => arrow_code(e),
        DataFusionError::Plan(_) => DATATYPE_MISMATCH,
        DataFusionError::External(inner) => match inner.downcast_ref::<ExecError>() {
            Some(e) => exec_code(e),
            None => INTERNAL_ERROR,
        },
        DataFusionError::ResourcesExhausted(_) => OUT_OF_MEMORY,
        _ => INTERNAL_ERROR,
    }
}

fn arrow_code(err: &ArrowError) -> &'static str {
    match err {
        ArrowError::DivideByZero => DIVISION_BY_ZERO,
        ArrowError::CastError(_) | ArrowError::ParseError(_) => INVALID_TEXT_REPRESENTATION,
        ArrowError::ArithmeticOverflow(_) => NUMERIC_VALUE_OUT_OF_RANGE,
        _ => INTERNAL_ERROR,
    }
}

/// DataFusion wraps messages in context ("Error during planning: ..."); clients want the cause.
fn datafusion_message(err: &DataFusionError) -> String {
    match err.find_root() {
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
