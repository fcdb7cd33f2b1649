//! SQL: turns statement text into [`Statement`]s and decides which role each one needs.
//!
//! Parsing uses sqlparser's PostgreSQL dialect. KalamDB's own statements (user management now,
//! backup and jobs later) are recognised by their leading keywords with the same parser, and
//! everything else is handed to DataFusion as a standard statement. [`authorize`] is the single
//! place where roles are enforced.

mod alter;
mod catalog_queries;
mod copy;
mod cursors;
mod ddl;
mod foreign_keys;
mod function_casts;
mod indexes;
mod interval_literals;
pub mod json_each;
pub mod json_records;
mod lateral_calls;
mod like_escapes;
pub mod limits;
pub mod output_names;
mod parse;
mod postgres_spellings;
mod prepared;
mod regex_substring;
mod sequences;
mod set_returning;
mod sort_subqueries;
mod subqueries;
mod subquery_values;
mod unknown_arguments;
mod users;
mod values_types;
mod views;

pub use catalog_queries::{
    DEFINITIONS_TABLE, FORMAT_TYPES_FUNCTION, PRETTY_VIEW_COLUMN, PRIMARY_KEYS_TABLE,
    RELATION_OID_FUNCTION, RELATION_SIZES_TABLE,
};
pub use copy::{CopyFormat, CopyOptions, CopyRelation, CopyStatement};
pub use cursors::{CursorDeclaration, CursorMotion};
pub use ddl::{
    CheckSpec, ColumnSequence, ColumnSpec, CreateTable, TableName, UniqueSpec,
    sql_type as declared_type, sql_type_named,
};
pub use foreign_keys::ForeignKeySpec;
pub use function_casts::{REGPROC_FUNCTION, REGPROCEDURE_FUNCTION};
pub use lateral_calls::CARRY_FUNCTION as LATERAL_CARRY_FUNCTION;
pub use like_escapes::{LIKE_PATTERN_FUNCTION, backslash_like_pattern};
pub use output_names::REPEAT_ALIAS_PREFIX;
pub use parse::{fold_ident as fold, parse, parse_expr, relation_name};
pub use prepared::{Discarded, Preparation, values_query as execute_values_query};
pub use sequences::SequenceOptions;
pub use subqueries::SINGLE_ROW_FUNCTION;
pub use views::{parse_view_query, qualify_relations, rename_relation};

use datafusion::sql::sqlparser::ast;

use crate::model::Role;

#[derive(Debug, thiserror::Error)]
pub enum SqlError {
    #[error("{0}")]
    Syntax(String),
    #[error("{0}")]
    Unsupported(String),
    #[error("permission denied: {statement} requires the {required} role")]
    PermissionDenied {
        statement: &'static str,
        required: Role,
    },
    #[error("permission denied: {0}")]
    PermissionDeniedDetail(String),
    #[error("column \"{0}\" specified more than once")]
    DuplicateColumn(String),
    #[error("column \"{0}\" does not exist")]
    UndefinedColumn(String),
    #[error("{0}")]
    AmbiguousColumn(String),
    #[error("{0}")]
    StackDepth(String),
    #[error("{0}")]
    TooManyColumns(String),
    #[error("{0}")]
    UndefinedParameter(String),
    #[error("{0}")]
    InvalidParameter(String),
    /// A date, time or interval literal in no form PostgreSQL reads (22007).
    #[error("{0}")]
    InvalidDatetimeFormat(String),
    /// A LIKE escape of more than one character (22025).
    #[error("invalid escape string")]
    InvalidEscapeString,
    /// An interval literal with a field past what an interval holds (22015).
    #[error("{0}")]
    DatetimeFieldOverflow(String),
    /// A type name PostgreSQL does not know either (42704); a type PostgreSQL has that
    /// KalamDB does not store is `Unsupported`.
    #[error("type \"{0}\" does not exist")]
    UndefinedType(String),
}

