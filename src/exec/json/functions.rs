//! PostgreSQL's `json`/`jsonb` functions and the functions behind the operators, over JSON
//! text. A result of type `json` or `jsonb` is text whose field carries the type (so the
//! client is told 114 or 3802); an argument's field says which of the two it is.

use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BooleanBuilder, Int32Builder, ListBuilder, StringBuilder,
};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, FieldRef};
use datafusion::error::Result;
use datafusion::logical_expr::{
    ColumnarValue, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature,
    TypeSignature, Volatility,
};
use datafusion::scalar::ScalarValue;

use super::value::{self, Node, Value};
use super::{Kind, invalid_parameter};

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
    args: Vec<ArrayRef>,
    fields: Vec<FieldRef>,
    rows: usize,
}

impl Call {
    fn kind(&self, arg: usize) -> Kind {
        Kind::of(&self.fields[arg])
    }

    /// Argument `arg` at `row` as a document, or None when NULL.
    fn doc(&self, arg: usize, row: usize) -> Result<Option<(Node, &str)>> {
        let texts = self.args[arg].as_string::<i32>();
        if texts.is_null(row) {
            return Ok(None);
        }
        let text = texts.value(row);
        Ok(Some((self.kind(arg).read(text)?, text)))
    }

    fn text(&self, arg: usize, row: usize) -> Option<&str> {
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
        let out = (self.body)(&Call {
            args: arrays,
            fields: args.arg_fields,
            rows,
        })?;
        let out = match (&self.returns, out.data_type()) {
            (Returns::ListLikeFirst, _) => cast(
                &out,
                &DataType::List(args.return_field.data_type().list_item()),
            )?,
            _ => out,
        };
        Ok(if scalar {
            ColumnarValue::Scalar(ScalarValue::try_from_array(&out, 0)?)
        } else {
            ColumnarValue::Array(out)
        })
    }
}

trait ListItem {
    fn list_item(&self) -> FieldRef;
}

