//! Column types: the SQL types a table may declare and the Arrow type each one is stored as.

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, TimeUnit};
use serde::{Deserialize, Serialize};

/// Arrow field metadata key naming the PostgreSQL type when Arrow alone cannot tell
/// (VARCHAR, JSON, JSONB and UUID are all stored as Utf8).
pub const PG_TYPE_METADATA: &str = "kalamdb.pg_type";

/// The `kalamdb.pg_type` value of `character(n)` columns, whose trailing blanks the planner
/// strips where PostgreSQL ignores them.
pub const BPCHAR_TAG: &str = "bpchar";

/// Precision and scale used for NUMERIC without a declared precision.
pub const DEFAULT_NUMERIC: (u8, i8) = (38, 10);

/// The longest `name` in bytes (PostgreSQL's NAMEDATALEN - 1); longer input is cut.
pub const NAME_MAX_BYTES: usize = 63;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SqlType {
    Boolean,
    SmallInt,
    Integer,
    BigInt,
    Real,
    Double,
    Numeric {
        precision: u8,
        scale: i8,
    },
    Text,
    Varchar {
        max_len: Option<u32>,
    },
    /// PostgreSQL's `name`: an identifier, cut to `NAME_MAX_BYTES` on input.
    Name,
    /// `character(n)` (`bpchar`): stored blank-padded to `len` characters; trailing blanks
    /// do not count when it is compared or used as text. `None` is `bpchar` without a length.
    Char {
        len: Option<u32>,
    },
    Bytea,
    Date,
    Timestamp,
    TimestampTz,
    Json,
    Jsonb,
    Uuid,
}

