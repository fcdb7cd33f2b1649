//! `regproc` and `regprocedure`: a function named by its name, or by its name and argument
//! types, read and printed as PostgreSQL reads and prints them. A value is the function's OID
//! (int4) in a column tagged with the type, so comparisons and joins with `pg_proc.oid` work
//! on numbers while casts to text and the wire show names.
//!
//! `'now'::regproc` finds the one function of that name (42883 when none has it, 42725 when
//! several do); `'substr(text,integer)'::regprocedure` finds the exact signature; numbers are
//! OIDs already. `to_regproc`/`to_regprocedure` answer NULL where the casts fail. The names
//! come from the built-in functions `pg_proc` lists.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock};

use datafusion::arrow::array::{Array, ArrayRef, AsArray, Int32Array, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Int32Type};
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::{
    ColumnarValue, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature,
    Volatility,
};
use datafusion::prelude::SessionContext;

use super::ExecError;
use crate::model::types::{PG_TYPE_METADATA, REGPROC_TAG, REGPROCEDURE_TAG};

/// What a name, or a name with argument types, was read as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Reading {
    /// `regproc`: the name alone.
    Name,
    /// `regprocedure`: the name and argument types.
    Signature,
}

impl Reading {
    fn tag(self) -> &'static str {
        match self {
            Reading::Name => REGPROC_TAG,
            Reading::Signature => REGPROCEDURE_TAG,
        }
    }
}

/// One built-in function of `pg_proc` (all in `pg_catalog`).
struct Function {
    name: String,
    arguments: Vec<i32>,
}

/// Functions by OID and by name, and type OIDs by name, read once from the catalog data.
struct Catalog {
    functions: HashMap<i32, Function>,
    by_name: HashMap<String, Vec<i32>>,
    type_oids: HashMap<String, i32>,
    type_names: HashMap<i32, String>,
}

static CATALOG: LazyLock<std::result::Result<Catalog, String>> =
    LazyLock::new(|| read_catalog().map_err(|e| e.to_string()));

fn catalog() -> Result<&'static Catalog> {
    CATALOG
        .as_ref()
        .map_err(|e| DataFusionError::Execution(format!("pg_proc could not be read: {e}")))
}

fn read_catalog() -> Result<Catalog> {
    let tables = datafusion_pg_catalog::pg_catalog::PgCatalogStaticTables::try_new()?;
    let column = |batch: &datafusion::arrow::array::RecordBatch, name: &str| {
        batch
            .column_by_name(name)
            .cloned()
            .ok_or_else(|| DataFusionError::Execution(format!("no column {name}")))
    };
    let mut type_oids = HashMap::new();
    let mut type_names = HashMap::new();
    for batch in tables.pg_type.data() {
        let oids = column(batch, "oid")?;
        let names = column(batch, "typname")?;
        let (oids, names) = (oids.as_primitive::<Int32Type>(), names.as_string::<i32>());
        for row in 0..batch.num_rows() {
            type_oids.insert(names.value(row).to_owned(), oids.value(row));
            type_names.insert(oids.value(row), names.value(row).to_owned());
        }
    }
    let mut functions = HashMap::new();
    let mut by_name: HashMap<String, Vec<i32>> = HashMap::new();
    for batch in tables.pg_proc.data() {
        let oids = column(batch, "oid")?;
        let names = column(batch, "proname")?;
        let arguments = column(batch, "proargtypes")?;
        let oids = oids.as_primitive::<Int32Type>();
        let names = names.as_string::<i32>();
        let arguments = arguments.as_string::<i32>();
        for row in 0..batch.num_rows() {
            let oid = oids.value(row);
            let name = names.value(row).to_owned();
            let argument_oids = if arguments.is_valid(row) {
                arguments
                    .value(row)
                    .split_whitespace()
                    .filter_map(|t| t.parse().ok())
                    .collect()
            } else {
                Vec::new()
            };
            by_name.entry(name.clone()).or_default().push(oid);
            functions.insert(
                oid,
                Function {
                    name,
                    arguments: argument_oids,
                },
            );
        }
    }
    Ok(Catalog {
        functions,
        by_name,
        type_oids,
        type_names,
    })
}

/// Why a name names no single function.
enum Unresolved {
    Missing,
    Ambiguous,
    Malformed,
}

/// An identifier as PostgreSQL reads one: folded to lower case unless double-quoted.
fn identifier(text: &str) -> String {
    let text = text.trim();
    match text.strip_prefix('"').and_then(|t| t.strip_suffix('"')) {
        Some(quoted) => quoted.replace("\"\"", "\""),
        None => text.to_lowercase(),
    }
}

