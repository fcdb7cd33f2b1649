//! Table definitions: CREATE TABLE / ALTER TABLE ADD COLUMN converted from sqlparser's AST.

use datafusion::sql::sqlparser::ast::{self, ColumnOption, TableConstraint};

use super::SqlError;
use super::foreign_keys::ForeignKeySpec;
use super::parse::fold_ident;
use crate::model::TableKind;
use crate::model::types::{DEFAULT_NUMERIC, SqlType};

/// A possibly schema-qualified table name as written; `exec` resolves it with `search_path`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableName {
    pub namespace: Option<String>,
    pub name: String,
}

impl TableName {
    pub fn from_object_name(name: &ast::ObjectName) -> Result<TableName, SqlError> {
        let parts: Vec<String> = name
            .0
            .iter()
            .map(|p| {
                p.as_ident()
                    .map(fold_ident)
                    .ok_or_else(|| SqlError::Syntax(format!("invalid name {name}")))
            })
            .collect::<Result<_, _>>()?;
        match parts.as_slice() {
            [table] => Ok(TableName {
                namespace: None,
                name: table.clone(),
            }),
            [namespace, table] => Ok(TableName {
                namespace: Some(namespace.clone()),
                name: table.clone(),
            }),
            [database, namespace, table] if database == crate::model::DATABASE_NAME => {
                Ok(TableName {
                    namespace: Some(namespace.clone()),
                    name: table.clone(),
                })
            }
            _ => Err(SqlError::Syntax(format!(
                "improper qualified name (too many dotted names): {name}"
            ))),
        }
    }
}

impl std::fmt::Display for TableName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.namespace {
            Some(ns) => write!(f, "{ns}.{}", self.name),
            None => f.write_str(&self.name),
        }
    }
}

#[derive(Debug, Clone)]
pub struct ColumnSpec {
    pub name: String,
    pub sql_type: SqlType,
    pub nullable: bool,
    /// The DEFAULT expression, kept as SQL text and evaluated per inserted row.
    pub default: Option<String>,
    /// A sequence the column takes its values from, created with the table.
    pub sequence: Option<ColumnSequence>,
    /// `UNIQUE` on the column, with the constraint's name if it was given one.
    pub unique: Option<Option<String>>,
    /// `CHECK` constraints declared on the column.
    pub checks: Vec<CheckSpec>,
    /// `REFERENCES` clauses on the column.
    pub foreign_keys: Vec<ForeignKeySpec>,
}

/// A CHECK constraint as declared: its name if given, the expression as SQL text, and the
/// column it was declared on (a column constraint).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckSpec {
    pub name: Option<String>,
    pub expr: String,
    pub column: Option<String>,
}

impl CheckSpec {
    pub(super) fn from_constraint(
        name: Option<&ast::Ident>,
        check: &ast::CheckConstraint,
        column: Option<&str>,
    ) -> Result<CheckSpec, SqlError> {
        if contains_subquery(&check.expr) {
            return Err(SqlError::Unsupported(
                "cannot use subquery in check constraint".into(),
            ));
        }
        Ok(CheckSpec {
            name: name.or(check.name.as_ref()).map(fold_ident),
            expr: check.expr.to_string(),
            column: column.map(str::to_owned),
        })
    }
}

/// A UNIQUE constraint: its name if given, and its columns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UniqueSpec {
    pub name: Option<String>,
    pub columns: Vec<String>,
}