impl SqlType {
    pub fn arrow_type(self) -> DataType {
        match self {
            SqlType::Boolean => DataType::Boolean,
            SqlType::SmallInt => DataType::Int16,
            SqlType::Integer => DataType::Int32,
            SqlType::BigInt => DataType::Int64,
            SqlType::Real => DataType::Float32,
            SqlType::Double => DataType::Float64,
            SqlType::Numeric { precision, scale } => DataType::Decimal128(precision, scale),
            SqlType::Text
            | SqlType::Varchar { .. }
            | SqlType::Name
            | SqlType::Char { .. }
            | SqlType::Json
            | SqlType::Jsonb
            | SqlType::Uuid => DataType::Utf8,
            SqlType::Bytea => DataType::Binary,
            SqlType::Date => DataType::Date32,
            SqlType::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, None),
            SqlType::TimestampTz => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        }
    }

    /// Whether values are character strings (`text`, `varchar(n)`).
    /// Whether both are integer types, or both text types: a conversion between them keeps
    /// every value or fails, so keys of one compare with keys of the other.
    pub fn same_kind(self, other: SqlType) -> bool {
        let integer =
            |t: SqlType| matches!(t, SqlType::SmallInt | SqlType::Integer | SqlType::BigInt);
        self == other || (integer(self) && integer(other)) || (self.is_text() && other.is_text())
    }

    pub fn is_text(self) -> bool {
        matches!(
            self,
            SqlType::Text | SqlType::Varchar { .. } | SqlType::Name
        )
    }

    /// The name PostgreSQL's `format_type` gives this type.
    pub fn sql_name(self) -> String {
        match self {
            SqlType::Boolean => "boolean".into(),
            SqlType::SmallInt => "smallint".into(),
            SqlType::Integer => "integer".into(),
            SqlType::BigInt => "bigint".into(),
            SqlType::Real => "real".into(),
            SqlType::Double => "double precision".into(),
            SqlType::Numeric { precision, scale } => format!("numeric({precision},{scale})"),
            SqlType::Text => "text".into(),
            SqlType::Varchar { max_len: Some(n) } => format!("character varying({n})"),
            SqlType::Varchar { max_len: None } => "character varying".into(),
            SqlType::Name => "name".into(),
            SqlType::Char { len: Some(n) } => format!("character({n})"),
            SqlType::Char { len: None } => "bpchar".into(),
            SqlType::Bytea => "bytea".into(),
            SqlType::Date => "date".into(),
            SqlType::Timestamp => "timestamp without time zone".into(),
            SqlType::TimestampTz => "timestamp with time zone".into(),
            SqlType::Json => "json".into(),
            SqlType::Jsonb => "jsonb".into(),
            SqlType::Uuid => "uuid".into(),
        }
    }

    /// PostgreSQL's internal type name (`pg_type.typname`).
    pub fn internal_name(self) -> &'static str {
        match self {
            SqlType::Boolean => "bool",
            SqlType::SmallInt => "int2",
            SqlType::Integer => "int4",
            SqlType::BigInt => "int8",
            SqlType::Real => "float4",
            SqlType::Double => "float8",
            SqlType::Numeric { .. } => "numeric",
            SqlType::Text => "text",
            SqlType::Varchar { .. } => "varchar",
            SqlType::Name => "name",
            SqlType::Char { .. } => "bpchar",
            SqlType::Bytea => "bytea",
            SqlType::Date => "date",
            SqlType::Timestamp => "timestamp",
            SqlType::TimestampTz => "timestamptz",
            SqlType::Json => "json",
            SqlType::Jsonb => "jsonb",
            SqlType::Uuid => "uuid",
        }
    }

    /// PostgreSQL's OID for this type (`pg_type.oid`).
    pub fn pg_oid(self) -> i32 {
        match self {
            SqlType::Boolean => 16,
            SqlType::SmallInt => 21,
            SqlType::Integer => 23,
            SqlType::BigInt => 20,
            SqlType::Real => 700,
            SqlType::Double => 701,
            SqlType::Numeric { .. } => 1700,
            SqlType::Text => 25,
            SqlType::Varchar { .. } => 1043,
            SqlType::Name => 19,
            SqlType::Char { .. } => 1042,
            SqlType::Bytea => 17,
            SqlType::Date => 1082,
            SqlType::Timestamp => 1114,
            SqlType::TimestampTz => 1184,
            SqlType::Json => 114,
            SqlType::Jsonb => 3802,
            SqlType::Uuid => 2950,
        }
    }

    /// PostgreSQL's type modifier (`pg_attribute.atttypmod`): the declared length or
    /// precision and scale, offset by the 4-byte header PostgreSQL counts in; -1 for none.
    pub fn pg_typmod(self) -> i32 {
        const HEADER: i32 = 4;
        match self {
            SqlType::Varchar { max_len: Some(n) } | SqlType::Char { len: Some(n) } => {
                n as i32 + HEADER
            }
            SqlType::Numeric { precision, scale } => {
                ((i32::from(precision) << 16) | (i32::from(scale) & 0xffff)) + HEADER
            }
            _ => -1,
        }
    }

    /// The `kalamdb.pg_type` metadata value for types Arrow cannot distinguish.
    fn pg_type_tag(self) -> Option<&'static str> {
        match self {
            SqlType::Varchar { .. } => Some("varchar"),
            SqlType::Name => Some("name"),
            SqlType::Char { .. } => Some(BPCHAR_TAG),
            SqlType::Json => Some("json"),
            SqlType::Jsonb => Some("jsonb"),
            SqlType::Uuid => Some("uuid"),
            _ => None,
        }
    }

    pub fn field(self, name: &str, nullable: bool) -> Field {
        let field = Field::new(name, self.arrow_type(), nullable);
        match self.pg_type_tag() {
            Some(tag) => field.with_metadata(HashMap::from([(
                PG_TYPE_METADATA.to_owned(),
                tag.to_owned(),
            )])),
            None => field,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ColumnDef {
    /// Stable for the column's life and never reused in its table: files written under an
    /// older definition name their columns by it, so renames, drops and retypes need no
    /// rewrite of them. `UNASSIGNED_COLUMN_ID` until storage writes the definition.
    #[serde(default = "unassigned_column_id")]
    pub id: u32,
    pub name: String,
    pub sql_type: SqlType,
    pub nullable: bool,
    /// The DEFAULT expression as SQL text, evaluated for each inserted row that omits it.
    pub default: Option<String>,
    /// For columns added by ALTER TABLE: the encoded value rows written before the column
    /// existed read as (PostgreSQL's "missing value"); `None` reads as NULL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub missing_value: Option<Vec<u8>>,
    /// An identity column's kind; its `default` is then the nextval of its sequence, which
    /// catalogs show as the identity rather than as a default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<Identity>,
    /// `COMMENT ON COLUMN` (`col_description`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Identity {
    /// `GENERATED ALWAYS`: an INSERT may not give a value (without OVERRIDING SYSTEM VALUE).
    Always,
    ByDefault,
}

impl Identity {
    /// `pg_attribute.attidentity`.
    pub fn code(self) -> &'static str {
        match self {
            Identity::Always => "a",
            Identity::ByDefault => "d",
        }
    }
}

/// The id of a column storage has not numbered yet (one a statement is adding).
pub const UNASSIGNED_COLUMN_ID: u32 = u32::MAX;

fn unassigned_column_id() -> u32 {
    UNASSIGNED_COLUMN_ID
}

impl ColumnDef {
    /// A nullable column without default or comment, not numbered yet.
    pub fn new(name: &str, sql_type: SqlType) -> ColumnDef {
        ColumnDef {
            id: UNASSIGNED_COLUMN_ID,
            name: name.to_owned(),
            sql_type,
            nullable: true,
            default: None,
            missing_value: None,
            identity: None,
            comment: None,
        }
    }

    pub fn field(&self) -> Field {
        self.sql_type.field(&self.name, self.nullable)
    }
}

pub fn schema_of(columns: &[ColumnDef]) -> Arc<datafusion::arrow::datatypes::Schema> {
    Arc::new(datafusion::arrow::datatypes::Schema::new(
        columns.iter().map(ColumnDef::field).collect::<Vec<_>>(),
    ))
}

/// OIDs of the result types that no column can be declared with.
const TIME_OID: i32 = 1083;
const INTERVAL_OID: i32 = 1186;
/// The catalog vector types (`pg_index.indkey`, `indclass`), space-separated on the wire.
pub const INT2VECTOR_OID: i32 = 22;
/// `void`, what functions called for their effect return (`pg_sleep`); its field is tagged
/// with [`VOID_TAG`].
pub const VOID_OID: i32 = 2278;
pub const VOID_TAG: &str = "void";
pub const OIDVECTOR_OID: i32 = 30;
/// A function named by its name (`regproc`) or by its name and argument types
/// (`regprocedure`): its OID in an int4 column tagged with the type.
pub const REGPROC_TAG: &str = "regproc";
pub const REGPROCEDURE_TAG: &str = "regprocedure";
const REGPROC_OID: i32 = 24;
const REGPROCEDURE_OID: i32 = 2202;
const TEXT_ARRAY_OID: i32 = 1009;

/// The array type of `element` (`pg_type.typarray`), for the element types arrays are sent as.
fn array_oid(element: i32) -> i32 {
    match element {
        16 => 1000,
        21 => 1005,
        23 => 1007,
        20 => 1016,
        700 => 1021,
        701 => 1022,
        _ => TEXT_ARRAY_OID,
    }
}

/// The type a table column made from a result column gets (CREATE TABLE ... AS): the declared
/// type the result carries, else the nearest one for its Arrow type; `None` when no column
/// type can hold it (intervals, times, arrays).
pub fn storable_type(field: &Field) -> Option<SqlType> {
    match field.metadata().get(PG_TYPE_METADATA).map(String::as_str) {
        Some("varchar") => return Some(SqlType::Varchar { max_len: None }),
        Some("name") => return Some(SqlType::Name),
        Some(BPCHAR_TAG) => return Some(SqlType::Char { len: None }),
        Some("json") => return Some(SqlType::Json),
        Some("jsonb") => return Some(SqlType::Jsonb),
        Some("uuid") => return Some(SqlType::Uuid),
        _ => {}
    }
    Some(match field.data_type() {
        DataType::Boolean => SqlType::Boolean,
        DataType::Int8 | DataType::Int16 | DataType::UInt8 => SqlType::SmallInt,
        DataType::Int32 | DataType::UInt16 => SqlType::Integer,
        DataType::Int64 | DataType::UInt32 => SqlType::BigInt,
        DataType::Decimal128(precision, scale) if *precision <= 38 && *scale >= 0 => {
            SqlType::Numeric {
                precision: *precision,
                scale: *scale,
            }
        }
        DataType::Decimal128(..) | DataType::Decimal256(..) => {
            let (precision, scale) = DEFAULT_NUMERIC;
            SqlType::Numeric { precision, scale }
        }
        DataType::Float32 => SqlType::Real,
        DataType::Float64 => SqlType::Double,
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View | DataType::Null => SqlType::Text,
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView => SqlType::Bytea,
        DataType::Date32 | DataType::Date64 => SqlType::Date,
        DataType::Timestamp(_, None) => SqlType::Timestamp,
        DataType::Timestamp(_, Some(_)) => SqlType::TimestampTz,
        _ => return None,
    })
}

/// PostgreSQL's OID for a result column: the declared type where the column carries one
/// (Arrow alone cannot tell VARCHAR, JSON, JSONB and UUID from text), otherwise the type its
/// Arrow type is reported as. The one table of PostgreSQL type OIDs, with [`SqlType::pg_oid`].
pub fn result_oid(field: &Field) -> i32 {
    let declared = match field.metadata().get(PG_TYPE_METADATA).map(String::as_str) {
        Some("int2vector") => return INT2VECTOR_OID,
        Some(VOID_TAG) => return VOID_OID,
        Some("oidvector") => return OIDVECTOR_OID,
        Some(REGPROC_TAG) => return REGPROC_OID,
        Some(REGPROCEDURE_TAG) => return REGPROCEDURE_OID,
        Some("varchar") => Some(SqlType::Varchar { max_len: None }),
        Some("name") => Some(SqlType::Name),
        Some(BPCHAR_TAG) => Some(SqlType::Char { len: None }),
        Some("json") => Some(SqlType::Json),
        Some("jsonb") => Some(SqlType::Jsonb),
        Some("uuid") => Some(SqlType::Uuid),
        _ => None,
    };
    match declared {
        Some(sql_type) => sql_type.pg_oid(),
        None => arrow_oid(field.data_type()),
    }
}

fn arrow_oid(data_type: &DataType) -> i32 {
    let sql_type = match data_type {
        DataType::Boolean => SqlType::Boolean,
        DataType::Int8 | DataType::Int16 | DataType::UInt8 => SqlType::SmallInt,
        DataType::Int32 | DataType::UInt16 => SqlType::Integer,
        DataType::Int64 | DataType::UInt32 => SqlType::BigInt,
        DataType::UInt64 | DataType::Decimal128(..) | DataType::Decimal256(..) => {
            let (precision, scale) = DEFAULT_NUMERIC;
            SqlType::Numeric { precision, scale }
        }
        DataType::Float32 => SqlType::Real,
        DataType::Float64 => SqlType::Double,
        DataType::Binary
        | DataType::LargeBinary
        | DataType::BinaryView
        | DataType::FixedSizeBinary(_) => SqlType::Bytea,
        DataType::Date32 | DataType::Date64 => SqlType::Date,
        DataType::Timestamp(_, None) => SqlType::Timestamp,
        DataType::Timestamp(_, Some(_)) => SqlType::TimestampTz,
        DataType::Time32(_) | DataType::Time64(_) => return TIME_OID,
        DataType::Interval(_) | DataType::Duration(_) => return INTERVAL_OID,
        // PostgreSQL has one array type per element type, whatever the dimensions.
        DataType::List(element) | DataType::LargeList(element)
            if matches!(
                element.data_type(),
                DataType::List(_) | DataType::LargeList(_)
            ) =>
        {
            return arrow_oid(element.data_type());
        }
        DataType::List(element) | DataType::LargeList(element) => {
            return array_oid(arrow_oid(element.data_type()));
        }
        // Text, NULL, and whatever else has no closer PostgreSQL type is sent as text.
        _ => SqlType::Text,
    };
    sql_type.pg_oid()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn result_columns_report_the_declared_type_or_the_nearest_postgres_type() {
        let varchar = SqlType::Varchar { max_len: Some(8) }.field("v", true);
        assert_eq!(result_oid(&varchar), 1043);
        assert_eq!(result_oid(&SqlType::Uuid.field("u", true)), 2950);
        let computed = |data_type: DataType| result_oid(&Field::new("c", data_type, true));
        assert_eq!(computed(DataType::Utf8View), 25);
        assert_eq!(computed(DataType::UInt32), 20);
        assert_eq!(computed(DataType::Decimal128(5, 2)), 1700);
        assert_eq!(computed(DataType::Time64(TimeUnit::Microsecond)), 1083);
        let list = |element: DataType| {
            computed(DataType::List(Arc::new(Field::new("item", element, true))))
        };
        assert_eq!(list(DataType::Int32), 1007);
        assert_eq!(list(DataType::Float64), 1022);
        assert_eq!(list(DataType::Utf8), 1009);
        assert_eq!(computed(DataType::Null), 25);
    }
}
