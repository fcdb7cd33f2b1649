//! `json_agg`/`jsonb_agg` (the values of a group as an array) and
//! `json_object_agg`/`jsonb_object_agg` (key/value pairs as an object), in the order of
//! their `ORDER BY` when they have one.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, StringArray, UInt64Array};
use datafusion::arrow::compute::{SortColumn, SortOptions, lexsort_to_indices};
use datafusion::arrow::datatypes::{DataType, Field, FieldRef};
use datafusion::error::Result;
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, Signature, Volatility,
};
use datafusion::prelude::SessionContext;
use datafusion::scalar::ScalarValue;

use super::build::to_node;
use super::value::{self, Node, Value};
use super::{Kind, invalid_parameter};

pub fn register(ctx: &SessionContext) {
    for (name, kind, object) in [
        ("json_agg", Kind::Json, false),
        ("jsonb_agg", Kind::Jsonb, false),
        ("json_object_agg", Kind::Json, true),
        ("jsonb_object_agg", Kind::Jsonb, true),
    ] {
        ctx.register_udaf(AggregateUDF::new_from_impl(JsonAgg {
            name,
            kind,
            object,
            signature: Signature::any(if object { 2 } else { 1 }, Volatility::Immutable),
        }));
    }
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct JsonAgg {
    name: &'static str,
    kind: Kind,
    /// Pairs into an object rather than values into an array.
    object: bool,
    signature: Signature,
}

impl AggregateUDFImpl for JsonAgg {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn return_field(&self, _arg_fields: &[FieldRef]) -> Result<FieldRef> {
        Ok(Arc::new(self.kind.field(self.name)))
    }

    // No rows give NULL, as in PostgreSQL.
    fn is_nullable(&self) -> bool {
        true
    }

    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        let order = args
            .order_bys
            .iter()
            .map(|key| Ok((key.expr.data_type(args.schema)?, key.options)))
            .collect::<Result<Vec<_>>>()?;
        Ok(Box::new(JsonAccumulator {
            kind: self.kind,
            object: self.object,
            fields: args.expr_fields.to_vec(),
            order,
            items: Vec::new(),
            keys: Vec::new(),
        }))
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        let list = |name: String, item: DataType| {
            Arc::new(Field::new(
                name,
                DataType::List(Arc::new(Field::new("item", item, true))),
                true,
            ))
        };
        let mut fields = vec![list(format!("{}_items", args.name), DataType::Utf8)];
        for (i, key) in args.ordering_fields.iter().enumerate() {
            fields.push(list(
                format!("{}_key{i}", args.name),
                key.data_type().clone(),
            ));
        }
        Ok(fields)
    }
}

/// The group's values so far (an object's as `[key, value]` pairs) with the ORDER BY keys of
/// each; the partial state merged between partitions holds them as `jsonb` text and key lists.
#[derive(Debug)]
struct JsonAccumulator {
    kind: Kind,
    object: bool,
    fields: Vec<FieldRef>,
    /// The type and direction of each ORDER BY key.
    order: Vec<(DataType, SortOptions)>,
    items: Vec<Node>,
    /// The ORDER BY keys of each item, in `items`' order.
    keys: Vec<Vec<ScalarValue>>,
}

impl JsonAccumulator {
    fn arguments(&self) -> usize {
        if self.object { 2 } else { 1 }
    }

    /// The items in ORDER BY order; ties keep the order they arrived in.
    fn ordered_items(&self) -> Result<Vec<Node>> {
        if self.order.is_empty() {
            return Ok(self.items.clone());
        }
        let mut columns = Vec::with_capacity(self.order.len() + 1);
        for (i, (_, options)) in self.order.iter().enumerate() {
            let values = self.keys.iter().map(|keys| keys[i].clone());
            columns.push(SortColumn {
                values: ScalarValue::iter_to_array(values)?,
                options: Some(*options),
            });
        }
        columns.push(SortColumn {
            values: Arc::new(UInt64Array::from_iter_values(0..self.items.len() as u64)),
            options: None,
        });
        let order = lexsort_to_indices(&columns, None)?;
        Ok(order
            .values()
            .iter()
            .map(|&i| self.items[i as usize].clone())
            .collect())
    }
}

impl Accumulator for JsonAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        let key_columns = &values[self.arguments()..];
        for row in 0..values[0].len() {
            self.keys.push(
                key_columns
                    .iter()
                    .map(|column| ScalarValue::try_from_array(column, row))
                    .collect::<Result<_>>()?,
            );
            let item = to_node(&values[0], &self.fields[0], row)?;
            if self.object {
                let key = match item.value {
                    Value::String(key) => key,
                    Value::Null => {
                        return Err(invalid_parameter("field name must not be null".into()));
                    }
                    _ => value::print_jsonb(&item),
                };
                let value = to_node(&values[1], &self.fields[1], row)?;
                self.items.push(pair(key, value));
            } else {
                self.items.push(item);
            }
        }
        Ok(())
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        if self.items.is_empty() {
            return Ok(ScalarValue::Utf8(None));
        }
        let items = self.ordered_items()?;
        let built = if self.object {
            Value::Object(
                items
                    .iter()
                    .filter_map(|p| match &p.value {
                        Value::Array(kv) if kv.len() == 2 => match &kv[0].value {
                            Value::String(k) => Some((k.clone(), kv[1].clone())),
                            _ => None,
                        },
                        _ => None,
                    })
                    .collect(),
            )
        } else {
            Value::Array(items)
        };
        let mut printed = self.kind.print_built(Node::built(built))?;
        // PostgreSQL's json_object_agg pads its braces (`{ "a" : 1 }`), where
        // json_build_object does not; jsonb's layout is its own.
        if self.object
            && self.kind == Kind::Json
            && let Some(inner) = printed.strip_prefix('{').and_then(|p| p.strip_suffix('}'))
        {
            printed = format!("{{ {inner} }}");
        }
        Ok(ScalarValue::Utf8(Some(printed)))
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self)
            + self.items.len()
                * (std::mem::size_of::<Node>()
                    + self.order.len() * std::mem::size_of::<ScalarValue>())
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        let texts: StringArray = self
            .items
            .iter()
            .map(|n| Some(value::print_jsonb(n)))
            .collect();
        let mut state = vec![ScalarValue::List(Arc::new(
            datafusion::common::utils::SingleRowListArrayBuilder::new(Arc::new(texts))
                .build_list_array(),
        ))];
        for (i, (data_type, _)) in self.order.iter().enumerate() {
            let keys: Vec<ScalarValue> = self.keys.iter().map(|keys| keys[i].clone()).collect();
            state.push(ScalarValue::List(ScalarValue::new_list_nullable(
                &keys, data_type,
            )));
        }
        Ok(state)
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let lists = states[0].as_list::<i32>();
        let key_lists: Vec<_> = states[1..].iter().map(|s| s.as_list::<i32>()).collect();
        for row in 0..lists.len() {
            if lists.is_null(row) {
                continue;
            }
            let texts = lists.value(row);
            let key_values: Vec<ArrayRef> = key_lists.iter().map(|l| l.value(row)).collect();
            for (at, text) in texts.as_string::<i32>().iter().enumerate() {
                let Some(text) = text else { continue };
                self.items.push(Kind::Jsonb.read(text)?);
                self.keys.push(
                    key_values
                        .iter()
                        .map(|column| ScalarValue::try_from_array(column, at))
                        .collect::<Result<_>>()?,
                );
            }
        }
        Ok(())
    }
}

fn pair(key: String, value: Node) -> Node {
    Node::built(Value::Array(vec![Node::built(Value::String(key)), value]))
}