impl ListItem for DataType {
    fn list_item(&self) -> FieldRef {
        match self {
            DataType::List(item) => item.clone(),
            _ => Arc::new(Field::new("item", DataType::Utf8, true)),
        }
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

/// (json, key or index): `->`, `->>` and their functions.
fn field_signature() -> Signature {
    Signature::one_of(
        vec![
            TypeSignature::Exact(vec![DataType::Utf8, DataType::Utf8]),
            TypeSignature::Exact(vec![DataType::Utf8, DataType::Int64]),
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

fn read_each(call: &Call, kind: Kind) -> Result<ArrayRef> {
    let mut out = StringBuilder::new();
    for row in 0..call.rows {
        match call.text(0, row) {
            None => out.append_null(),
            Some(text) => {
                let node = kind.read(text)?;
                match kind {
                    Kind::Json => out.append_value(text),
                    Kind::Jsonb => out.append_value(value::print_jsonb(&node)),
                }
            }
        }
    }
    Ok(Arc::new(out.finish()))
}

/// `->`/`->>`: a member by key or an element by index.
fn get(call: &Call, as_text: bool) -> Result<ArrayRef> {
    let kind = call.kind(0);
    let mut out = StringBuilder::new();
    for row in 0..call.rows {
        let found = match call.doc(0, row)? {
            None => None,
            Some((doc, source)) => {
                let part = match call.args[1].data_type() {
                    DataType::Int64 => {
                        let indexes =
                            call.args[1].as_primitive::<datafusion::arrow::datatypes::Int64Type>();
                        indexes
                            .is_valid(row)
                            .then(|| value::element(&doc, indexes.value(row)))
                            .flatten()
                    }
                    _ => call.text(1, row).and_then(|key| value::field(&doc, key)),
                };
                part.and_then(|part| {
                    if as_text {
                        value::as_text(part, |n| kind.print(n, source))
                    } else {
                        Some(kind.print(part, source))
                    }
                })
            }
        };
        out.append_option(found);
    }
    Ok(Arc::new(out.finish()))
}

/// Where a path's steps are.
enum Steps {
    /// One `text[]` argument (`#>`, `#>>`).
    Array,
    /// The arguments after the document (`json_extract_path(doc, VARIADIC steps)`).
    Arguments,
}

/// `#>`/`#>>` and `json_extract_path[_text]`: the value at a path.
fn path(call: &Call, as_text: bool, steps_in: Steps) -> Result<ArrayRef> {
    let kind = call.kind(0);
    let mut out = StringBuilder::new();
    for row in 0..call.rows {
        let Some((doc, source)) = call.doc(0, row)? else {
            out.append_null();
            continue;
        };
        let steps = if let Steps::Array = steps_in {
            path_steps(&call.args[1], row)?
        } else {
            Some(
                call.args[1..]
                    .iter()
                    .map(|arg| {
                        let arg = cast(arg, &DataType::Utf8)?;
                        let texts = arg.as_string::<i32>();
                        Ok(texts.is_valid(row).then(|| texts.value(row).to_owned()))
                    })
                    .collect::<Result<Vec<_>>>()?,
            )
        };
        let found = steps
            .and_then(|steps| value::at_path(&doc, &steps))
            .and_then(|part| {
                if as_text {
                    value::as_text(part, |n| kind.print(n, source))
                } else {
                    Some(kind.print(part, source))
                }
            });
        out.append_option(found);
    }
    Ok(Arc::new(out.finish()))
}

/// A `text[]` argument at `row`: a list, or an array literal (`'{a,b}'`) as text.
fn path_steps(array: &ArrayRef, row: usize) -> Result<Option<Vec<Option<String>>>> {
    if array.is_null(row) {
        return Ok(None);
    }
    match array.data_type() {
        DataType::List(_) => {
            let items = array.as_list::<i32>().value(row);
            let items = cast(&items, &DataType::Utf8)?;
            let texts = items.as_string::<i32>();
            Ok(Some(texts.iter().map(|t| t.map(str::to_owned)).collect()))
        }
        _ => {
            let text = cast(array, &DataType::Utf8)?;
            let literal = text.as_string::<i32>().value(row).to_owned();
            parse_text_array(&literal).map(Some)
        }
    }
}

/// A PostgreSQL array literal of text (`{a,"b c",NULL}`).
pub(super) fn parse_text_array(literal: &str) -> Result<Vec<Option<String>>> {
    let malformed = || invalid_parameter(format!("malformed array literal: \"{literal}\""));
    let inner = literal
        .trim()
        .strip_prefix('{')
        .and_then(|s| s.strip_suffix('}'))
        .ok_or_else(malformed)?;
    let mut items = Vec::new();
    if inner.trim().is_empty() {
        return Ok(items);
    }
    let mut chars = inner.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let mut item = String::new();
        let quoted = chars.peek() == Some(&'"');
        if quoted {
            chars.next();
            loop {
                match chars.next() {
                    Some('"') => break,
                    Some('\\') => item.push(chars.next().ok_or_else(malformed)?),
                    Some(c) => item.push(c),
                    None => return Err(malformed()),
                }
            }
        }
        while let Some(&c) = chars.peek() {
            if c == ',' {
                break;
            }
            chars.next();
            if quoted {
                if !c.is_whitespace() {
                    return Err(malformed());
                }
            } else if c == '\\' {
                item.push(chars.next().ok_or_else(malformed)?);
            } else {
                item.push(c);
            }
        }
        let item = if quoted {
            item
        } else {
            item.trim_end().to_owned()
        };
        items.push((quoted || !item.eq_ignore_ascii_case("null")).then_some(item));
        if chars.next().is_none() {
            return Ok(items);
        }
    }
}

fn contains(call: &Call, reversed: bool) -> Result<ArrayRef> {
    let mut out = BooleanBuilder::new();
    for row in 0..call.rows {
        match (call.doc(0, row)?, call.doc(1, row)?) {
            (Some((a, _)), Some((b, _))) => out.append_value(if reversed {
                value::contains(&b, &a)
            } else {
                value::contains(&a, &b)
            }),
            _ => out.append_null(),
        }
    }
    Ok(Arc::new(out.finish()))
}

enum Existence {
    Key,
    Any,
    All,
}

fn exists(call: &Call, test: Existence) -> Result<ArrayRef> {
    let mut out = BooleanBuilder::new();
    for row in 0..call.rows {
        let Some((doc, _)) = call.doc(0, row)? else {
            out.append_null();
            continue;
        };
        let answer = match test {
            Existence::Key => call.text(1, row).map(|key| value::exists(&doc, key)),
            Existence::Any | Existence::All => path_steps(&call.args[1], row)?.map(|keys| {
                let mut present = keys.iter().flatten().map(|key| value::exists(&doc, key));
                match test {
                    Existence::Any => present.any(|p| p),
                    _ => present.all(|p| p),
                }
            }),
        };
        out.append_option(answer);
    }
    Ok(Arc::new(out.finish()))
}

fn finish_each(
    call: &Call,
    kind: Kind,
    build: impl Fn(usize) -> Result<Option<Node>>,
) -> Result<ArrayRef> {
    let mut out = StringBuilder::new();
    for row in 0..call.rows {
        match build(row)? {
            Some(node) => out.append_value(kind.print_built(node)),
            None => out.append_null(),
        }
    }
    Ok(Arc::new(out.finish()))
}

fn build_object(call: &Call, kind: Kind) -> Result<ArrayRef> {
    if !call.args.len().is_multiple_of(2) {
        return Err(invalid_parameter(
            "argument list must have even number of elements".into(),
        ));
    }
    finish_each(call, kind, |row| {
        let mut members = Vec::with_capacity(call.args.len() / 2);
        for pair in (0..call.args.len()).step_by(2) {
            let key = &call.args[pair];
            if key.is_null(row) {
                return Err(invalid_parameter(
                    "null value not allowed for object key".into(),
                ));
            }
            let key = datafusion::arrow::util::display::array_value_to_string(key, row)?;
            members.push((
                key,
                to_node(&call.args[pair + 1], &call.fields[pair + 1], row)?,
            ));
        }
        Ok(Some(Node::built(Value::Object(members))))
    })
}

fn build_array(call: &Call, kind: Kind) -> Result<ArrayRef> {
    finish_each(call, kind, |row| {
        let items = (0..call.args.len())
            .map(|arg| to_node(&call.args[arg], &call.fields[arg], row))
            .collect::<Result<Vec<_>>>()?;
        Ok(Some(Node::built(Value::Array(items))))
    })
}

fn to_json(call: &Call, kind: Kind) -> Result<ArrayRef> {
    finish_each(call, kind, |row| {
        if call.args[0].is_null(row) {
            return Ok(None);
        }
        to_node(&call.args[0], &call.fields[0], row).map(Some)
    })
}

/// A SQL value as JSON, as `to_jsonb` converts it: numbers and booleans as themselves,
/// `json`/`jsonb` as the document, arrays and rows as arrays and objects, anything else as
/// its text.
pub(super) fn to_node(array: &ArrayRef, field: &Field, row: usize) -> Result<Node> {
    use datafusion::arrow::util::display::array_value_to_string;
    if array.data_type() == &DataType::Null || array.is_null(row) {
        return Ok(Node::built(Value::Null));
    }
    let value = match array.data_type() {
        DataType::Boolean => Value::Bool(array.as_boolean().value(row)),
        DataType::Int8
        | DataType::Int16
        | DataType::Int32
        | DataType::Int64
        | DataType::UInt8
        | DataType::UInt16
        | DataType::UInt32
        | DataType::UInt64
        | DataType::Decimal128(..)
        | DataType::Decimal256(..) => Value::Number(array_value_to_string(array, row)?),
        DataType::Float32 | DataType::Float64 => {
            let number = cast(&array.slice(row, 1), &DataType::Float64)?;
            let number = number
                .as_primitive::<datafusion::arrow::datatypes::Float64Type>()
                .value(0);
            if number.is_finite() {
                Value::Number(number.to_string())
            } else if number.is_nan() {
                Value::String("NaN".into())
            } else if number > 0.0 {
                Value::String("Infinity".into())
            } else {
                Value::String("-Infinity".into())
            }
        }
        DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8 => {
            let text = array_value_to_string(array, row)?;
            match Kind::tagged(field) {
                Some(kind) => return kind.read(&text).map(value::canonical),
                None => Value::String(text),
            }
        }
        DataType::List(item) => {
            let items = array.as_list::<i32>().value(row);
            Value::Array(
                (0..items.len())
                    .map(|i| to_node(&items, item, i))
                    .collect::<Result<_>>()?,
            )
        }
        DataType::Struct(fields) => {
            let parts = array.as_struct();
            Value::Object(
                fields
                    .iter()
                    .zip(parts.columns())
                    .map(|(f, column)| Ok((f.name().clone(), to_node(column, f, row)?)))
                    .collect::<Result<_>>()?,
            )
        }
        _ => Value::String(array_value_to_string(array, row)?),
    };
    Ok(Node::built(value))
}

fn typeof_each(call: &Call) -> Result<ArrayRef> {
    let mut out = StringBuilder::new();
    for row in 0..call.rows {
        out.append_option(call.doc(0, row)?.map(|(doc, _)| doc.type_name()));
    }
    Ok(Arc::new(out.finish()))
}

fn array_length(call: &Call) -> Result<ArrayRef> {
    let mut out = Int32Builder::new();
    for row in 0..call.rows {
        match call.doc(0, row)? {
            None => out.append_null(),
            Some((
                Node {
                    value: Value::Array(items),
                    ..
                },
                _,
            )) => out.append_value(items.len() as i32),
            Some((doc, _)) => {
                return Err(wrong_shape(
                    "cannot get array length of a",
                    &doc,
                    ("non-array", "scalar"),
                ));
            }
        }
    }
    Ok(Arc::new(out.finish()))
}

/// The error for a document of the wrong shape: `{action} {container}` when it is a container
/// (of the kind the function does not take), `{action} {scalar}` otherwise.
fn wrong_shape(
    action: &str,
    doc: &Node,
    (container, scalar): (&str, &str),
) -> datafusion::error::DataFusionError {
    let is_container = matches!(doc.value, Value::Array(_) | Value::Object(_));
    invalid_parameter(format!(
        "{action} {}",
        if is_container { container } else { scalar }
    ))
}

fn strip_nulls(call: &Call) -> Result<ArrayRef> {
    let kind = call.kind(0);
    finish_each(call, kind, |row| {
        Ok(call.doc(0, row)?.map(|(doc, _)| value::strip_nulls(doc)))
    })
}

fn pretty(call: &Call) -> Result<ArrayRef> {
    let mut out = StringBuilder::new();
    for row in 0..call.rows {
        out.append_option(
            call.doc(0, row)?
                .map(|(doc, _)| value::print_pretty(&value::canonical(doc))),
        );
    }
    Ok(Arc::new(out.finish()))
}

fn set(call: &Call) -> Result<ArrayRef> {
    let target = cast(&call.args[0], &DataType::Utf8)?;
    let new = cast(&call.args[2], &DataType::Utf8)?;
    let create = match call.args.get(3) {
        Some(flag) => Some(cast(flag, &DataType::Boolean)?),
        None => None,
    };
    let mut out = StringBuilder::new();
    for row in 0..call.rows {
        let (Some(doc), Some(steps), Some(new)) = (
            target
                .as_string::<i32>()
                .is_valid(row)
                .then(|| target.as_string::<i32>().value(row)),
            path_steps(&call.args[1], row)?,
            new.as_string::<i32>()
                .is_valid(row)
                .then(|| new.as_string::<i32>().value(row)),
        ) else {
            out.append_null();
            continue;
        };
        let mut doc = Kind::Jsonb.read(doc)?;
        let new = Kind::Jsonb.read(new)?;
        let Some(steps) = steps.into_iter().collect::<Option<Vec<String>>>() else {
            return Err(invalid_parameter(
                "path element at position 1 is null".into(),
            ));
        };
        let create_missing = create
            .as_ref()
            .is_none_or(|c| c.as_boolean().is_valid(row) && c.as_boolean().value(row));
        value::set_path(&mut doc, &steps, new, create_missing);
        out.append_value(value::print_jsonb(&doc));
    }
    Ok(Arc::new(out.finish()))
}

fn elements(call: &Call, as_text: bool) -> Result<ArrayRef> {
    let kind = call.kind(0);
    let mut out = ListBuilder::new(StringBuilder::new());
    for row in 0..call.rows {
        match call.doc(0, row)? {
            None => out.append_null(),
            Some((
                Node {
                    value: Value::Array(items),
                    ..
                },
                source,
            )) => {
                for item in &items {
                    let printed = if as_text {
                        value::as_text(item, |n| kind.print(n, source))
                    } else {
                        Some(kind.print(item, source))
                    };
                    out.values().append_option(printed);
                }
                out.append(true);
            }
            Some((doc, _)) => {
                return Err(wrong_shape(
                    "cannot extract elements from",
                    &doc,
                    ("an object", "a scalar"),
                ));
            }
        }
    }
    Ok(Arc::new(out.finish()))
}

fn object_keys(call: &Call) -> Result<ArrayRef> {
    let mut out = ListBuilder::new(StringBuilder::new());
    for row in 0..call.rows {
        match call.doc(0, row)? {
            None => out.append_null(),
            Some((
                Node {
                    value: Value::Object(members),
                    ..
                },
                _,
            )) => {
                let mut seen: Vec<&str> = Vec::new();
                for (key, _) in &members {
                    if !seen.contains(&key.as_str()) {
                        seen.push(key);
                        out.values().append_value(key);
                    }
                }
                out.append(true);
            }
            Some((doc, _)) => {
                return Err(wrong_shape(
                    "cannot call jsonb_object_keys on",
                    &doc,
                    ("an array", "a scalar"),
                ));
            }
        }
    }
    Ok(Arc::new(out.finish()))
}
