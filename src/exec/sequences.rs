//! Sequences as statements: CREATE, ALTER and DROP SEQUENCE, the sequences SERIAL and identity
//! columns create with their table, and which column defaults use a sequence. The bounds and
//! defaults follow PostgreSQL's rules for each option.

use datafusion::sql::sqlparser::ast;

use super::outcome::Outcome;
use super::{ExecError, ExecResult, Session, now_micros};
use crate::model::types::{ColumnDef, SqlType};
use crate::sql::{SequenceOptions, TableName};
use crate::storage::{Command, Conflict, OwnedBy, SequenceRecord, StorageError};

/// PostgreSQL's NAMEDATALEN - 1: names longer than this are truncated.
const MAX_NAME_BYTES: usize = 63;

fn type_bounds(data_type: SqlType) -> (i64, i64) {
    match data_type {
        SqlType::SmallInt => (i16::MIN as i64, i16::MAX as i64),
        SqlType::Integer => (i32::MIN as i64, i32::MAX as i64),
        _ => (i64::MIN, i64::MAX),
    }
}

fn type_name(data_type: SqlType) -> &'static str {
    match data_type {
        SqlType::SmallInt => "smallint",
        SqlType::Integer => "integer",
        _ => "bigint",
    }
}

fn invalid(message: String) -> ExecError {
    ExecError::InvalidParameterValue(message)
}

/// A sequence's definition from its options, over `base` (ALTER SEQUENCE) or the defaults
/// (CREATE); with the position a RESTART asks for.
fn define(
    mut sequence: SequenceRecord,
    options: &SequenceOptions,
    base: Option<&SequenceRecord>,
) -> ExecResult<(SequenceRecord, Option<i64>)> {
    let data_type = options
        .data_type
        .or(base.map(|b| b.data_type))
        .unwrap_or(SqlType::BigInt);
    let increment = options.increment.or(base.map(|b| b.increment)).unwrap_or(1);
    if increment == 0 {
        return Err(invalid("INCREMENT must not be zero".into()));
    }
    let (type_min, type_max) = type_bounds(data_type);
    let (default_min, default_max) = if increment > 0 {
        (1, type_max)
    } else {
        (type_min, -1)
    };
    // A bound that was its old type's default follows a new type, as in PostgreSQL.
    let kept = |bound: fn(&SequenceRecord) -> i64, old_default: fn(SqlType) -> i64| {
        base.filter(|b| options.data_type.is_none() || bound(b) != old_default(b.data_type))
            .map(bound)
    };
    let max_value = match options.max_value {
        Some(Some(v)) => v,
        Some(None) => default_max,
        None => kept(|b| b.max_value, |t| type_bounds(t).1).unwrap_or(default_max),
    };
    let min_value = match options.min_value {
        Some(Some(v)) => v,
        Some(None) => default_min,
        None => kept(|b| b.min_value, |t| type_bounds(t).0).unwrap_or(default_min),
    };
    for (what, value) in [("MAXVALUE", max_value), ("MINVALUE", min_value)] {
        if !(type_min..=type_max).contains(&value) {
            return Err(invalid(format!(
                "{what} ({value}) is out of range for sequence data type {}",
                type_name(data_type)
            )));
        }
    }
    if min_value >= max_value {
        return Err(invalid(format!(
            "MINVALUE ({min_value}) must be less than MAXVALUE ({max_value})"
        )));
    }
    let start = options
        .start
        .or(base.map(|b| b.start))
        .unwrap_or(if increment > 0 { min_value } else { max_value });
    let restart = options.restart.map(|r| r.unwrap_or(start));
    for (what, value) in [("START", Some(start)), ("RESTART", restart)] {
        match value {
            Some(v) if v < min_value => {
                return Err(invalid(format!(
                    "{what} value ({v}) cannot be less than MINVALUE ({min_value})"
                )));
            }
            Some(v) if v > max_value => {
                return Err(invalid(format!(
                    "{what} value ({v}) cannot be greater than MAXVALUE ({max_value})"
                )));
            }
            _ => {}
        }
    }
    let cache = options.cache.or(base.map(|b| b.cache)).unwrap_or(1);
    if cache < 1 {
        return Err(invalid(format!(
            "CACHE ({cache}) must be greater than zero"
        )));
    }
    sequence.data_type = data_type;
    sequence.increment = increment;
    sequence.min_value = min_value;
    sequence.max_value = max_value;
    sequence.start = start;
    sequence.cache = cache;
    sequence.cycle = options.cycle.or(base.map(|b| b.cycle)).unwrap_or(false);
    Ok((sequence, restart))
}

fn new_record(namespace: &str, name: &str) -> SequenceRecord {
    SequenceRecord {
        sequence_id: 0,
        namespace: namespace.to_owned(),
        name: name.to_owned(),
        data_type: SqlType::BigInt,
        increment: 1,
        min_value: 1,
        max_value: i64::MAX,
        start: 1,
        cache: 1,
        cycle: false,
        owned_by: None,
        created_at: now_micros(),
    }
}

/// An identifier as PostgreSQL prints it (`quote_ident`).
pub use super::format::quote_ident;

