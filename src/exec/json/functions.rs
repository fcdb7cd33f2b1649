//! PostgreSQL's `json`/`jsonb` functions and the functions behind the operators, as
//! DataFusion functions over JSON text: their signatures, result types and names. What each
//! computes is in `access` (reading documents) and `build` (making them). A result of type `json` or `jsonb` is text whose field carries the type (so the
//! client is told 114 or 3802); an argument's field says which of the two it is.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, ListArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, FieldRef};
use datafusion::error::Result;
use datafusion::logical_expr::{
    ColumnarValue, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature,
    TypeSignature, Volatility,
};
use datafusion::scalar::ScalarValue;

use super::Kind;
use super::access::{
    Existence, MemberPart, Steps, array_length, contains, each_member, elements, exists, get,
    object_keys, path, typeof_each,
};
use super::build::{
    build_array, build_object, object_from_arrays, pretty, read_each, set, strip_nulls, to_json,
};
use super::edit::{Removal, concat, delete, delete_path, insert};
use super::records::record_fields;
use super::value::Node;
use crate::sql::json_each::{EACH_KEYS, EACH_TEXTS, EACH_VALUES};
use crate::sql::json_records::RECORD_FIELDS;

/// What a function returns.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Returns {
    Json(Kind),
    /// The kind of its first argument (`->` on `json` gives `json`).
    LikeFirst,
    Plain(DataType),
    /// A list of `json`/`jsonb` values of its first argument's kind (array elements).
    ListLikeFirst,
    /// A list of text (keys, elements as text).
    TextList,
}

/// One evaluation: the arguments as arrays (strings as `Utf8`) with their fields.
pub(super) struct Call {
    pub(super) args: Vec<ArrayRef>,
    pub(super) fields: Vec<FieldRef>,
    pub(super) rows: usize,
}

impl Call {
    pub(super) fn kind(&self, arg: usize) -> Kind {
        Kind::of(&self.fields[arg])
    }

    /// Argument `arg` at `row` as a document, or None when NULL.
    pub(super) fn doc(&self, arg: usize, row: usize) -> Result<Option<(Node, &str)>> {
        let texts = self.args[arg].as_string::<i32>();
        if texts.is_null(row) {
            return Ok(None);
        }
        let text = texts.value(row);
        Ok(Some((self.kind(arg).read(text)?, text)))
    }

    pub(super) fn text(&self, arg: usize, row: usize) -> Option<&str> {
        let texts = self.args[arg].as_string::<i32>();
        texts.is_valid(row).then(|| texts.value(row))
    }
}

type Body = fn(&Call) -> Result<ArrayRef>;

struct JsonFunction {
    name: &'static str,
    signature: Signature,
    returns: Returns,
    body: Body,
}

impl std::fmt::Debug for JsonFunction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name)
    }
}

impl PartialEq for JsonFunction {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}

impl Eq for JsonFunction {}

impl std::hash::Hash for JsonFunction {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.name.hash(state)
    }
}

