//! `pg_aggregate` with `aggfnoid` as the OID of the aggregate's `pg_proc` row, as PostgreSQL
//! compares it. datafusion-pg-catalog ships that column as the text a `regproc` prints
//! (`pg_catalog.avg`), so the join tools make to list aggregates (`aggfnoid = pg_proc.oid`)
//! failed on casting the text to an integer.
//!
//! The text names the function but not which overload: the overloads of a name are matched
//! to its `pg_aggregate` rows by transition type where that is the argument type (`max(int4)`
//! keeps an int4), and otherwise in OID order, the order PostgreSQL's own catalog data lists
//! them in.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{Array, AsArray, Int32Array, RecordBatch};
use datafusion::arrow::datatypes::{DataType, Field, Int32Type, Schema, SchemaRef};
use datafusion::catalog::{Session, TableProvider};
use datafusion::datasource::TableType;
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::Expr;
use datafusion::physical_plan::ExecutionPlan;

use super::catalog_oids::scan_all;

/// datafusion-pg-catalog's `pg_aggregate`, with `aggfnoid` resolved against its `pg_proc`.
#[derive(Debug)]
pub struct AggregatesByFunctionOid {
    aggregates: Arc<dyn TableProvider>,
    functions: Arc<dyn TableProvider>,
    schema: SchemaRef,
}

impl AggregatesByFunctionOid {
    pub fn new(aggregates: Arc<dyn TableProvider>, functions: Arc<dyn TableProvider>) -> Self {
        let fields: Vec<Field> = aggregates
            .schema()
            .fields()
            .iter()
            .map(|field| match field.name().as_str() {
                "aggfnoid" => Field::new("aggfnoid", DataType::Int32, true),
                _ => field.as_ref().clone(),
            })
            .collect();
        AggregatesByFunctionOid {
            aggregates,
            functions,
            schema: Arc::new(Schema::new(fields)),
        }
    }
}

#[async_trait]
impl TableProvider for AggregatesByFunctionOid {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        self.aggregates.table_type()
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let mut overloads = AggregateOverloads::read(&scan_all(state, &self.functions).await?)?;
        let batches = scan_all(state, &self.aggregates)
            .await?
            .iter()
            .map(|batch| {
                let names = text_column(batch, "aggfnoid")?;
                let transition_types = batch
                    .column_by_name("aggtranstype")
                    .and_then(|c| c.as_primitive_opt::<Int32Type>());
                let oids: Int32Array = (0..batch.num_rows())
                    .map(|row| {
                        let name = names.value(row);
                        let name = name.strip_prefix("pg_catalog.").unwrap_or(name);
                        let transition = transition_types
                            .filter(|t| t.is_valid(row))
                            .map(|t| t.value(row));
                        overloads.take(name, transition)
                    })
                    .collect();
                let column = batch.schema().index_of("aggfnoid")?;
                let mut columns = batch.columns().to_vec();
                columns[column] = Arc::new(oids);
                Ok(RecordBatch::try_new(self.schema.clone(), columns)?)
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(MemorySourceConfig::try_new_exec(
            &[batches],
            self.schema.clone(),
            projection.cloned(),
        )?)
    }
}

/// One aggregate function of `pg_proc`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Overload {
    oid: i32,
    first_argument: Option<i32>,
}

/// The aggregate functions of `pg_proc` by name, each overload taken once.
#[derive(Default)]
struct AggregateOverloads {
    /// Per name, in OID order, `None` once taken.
    by_name: HashMap<String, Vec<Option<Overload>>>,
}

impl AggregateOverloads {
    fn read(functions: &[RecordBatch]) -> Result<Self> {
        let mut overloads = AggregateOverloads::default();
        for batch in functions {
            let oids = batch
                .column_by_name("oid")
                .and_then(|c| c.as_primitive_opt::<Int32Type>())
                .ok_or_else(|| missing("pg_proc.oid"))?;
            let names = text_column(batch, "proname")?;
            let kinds = text_column(batch, "prokind")?;
            let argument_types = text_column(batch, "proargtypes")?;
            for row in 0..batch.num_rows() {
                if kinds.is_null(row) || kinds.value(row) != "a" || oids.is_null(row) {
                    continue;
                }
                let first_argument = argument_types
                    .is_valid(row)
                    .then(|| argument_types.value(row).split_whitespace().next())
                    .flatten()
                    .and_then(|t| t.parse().ok());
                overloads.add(names.value(row), oids.value(row), first_argument);
            }
        }
        Ok(overloads)
    }

    fn add(&mut self, name: &str, oid: i32, first_argument: Option<i32>) {
        let overloads = self.by_name.entry(name.to_owned()).or_default();
        let overload = Overload {
            oid,
            first_argument,
        };
        let at = overloads.partition_point(|o| o.is_some_and(|o| o < overload));
        overloads.insert(at, Some(overload));
    }

    /// The OID of `name`'s overload for an aggregate row with `transition` type: the one whose
    /// argument has that type, or else the first not yet taken.
    fn take(&mut self, name: &str, transition: Option<i32>) -> Option<i32> {
        let overloads = self.by_name.get_mut(name)?;
        let same_type = overloads.iter().position(|o| {
            o.is_some_and(|o| o.first_argument.is_some() && o.first_argument == transition)
        });
        let position = same_type.or_else(|| overloads.iter().position(Option::is_some))?;
        overloads[position].take().map(|o| o.oid)
    }
}

fn text_column<'a>(
    batch: &'a RecordBatch,
    name: &str,
) -> Result<&'a datafusion::arrow::array::StringArray> {
    batch
        .column_by_name(name)
        .and_then(|c| c.as_string_opt::<i32>())
        .ok_or_else(|| missing(name))
}

fn missing(column: &str) -> DataFusionError {
    DataFusionError::Internal(format!("catalog column {column} is missing or not text"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn overloads(rows: &[(&str, i32, Option<i32>)]) -> AggregateOverloads {
        let mut overloads = AggregateOverloads::default();
        for (name, oid, argument) in rows {
            overloads.add(name, *oid, *argument);
        }
        overloads
    }

    #[test]
    fn overloads_go_to_the_row_whose_transition_type_is_their_argument_type_else_in_oid_order() {
        // max(anyarray) has the smallest OID but is listed after max(int8) and max(int4).
        let mut max = overloads(&[
            ("max", 2050, Some(2277)),
            ("max", 2115, Some(20)),
            ("max", 2116, Some(23)),
        ]);
        assert_eq!(max.take("max", Some(20)), Some(2115));
        assert_eq!(max.take("max", Some(23)), Some(2116));
        assert_eq!(max.take("max", Some(2277)), Some(2050));
        assert_eq!(max.take("max", Some(20)), None);
        // avg keeps an internal or array state, never its argument type.
        let mut avg = overloads(&[("avg", 2100, Some(20)), ("avg", 2101, Some(23))]);
        assert_eq!(avg.take("avg", Some(2281)), Some(2100));
        assert_eq!(avg.take("avg", Some(1016)), Some(2101));
        assert_eq!(avg.take("sum", Some(20)), None);
    }
}
