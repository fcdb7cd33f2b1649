//! The types the view printer knows, how PostgreSQL converts between them implicitly, the
//! cast targets it reads, and the result types of the aggregates it prints.

use datafusion::sql::sqlparser::ast::{DataType, ExactNumberInfo};

use crate::model::types::SqlType;

/// The types whose operators and casts the printer knows; `Other` columns print as
/// themselves but take part in no operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ty {
    Int2,
    Int4,
    Int8,
    Numeric,
    Float8,
    Text,
    Varchar,
    Bpchar,
    Bool,
    Date,
    Other,
}

impl Ty {
    pub fn of(sql_type: SqlType) -> Ty {
        match sql_type {
            SqlType::SmallInt => Ty::Int2,
            SqlType::Integer => Ty::Int4,
            SqlType::BigInt => Ty::Int8,
            SqlType::Numeric { .. } => Ty::Numeric,
            SqlType::Double => Ty::Float8,
            SqlType::Text => Ty::Text,
            SqlType::Varchar { .. } => Ty::Varchar,
            SqlType::Char { .. } => Ty::Bpchar,
            SqlType::Boolean => Ty::Bool,
            SqlType::Date => Ty::Date,
            _ => Ty::Other,
        }
    }

    /// The name `format_type` gives the type without a modifier, as a cast prints it.
    pub(super) fn name(self) -> Option<&'static str> {
        Some(match self {
            Ty::Int2 => "smallint",
            Ty::Int4 => "integer",
            Ty::Int8 => "bigint",
            Ty::Numeric => "numeric",
            Ty::Float8 => "double precision",
            Ty::Text => "text",
            Ty::Varchar => "character varying",
            Ty::Bpchar => "bpchar",
            Ty::Bool => "boolean",
            Ty::Date => "date",
            Ty::Other => return None,
        })
    }

    pub(super) fn integer(self) -> bool {
        matches!(self, Ty::Int2 | Ty::Int4 | Ty::Int8)
    }

    pub(super) fn rank(self) -> u8 {
        match self {
            Ty::Int2 => 0,
            Ty::Int4 => 1,
            _ => 2,
        }
    }
}

/// Whether `from` converts to `to` implicitly, as an operator's operand.
pub(super) fn implicit(from: Ty, to: Ty) -> bool {
    from == to
        || (from.integer() && (to == Ty::Numeric || to == Ty::Float8))
        || (from.integer() && to.integer() && from.rank() < to.rank())
        || (from == Ty::Numeric && to == Ty::Float8)
        || (matches!(from, Ty::Varchar | Ty::Bpchar) && to == Ty::Text)
}

/// The cast target a type name names, when it is one the printer knows without a modifier.
pub(super) fn cast_target(data_type: &DataType) -> Option<Ty> {
    Some(match data_type {
        DataType::Int(None) | DataType::Integer(None) | DataType::Int4(None) => Ty::Int4,
        DataType::BigInt(None) | DataType::Int8(None) => Ty::Int8,
        DataType::SmallInt(None) | DataType::Int2(None) => Ty::Int2,
        DataType::Text => Ty::Text,
        DataType::Varchar(None) | DataType::CharacterVarying(None) => Ty::Varchar,
        DataType::Numeric(ExactNumberInfo::None) | DataType::Decimal(ExactNumberInfo::None) => {
            Ty::Numeric
        }
        DataType::DoublePrecision | DataType::Float8 => Ty::Float8,
        DataType::Boolean | DataType::Bool => Ty::Bool,
        DataType::Date => Ty::Date,
        _ => return None,
    })
}

/// The type of an aggregate's result over `arg`, as PostgreSQL 15 declares it.
pub(super) fn aggregate_type(name: &str, arg: Ty) -> Option<Ty> {
    Some(match (name, arg) {
        ("count", _) => Ty::Int8,
        ("min" | "max", Ty::Other) => return None,
        ("min" | "max", ty) => ty,
        ("sum", Ty::Int2 | Ty::Int4) => Ty::Int8,
        ("sum", Ty::Int8 | Ty::Numeric) | ("avg", Ty::Int2 | Ty::Int4 | Ty::Int8 | Ty::Numeric) => {
            Ty::Numeric
        }
        ("sum" | "avg", Ty::Float8) => Ty::Float8,
        _ => return None,
    })
}

/// The type both sides of a numeric operator become: the wider of integer, numeric and
/// double precision.
pub(super) fn common_numeric(a: Ty, b: Ty) -> Option<Ty> {
    let numeric = |t: Ty| t.integer() || matches!(t, Ty::Numeric | Ty::Float8);
    if !numeric(a) || !numeric(b) {
        return None;
    }
    Some(if a == Ty::Float8 || b == Ty::Float8 {
        Ty::Float8
    } else {
        Ty::Numeric
    })
}
