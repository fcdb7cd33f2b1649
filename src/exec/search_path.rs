//! What an unqualified name reaches, as the catalog functions tell it: `current_schema()`,
//! `current_schemas(bool)`, `pg_table_is_visible(oid)`, and a relation's OID from its name
//! (`to_regclass(text)`, and the cast of a computed name to `regclass`), each following the
//! session's `search_path` (`$user` included) with `pg_catalog` implicitly searched first, as
//! in PostgreSQL.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BooleanBuilder, Int32Builder, ListBuilder, StringBuilder,
};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, Int32Type};
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use datafusion::prelude::SessionContext;
use datafusion::scalar::ScalarValue;

use super::catalog_oids::{builtin_namespace, relations_by_oid};
use super::settings::Settings;
use crate::storage::Store;

const PG_CATALOG: &str = "pg_catalog";

/// The session's search path, resolved against the committed catalog.
#[derive(Clone)]
struct Path {
    store: Arc<Store>,
    settings: Arc<Mutex<Settings>>,
}

impl Path {
    /// The namespaces `search_path` names that exist, in order (`current_schemas(false)`).
    fn explicit(&self) -> Result<Vec<String>> {
        let entries = {
            let settings = self.settings.lock().expect("settings lock");
            let path = settings.get("search_path").map_err(external)?;
            super::names::path_entries(&path, settings.session_user())
        };
        let mut found = Vec::with_capacity(entries.len());
        for name in entries {
            // The built-in namespaces exist without a catalog record.
            let builtin = matches!(name.as_str(), PG_CATALOG | "information_schema" | "system");
            if builtin || self.store.namespace(&name).map_err(external)?.is_some() {
                found.push(name);
            }
        }
        Ok(found)
    }

    /// Where an unqualified name is looked for, in order: `pg_catalog` first unless the path
    /// places it.
    fn effective(&self) -> Result<Vec<String>> {
        let mut path = self.explicit()?;
        if !path.iter().any(|n| n == PG_CATALOG) {
            path.insert(0, PG_CATALOG.to_owned());
        }
        Ok(path)
    }
}

pub fn register(ctx: &SessionContext, store: Arc<Store>, settings: Arc<Mutex<Settings>>) {
    let path = Path { store, settings };
    for kind in [
        Kind::CurrentSchema,
        Kind::CurrentSchemas,
        Kind::TableIsVisible,
        Kind::RelationOid,
        Kind::RelationOidOrNull,
    ] {
        ctx.register_udf(ScalarUDF::new_from_impl(PathFunction {
            kind,
            signature: match kind {
                Kind::CurrentSchema => Signature::exact(vec![], Volatility::Stable),
                Kind::CurrentSchemas => {
                    Signature::exact(vec![DataType::Boolean], Volatility::Stable)
                }
                Kind::TableIsVisible | Kind::RelationOid | Kind::RelationOidOrNull => {
                    Signature::any(1, Volatility::Stable)
                }
            },
            path: path.clone(),
        }));
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Kind {
    CurrentSchema,
    CurrentSchemas,
    TableIsVisible,
    /// `CAST(name AS regclass)` of a computed name: 42P01 for a name that names nothing.
    RelationOid,
    /// `to_regclass(name)`: NULL for a name that names nothing.
    RelationOidOrNull,
}

struct PathFunction {
    kind: Kind,
    signature: Signature,
    path: Path,
}

impl std::fmt::Debug for PathFunction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.kind)
    }
}

impl PartialEq for PathFunction {
    fn eq(&self, other: &Self) -> bool {
        self.kind == other.kind
    }
}

impl Eq for PathFunction {}

impl std::hash::Hash for PathFunction {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.kind.hash(state)
    }
}