impl UniqueSpec {
    pub(super) fn from_constraint(
        name: Option<&ast::Ident>,
        unique: &ast::UniqueConstraint,
    ) -> Result<UniqueSpec, SqlError> {
        if unique.nulls_distinct == ast::NullsDistinctOption::NotDistinct {
            return Err(SqlError::Unsupported(
                "NULLS NOT DISTINCT is not supported".into(),
            ));
        }
        let columns = unique
            .columns
            .iter()
            .map(|column| match &column.column.expr {
                ast::Expr::Identifier(ident) => Ok(fold_ident(ident)),
                other => Err(SqlError::Unsupported(format!(
                    "a unique constraint on an expression ({other}) is not supported"
                ))),
            })
            .collect::<Result<_, _>>()?;
        Ok(UniqueSpec {
            name: name.or(unique.name.as_ref()).map(fold_ident),
            columns,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ColumnSequence {
    /// SMALLSERIAL, SERIAL or BIGSERIAL: a DEFAULT of nextval.
    Serial,
    /// `GENERATED {ALWAYS | BY DEFAULT} AS IDENTITY [(options)]`.
    Identity {
        always: bool,
        options: super::SequenceOptions,
    },
}

/// The integer type behind a SERIAL pseudo-type name.
fn serial_type(data_type: &ast::DataType) -> Option<SqlType> {
    match data_type.to_string().to_ascii_lowercase().as_str() {
        "smallserial" | "serial2" => Some(SqlType::SmallInt),
        "serial" | "serial4" => Some(SqlType::Integer),
        "bigserial" | "serial8" => Some(SqlType::BigInt),
        _ => None,
    }
}

#[derive(Debug, Clone)]
pub struct CreateTable {
    pub table: TableName,
    pub columns: Vec<ColumnSpec>,
    /// Column names of the primary key, in key order; empty for a hidden row id.
    pub primary_key: Vec<String>,
    pub if_not_exists: bool,
    pub kind: TableKind,
    /// `CREATE TABLE ... AS query`: the columns come from the query, then its rows.
    pub as_query: Option<Box<ast::Query>>,
    /// `CREATE TABLE t (LIKE other [INCLUDING DEFAULTS])`: the columns of `other` come first.
    pub like: Option<(TableName, bool)>,
    /// UNIQUE constraints, of columns and of the table, in the order declared.
    pub unique: Vec<UniqueSpec>,
    /// CHECK constraints, of columns and of the table, in the order declared.
    pub checks: Vec<CheckSpec>,
    /// FOREIGN KEY constraints, the table's and its columns'.
    pub foreign_keys: Vec<ForeignKeySpec>,
}

pub fn create_table(create: &ast::CreateTable, kind: TableKind) -> Result<CreateTable, SqlError> {
    refuse_unsupported_kinds(create)?;
    let table = TableName::from_object_name(&create.name)?;
    if let Some(query) = &create.query {
        if !create.columns.is_empty() || !create.constraints.is_empty() {
            return Err(SqlError::Unsupported(
                "CREATE TABLE ... AS with a column list is not supported".into(),
            ));
        }
        return Ok(CreateTable {
            table,
            columns: Vec::new(),
            primary_key: Vec::new(),
            if_not_exists: create.if_not_exists,
            kind,
            as_query: Some(query.clone()),
            like: None,
            unique: Vec::new(),
            checks: Vec::new(),
            foreign_keys: Vec::new(),
        });
    }
    let like = match &create.like {
        None => None,
        Some(
            ast::CreateTableLikeKind::Parenthesized(like) | ast::CreateTableLikeKind::Plain(like),
        ) => Some((
            TableName::from_object_name(&like.name)?,
            matches!(like.defaults, Some(ast::CreateTableLikeDefaults::Including)),
        )),
    };
    let mut primary_key = Vec::new();
    let mut unique = Vec::new();
    let mut checks = Vec::new();
    let mut foreign_keys = Vec::new();
    let mut columns = Vec::with_capacity(create.columns.len());
    for def in &create.columns {
        let (column, is_key) = column_spec(def)?;
        if is_key {
            primary_key.push(column.name.clone());
        }
        if let Some(name) = &column.unique {
            unique.push(UniqueSpec {
                name: name.clone(),
                columns: vec![column.name.clone()],
            });
        }
        checks.extend(column.checks.iter().cloned());
        foreign_keys.extend(column.foreign_keys.iter().cloned());
        columns.push(column);
    }
    for constraint in &create.constraints {
        match constraint {
            TableConstraint::PrimaryKey(pk) => {
                if !primary_key.is_empty() {
                    return Err(SqlError::Syntax(format!(
                        "multiple primary keys for table \"{}\" are not allowed",
                        table.name
                    )));
                }
                for column in &pk.columns {
                    match &column.column.expr {
                        ast::Expr::Identifier(ident) => primary_key.push(fold_ident(ident)),
                        other => {
                            return Err(SqlError::Unsupported(format!(
                                "primary key on an expression ({other}) is not supported"
                            )));
                        }
                    }
                }
            }
            TableConstraint::Unique(constraint) => {
                unique.push(UniqueSpec::from_constraint(None, constraint)?);
            }
            TableConstraint::Check(check) => {
                checks.push(CheckSpec::from_constraint(None, check, None)?);
            }
            TableConstraint::ForeignKey(fk) => {
                foreign_keys.push(ForeignKeySpec::from_constraint(None, fk, None)?);
            }
            other => {
                return Err(SqlError::Unsupported(format!(
                    "table constraint not supported: {other}"
                )));
            }
        }
    }
    if columns.is_empty() && like.is_none() {
        return Err(SqlError::Syntax("a table needs at least one column".into()));
    }
    match kind {
        TableKind::Stream { .. } if !primary_key.is_empty() => {
            return Err(SqlError::Unsupported(
                "stream tables are append-only and have no primary key".into(),
            ));
        }
        TableKind::Regular if !matches!(create.table_options, ast::CreateTableOptions::None) => {
            return Err(SqlError::Unsupported(format!(
                "table options are not supported: {}",
                create.table_options
            )));
        }
        _ => {}
    }
    for (i, column) in columns.iter().enumerate() {
        if columns[..i].iter().any(|c| c.name == column.name) {
            return Err(SqlError::DuplicateColumn(column.name.clone()));
        }
    }
    for key in &primary_key {
        let column = columns
            .iter_mut()
            .find(|c| &c.name == key)
            .ok_or_else(|| SqlError::UndefinedColumn(key.clone()))?;
        // Key columns are implicitly NOT NULL, as in PostgreSQL.
        column.nullable = false;
    }
    // Columns a LIKE source brings are checked when the statement runs.
    if like.is_none() {
        for column in unique.iter().flat_map(|u| &u.columns) {
            if !columns.iter().any(|c| &c.name == column) {
                return Err(SqlError::UndefinedColumn(column.clone()));
            }
        }
    }
    Ok(CreateTable {
        table,
        columns,
        primary_key,
        if_not_exists: create.if_not_exists,
        kind,
        as_query: None,
        like,
        unique,
        checks,
        foreign_keys,
    })
}

/// `WITH (TTL_SECONDS = n)` of a CREATE STREAM TABLE; the only option, and required.
pub fn stream_ttl(create: &ast::CreateTable) -> Result<u64, SqlError> {
    let missing = || SqlError::Syntax("a stream table needs WITH (TTL_SECONDS = <seconds>)".into());
    let ast::CreateTableOptions::With(options) = &create.table_options else {
        return Err(missing());
    };
    let mut ttl = None;
    for option in options {
        match option {
            ast::SqlOption::KeyValue { key, value }
                if key.value.eq_ignore_ascii_case("ttl_seconds") =>
            {
                let seconds = value
                    .to_string()
                    .parse::<u64>()
                    .ok()
                    .filter(|s| *s > 0)
                    .ok_or_else(|| {
                        SqlError::Syntax(format!(
                            "TTL_SECONDS must be a positive integer, not {value}"
                        ))
                    })?;
                ttl = Some(seconds);
            }
            other => {
                return Err(SqlError::Unsupported(format!(
                    "stream table option not supported: {other}"
                )));
            }
        }
    }
    ttl.ok_or_else(missing)
}

/// Converts one column definition; the flag says whether it declared PRIMARY KEY inline.
pub fn column_spec(def: &ast::ColumnDef) -> Result<(ColumnSpec, bool), SqlError> {
    let serial = serial_type(&def.data_type);
    let mut column = ColumnSpec {
        name: fold_ident(&def.name),
        sql_type: match serial {
            Some(t) => t,
            None => sql_type(&def.data_type)?,
        },
        nullable: serial.is_none(),
        default: None,
        sequence: serial.map(|_| ColumnSequence::Serial),
        unique: None,
        checks: Vec::new(),
        foreign_keys: Vec::new(),
    };
    let mut is_key = false;
    let conflicting = |what: &str| {
        SqlError::Syntax(format!(
            "{what} specified for column \"{}\"",
            fold_ident(&def.name)
        ))
    };
    for option in &def.options {
        match &option.option {
            ColumnOption::Null if serial.is_some() => {
                return Err(conflicting("conflicting NULL/NOT NULL declarations"));
            }
            ColumnOption::Null => column.nullable = true,
            ColumnOption::NotNull => column.nullable = false,
            ColumnOption::Default(_) if column.sequence.is_some() => {
                return Err(conflicting("both default and identity or serial"));
            }
            ColumnOption::Generated {
                generated_as: generated @ (ast::GeneratedAs::Always | ast::GeneratedAs::ByDefault),
                sequence_options,
                generation_expr: None,
                ..
            } => {
                if column.sequence.is_some() || column.default.is_some() {
                    return Err(conflicting("both default and identity or serial"));
                }
                if !matches!(
                    column.sql_type,
                    SqlType::SmallInt | SqlType::Integer | SqlType::BigInt
                ) {
                    return Err(SqlError::InvalidParameter(
                        "identity column type must be smallint, integer, or bigint".into(),
                    ));
                }
                column.nullable = false;
                column.sequence = Some(ColumnSequence::Identity {
                    always: matches!(generated, ast::GeneratedAs::Always),
                    options: super::sequences::from_identity_options(
                        sequence_options.as_deref().unwrap_or_default(),
                    )?,
                });
            }
            ColumnOption::Default(expr) => {
                check_default(expr)?;
                column.default = Some(expr.to_string())
            }
            ColumnOption::PrimaryKey(_) => is_key = true,
            ColumnOption::Check(check) => {
                let name = fold_ident(&def.name);
                column.checks.push(CheckSpec::from_constraint(
                    option.name.as_ref(),
                    check,
                    Some(&name),
                )?);
            }
            ColumnOption::Unique(constraint) => {
                column.unique =
                    Some(UniqueSpec::from_constraint(option.name.as_ref(), constraint)?.name);
            }
            ColumnOption::ForeignKey(fk) => {
                let name = fold_ident(&def.name);
                column.foreign_keys.push(ForeignKeySpec::from_constraint(
                    option.name.as_ref(),
                    fk,
                    Some(&name),
                )?);
            }
            other => {
                return Err(SqlError::Unsupported(format!(
                    "column option not supported: {other}"
                )));
            }
        }
    }
    Ok((column, is_key))
}

/// Kinds of table KalamDB does not have. Each changes what the table is (which columns it
/// has, where its rows go), so one created as a plain table would behave silently
/// differently: they are refused instead. (A TEMP table is still created as a plain table;
/// session-scoped tables are the next step, and refusing them would break every application
/// that uses one within its session.)
fn refuse_unsupported_kinds(create: &ast::CreateTable) -> Result<(), SqlError> {
    let refused = if create.inherits.is_some() {
        Some("table inheritance (INHERITS) is not supported")
    } else if create.partition_by.is_some() || create.partition_of.is_some() {
        Some("partitioned tables are not supported")
    } else {
        None
    };
    match refused {
        Some(message) => Err(SqlError::Unsupported(message.into())),
        None => Ok(()),
    }
}

/// As in PostgreSQL; a default runs with the rights of whoever inserts.
pub fn check_default(expr: &ast::Expr) -> Result<(), SqlError> {
    if contains_subquery(expr) {
        return Err(SqlError::Unsupported(
            "cannot use subquery in DEFAULT expression".into(),
        ));
    }
    Ok(())
}

fn contains_subquery(expr: &ast::Expr) -> bool {
    struct Finder;
    impl ast::Visitor for Finder {
        type Break = ();
        fn pre_visit_query(&mut self, _: &ast::Query) -> std::ops::ControlFlow<()> {
            std::ops::ControlFlow::Break(())
        }
    }
    ast::Visit::visit(expr, &mut Finder).is_break()
}

/// Maps a declared SQL type, by PostgreSQL's names and aliases, to a stored type.
pub fn sql_type(data_type: &ast::DataType) -> Result<SqlType, SqlError> {
    sql_type_named(&data_type.to_string())
}

/// The column type a type name (`int4`, `character varying(20)`, `timestamptz`) declares.
pub fn sql_type_named(name: &str) -> Result<SqlType, SqlError> {
    let data_type = name.trim();
    let text = data_type.to_ascii_lowercase();
    let invalid_modifier = || SqlError::Syntax(format!("invalid type modifier in {data_type}"));
    // `name(args) suffix`; a ')' before the '(' (a quoted name like "a)(") is no modifier list.
    let (base, args, suffix) = match text.find('(') {
        Some(open) => {
            let close = text[open..]
                .find(')')
                .map(|i| open + i)
                .ok_or_else(invalid_modifier)?;
            let args = text[open + 1..close]
                .split(',')
                .map(|a| a.trim().parse::<u32>())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|_| invalid_modifier())?;
            (
                text[..open].trim().to_owned(),
                args,
                text[close + 1..].trim(),
            )
        }
        None => (text.trim().to_owned(), Vec::new(), ""),
    };
    // PostgreSQL's limit on declared lengths: a longer one would pad or accept values no
    // page could hold.
    const MAX_DECLARED_LENGTH: u32 = 10_485_760;
    let length_type = match base.as_str() {
        "char" | "character" | "bpchar" => Some("char"),
        "varchar" | "character varying" => Some("varchar"),
        _ => None,
    };
    if let (Some(type_name), [n]) = (length_type, args.as_slice())
        && *n > MAX_DECLARED_LENGTH
    {
        return Err(SqlError::InvalidParameter(format!(
            "length for type {type_name} cannot exceed {MAX_DECLARED_LENGTH}"
        )));
    }
    Ok(match (base.as_str(), args.as_slice()) {
        ("boolean" | "bool", []) => SqlType::Boolean,
        ("smallint" | "int2", []) => SqlType::SmallInt,
        ("integer" | "int" | "int4", []) => SqlType::Integer,
        ("bigint" | "int8", []) => SqlType::BigInt,
        ("real" | "float4", []) => SqlType::Real,
        ("double precision" | "double" | "float8" | "float", []) => SqlType::Double,
        ("float", [p]) if *p <= 24 => SqlType::Real,
        ("float", [_]) => SqlType::Double,
        ("numeric" | "decimal" | "dec", []) => SqlType::Numeric {
            precision: DEFAULT_NUMERIC.0,
            scale: DEFAULT_NUMERIC.1,
        },
        ("numeric" | "decimal" | "dec", [p]) | ("numeric" | "decimal" | "dec", [p, _])
            if *p == 0 || *p > 38 =>
        {
            return Err(SqlError::Unsupported(format!(
                "NUMERIC precision {p} is out of range: KalamDB stores 1 to 38 digits"
            )));
        }
        ("numeric" | "decimal" | "dec", [p]) => SqlType::Numeric {
            precision: *p as u8,
            scale: 0,
        },
        ("numeric" | "decimal" | "dec", [p, s]) if s <= p => SqlType::Numeric {
            precision: *p as u8,
            scale: *s as i8,
        },
        ("text", []) => SqlType::Text,
        ("name", []) => SqlType::Name,
        ("char" | "character", []) => SqlType::Char { len: Some(1) },
        ("char" | "character" | "bpchar", [n]) if *n > 0 => SqlType::Char { len: Some(*n) },
        ("bpchar", []) => SqlType::Char { len: None },
        ("varchar" | "character varying", []) => SqlType::Varchar { max_len: None },
        ("varchar" | "character varying", [n]) if *n > 0 => SqlType::Varchar { max_len: Some(*n) },
        ("bytea", []) => SqlType::Bytea,
        ("date", []) => SqlType::Date,
        ("timestamp" | "timestamp without time zone", []) => SqlType::Timestamp,
        ("timestamp", [_]) if suffix.is_empty() || suffix == "without time zone" => {
            SqlType::Timestamp
        }
        ("timestamptz" | "timestamp with time zone", []) => SqlType::TimestampTz,
        ("timestamp", [_]) if suffix == "with time zone" => SqlType::TimestampTz,
        ("json", []) => SqlType::Json,
        ("jsonb", []) => SqlType::Jsonb,
        ("uuid", []) => SqlType::Uuid,
        _ if suffix.is_empty() && !is_postgres_type_name(&base) => {
            // A quoted name keeps its case, as PostgreSQL reports it.
            let written = data_type[..data_type.find('(').unwrap_or(data_type.len())].trim();
            let shown = written
                .strip_prefix('"')
                .and_then(|w| w.strip_suffix('"'))
                .map_or_else(|| base.clone(), str::to_owned);
            return Err(SqlError::UndefinedType(shown));
        }
        _ => {
            return Err(SqlError::Unsupported(format!(
                "type {data_type} is not supported"
            )));
        }
    })
}

/// Whether PostgreSQL 15 has a type of this (lower-cased) name or alias, array types included:
/// a name it lacks is `42704` there, where a type it has and KalamDB does not store is a
/// feature not supported.
fn is_postgres_type_name(name: &str) -> bool {
    const POSTGRES_TYPES: &[&str] = &[
        "bool",
        "boolean",
        "bytea",
        "char",
        "character",
        "bpchar",
        "name",
        "int2",
        "smallint",
        "int4",
        "int",
        "integer",
        "int8",
        "bigint",
        "int2vector",
        "oidvector",
        "text",
        "varchar",
        "character varying",
        "oid",
        "tid",
        "xid",
        "xid8",
        "cid",
        "regproc",
        "regprocedure",
        "regoper",
        "regoperator",
        "regclass",
        "regcollation",
        "regtype",
        "regrole",
        "regnamespace",
        "regconfig",
        "regdictionary",
        "json",
        "jsonb",
        "jsonpath",
        "xml",
        "point",
        "lseg",
        "path",
        "box",
        "polygon",
        "line",
        "circle",
        "float4",
        "real",
        "float8",
        "float",
        "double precision",
        "money",
        "macaddr",
        "macaddr8",
        "inet",
        "cidr",
        "date",
        "time",
        "time without time zone",
        "time with time zone",
        "timetz",
        "timestamp",
        "timestamp without time zone",
        "timestamptz",
        "timestamp with time zone",
        "interval",
        "bit",
        "varbit",
        "bit varying",
        "numeric",
        "decimal",
        "dec",
        "refcursor",
        "uuid",
        "pg_lsn",
        "pg_snapshot",
        "txid_snapshot",
        "tsvector",
        "tsquery",
        "gtsvector",
        "int4range",
        "int8range",
        "numrange",
        "tsrange",
        "tstzrange",
        "daterange",
        "int4multirange",
        "int8multirange",
        "nummultirange",
        "tsmultirange",
        "tstzmultirange",
        "datemultirange",
        "aclitem",
        "pg_node_tree",
        "record",
        "cstring",
        "any",
        "anyelement",
        "anyarray",
        "anynonarray",
        "anyenum",
        "anyrange",
        "anymultirange",
        "anycompatible",
        "anycompatiblearray",
        "anycompatiblenonarray",
        "anycompatiblerange",
        "anycompatiblemultirange",
        "void",
        "trigger",
        "event_trigger",
        "internal",
        "unknown",
        "serial",
        "serial4",
        "bigserial",
        "serial8",
        "smallserial",
        "serial2",
    ];
    let element = name.trim_end_matches("[]").trim();
    let element = element.strip_prefix("pg_catalog.").unwrap_or(element);
    POSTGRES_TYPES.contains(&element)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn create(sql: &str) -> CreateTable {
        match &super::super::parse(sql).unwrap()[0] {
            super::super::Statement::CreateTable(create) => create.clone(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn postgres_type_names_and_aliases_map_to_stored_types() {
        let t = create(
            "CREATE TABLE app.t (a INT PRIMARY KEY, b int8, c DOUBLE PRECISION, d NUMERIC(10,2), \
             e VARCHAR(20), f TIMESTAMP WITH TIME ZONE, g timestamptz, h timestamp, i jsonb, j uuid, \
             k bool, l float4, m NUMERIC)",
        );
        let types: Vec<SqlType> = t.columns.iter().map(|c| c.sql_type).collect();
        assert_eq!(
            types,
            [
                SqlType::Integer,
                SqlType::BigInt,
                SqlType::Double,
                SqlType::Numeric {
                    precision: 10,
                    scale: 2
                },
                SqlType::Varchar { max_len: Some(20) },
                SqlType::TimestampTz,
                SqlType::TimestampTz,
                SqlType::Timestamp,
                SqlType::Jsonb,
                SqlType::Uuid,
                SqlType::Boolean,
                SqlType::Real,
                SqlType::Numeric {
                    precision: 38,
                    scale: 10
                },
            ]
        );
        assert_eq!(t.primary_key, ["a"]);
        assert!(!t.columns[0].nullable);
        assert_eq!(t.table.namespace.as_deref(), Some("app"));
    }

    #[test]
    fn table_level_keys_defaults_and_not_null() {
        let t = create(
            "CREATE TABLE IF NOT EXISTS t (a TEXT, b INT NOT NULL DEFAULT 7, PRIMARY KEY (b, a))",
        );
        assert_eq!(t.primary_key, ["b", "a"]);
        assert_eq!(t.columns[1].default.as_deref(), Some("7"));
        assert!(t.if_not_exists);
        assert!(!t.columns[0].nullable, "key columns are NOT NULL");
    }

    #[test]
    fn unsupported_types_and_duplicate_columns_are_refused() {
        assert!(matches!(
            super::super::parse("CREATE TABLE t (a point)"),
            Err(SqlError::Unsupported(_))
        ));
        assert!(matches!(
            super::super::parse("CREATE TABLE t (a int, a text)"),
            Err(SqlError::DuplicateColumn(_))
        ));
    }
}