/// `name` or `schema.name`, with the schema (only `pg_catalog` holds functions here).
fn function_name(text: &str) -> Option<String> {
    let parts: Vec<&str> = text.split('.').collect();
    match parts.as_slice() {
        [name] => Some(identifier(name)),
        [schema, name] if identifier(schema) == "pg_catalog" => Some(identifier(name)),
        _ => None,
    }
}

/// A type name as `regprocedure` input spells it (`integer`, `int4`, `character varying`,
/// `text[]`), as `pg_type.typname`.
fn type_name(text: &str) -> String {
    let mut text = text.trim().to_lowercase();
    // Any number of dimensions is the one array type, `_` and the element's name.
    let mut array = false;
    while let Some(element) = text.strip_suffix("[]") {
        text = element.trim_end().to_owned();
        array = true;
    }
    if array {
        return format!("_{}", type_name(&text));
    }
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let canonical = match text.as_str() {
        "int" | "integer" => "int4",
        "smallint" => "int2",
        "bigint" => "int8",
        "real" => "float4",
        "float" | "double precision" => "float8",
        "boolean" => "bool",
        "character varying" => "varchar",
        "character" | "char" => "bpchar",
        "decimal" => "numeric",
        "timestamp without time zone" => "timestamp",
        "timestamp with time zone" => "timestamptz",
        "time without time zone" => "time",
        "time with time zone" => "timetz",
        "\"any\"" => "any",
        "\"char\"" => "char",
        other => return other.trim_matches('"').to_owned(),
    };
    canonical.to_owned()
}

impl Catalog {
    fn resolve(&self, text: &str, reading: Reading) -> std::result::Result<i32, Unresolved> {
        let text = text.trim();
        if let Ok(oid) = text.parse::<i32>() {
            return Ok(oid);
        }
        let candidates = match reading {
            Reading::Name => {
                let name = function_name(text).ok_or(Unresolved::Missing)?;
                self.by_name.get(&name).cloned().unwrap_or_default()
            }
            Reading::Signature => {
                let (name, rest) = text.split_once('(').ok_or(Unresolved::Malformed)?;
                let arguments = rest
                    .trim_end()
                    .strip_suffix(')')
                    .ok_or(Unresolved::Malformed)?;
                let name = function_name(name).ok_or(Unresolved::Missing)?;
                let wanted = if arguments.trim().is_empty() {
                    Vec::new()
                } else {
                    arguments
                        .split(',')
                        .map(|t| self.type_oids.get(&type_name(t)).copied())
                        .collect::<Option<Vec<i32>>>()
                        .ok_or(Unresolved::Missing)?
                };
                self.by_name
                    .get(&name)
                    .into_iter()
                    .flatten()
                    .copied()
                    .filter(|oid| self.functions[oid].arguments == wanted)
                    .collect()
            }
        };
        match candidates.as_slice() {
            [oid] => Ok(*oid),
            [] => Err(Unresolved::Missing),
            _ => Err(Unresolved::Ambiguous),
        }
    }

    /// The function as `regproc` or `regprocedure` prints it; an OID no function has prints
    /// as the number, as in PostgreSQL.
    fn print(&self, oid: i32, reading: Reading) -> String {
        let Some(function) = self.functions.get(&oid) else {
            return if oid == 0 {
                "-".to_owned()
            } else {
                oid.to_string()
            };
        };
        match reading {
            Reading::Name => function.name.clone(),
            Reading::Signature => {
                let arguments: Vec<String> = function
                    .arguments
                    .iter()
                    .map(|t| self.printed_type(*t))
                    .collect();
                format!("{}({})", function.name, arguments.join(","))
            }
        }
    }
}

impl Catalog {
    /// A type as `format_type` names it in a signature: an array as its element's name and
    /// `[]` (`integer[]`).
    fn printed_type(&self, oid: i32) -> String {
        let typname = self.type_names.get(&oid);
        if let Some(element) = typname.and_then(|name| name.strip_prefix('_'))
            && let Some(element_oid) = self.type_oids.get(element)
        {
            return format!(
                "{}[]",
                printed_type(*element_oid, Some(&element.to_owned()))
            );
        }
        printed_type(oid, typname)
    }
}

/// A type as `format_type` names it in a signature.
fn printed_type(oid: i32, typname: Option<&String>) -> String {
    let named = match oid {
        16 => "boolean",
        20 => "bigint",
        21 => "smallint",
        23 => "integer",
        700 => "real",
        701 => "double precision",
        1043 => "character varying",
        1042 => "character",
        1114 => "timestamp without time zone",
        1184 => "timestamp with time zone",
        1083 => "time without time zone",
        1266 => "time with time zone",
        18 => "\"char\"",
        2276 => "\"any\"",
        _ => {
            return match typname {
                Some(name) => match name.strip_prefix('_') {
                    Some(element) => format!("{element}[]"),
                    None => name.clone(),
                },
                None => oid.to_string(),
            };
        }
    };
    named.to_owned()
}