impl ScalarUDFImpl for PathFunction {
    fn name(&self) -> &str {
        match self.kind {
            Kind::CurrentSchema => "current_schema",
            Kind::CurrentSchemas => "current_schemas",
            Kind::TableIsVisible => "pg_table_is_visible",
            Kind::RelationOid => crate::sql::RELATION_OID_FUNCTION,
            Kind::RelationOidOrNull => "to_regclass",
        }
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(match self.kind {
            Kind::CurrentSchema => DataType::Utf8,
            Kind::CurrentSchemas => {
                DataType::List(Arc::new(Field::new("item", DataType::Utf8, true)))
            }
            Kind::TableIsVisible => DataType::Boolean,
            Kind::RelationOid | Kind::RelationOidOrNull => DataType::Int32,
        })
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        match self.kind {
            // NULL when no namespace of the path exists, as in PostgreSQL.
            Kind::CurrentSchema => Ok(ColumnarValue::Scalar(ScalarValue::Utf8(
                self.path.explicit()?.into_iter().next(),
            ))),
            Kind::CurrentSchemas => {
                let implicit = ColumnarValue::values_to_arrays(&args.args)?;
                let implicit = implicit[0].as_boolean();
                let (explicit, effective) = (self.path.explicit()?, self.path.effective()?);
                let mut out = ListBuilder::new(StringBuilder::new());
                for row in 0..implicit.len() {
                    if implicit.is_null(row) {
                        out.append_null();
                        continue;
                    }
                    let names = if implicit.value(row) {
                        &effective
                    } else {
                        &explicit
                    };
                    for name in names {
                        out.values().append_value(name);
                    }
                    out.append(true);
                }
                finish(&args, Arc::new(out.finish()))
            }
            Kind::TableIsVisible => {
                let oids = ColumnarValue::values_to_arrays(&args.args)?;
                let oids = cast(&oids[0], &DataType::Int32)?;
                let oids = oids.as_primitive::<Int32Type>();
                let relations = relations_by_oid(&self.path.store)?;
                let path = self.path.effective()?;
                let names: HashSet<(&str, &str)> = relations
                    .values()
                    .map(|(ns, name)| (ns.as_str(), name.as_str()))
                    .collect();
                let mut out = BooleanBuilder::new();
                for oid in oids.iter() {
                    let visible = oid.and_then(|oid| match relations.get(&oid) {
                        // Visible when no namespace before its own on the path has a relation
                        // of the same name.
                        Some((namespace, name)) => Some(
                            path.iter()
                                .find(|ns| {
                                    *ns == namespace
                                        || names.contains(&(ns.as_str(), name.as_str()))
                                        || (*ns == PG_CATALOG
                                            && crate::model::oids::pg_catalog_relation_oid(name)
                                                .is_some())
                                })
                                .is_some_and(|first| first == namespace),
                        ),
                        None => builtin_namespace(oid).map(|ns| path.iter().any(|p| p == ns)),
                    });
                    out.append_option(visible);
                }
                finish(&args, Arc::new(out.finish()))
            }
            Kind::RelationOid | Kind::RelationOidOrNull => {
                let names = ColumnarValue::values_to_arrays(&args.args)?;
                // A number cast to regclass is already an OID.
                if names[0].data_type().is_integer() {
                    return finish(&args, cast(&names[0], &DataType::Int32)?);
                }
                let names = cast(&names[0], &DataType::Utf8)?;
                let by_name: HashMap<(String, String), i32> = relations_by_oid(&self.path.store)?
                    .into_iter()
                    .map(|(oid, relation)| (relation, oid))
                    .collect();
                let path = self.path.effective()?;
                let mut out = Int32Builder::new();
                for text in names.as_string::<i32>().iter() {
                    let Some(text) = text else {
                        out.append_null();
                        continue;
                    };
                    let oid = relation_oid(text, &path, &by_name);
                    if oid.is_none() && self.kind == Kind::RelationOid {
                        return Err(external(super::names::undefined_relation(text)));
                    }
                    out.append_option(oid);
                }
                finish(&args, Arc::new(out.finish()))
            }
        }
    }
}

/// The OID of the relation `text` names (`ns.rel` or `rel`, quoted parts kept as written):
/// in its namespace, or in the first namespace of `path` holding one of that name.
fn relation_oid(
    text: &str,
    path: &[String],
    by_name: &HashMap<(String, String), i32>,
) -> Option<i32> {
    let name = crate::sql::relation_name(text).ok()?;
    let in_namespace = |namespace: &str| {
        if namespace == PG_CATALOG {
            crate::model::oids::pg_catalog_relation_oid(&name.name)
        } else {
            by_name
                .get(&(namespace.to_owned(), name.name.clone()))
                .copied()
        }
    };
    match &name.namespace {
        Some(namespace) => in_namespace(namespace),
        None => path.iter().find_map(|namespace| in_namespace(namespace)),
    }
}

fn external(e: impl std::error::Error + Send + Sync + 'static) -> DataFusionError {
    DataFusionError::External(Box::new(e))
}

/// A scalar result for scalar arguments, an array otherwise.
fn finish(args: &ScalarFunctionArgs, out: ArrayRef) -> Result<ColumnarValue> {
    Ok(
        if args
            .args
            .iter()
            .all(|a| matches!(a, ColumnarValue::Scalar(_)))
        {
            ColumnarValue::Scalar(ScalarValue::try_from_array(&out, 0)?)
        } else {
            ColumnarValue::Array(out)
        },
    )
}