impl ScalarUDFImpl for JsonFunction {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(match &self.returns {
            Returns::Plain(data_type) => data_type.clone(),
            Returns::ListLikeFirst | Returns::TextList => {
                DataType::List(Arc::new(Field::new("item", DataType::Utf8, true)))
            }
            _ => DataType::Utf8,
        })
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        let first = args
            .arg_fields
            .first()
            .map(|f| Kind::of(f))
            .unwrap_or(Kind::Jsonb);
        let field = match &self.returns {
            Returns::Json(kind) => kind.field(self.name),
            Returns::LikeFirst => first.field(self.name),
            Returns::Plain(data_type) => Field::new(self.name, data_type.clone(), true),
            Returns::ListLikeFirst => Field::new(
                self.name,
                DataType::List(Arc::new(first.field("item"))),
                true,
            ),
            Returns::TextList => Field::new(
                self.name,
                DataType::List(Arc::new(Field::new("item", DataType::Utf8, true))),
                true,
            ),
        };
        Ok(Arc::new(field))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let scalar = args
            .args
            .iter()
            .all(|a| matches!(a, ColumnarValue::Scalar(_)));
        let rows = if scalar { 1 } else { args.number_rows };
        let arrays = args
            .args
            .iter()
            .map(|a| {
                let array = a.to_array(rows)?;
                Ok(match array.data_type() {
                    DataType::Utf8View | DataType::LargeUtf8 => cast(&array, &DataType::Utf8)?,
                    _ => array,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let first_kind = args.arg_fields.first().map_or(Kind::Jsonb, |f| Kind::of(f));
        let out = (self.body)(&Call {
            args: arrays,
            fields: args.arg_fields,
            rows,
        })?;
        let out = match (&self.returns, out.data_type()) {
            // The item field carries the element's type (json or jsonb) in its metadata,
            // which a cast between list types would not set.
            (Returns::ListLikeFirst, DataType::List(_)) => {
                let (_, offsets, values, nulls) = out.as_list::<i32>().clone().into_parts();
                Arc::new(ListArray::new(
                    Arc::new(first_kind.field("item")),
                    offsets,
                    values,
                    nulls,
                ))
            }
            _ => out,
        };
        Ok(if scalar {
            // `try_from_array` rebuilds a list's item field, dropping its json/jsonb metadata.
            ColumnarValue::Scalar(match out.data_type() {
                DataType::List(_) => ScalarValue::List(Arc::new(out.as_list::<i32>().slice(0, 1))),
                _ => ScalarValue::try_from_array(&out, 0)?,
            })
        } else {
            ColumnarValue::Array(out)
        })
    }
}

fn same(function: ScalarUDF, aliases: &[&'static str]) -> ScalarUDF {
    function.with_aliases(aliases.iter().copied())
}

fn udf(name: &'static str, signature: Signature, returns: Returns, body: Body) -> ScalarUDF {
    ScalarUDF::new_from_impl(JsonFunction {
        name,
        signature,
        returns,
        body,
    })
}

fn texts(n: usize) -> Signature {
    Signature::exact(vec![DataType::Utf8; n], Volatility::Immutable)
}

/// (json, key or index): `->`, `->>` and their functions. The index comes first: an integer
/// of another width is then widened to it rather than read as a key's text.
fn field_signature() -> Signature {
    Signature::one_of(
        vec![
            TypeSignature::Exact(vec![DataType::Utf8, DataType::Int64]),
            TypeSignature::Exact(vec![DataType::Utf8, DataType::Utf8]),
        ],
        Volatility::Immutable,
    )
}

/// Internal names of the functions the operators plan to.
pub(super) const GET: &str = "kalamdb_json_get";
pub(super) const GET_TEXT: &str = "kalamdb_json_get_text";
pub(super) const PATH: &str = "kalamdb_json_path";
pub(super) const PATH_TEXT: &str = "kalamdb_json_path_text";
pub(super) const JSON_IN: &str = "kalamdb_json_in";
pub(super) const JSONB_IN: &str = "kalamdb_jsonb_in";
/// PostgreSQL's names for the functions behind `||`, `-` and `#-` on `jsonb`.
pub(super) const CONCAT: &str = "jsonb_concat";
pub(super) const DELETE: &str = "jsonb_delete";
pub(super) const DELETE_PATH: &str = "jsonb_delete_path";

/// Every function here.
pub(super) fn all() -> Vec<ScalarUDF> {
    let mut all = Vec::new();
    all.push(udf(JSON_IN, texts(1), Returns::Json(Kind::Json), |c| {
        read_each(c, Kind::Json)
    }));
    all.push(udf(JSONB_IN, texts(1), Returns::Json(Kind::Jsonb), |c| {
        read_each(c, Kind::Jsonb)
    }));
    all.push(same(
        udf(GET, field_signature(), Returns::LikeFirst, |c| {
            get(c, false)
        }),
        &[
            "json_object_field",
            "jsonb_object_field",
            "json_array_element",
            "jsonb_array_element",
        ],
    ));
    all.push(same(
        udf(
            GET_TEXT,
            field_signature(),
            Returns::Plain(DataType::Utf8),
            |c| get(c, true),
        ),
        &[
            "json_object_field_text",
            "jsonb_object_field_text",
            "json_array_element_text",
            "jsonb_array_element_text",
        ],
    ));
    let path_signature = || Signature::variadic_any(Volatility::Immutable);
    let any_two = || Signature::any(2, Volatility::Immutable);
    all.push(udf(PATH, any_two(), Returns::LikeFirst, |c| {
        path(c, false, Steps::Array)
    }));
    all.push(udf(
        PATH_TEXT,
        any_two(),
        Returns::Plain(DataType::Utf8),
        |c| path(c, true, Steps::Array),
    ));
    all.push(same(
        udf(
            "jsonb_extract_path",
            path_signature(),
            Returns::LikeFirst,
            |c| path(c, false, Steps::Arguments),
        ),
        &["json_extract_path"],
    ));
    all.push(same(
        udf(
            "jsonb_extract_path_text",
            path_signature(),
            Returns::Plain(DataType::Utf8),
            |c| path(c, true, Steps::Arguments),
        ),
        &["json_extract_path_text"],
    ));
    let boolean = || Returns::Plain(DataType::Boolean);
    all.push(udf("jsonb_contains", texts(2), boolean(), |c| {
        contains(c, false)
    }));
    all.push(udf("jsonb_contained", texts(2), boolean(), |c| {
        contains(c, true)
    }));
    all.push(udf("jsonb_exists", texts(2), boolean(), |c| {
        exists(c, Existence::Key)
    }));
    all.push(udf("jsonb_exists_any", any_two(), boolean(), |c| {
        exists(c, Existence::Any)
    }));
    all.push(udf("jsonb_exists_all", any_two(), boolean(), |c| {
        exists(c, Existence::All)
    }));
    let variadic = || Signature::variadic_any(Volatility::Stable);
    for (name, kind) in [
        ("json_build_object", Kind::Json),
        ("jsonb_build_object", Kind::Jsonb),
    ] {
        all.push(udf(
            name,
            variadic(),
            Returns::Json(kind),
            if kind == Kind::Json {
                |c| build_object(c, Kind::Json)
            } else {
                |c| build_object(c, Kind::Jsonb)
            },
        ));
    }
    let one_or_two = || {
        Signature::one_of(
            vec![TypeSignature::Any(1), TypeSignature::Any(2)],
            Volatility::Immutable,
        )
    };
    all.push(udf(
        "json_object",
        one_or_two(),
        Returns::Json(Kind::Json),
        |c| object_from_arrays(c, Kind::Json),
    ));
    all.push(udf(
        "jsonb_object",
        one_or_two(),
        Returns::Json(Kind::Jsonb),
        |c| object_from_arrays(c, Kind::Jsonb),
    ));
    all.push(udf(
        "json_build_array",
        variadic(),
        Returns::Json(Kind::Json),
        |c| build_array(c, Kind::Json),
    ));
    all.push(udf(
        "jsonb_build_array",
        variadic(),
        Returns::Json(Kind::Jsonb),
        |c| build_array(c, Kind::Jsonb),
    ));
    let any_one = || Signature::any(1, Volatility::Stable);
    all.push(udf("to_json", any_one(), Returns::Json(Kind::Json), |c| {
        to_json(c, Kind::Json)
    }));
    all.push(udf(
        "to_jsonb",
        any_one(),
        Returns::Json(Kind::Jsonb),
        |c| to_json(c, Kind::Jsonb),
    ));
    all.push(same(
        udf(
            "jsonb_typeof",
            texts(1),
            Returns::Plain(DataType::Utf8),
            typeof_each,
        ),
        &["json_typeof"],
    ));
    all.push(same(
        udf(
            "jsonb_array_length",
            texts(1),
            Returns::Plain(DataType::Int32),
            array_length,
        ),
        &["json_array_length"],
    ));
    all.push(same(
        udf(
            "jsonb_strip_nulls",
            texts(1),
            Returns::LikeFirst,
            strip_nulls,
        ),
        &["json_strip_nulls"],
    ));
    all.push(udf(
        "jsonb_pretty",
        texts(1),
        Returns::Plain(DataType::Utf8),
        pretty,
    ));
    all.push(udf(
        "jsonb_set",
        Signature::one_of(
            vec![TypeSignature::Any(3), TypeSignature::Any(4)],
            Volatility::Immutable,
        ),
        Returns::Json(Kind::Jsonb),
        set,
    ));
    all.push(udf(
        CONCAT,
        Signature::any(2, Volatility::Immutable),
        Returns::Json(Kind::Jsonb),
        concat,
    ));
    all.push(udf(
        DELETE,
        Signature::any(2, Volatility::Immutable),
        Returns::Json(Kind::Jsonb),
        |c| {
            let removal = match c.args[1].data_type() {
                t if t.is_integer() => Removal::Index,
                DataType::List(_) => Removal::Keys,
                _ => Removal::Key,
            };
            delete(c, removal)
        },
    ));
    all.push(udf(
        DELETE_PATH,
        Signature::any(2, Volatility::Immutable),
        Returns::Json(Kind::Jsonb),
        delete_path,
    ));
    all.push(udf(
        "jsonb_insert",
        Signature::one_of(
            vec![TypeSignature::Any(3), TypeSignature::Any(4)],
            Volatility::Immutable,
        ),
        Returns::Json(Kind::Jsonb),
        insert,
    ));
    all.push(same(
        udf(
            "jsonb_array_elements",
            texts(1),
            Returns::ListLikeFirst,
            |c| elements(c, false),
        ),
        &["json_array_elements"],
    ));
    all.push(same(
        udf(
            "jsonb_array_elements_text",
            texts(1),
            Returns::TextList,
            |c| elements(c, true),
        ),
        &["json_array_elements_text"],
    ));
    all.push(udf(EACH_KEYS, texts(2), Returns::TextList, |c| {
        each_member(c, MemberPart::Key)
    }));
    all.push(udf(EACH_VALUES, texts(2), Returns::ListLikeFirst, |c| {
        each_member(c, MemberPart::Value)
    }));
    all.push(udf(EACH_TEXTS, texts(2), Returns::TextList, |c| {
        each_member(c, MemberPart::Text)
    }));
    all.push(udf(
        RECORD_FIELDS,
        texts(4),
        Returns::TextList,
        record_fields,
    ));
    all.push(same(
        udf(
            "jsonb_object_keys",
            texts(1),
            Returns::TextList,
            object_keys,
        ),
        &["json_object_keys"],
    ));
    all
}
