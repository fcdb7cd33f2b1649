//! `json_agg`/`jsonb_agg` (the values of a group as an array) and
//! `json_object_agg`/`jsonb_object_agg` (key/value pairs as an object).

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, StringArray};
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
        Ok(Box::new(JsonAccumulator {
            kind: self.kind,
            object: self.object,
            fields: args.expr_fields.to_vec(),
            items: Vec::new(),
        }))
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        Ok(vec![Arc::new(Field::new(
            format!("{}_items", args.name),
            DataType::List(Arc::new(Field::new("item", DataType::Utf8, true))),
            true,
        ))])
    }
}

/// The group's values so far, each as `jsonb` text (an object's as `[key, value]` pairs),
/// which is also the partial state merged between partitions.
#[derive(Debug)]
struct JsonAccumulator {
    kind: Kind,
    object: bool,
    fields: Vec<FieldRef>,
    items: Vec<Node>,
}

impl Accumulator for JsonAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        for row in 0..values[0].len() {
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
        let built = if self.object {
            Value::Object(
                self.items
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
            Value::Array(self.items.clone())
        };
        Ok(ScalarValue::Utf8(Some(
            self.kind.print_built(Node::built(built))?,
        )))
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self) + self.items.len() * std::mem::size_of::<Node>()
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        let texts: StringArray = self
            .items
            .iter()
            .map(|n| Some(value::print_jsonb(n)))
            .collect();
        Ok(vec![ScalarValue::List(Arc::new(
            datafusion::common::utils::SingleRowListArrayBuilder::new(Arc::new(texts))
                .build_list_array(),
        ))])
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let lists = states[0].as_list::<i32>();
        for row in 0..lists.len() {
            if lists.is_null(row) {
                continue;
            }
            let texts = lists.value(row);
            for text in texts.as_string::<i32>().iter().flatten() {
                self.items.push(Kind::Jsonb.read(text)?);
            }
        }
        Ok(())
    }
}

fn pair(key: String, value: Node) -> Node {
    Node::built(Value::Array(vec![Node::built(Value::String(key)), value]))
}
