//! View DDL: `CREATE [OR REPLACE] VIEW`, `DROP VIEW`, and keeping views readable when a table
//! they read is renamed.
//!
//! A view is planned once when it is created, to check its query and learn its columns and
//! dependencies; its relation names are then stored qualified, so it reads the same relations
//! whatever `search_path` its readers have.

use std::sync::Arc;

use datafusion::sql::sqlparser::ast;

use super::outcome::Outcome;
use super::planner::StatementPlanner;
use super::{ExecError, ExecResult, Session, now_micros};
use crate::model::types::storable_type;
use crate::sql::{SYSTEM_SCHEMA, TableName};
use crate::storage::{Command, Dependency, ViewColumn, ViewRecord};

impl Session {
    pub(super) async fn create_view(
        &self,
        name: &TableName,
        or_replace: bool,
        column_names: &[String],
        query: &ast::Query,
    ) -> ExecResult<Outcome> {
        let namespace = match &name.namespace {
            Some(ns) => ns.clone(),
            None => self.creation_namespace()?,
        };
        if self.catalog().table(&namespace, &name.name)?.is_some()
            || self
                .engine
                .store
                .sequence(&namespace, &name.name)?
                .is_some()
        {
            return Err(if or_replace {
                ExecError::WrongObjectType(format!("\"{}\" is not a view", name.name))
            } else {
                ExecError::DuplicateTable(format!("relation \"{}\" already exists", name.name))
            });
        }
        let statement = ast::Statement::Query(Box::new(query.clone()));
        let planner = StatementPlanner::new(self, &statement).await?;
        let qualified = crate::sql::qualify_relations(query, |n| planner.namespace_of(n));
        let plan = planner.query(&qualified)?;
        // The names PostgreSQL gives the query's columns (`count`, not `count(*)`).
        let schema =
            super::naming::postgres_names(&statement, Arc::new(plan.schema().as_arrow().clone()));
        let fields = schema.fields();
        if column_names.len() > fields.len() {
            return Err(ExecError::Sql(crate::sql::SqlError::Syntax(
                "CREATE VIEW specifies more column names than columns".into(),
            )));
        }
        let mut columns: Vec<ViewColumn> = Vec::with_capacity(fields.len());
        for (i, field) in fields.iter().enumerate() {
            let column_name = column_names.get(i).unwrap_or(field.name()).clone();
            if columns.iter().any(|c| c.name == column_name) {
                return Err(ExecError::DuplicateColumn(format!(
                    "column \"{column_name}\" specified more than once"
                )));
            }
            columns.push(ViewColumn {
                name: column_name,
                sql_type: storable_type(field),
            });
        }
        let scanned = planner.scanned_columns(&plan)?;
        let mut depends_on: Vec<Dependency> = planner
            .relations()
            .into_iter()
            .chain(scanned.keys().cloned())
            .filter(|(ns, _)| self.is_stored_namespace(ns))
            .map(|(namespace, name)| Dependency {
                columns: scanned
                    .get(&(namespace.clone(), name.clone()))
                    .cloned()
                    .unwrap_or_default(),
                namespace,
                name,
            })
            .collect();
        depends_on.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
        depends_on.dedup_by(|a, b| a.namespace == b.namespace && a.name == b.name);
        if self.reaches(&depends_on, &namespace, &name.name)? {
            return Err(ExecError::InvalidObjectDefinition(format!(
                "infinite recursion detected in rules for relation \"{}\"",
                name.name
            )));
        }
        if or_replace
            && let Some(existing) = self.catalog().view_definition(&namespace, &name.name)?
        {
            check_replacement(&existing.columns, &columns)?;
        }
        let view = ViewRecord {
            view_id: self.relation_id()?,
            namespace,
            name: name.name.clone(),
            columns,
            query: qualified.to_string(),
            depends_on,
            created_at: now_micros(),
        };
        self.apply_ddl(Command::CreateView {
            view,
            replace: or_replace,
        })?;
        Ok(Outcome::Done { tag: "CREATE VIEW" })
    }