/// A sequence's `pg_class` OID, from its stored id like every object's (`model::oids`).
pub fn sequence_oid(sequence_id: u64) -> i32 {
    crate::model::oids::object_oid(sequence_id)
}

/// A DEFAULT as PostgreSQL prints it: a sequence's nextval names it as a regclass literal
/// (`nextval('t_id_seq'::regclass)`, qualified outside `public`), which is what SQLAlchemy and
/// psql's `\d` recognise.
pub fn display_default(default: &str) -> String {
    if !is_plain_nextval(default) {
        return default.to_owned();
    }
    let Some(name) = sequences_in_default(default)
        .into_iter()
        .next()
        .and_then(|text| crate::sql::relation_name(&text).ok())
    else {
        return default.to_owned();
    };
    let shown = match name.namespace.as_deref() {
        None | Some(crate::storage::PUBLIC_NAMESPACE) => quote_ident(&name.name),
        Some(namespace) => qualified(namespace, &name.name),
    };
    format!("nextval('{}'::regclass)", shown.replace('\'', "''"))
}

/// `ns.name`, each part quoted where it must be: how a sequence is named inside a DEFAULT.
pub fn qualified(namespace: &str, name: &str) -> String {
    format!("{}.{}", quote_ident(namespace), quote_ident(name))
}

/// The DEFAULT of a column that takes its values from a sequence.
pub fn nextval_default(namespace: &str, name: &str) -> String {
    format!(
        "nextval('{}')",
        qualified(namespace, name).replace('\'', "''")
    )
}

/// The sequences a stored DEFAULT calls nextval on, by their qualified text.
pub fn sequences_in_default(default: &str) -> Vec<String> {
    let Ok(expr) = crate::sql::parse_expr(default) else {
        return Vec::new();
    };
    let mut found = Vec::new();
    let _ = ast::visit_expressions(&expr, |e| {
        if let ast::Expr::Function(f) = e
            && f.name.to_string().eq_ignore_ascii_case("nextval")
            && let ast::FunctionArguments::List(list) = &f.args
            && let Some(ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Expr(arg))) =
                list.args.first()
            && let Some(text) = string_literal(arg)
        {
            found.push(text);
        }
        std::ops::ControlFlow::<()>::Continue(())
    });
    found
}

/// Whether a DEFAULT is exactly one nextval call on a named sequence.
pub fn is_plain_nextval(default: &str) -> bool {
    matches!(
        crate::sql::parse_expr(default),
        Ok(ast::Expr::Function(f)) if f.name.to_string().eq_ignore_ascii_case("nextval")
    ) && sequences_in_default(default).len() == 1
}

/// A string literal, also inside a `::regclass` or `::text` cast.
fn string_literal(expr: &ast::Expr) -> Option<String> {
    match expr {
        ast::Expr::Value(v) => match &v.value {
            ast::Value::SingleQuotedString(s) => Some(s.clone()),
            _ => None,
        },
        ast::Expr::Cast { expr, .. } => string_literal(expr),
        _ => None,
    }
}

impl Session {
    /// Finds a sequence by qualified name or along `search_path` (42P01 when there is none).
    pub(super) fn resolve_sequence(&self, name: &TableName) -> ExecResult<SequenceRecord> {
        super::names::first_in_path(self.candidate_namespaces(name)?, |namespace| {
            self.catalog().sequence(namespace, &name.name)
        })?
        .ok_or_else(|| super::names::undefined_relation(name))
    }

    pub(super) fn create_sequence(
        &self,
        name: &TableName,
        if_not_exists: bool,
        options: &SequenceOptions,
    ) -> ExecResult<Outcome> {
        let namespace = match &name.namespace {
            Some(ns) => ns.clone(),
            None => self.creation_namespace()?,
        };
        let (mut sequence, _) = define(new_record(&namespace, &name.name), options, None)?;
        sequence.sequence_id = self.relation_id()?;
        sequence.owned_by = self.owner(&namespace, options)?;
        match self.apply_ddl(Command::CreateSequence(sequence)) {
            Ok(_) => {}
            Err(StorageError::Conflict(Conflict::TableExists(..))) if if_not_exists => {}
            Err(e) => return Err(e.into()),
        }
        Ok(Outcome::Done {
            tag: "CREATE SEQUENCE",
        })
    }

    /// The column `OWNED BY` names: one of a table in the sequence's namespace.
    fn owner(&self, namespace: &str, options: &SequenceOptions) -> ExecResult<Option<OwnedBy>> {
        let Some(Some((table, column))) = &options.owned_by else {
            return Ok(None);
        };
        let record = self.resolve_table(table)?;
        if record.namespace != namespace {
            return Err(ExecError::ObjectNotInPrerequisiteState(
                "sequence must be in same schema as table it is linked to".into(),
            ));
        }
        if !record.columns.iter().any(|c| &c.name == column) {
            return Err(ExecError::UndefinedColumn(format!(
                "column \"{column}\" of relation \"{}\" does not exist",
                record.name
            )));
        }
        Ok(Some(OwnedBy {
            table: record.name,
            column: column.clone(),
        }))
    }