/// A parsed statement.
#[derive(Debug, Clone)]
pub enum Statement {
    /// A statement DataFusion plans and runs (SELECT, VALUES, EXPLAIN, ...).
    Query(Box<ast::Statement>),
    /// `COPY table [(columns)] FROM STDIN` or `COPY {table [(columns)] | (query)} TO STDOUT`.
    Copy(CopyStatement),
    /// `SET [SESSION|LOCAL] name {=|TO} value`, `SET TIME ZONE value`.
    Set {
        name: String,
        value: SetValue,
    },
    /// `SHOW name` / `SHOW ALL`.
    Show {
        name: String,
    },
    Begin,
    /// `SET CONSTRAINTS {ALL | name [, ...]} {DEFERRED | IMMEDIATE}`; `names` is `None` for
    /// ALL.
    SetConstraints {
        names: Option<Vec<TableName>>,
        deferred: bool,
    },
    Commit,
    Rollback,
    Savepoint {
        name: String,
    },
    /// `DECLARE name CURSOR FOR query`.
    DeclareCursor(Box<CursorDeclaration>),
    /// `FETCH` (or, with `move_only`, `MOVE`) on the session's cursor `name`.
    FetchCursor {
        name: String,
        motion: CursorMotion,
        move_only: bool,
    },
    /// `CLOSE name` / `CLOSE ALL` (`None`).
    CloseCursor {
        name: Option<String>,
    },
    /// `DEALLOCATE name` / `DEALLOCATE ALL` (`None`): drops prepared statements, the SQL-level
    /// ones and the protocol's.
    Deallocate {
        name: Option<String>,
    },
    /// `PREPARE name [(types)] AS statement`.
    Prepare(Box<Preparation>),
    /// `EXECUTE name [(values)]`: runs a statement PREPARE made with these values.
    Execute {
        name: String,
        params: Vec<ast::Expr>,
    },
    /// `DISCARD {ALL | PLANS | SEQUENCES | TEMP}`.
    Discard(Discarded),
    ReleaseSavepoint {
        name: String,
    },
    RollbackToSavepoint {
        name: String,
    },
    /// `CREATE USER name WITH PASSWORD '...' [ROLE role]`
    CreateUser {
        user_id: String,
        password: String,
        role: Role,
    },
    /// `ALTER USER name WITH PASSWORD '...'` and/or `ROLE role`
    AlterUser {
        user_id: String,
        password: Option<String>,
        role: Option<Role>,
    },
    /// `DROP USER [IF EXISTS] name`
    DropUser {
        user_id: String,
        if_exists: bool,
    },
    /// `CREATE NAMESPACE|SCHEMA [IF NOT EXISTS] name`
    CreateNamespace {
        name: String,
        if_not_exists: bool,
    },
    /// `DROP NAMESPACE|SCHEMA [IF EXISTS] name [CASCADE]`
    DropNamespace {
        name: String,
        if_exists: bool,
        cascade: bool,
    },
    ShowNamespaces,
    /// `SHOW TABLES [IN|FROM namespace]`
    ShowTables {
        namespace: Option<String>,
    },
    /// `DESCRIBE table`
    Describe {
        table: TableName,
    },
    CreateTable(CreateTable),
    /// `DROP TABLE [IF EXISTS] t [, ...] [CASCADE | RESTRICT]`
    DropTable {
        tables: Vec<TableName>,
        if_exists: bool,
        cascade: bool,
    },
    /// `CREATE [OR REPLACE] VIEW name [(column, ...)] AS query`
    CreateView {
        name: TableName,
        or_replace: bool,
        columns: Vec<String>,
        query: Box<ast::Query>,
    },
    /// `DROP VIEW [IF EXISTS] name [, ...] [CASCADE | RESTRICT]`
    DropView {
        names: Vec<TableName>,
        if_exists: bool,
        cascade: bool,
    },
    /// `CREATE [UNIQUE] INDEX [IF NOT EXISTS] [name] ON t (column, ...)`
    CreateIndex {
        name: Option<String>,
        table: TableName,
        columns: Vec<String>,
        unique: bool,
        if_not_exists: bool,
        /// (column, class) for columns given a text pattern operator class.
        pattern_ops: Vec<(String, String)>,
    },
    /// `ALTER TABLE t ADD [CONSTRAINT name] UNIQUE (column, ...)`
    AddUnique {
        table: TableName,
        unique: UniqueSpec,
    },
    /// `ALTER TABLE t ADD [CONSTRAINT name] CHECK (expr)`
    AddCheck {
        table: TableName,
        check: CheckSpec,
    },
    /// `ALTER TABLE t ADD [CONSTRAINT name] FOREIGN KEY (columns) REFERENCES ...`
    AddForeignKey {
        table: TableName,
        foreign_key: ForeignKeySpec,
    },
    /// `ALTER TABLE t DROP CONSTRAINT [IF EXISTS] name [RESTRICT]`
    DropConstraint {
        table: TableName,
        name: String,
        if_exists: bool,
    },
    /// `DROP INDEX [IF EXISTS] name [, ...] [CASCADE | RESTRICT]`
    DropIndex {
        names: Vec<TableName>,
        if_exists: bool,
    },
    /// `ALTER TABLE [IF EXISTS] t SET SCHEMA namespace`
    SetSchema {
        table: TableName,
        if_exists: bool,
        namespace: String,
    },
    /// `ALTER TABLE t DROP [COLUMN] [IF EXISTS] column [CASCADE | RESTRICT]`
    DropColumn {
        table: TableName,
        column: String,
        if_exists: bool,
        cascade: bool,
    },
    /// `ALTER TABLE t ADD [COLUMN] [IF NOT EXISTS] column`
    AddColumn {
        table: TableName,
        column: ColumnSpec,
        if_not_exists: bool,
    },
    /// `CREATE SEQUENCE [IF NOT EXISTS] name [options]`
    CreateSequence {
        name: TableName,
        if_not_exists: bool,
        options: SequenceOptions,
    },
    /// `ALTER SEQUENCE [IF EXISTS] name options`
    AlterSequence {
        name: TableName,
        if_exists: bool,
        options: SequenceOptions,
    },
    /// `DROP SEQUENCE [IF EXISTS] name [, ...] [CASCADE | RESTRICT]`
    DropSequence {
        names: Vec<TableName>,
        if_exists: bool,
        cascade: bool,
    },
    /// `TRUNCATE [TABLE] t [, ...] [RESTART IDENTITY | CONTINUE IDENTITY] [CASCADE | RESTRICT]`
    Truncate {
        tables: Vec<TableName>,
        restart_identity: bool,
        /// Also empties the tables whose foreign keys refer to the ones listed.
        cascade: bool,
    },
    /// `ALTER TABLE t RENAME TO new`
    RenameTable {
        table: TableName,
        new_name: String,
    },
    /// `ALTER TABLE t RENAME [COLUMN] old TO new`
    RenameColumn {
        table: TableName,
        column: String,
        new_name: String,
    },
    /// `ALTER TABLE t ALTER [COLUMN] c {SET DEFAULT e | DROP DEFAULT | SET NOT NULL | DROP NOT NULL}`
    AlterColumn {
        table: TableName,
        column: String,
        change: ColumnChange,
    },
    /// `COMMENT ON TABLE t IS '...'` / `COMMENT ON COLUMN t.c IS NULL`
    Comment {
        table: TableName,
        column: Option<String>,
        comment: Option<String>,
    },
    /// `VACUUM [options] [table [(columns)], ...]` (`analyze_only`: `ANALYZE ...`), every
    /// table of the database when none is named.
    Vacuum {
        analyze_only: bool,
        tables: Vec<(TableName, Vec<String>)>,
    },
    /// `FLUSH TABLE t`: moves the table's hot rows into a Parquet segment, as a job.
    FlushTable {
        table: TableName,
    },
    /// `KILL JOB 'id'`
    KillJob {
        job_id: String,
    },
    /// `BACKUP DATABASE TO '<path>' [INCREMENTAL FROM '<base>']`
    BackupDatabase {
        target: ArchivePath,
        base: Option<ArchivePath>,
    },
    /// `RESTORE DATABASE FROM '<path>' [WITH BACKUP TO '<path>']`: with `backup_to`, the
    /// current state is backed up first, in the same job.
    RestoreDatabase {
        source: ArchivePath,
        backup_to: Option<ArchivePath>,
    },
    /// `SHOW BACKUP '<path>'`: the summary of an archive's manifest, once it is checked.
    ShowBackup {
        archive: ArchivePath,
    },
    /// `VERIFY BACKUP '<path>'`: the checks of `kalamdb verify-backup`, as a job.
    VerifyBackup {
        archive: ArchivePath,
    },
    /// `CLUSTER SNAPSHOT`
    ClusterSnapshot,
    /// `ALTER CLUSTER ADD NODE <id> '<address>'` or `ALTER CLUSTER REMOVE NODE <id>`
    AlterCluster(ClusterChange),
    /// INSERT, UPDATE and DELETE keep sqlparser's AST; `exec` evaluates their expressions.
    Insert(Box<ast::Statement>),
    Update(Box<ast::Statement>),
    Delete(Box<ast::Statement>),
}