    /// Whether `depends_on`, or the views in it (at any depth), read `namespace.name`.
    fn reaches(&self, depends_on: &[Dependency], namespace: &str, name: &str) -> ExecResult<bool> {
        let views = self.catalog().view_definitions()?;
        let mut pending: Vec<(&str, &str)> = depends_on
            .iter()
            .map(|d| (d.namespace.as_str(), d.name.as_str()))
            .collect();
        let mut seen = std::collections::HashSet::new();
        while let Some(relation) = pending.pop() {
            if relation == (namespace, name) {
                return Ok(true);
            }
            if !seen.insert(relation) {
                continue;
            }
            if let Some(view) = views
                .iter()
                .find(|v| (v.namespace.as_str(), v.name.as_str()) == relation)
            {
                pending.extend(
                    view.depends_on
                        .iter()
                        .map(|d| (d.namespace.as_str(), d.name.as_str())),
                );
            }
        }
        Ok(false)
    }

    fn is_stored_namespace(&self, namespace: &str) -> bool {
        namespace != SYSTEM_SCHEMA && matches!(self.catalog().namespace(namespace), Ok(Some(_)))
    }

    /// Finds a view by qualified name, or along `search_path`: 42809 when the name is a table,
    /// 42P01 when it is nothing.
    fn resolve_view(&self, name: &TableName) -> ExecResult<ViewRecord> {
        let namespaces = self.candidate_namespaces(name)?;
        if let Some(view) = super::names::first_in_path(namespaces.clone(), |ns| {
            self.catalog().view_definition(ns, &name.name)
        })? {
            return Ok(view);
        }
        match super::names::first_in_path(namespaces, |ns| self.catalog().table(ns, &name.name))? {
            Some(_) => Err(ExecError::WrongObjectType(format!(
                "\"{}\" is not a view",
                name.name
            ))),
            None => Err(ExecError::UndefinedTable(format!(
                "view \"{name}\" does not exist"
            ))),
        }
    }

    pub(super) fn drop_views(
        &self,
        names: &[TableName],
        if_exists: bool,
        cascade: bool,
    ) -> ExecResult<Outcome> {
        let mut commands = Vec::new();
        for name in names {
            match self.resolve_view(name) {
                Ok(view) => commands.push(Command::DropView {
                    namespace: view.namespace,
                    name: view.name,
                    cascade,
                }),
                Err(ExecError::UndefinedTable(_)) if if_exists => {}
                Err(e) => return Err(e),
            }
        }
        if !commands.is_empty() {
            self.apply_ddl(Command::Batch(commands))?;
        }
        Ok(Outcome::Done { tag: "DROP VIEW" })
    }

    /// The views reading table `namespace.name`, redefined to read it as `new_namespace.
    /// new_name`: what a rename or SET SCHEMA applies with itself, since views name their
    /// relations in their text.
    pub(super) fn views_renamed_with(
        &self,
        (namespace, name): (&str, &str),
        (new_namespace, new_name): (&str, &str),
    ) -> ExecResult<Vec<Command>> {
        let mut commands = Vec::new();
        for mut view in self.catalog().view_definitions()? {
            if !view
                .depends_on
                .iter()
                .any(|d| d.namespace == namespace && d.name == name)
            {
                continue;
            }
            let query = crate::sql::parse_view_query(&view.query)?;
            view.query =
                crate::sql::rename_relation(&query, (namespace, name), (new_namespace, new_name))
                    .to_string();
            for dependency in &mut view.depends_on {
                if dependency.namespace == namespace && dependency.name == name {
                    dependency.namespace = new_namespace.to_owned();
                    dependency.name = new_name.to_owned();
                }
            }
            commands.push(Command::CreateView {
                view,
                replace: true,
            });
        }
        Ok(commands)
    }
}

/// CREATE OR REPLACE VIEW may add columns at the end, but not drop, rename or retype one.
fn check_replacement(old: &[ViewColumn], new: &[ViewColumn]) -> ExecResult<()> {
    if new.len() < old.len() {
        return Err(ExecError::InvalidTableDefinition(
            "cannot drop columns from view".into(),
        ));
    }
    for (before, after) in old.iter().zip(new) {
        if before.name != after.name {
            return Err(ExecError::InvalidTableDefinition(format!(
                "cannot change name of view column \"{}\" to \"{}\"",
                before.name, after.name
            )));
        }
        if before.sql_type != after.sql_type {
            let name = |t: Option<crate::model::types::SqlType>| {
                t.map_or_else(|| "unknown".to_owned(), |t| t.sql_name())
            };
            return Err(ExecError::InvalidTableDefinition(format!(
                "cannot change data type of view column \"{}\" from {} to {}",
                before.name,
                name(before.sql_type),
                name(after.sql_type)
            )));
        }
    }
    Ok(())
}
