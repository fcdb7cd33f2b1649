//! Constants as PostgreSQL's parser types them and `get_const_expr` prints them back.

use super::exprs::{Kind, Node};
use super::types::Ty;

/// A number as the parser reads it: an integer constant is `integer` when it fits, `bigint`
/// when that fits, else `numeric`; one with a fraction is `numeric`. `negative` is a minus
/// the parser folds into the constant.
pub(super) fn number(digits: &str, negative: bool) -> Option<Node> {
    if !digits.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return None;
    }
    let sign = if negative { "-" } else { "" };
    let value = format!("{sign}{digits}");
    if !digits.contains('.') {
        if let Ok(n) = value.parse::<i32>() {
            return constant(&n.to_string(), Ty::Int4);
        }
        if let Ok(n) = value.parse::<i64>() {
            return constant(&n.to_string(), Ty::Int8);
        }
    }
    constant(&canonical_decimal(&value)?, Ty::Numeric)
}

/// A decimal as `numeric_out` prints it: no leading zeros, a zero before a bare fraction.
fn canonical_decimal(value: &str) -> Option<String> {
    let (sign, digits) = match value.strip_prefix('-') {
        Some(rest) => ("-", rest),
        None => ("", value),
    };
    let (whole, fraction) = match digits.split_once('.') {
        Some((w, f)) => (w, Some(f)),
        None => (digits, None),
    };
    if whole.is_empty() && fraction.is_none_or(str::is_empty) {
        return None;
    }
    let whole = whole.trim_start_matches('0');
    let whole = if whole.is_empty() { "0" } else { whole };
    Some(match fraction {
        Some(f) if !f.is_empty() => format!("{sign}{whole}.{f}"),
        _ => format!("{sign}{whole}"),
    })
}

/// A constant of type `ty` holding `value` (its output text), as `get_const_expr` prints it:
/// a non-negative integer and a decimal with a point bare, booleans as keywords, anything
/// else quoted and labelled with its type.
fn constant(value: &str, ty: Ty) -> Option<Node> {
    let quoted = || format!("'{}'", value.replace('\'', "''"));
    let text = match ty {
        Ty::Int4 if !value.starts_with('-') => value.to_owned(),
        Ty::Numeric if value.starts_with(|c: char| c.is_ascii_digit()) && value.contains('.') => {
            value.to_owned()
        }
        Ty::Bool => value.to_owned(),
        Ty::Other => return None,
        _ => format!("{}::{}", quoted(), ty.name()?),
    };
    Some(Node::new(text, ty, Kind::Constant))
}

/// A quoted literal read as `ty`, printed in the output form of that type; `None` when the
/// printer cannot be sure of that form.
pub(super) fn literal(text: &str, ty: Ty) -> Option<Node> {
    let trimmed = text.trim();
    let value = match ty {
        Ty::Int2 => trimmed.parse::<i16>().ok()?.to_string(),
        Ty::Int4 => trimmed.parse::<i32>().ok()?.to_string(),
        Ty::Int8 => trimmed.parse::<i64>().ok()?.to_string(),
        Ty::Numeric => {
            let plain = trimmed.trim_start_matches('-');
            if plain.is_empty() || !plain.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
                return None;
            }
            canonical_decimal(trimmed)?
        }
        Ty::Float8 => {
            let v: f64 = trimmed.parse().ok()?;
            let shown = v.to_string();
            if !v.is_finite() || v.abs() >= 1e15 || shown.contains('e') {
                return None;
            }
            shown
        }
        Ty::Bool => match trimmed.to_ascii_lowercase().as_str() {
            "t" | "true" => "true".to_owned(),
            "f" | "false" => "false".to_owned(),
            _ => return None,
        },
        Ty::Date => {
            let canonical = trimmed.len() == 10
                && chrono::NaiveDate::parse_from_str(trimmed, "%Y-%m-%d").is_ok();
            if !canonical {
                return None;
            }
            trimmed.to_owned()
        }
        Ty::Text | Ty::Varchar | Ty::Bpchar => text.to_owned(),
        Ty::Other => return None,
    };
    constant(&value, ty)
}