/// A change of a cluster's membership.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClusterChange {
    /// A node that catches up as a learner, then votes.
    AddNode {
        node_id: u64,
        address: String,
    },
    RemoveNode {
        node_id: u64,
    },
}

/// A path operand of BACKUP, RESTORE, SHOW BACKUP and VERIFY BACKUP as written. A bare
/// (unquoted) path is kept with `quoted` false, to be refused with the path rules rather than
/// as a syntax error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchivePath {
    pub raw: String,
    pub quoted: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ColumnChange {
    /// `[SET DATA] TYPE t [USING expr]`, the expression as SQL text.
    SetType {
        sql_type: crate::model::SqlType,
        using: Option<String>,
    },
    /// The new DEFAULT as SQL text.
    SetDefault(String),
    DropDefault,
    SetNotNull,
    DropNotNull,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SetValue {
    Value(String),
    /// `SET x TO DEFAULT` / `RESET x`
    Default,
}

/// Who is running a statement.
#[derive(Debug, Clone)]
pub struct Caller {
    pub user_id: String,
    pub role: Role,
}

/// The schema whose tables only administrators may read.
pub const SYSTEM_SCHEMA: &str = "system";

impl Statement {
    /// The command tag PostgreSQL would report, used in messages and CommandComplete.
    pub fn tag(&self) -> &'static str {
        match self {
            Statement::Query(_) => "SELECT",
            Statement::Copy(_) => "COPY",
            Statement::Set { .. } => "SET",
            Statement::Show { .. } => "SHOW",
            Statement::Begin => "BEGIN",
            Statement::SetConstraints { .. } => "SET CONSTRAINTS",
            Statement::Commit => "COMMIT",
            Statement::Rollback | Statement::RollbackToSavepoint { .. } => "ROLLBACK",
            Statement::Savepoint { .. } => "SAVEPOINT",
            Statement::Deallocate { .. } => "DEALLOCATE",
            Statement::Prepare(_) => "PREPARE",
            Statement::Execute { .. } => "EXECUTE",
            Statement::Discard(discarded) => discarded.tag(),
            Statement::DeclareCursor(_) => "DECLARE CURSOR",
            Statement::FetchCursor {
                move_only: false, ..
            } => "FETCH",
            Statement::FetchCursor { .. } => "MOVE",
            Statement::CloseCursor { .. } => "CLOSE CURSOR",
            Statement::ReleaseSavepoint { .. } => "RELEASE",
            Statement::CreateUser { .. } => "CREATE USER",
            Statement::AlterUser { .. } => "ALTER USER",
            Statement::DropUser { .. } => "DROP USER",
            Statement::CreateNamespace { .. } => "CREATE SCHEMA",
            Statement::DropNamespace { .. } => "DROP SCHEMA",
            Statement::ShowNamespaces
            | Statement::ShowTables { .. }
            | Statement::Describe { .. } => "SHOW",
            Statement::CreateTable(_) => "CREATE TABLE",
            Statement::DropTable { .. } => "DROP TABLE",
            Statement::CreateView { .. } => "CREATE VIEW",
            Statement::DropView { .. } => "DROP VIEW",
            Statement::CreateIndex { .. } => "CREATE INDEX",
            Statement::AddUnique { .. }
            | Statement::AddCheck { .. }
            | Statement::AddForeignKey { .. }
            | Statement::DropColumn { .. }
            | Statement::SetSchema { .. }
            | Statement::DropConstraint { .. } => "ALTER TABLE",
            Statement::DropIndex { .. } => "DROP INDEX",
            Statement::AddColumn { .. }
            | Statement::RenameTable { .. }
            | Statement::RenameColumn { .. }
            | Statement::AlterColumn { .. } => "ALTER TABLE",
            Statement::CreateSequence { .. } => "CREATE SEQUENCE",
            Statement::Truncate { .. } => "TRUNCATE TABLE",
            Statement::Comment { .. } => "COMMENT",
            Statement::AlterSequence { .. } => "ALTER SEQUENCE",
            Statement::DropSequence { .. } => "DROP SEQUENCE",
            Statement::Vacuum {
                analyze_only: false,
                ..
            } => "VACUUM",
            Statement::Vacuum {
                analyze_only: true, ..
            } => "ANALYZE",
            Statement::FlushTable { .. } => "FLUSH TABLE",
            Statement::KillJob { .. } => "KILL JOB",
            Statement::BackupDatabase { .. } => "BACKUP DATABASE",
            Statement::RestoreDatabase { .. } => "RESTORE DATABASE",
            Statement::ShowBackup { .. } => "SHOW",
            Statement::VerifyBackup { .. } => "VERIFY BACKUP",
            Statement::ClusterSnapshot => "CLUSTER SNAPSHOT",
            Statement::AlterCluster(_) => "ALTER CLUSTER",
            Statement::Insert(_) => "INSERT",
            Statement::Update(_) => "UPDATE",
            Statement::Delete(_) => "DELETE",
        }
    }
}