/// The text of a `regproc` (or `regprocedure` when `signature`) value.
pub fn printed(oid: i32, signature: bool) -> String {
    let reading = if signature {
        Reading::Signature
    } else {
        Reading::Name
    };
    match catalog() {
        Ok(catalog) => catalog.print(oid, reading),
        Err(_) => oid.to_string(),
    }
}

/// The cast of text or a number to `regproc`/`regprocedure`, or `to_regproc(text)` and
/// `to_regprocedure(text)` (`lenient`: NULL where the cast fails).
#[derive(Debug, PartialEq, Eq, Hash)]
struct FunctionReference {
    name: &'static str,
    reading: Reading,
    lenient: bool,
    signature: Signature,
}

impl ScalarUDFImpl for FunctionReference {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(DataType::Int32)
    }

    fn return_field_from_args(&self, _args: ReturnFieldArgs) -> Result<FieldRef> {
        Ok(Arc::new(
            Field::new(self.name, DataType::Int32, true).with_metadata(HashMap::from([(
                PG_TYPE_METADATA.to_owned(),
                self.reading.tag().to_owned(),
            )])),
        ))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = args.number_rows;
        let input = args.args[0].to_array(rows)?;
        if input.data_type().is_integer() {
            let oids = datafusion::arrow::compute::cast(&input, &DataType::Int32)?;
            return Ok(ColumnarValue::Array(oids));
        }
        let texts = datafusion::arrow::compute::cast(&input, &DataType::Utf8)?;
        let catalog = catalog()?;
        let mut oids = Vec::with_capacity(rows);
        for text in texts.as_string::<i32>().iter() {
            let Some(text) = text else {
                oids.push(None);
                continue;
            };
            match catalog.resolve(text, self.reading) {
                Ok(oid) => oids.push(Some(oid)),
                Err(_) if self.lenient => oids.push(None),
                Err(why) => return Err(unresolved(why, text)),
            }
        }
        Ok(ColumnarValue::Array(Arc::new(Int32Array::from(oids))))
    }
}

fn unresolved(why: Unresolved, text: &str) -> DataFusionError {
    let error = match why {
        Unresolved::Ambiguous => {
            ExecError::AmbiguousFunction(format!("more than one function named \"{text}\""))
        }
        Unresolved::Malformed => {
            ExecError::InvalidText(format!("expected a left parenthesis: \"{text}\""))
        }
        Unresolved::Missing => {
            ExecError::UndefinedFunction(format!("function \"{text}\" does not exist"))
        }
    };
    DataFusionError::External(Box::new(error))
}

/// Text of `regproc` (`signature` false) or `regprocedure` values.
pub(super) fn texts(oids: &ArrayRef, signature: bool) -> Result<ArrayRef> {
    let oids = datafusion::arrow::compute::cast(oids, &DataType::Int32)?;
    let texts: StringArray = oids
        .as_primitive::<Int32Type>()
        .iter()
        .map(|oid| oid.map(|oid| printed(oid, signature)))
        .collect();
    Ok(Arc::new(texts))
}

/// The functions `sql` calls in place of a cast to `regproc` or `regprocedure`, and
/// `to_regproc`/`to_regprocedure`.
pub fn register(ctx: &SessionContext) {
    for (name, reading, lenient) in [
        (crate::sql::REGPROC_FUNCTION, Reading::Name, false),
        (crate::sql::REGPROCEDURE_FUNCTION, Reading::Signature, false),
        ("to_regproc", Reading::Name, true),
        ("to_regprocedure", Reading::Signature, true),
    ] {
        ctx.register_udf(ScalarUDF::new_from_impl(FunctionReference {
            name,
            reading,
            lenient,
            signature: Signature::any(1, Volatility::Stable),
        }));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_signatures_resolve_to_the_functions_pg_proc_lists() {
        let catalog = catalog().unwrap();
        let now = catalog.resolve("now", Reading::Name).ok().unwrap();
        assert_eq!(catalog.print(now, Reading::Name), "now");
        assert_eq!(
            catalog.resolve("pg_catalog.now", Reading::Name).ok(),
            Some(now)
        );
        assert!(matches!(
            catalog.resolve("avg", Reading::Name),
            Err(Unresolved::Ambiguous)
        ));
        assert!(matches!(
            catalog.resolve("no_such_function", Reading::Name),
            Err(Unresolved::Missing)
        ));
        let substr = catalog
            .resolve("substr(text, int)", Reading::Signature)
            .ok()
            .unwrap();
        assert_eq!(
            catalog.print(substr, Reading::Signature),
            "substr(text,integer)"
        );
        assert_eq!(catalog.print(now, Reading::Signature), "now()");
        assert_eq!(catalog.print(0, Reading::Name), "-");
    }
}