    pub(super) fn alter_sequence(
        &self,
        name: &TableName,
        if_exists: bool,
        options: &SequenceOptions,
    ) -> ExecResult<Outcome> {
        let current = match self.resolve_sequence(name) {
            Ok(sequence) => sequence,
            Err(ExecError::UndefinedTable(_)) if if_exists => {
                return Ok(Outcome::Done {
                    tag: "ALTER SEQUENCE",
                });
            }
            Err(e) => return Err(e),
        };
        let (mut sequence, restart) = define(current.clone(), options, Some(&current))?;
        sequence.owned_by = match &options.owned_by {
            None => current.owned_by.clone(),
            Some(_) => self.owner(&current.namespace, options)?,
        };
        self.engine
            .store
            .alter_sequence(&current, sequence, restart)?;
        Ok(Outcome::Done {
            tag: "ALTER SEQUENCE",
        })
    }

    pub(super) fn drop_sequences(
        &self,
        names: &[TableName],
        if_exists: bool,
        cascade: bool,
    ) -> ExecResult<Outcome> {
        let mut commands = Vec::new();
        let tables = self.catalog().tables()?;
        for name in names {
            let sequence = match self.resolve_sequence(name) {
                Ok(sequence) => sequence,
                Err(ExecError::UndefinedTable(_)) if if_exists => continue,
                Err(e) => return Err(e),
            };
            let target = qualified(&sequence.namespace, &sequence.name);
            for table in &tables {
                let mut changed = table.clone();
                for column in &mut changed.columns {
                    let uses = column
                        .default
                        .as_deref()
                        .is_some_and(|d| sequences_in_default(d).contains(&target));
                    if !uses {
                        continue;
                    }
                    if column.identity.is_some() {
                        return Err(ExecError::DependentObjectsStillExist(format!(
                            "cannot drop sequence {} because column {} of table {} requires it",
                            sequence.name, column.name, table.name
                        )));
                    }
                    if !cascade {
                        return Err(ExecError::DependentObjectsStillExist(format!(
                            "cannot drop sequence {} because other objects depend on it (default value for column {} of table {}); use DROP ... CASCADE",
                            sequence.name, column.name, table.name
                        )));
                    }
                    column.default = None;
                }
                if changed != *table {
                    commands.push(Command::AlterTable(changed));
                }
            }
            commands.push(Command::DropSequence {
                namespace: sequence.namespace,
                name: sequence.name,
            });
        }
        if !commands.is_empty() {
            self.apply_ddl(Command::Batch(commands))?;
        }
        Ok(Outcome::Done {
            tag: "DROP SEQUENCE",
        })
    }

    /// The sequences a new table's SERIAL and identity columns take their values from, named
    /// as PostgreSQL names them (`<table>_<column>_seq`, numbered when taken), and the
    /// columns' defaults set to their nextval.
    pub(super) fn column_sequences(
        &self,
        namespace: &str,
        table: &str,
        columns: &mut [ColumnDef],
        specs: &[crate::sql::ColumnSpec],
    ) -> ExecResult<Vec<Command>> {
        let mut commands = Vec::new();
        let mut taken = Vec::new();
        for (column, spec) in columns.iter_mut().zip(specs) {
            let options = match &spec.sequence {
                None => continue,
                Some(crate::sql::ColumnSequence::Serial) => SequenceOptions {
                    data_type: Some(column.sql_type),
                    ..SequenceOptions::default()
                },
                Some(crate::sql::ColumnSequence::Identity { always, options }) => {
                    column.identity = Some(if *always {
                        crate::model::types::Identity::Always
                    } else {
                        crate::model::types::Identity::ByDefault
                    });
                    SequenceOptions {
                        data_type: Some(column.sql_type),
                        ..options.clone()
                    }
                }
            };
            let name = self.unused_relation_name(namespace, table, &column.name, &taken)?;
            let (mut sequence, _) = define(new_record(namespace, &name), &options, None)?;
            sequence.sequence_id = self.relation_id()?;
            sequence.owned_by = Some(OwnedBy {
                table: table.to_owned(),
                column: column.name.clone(),
            });
            column.default = Some(nextval_default(namespace, &name));
            taken.push(name);
            commands.push(Command::CreateSequence(sequence));
        }
        Ok(commands)
    }

    fn unused_relation_name(
        &self,
        namespace: &str,
        table: &str,
        column: &str,
        taken: &[String],
    ) -> ExecResult<String> {
        let store = self.catalog();
        for n in 0..u32::MAX {
            let suffix = if n == 0 {
                "_seq".to_owned()
            } else {
                format!("_seq{n}")
            };
            let mut stem = format!("{table}_{column}");
            while stem.len() + suffix.len() > MAX_NAME_BYTES {
                stem.pop();
            }
            let name = format!("{stem}{suffix}");
            if !taken.contains(&name)
                && store.table(namespace, &name)?.is_none()
                && store.sequence(namespace, &name)?.is_none()
            {
                return Ok(name);
            }
        }
        Err(ExecError::DuplicateTable(format!(
            "no free name for the sequence of column \"{column}\" of table \"{table}\""
        )))
    }
}