/// Checks that `caller` may run `statement`. `role_of` looks up the current role of an existing
/// user, so that only a `system` user can change or remove another `system` user.
pub fn authorize(
    statement: &Statement,
    caller: &Caller,
    role_of: impl Fn(&str) -> Option<Role>,
) -> Result<(), SqlError> {
    if caller.role < Role::Dba && reads_system_schema(statement) {
        return Err(SqlError::PermissionDenied {
            statement: "reading system tables",
            required: Role::Dba,
        });
    }
    let required = match statement {
        // A prepared statement needs what the statement needs; EXECUTE checks again.
        Statement::Prepare(preparation) => {
            return authorize(&preparation.statement, caller, role_of);
        }
        Statement::Query(_)
        | Statement::Set { .. }
        | Statement::Show { .. }
        | Statement::Begin
        | Statement::SetConstraints { .. }
        | Statement::Commit
        | Statement::Rollback
        | Statement::Savepoint { .. }
        | Statement::Deallocate { .. }
        | Statement::Execute { .. }
        | Statement::Discard(_)
        | Statement::DeclareCursor(_)
        | Statement::FetchCursor { .. }
        | Statement::CloseCursor { .. }
        | Statement::ReleaseSavepoint { .. }
        | Statement::RollbackToSavepoint { .. }
        | Statement::ShowNamespaces
        | Statement::ShowTables { .. }
        | Statement::Describe { .. }
        | Statement::Insert(_)
        | Statement::Update(_)
        | Statement::Delete(_)
        | Statement::Copy(_) => Role::User,
        Statement::CreateTable(_)
        | Statement::DropTable { .. }
        | Statement::CreateView { .. }
        | Statement::DropView { .. }
        | Statement::CreateIndex { .. }
        | Statement::DropIndex { .. }
        | Statement::AddUnique { .. }
        | Statement::AddCheck { .. }
        | Statement::AddForeignKey { .. }
        | Statement::DropColumn { .. }
        | Statement::SetSchema { .. }
        | Statement::DropConstraint { .. }
        | Statement::AddColumn { .. }
        | Statement::CreateSequence { .. }
        | Statement::AlterSequence { .. }
        | Statement::DropSequence { .. }
        | Statement::Truncate { .. }
        | Statement::RenameTable { .. }
        | Statement::RenameColumn { .. }
        | Statement::AlterColumn { .. }
        | Statement::Comment { .. }
        | Statement::Vacuum { .. } => Role::Service,
        Statement::CreateNamespace { .. }
        | Statement::DropNamespace { .. }
        | Statement::FlushTable { .. }
        | Statement::KillJob { .. }
        | Statement::BackupDatabase { .. }
        | Statement::RestoreDatabase { .. }
        | Statement::ShowBackup { .. }
        | Statement::VerifyBackup { .. }
        | Statement::ClusterSnapshot
        | Statement::AlterCluster(_) => Role::Dba,
        Statement::CreateUser { role, .. } => (*role).max(Role::Dba),
        Statement::AlterUser {
            user_id,
            password: _,
            role: None,
        } if *user_id == caller.user_id => Role::User,
        Statement::AlterUser { user_id, role, .. } => role
            .unwrap_or(Role::Dba)
            .max(Role::Dba)
            .max(role_of(user_id).unwrap_or(Role::Dba)),
        Statement::DropUser { user_id, .. } => Role::Dba.max(role_of(user_id).unwrap_or(Role::Dba)),
    };
    if caller.role >= required {
        Ok(())
    } else {
        Err(SqlError::PermissionDenied {
            statement: statement.tag(),
            required,
        })
    }
}

/// True when any part of a statement reads a table in the `system` schema: a query's joins,
/// subqueries and CTEs, and a DML statement's source, SET and ON CONFLICT expressions, WHERE
/// and RETURNING lists. Column defaults cannot hold subqueries (see `ddl`), so they read none.
fn reads_system_schema(statement: &Statement) -> bool {
    match statement {
        Statement::Query(ast)
        | Statement::Insert(ast)
        | Statement::Update(ast)
        | Statement::Delete(ast) => names_system_table(ast.as_ref()),
        Statement::CreateView { query, .. } => names_system_table(query.as_ref()),
        Statement::DeclareCursor(declared) => names_system_table(declared.query.as_ref()),
        Statement::Prepare(preparation) => reads_system_schema(&preparation.statement),
        Statement::Copy(copy) => match &copy.relation {
            CopyRelation::Query(query) => names_system_table(query.as_ref()),
            CopyRelation::Table { name, .. } => name
                .namespace
                .as_deref()
                .is_some_and(|n| n.eq_ignore_ascii_case(SYSTEM_SCHEMA)),
        },
        _ => false,
    }
}

fn names_system_table<V: ast::Visit>(node: &V) -> bool {
    ast::visit_relations(node, |relation| {
        let parts = &relation.0;
        let schema = match parts.len() {
            1 => return std::ops::ControlFlow::Continue(()),
            2 => parts.first(),
            3 => parts.get(1),
            _ => None,
        };
        // A name part that is no plain identifier cannot be vouched for: refuse it.
        match schema.and_then(|p| p.as_ident()) {
            Some(ident) if !ident.value.eq_ignore_ascii_case(SYSTEM_SCHEMA) => {
                std::ops::ControlFlow::Continue(())
            }
            _ => std::ops::ControlFlow::Break(()),
        }
    })
    .is_break()
}

/// The statement `sql` after `rewrite`, as text: how the AST rewrites' tests read.
#[cfg(test)]
pub(crate) fn rewritten_by(sql: &str, rewrite: impl Fn(&mut ast::Statement)) -> String {
    let dialect = datafusion::sql::sqlparser::dialect::PostgreSqlDialect {};
    let mut statement = datafusion::sql::sqlparser::parser::Parser::parse_sql(&dialect, sql)
        .expect("test SQL parses")
        .remove(0);
    rewrite(&mut statement);
    statement.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caller(role: Role) -> Caller {
        Caller {
            user_id: "carol".into(),
            role,
        }
    }

    fn only(sql: &str) -> Statement {
        let mut statements = parse(sql).unwrap();
        assert_eq!(statements.len(), 1);
        statements.remove(0)
    }

    #[test]
    fn system_tables_need_dba_wherever_they_appear() {
        for sql in [
            "SELECT * FROM system.users",
            "SELECT 1 FROM (SELECT * FROM kalamdb.system.users) s",
            "WITH u AS (SELECT * FROM SYSTEM.USERS) SELECT * FROM u",
            "SELECT 1 WHERE EXISTS (SELECT 1 FROM system.users)",
            "EXPLAIN SELECT * FROM system.jobs",
            "INSERT INTO t(v) VALUES ('x') RETURNING (SELECT string_agg(user_id, ',') FROM system.users)",
            "INSERT INTO t(v) SELECT user_id FROM system.users",
            "WITH u AS (SELECT user_id FROM system.users) INSERT INTO t(v) SELECT * FROM u",
            "INSERT INTO t(k, v) VALUES (1, 'x') ON CONFLICT (k) DO UPDATE SET v = (SELECT max(job_id) FROM system.jobs)",
            "UPDATE t SET v = (SELECT max(user_id) FROM system.users)",
            "UPDATE t SET v = 'x' WHERE k IN (SELECT 1 FROM system.jobs)",
            "UPDATE t SET v = 'x' RETURNING (SELECT count(*) FROM system.users)",
            "DELETE FROM t WHERE EXISTS (SELECT 1 FROM \"system\".\"users\")",
            "DELETE FROM t RETURNING (SELECT count(*) FROM system.jobs)",
        ] {
            let statement = only(sql);
            let err = authorize(&statement, &caller(Role::Service), |_| None).unwrap_err();
            assert!(err.to_string().contains("requires the dba role"), "{sql}");
            authorize(&statement, &caller(Role::Dba), |_| None).unwrap();
        }
    }

    #[test]
    fn users_may_change_only_their_own_password() {
        let own = only("ALTER USER carol WITH PASSWORD 'x'");
        authorize(&own, &caller(Role::User), |_| Some(Role::User)).unwrap();
        let other = only("ALTER USER dave WITH PASSWORD 'x'");
        assert!(authorize(&other, &caller(Role::User), |_| Some(Role::User)).is_err());
        let promote = only("ALTER USER carol ROLE dba");
        assert!(authorize(&promote, &caller(Role::User), |_| Some(Role::User)).is_err());
    }

    #[test]
    fn only_system_may_create_or_touch_system_users() {
        let create = only("CREATE USER x WITH PASSWORD 'p' ROLE system");
        assert!(authorize(&create, &caller(Role::Dba), |_| None).is_err());
        authorize(&create, &caller(Role::System), |_| None).unwrap();
        let drop_root = only("DROP USER root");
        assert!(authorize(&drop_root, &caller(Role::Dba), |_| Some(Role::System)).is_err());
    }
}
