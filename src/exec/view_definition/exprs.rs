//! A view's expressions as PostgreSQL prints them back: columns qualified by their relation,
//! the implicit casts its parser inserted spelled out, constants labelled with the type the
//! parser gave them, and parentheses where its pretty or plain form puts them. Anything
//! outside the forms here is `None`, and the caller keeps the stored text.

use datafusion::sql::sqlparser::ast::{
    self, BinaryOperator, CastKind, Expr, FunctionArg, FunctionArgExpr, FunctionArguments,
    UnaryOperator, Value,
};

use super::constants::{literal, number};
use super::scope::Scope;
use super::types::Ty;
use super::types::{aggregate_type, cast_target, common_numeric, implicit};
use crate::exec::format::quote_ident;

/// `pg_get_viewdef(oid)` wraps every operator in parentheses; the pretty form
/// (`pg_get_viewdef(oid, true)`) only where precedence needs them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Mode {
    Pretty,
    Plain,
}

/// The node PostgreSQL's parser makes of an expression, which decides its parentheses.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Kind {
    Column,
    Constant,
    /// A function or aggregate call.
    Call,
    /// COALESCE, ARRAY[...]: their own delimiters, never wrapped.
    Delimited,
    Binary(&'static str),
    Prefix,
    And,
    Or,
    Not,
    NullTest,
    ArrayComparison,
    /// A cast is as simple as what it casts.
    Cast(Box<Kind>),
}

/// The node an operand is printed under.
#[derive(Clone, Copy)]
enum Parent {
    /// An operator; `None` for a prefix operator.
    Operator(Option<&'static str>),
    Bool(BoolOp),
    NullTest,
    Cast,
    ArrayComparison,
}

#[derive(Clone, Copy, PartialEq)]
enum BoolOp {
    And,
    Or,
    Not,
}

/// A printed expression, with its type and node kind.
#[derive(Debug, Clone)]
pub(super) struct Node {
    pub text: String,
    pub ty: Ty,
    pub kind: Kind,
    /// The column's name, for a bare column reference: it needs no `AS` under its own name.
    pub column: Option<String>,
}

impl Node {
    pub(super) fn new(text: String, ty: Ty, kind: Kind) -> Node {
        Node {
            text,
            ty,
            kind,
            column: None,
        }
    }
}

/// An operand before its context gives it a type: PostgreSQL types a quoted literal (and
/// NULL) by where it is used.
enum Operand {
    Typed(Node),
    Literal(String),
    Null,
}

pub(super) struct Printer<'a> {
    pub mode: Mode,
    pub scope: &'a Scope,
}

impl Printer<'_> {
    /// The expression where no context types it: a quoted literal is text, as in a view's
    /// select list.
    pub(super) fn expr(&self, expr: &Expr) -> Option<Node> {
        match self.operand(expr)? {
            Operand::Typed(node) => Some(node),
            untyped => self.coerce(untyped, Ty::Text, false),
        }
    }

    fn operand(&self, expr: &Expr) -> Option<Operand> {
        Some(Operand::Typed(match expr {
            Expr::Nested(inner) => return self.operand(inner),
            Expr::Identifier(_) | Expr::CompoundIdentifier(_) => {
                let (qualifier, name, ty) = self.scope.resolve(expr)?;
                Node {
                    text: format!("{}.{}", quote_ident(&qualifier), quote_ident(&name)),
                    ty,
                    kind: Kind::Column,
                    column: Some(name),
                }
            }
            Expr::Value(value) => match &value.value {
                Value::SingleQuotedString(s) => return Some(Operand::Literal(s.clone())),
                Value::Null => return Some(Operand::Null),
                Value::Boolean(b) => Node::new(b.to_string(), Ty::Bool, Kind::Constant),
                Value::Number(digits, false) => number(digits, false)?,
                _ => return None,
            },
            Expr::UnaryOp {
                op: UnaryOperator::Minus,
                expr,
            } => match expr.as_ref() {
                Expr::Value(value) => match &value.value {
                    Value::Number(digits, false) => number(digits, true)?,
                    _ => return None,
                },
                inner => {
                    let inner = self.typed(inner)?;
                    if !inner.ty.integer() && !matches!(inner.ty, Ty::Numeric | Ty::Float8) {
                        return None;
                    }
                    let text = format!("- {}", self.wrap(&inner, Parent::Operator(None), true));
                    Node::new(self.own_parens(text), inner.ty, Kind::Prefix)
                }
            },
            Expr::UnaryOp {
                op: UnaryOperator::Not,
                expr,
            } => {
                let inner = self.coerce(self.operand(expr)?, Ty::Bool, false)?;
                if inner.ty != Ty::Bool {
                    return None;
                }
                let text = format!("NOT {}", self.wrap(&inner, Parent::Bool(BoolOp::Not), true));
                Node::new(self.own_parens(text), Ty::Bool, Kind::Not)
            }
            Expr::BinaryOp { left, op, right } => self.binary(left, op, right)?,
            Expr::IsNull(inner) | Expr::IsNotNull(inner) => {
                let inner = self.typed(inner)?;
                let test = if matches!(expr, Expr::IsNull(_)) {
                    "IS NULL"
                } else {
                    "IS NOT NULL"
                };
                let text = format!("{} {test}", self.wrap(&inner, Parent::NullTest, true));
                Node::new(self.own_parens(text), Ty::Bool, Kind::NullTest)
            }
            Expr::Between {
                expr,
                negated,
                low,
                high,
            } => {
                // The parser turns BETWEEN into two comparisons.
                let (low_op, high_op, joined) = if *negated {
                    ("<", ">", BinaryOperator::Or)
                } else {
                    (">=", "<=", BinaryOperator::And)
                };
                let low = self.comparison(self.operand(expr)?, low_op, self.operand(low)?)?;
                let high = self.comparison(self.operand(expr)?, high_op, self.operand(high)?)?;
                self.bool_chain(&joined, vec![low, high])?
            }
            Expr::InList {
                expr,
                list,
                negated,
            } => self.in_list(expr, list, *negated)?,
            Expr::Like {
                negated,
                any: false,
                expr: subject,
                pattern,
                escape_char: None,
            }
            | Expr::ILike {
                negated,
                any: false,
                expr: subject,
                pattern,
                escape_char: None,
            } => {
                let case_insensitive = matches!(expr, Expr::ILike { .. });
                let name = like_operator(case_insensitive, *negated);
                let subject = self.operand(subject)?;
                // `character(n)` has LIKE operators of its own, which print differently.
                if operand_type(&subject) == Some(Ty::Bpchar) {
                    return None;
                }
                let subject = self.coerce(subject, Ty::Text, false)?;
                let pattern = self.coerce(self.operand(pattern)?, Ty::Text, false)?;
                self.operator(subject, name, pattern, Ty::Bool)
            }
            Expr::Cast {
                kind: CastKind::Cast | CastKind::DoubleColon,
                expr,
                data_type,
                array: false,
                format: None,
            } => {
                let target = cast_target(data_type)?;
                self.coerce(self.operand(expr)?, target, true)?
            }
            Expr::Function(function) => self.call(function)?,
            _ => return None,
        }))
    }
}

fn like_operator(case_insensitive: bool, negated: bool) -> &'static str {
    match (case_insensitive, negated) {
        (false, false) => "~~",
        (false, true) => "!~~",
        (true, false) => "~~*",
        (true, true) => "!~~*",
    }
}

impl Printer<'_> {
    fn typed(&self, expr: &Expr) -> Option<Node> {
        match self.operand(expr)? {
            Operand::Typed(node) => Some(node),
            _ => None,
        }
    }

    /// `operand` as type `to`: a literal becomes a constant of it, a typed operand is cast
    /// (`explicit` allows casts PostgreSQL only makes when written).
    fn coerce(&self, operand: Operand, to: Ty, explicit: bool) -> Option<Node> {
        match operand {
            Operand::Literal(text) => literal(&text, to),
            Operand::Null => Some(Node::new(
                format!("NULL::{}", to.name()?),
                to,
                Kind::Constant,
            )),
            Operand::Typed(node) if node.ty == to => Some(node),
            Operand::Typed(node) => {
                let known = node.ty != Ty::Other && to != Ty::Other;
                if !known || !(explicit || implicit(node.ty, to)) {
                    return None;
                }
                let inner = match self.mode {
                    Mode::Pretty => self.wrap(&node, Parent::Cast, true),
                    Mode::Plain => format!("({})", node.text),
                };
                Some(Node::new(
                    format!("{inner}::{}", to.name()?),
                    to,
                    Kind::Cast(Box::new(node.kind)),
                ))
            }
        }
    }

    /// `text` in the parentheses the plain form gives every operator.
    fn own_parens(&self, text: String) -> String {
        match self.mode {
            Mode::Pretty => text,
            Mode::Plain => format!("({text})"),
        }
    }

    /// A child printed under `parent`: the pretty form adds parentheses unless PostgreSQL's
    /// `isSimpleNode` calls it simple there.
    fn wrap(&self, node: &Node, parent: Parent, is_left: bool) -> String {
        if self.mode == Mode::Pretty && !simple(&node.kind, parent, is_left) {
            format!("({})", node.text)
        } else {
            node.text.clone()
        }
    }

    fn binary(&self, left: &Expr, op: &BinaryOperator, right: &Expr) -> Option<Node> {
        let name = match op {
            BinaryOperator::And | BinaryOperator::Or => {
                let mut terms = Vec::new();
                self.flatten(left, op, &mut terms)?;
                let right = self.coerce(self.operand(right)?, Ty::Bool, false)?;
                terms.push(right);
                return self.bool_chain(op, terms);
            }
            BinaryOperator::Eq => "=",
            BinaryOperator::NotEq => "<>",
            BinaryOperator::Lt => "<",
            BinaryOperator::LtEq => "<=",
            BinaryOperator::Gt => ">",
            BinaryOperator::GtEq => ">=",
            BinaryOperator::Plus => "+",
            BinaryOperator::Minus => "-",
            BinaryOperator::Multiply => "*",
            BinaryOperator::Divide => "/",
            BinaryOperator::Modulo => "%",
            BinaryOperator::StringConcat => "||",
            _ => return None,
        };
        let (left, right) = (self.operand(left)?, self.operand(right)?);
        if name == "||" {
            let left = self.coerce(left, Ty::Text, false)?;
            let right = self.coerce(right, Ty::Text, false)?;
            return Some(self.operator(left, name, right, Ty::Text));
        }
        if matches!(name, "+" | "-" | "*" | "/" | "%") {
            let (left_ty, right_ty) = (operand_type(&left)?, operand_type(&right)?);
            let (to_left, to_right, result) = match (left_ty, right_ty) {
                (a, b) if a.integer() && b.integer() => {
                    (a, b, if a.rank() >= b.rank() { a } else { b })
                }
                _ if name == "%" => return None,
                (a, b) => {
                    let common = common_numeric(a, b)?;
                    (common, common, common)
                }
            };
            let left = self.coerce(left, to_left, false)?;
            let right = self.coerce(right, to_right, false)?;
            return Some(self.operator(left, name, right, result));
        }
        self.comparison(left, name, right)
    }

    /// The terms of a left-nested AND (or OR) chain, which PostgreSQL's parser flattens.
    fn flatten(&self, expr: &Expr, op: &BinaryOperator, terms: &mut Vec<Node>) -> Option<()> {
        match expr {
            Expr::Nested(inner) => self.flatten(inner, op, terms),
            Expr::BinaryOp {
                left,
                op: inner_op,
                right,
            } if inner_op == op => {
                self.flatten(left, op, terms)?;
                terms.push(self.coerce(self.operand(right)?, Ty::Bool, false)?);
                Some(())
            }
            other => {
                terms.push(self.coerce(self.operand(other)?, Ty::Bool, false)?);
                Some(())
            }
        }
    }

    fn bool_chain(&self, op: &BinaryOperator, terms: Vec<Node>) -> Option<Node> {
        let (bool_op, kind, word) = match op {
            BinaryOperator::And => (BoolOp::And, Kind::And, " AND "),
            _ => (BoolOp::Or, Kind::Or, " OR "),
        };
        if terms.iter().any(|t| t.ty != Ty::Bool) {
            return None;
        }
        let text = terms
            .iter()
            .map(|t| self.wrap(t, Parent::Bool(bool_op), true))
            .collect::<Vec<_>>()
            .join(word);
        Some(Node::new(self.own_parens(text), Ty::Bool, kind))
    }

    fn comparison(&self, left: Operand, name: &'static str, right: Operand) -> Option<Node> {
        let (to_left, to_right) = match (operand_type(&left), operand_type(&right)) {
            (None, None) => (Ty::Text, Ty::Text),
            (Some(t), None) | (None, Some(t)) => {
                let t = if t == Ty::Varchar { Ty::Text } else { t };
                (t, t)
            }
            (Some(a), Some(b)) if a.integer() && b.integer() => (a, b),
            (Some(a), Some(b)) if a == b && a != Ty::Varchar => (a, b),
            (Some(a), Some(b))
                if matches!(a, Ty::Text | Ty::Varchar) && matches!(b, Ty::Text | Ty::Varchar) =>
            {
                (Ty::Text, Ty::Text)
            }
            (Some(a), Some(b)) => {
                let common = common_numeric(a, b)?;
                (common, common)
            }
        };
        if to_left == Ty::Other {
            return None;
        }
        let left = self.coerce(left, to_left, false)?;
        let right = self.coerce(right, to_right, false)?;
        Some(self.operator(left, name, right, Ty::Bool))
    }

    fn operator(&self, left: Node, name: &'static str, right: Node, ty: Ty) -> Node {
        let parent = Parent::Operator(Some(name));
        let text = format!(
            "{} {name} {}",
            self.wrap(&left, parent, true),
            self.wrap(&right, parent, false)
        );
        Node::new(self.own_parens(text), ty, Kind::Binary(name))
    }

    /// `x IN (a, b)` is `x = ANY (ARRAY[a, b])` to PostgreSQL (`x <> ALL` for NOT IN), and a
    /// one-item list a plain comparison.
    fn in_list(&self, expr: &Expr, list: &[Expr], negated: bool) -> Option<Node> {
        let name = if negated { "<>" } else { "=" };
        if let [only] = list {
            return self.comparison(self.operand(expr)?, name, self.operand(only)?);
        }
        let left = self.typed(expr)?;
        let element = match left.ty {
            Ty::Int2 | Ty::Int4 => Ty::Int4,
            Ty::Int8 | Ty::Numeric | Ty::Text => left.ty,
            _ => return None,
        };
        let mut items = Vec::with_capacity(list.len());
        for item in list {
            let item = self.coerce(self.operand(item)?, element, false)?;
            items.push(item.text);
        }
        let left_text = self.wrap(&left, Parent::ArrayComparison, true);
        let quantifier = if negated { "ALL" } else { "ANY" };
        let text = format!(
            "{left_text} {name} {quantifier} (ARRAY[{}])",
            items.join(", ")
        );
        Some(Node::new(
            self.own_parens(text),
            Ty::Bool,
            Kind::ArrayComparison,
        ))
    }

    fn call(&self, function: &ast::Function) -> Option<Node> {
        let [ast::ObjectNamePart::Identifier(name)] = function.name.0.as_slice() else {
            return None;
        };
        if function.over.is_some()
            || function.null_treatment.is_some()
            || !function.within_group.is_empty()
            || !matches!(function.parameters, FunctionArguments::None)
        {
            return None;
        }
        let name = crate::sql::fold(name);
        let FunctionArguments::List(list) = &function.args else {
            return None;
        };
        if !list.clauses.is_empty() {
            return None;
        }
        let distinct = match list.duplicate_treatment {
            None | Some(ast::DuplicateTreatment::All) => false,
            Some(ast::DuplicateTreatment::Distinct) => true,
        };
        let mut args = Vec::with_capacity(list.args.len());
        let mut star = false;
        for arg in &list.args {
            match arg {
                FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => args.push(self.operand(e)?),
                FunctionArg::Unnamed(FunctionArgExpr::Wildcard) => star = true,
                _ => return None,
            }
        }
        let aggregate = matches!(name.as_str(), "count" | "sum" | "avg" | "min" | "max");
        if (distinct || function.filter.is_some()) && !aggregate {
            return None;
        }
        let (arguments, ty, kind) = match (name.as_str(), args.as_mut_slice(), star) {
            ("count", [], true) => ("*".to_owned(), Ty::Int8, Kind::Call),
            (_, _, true) => return None,
            ("count" | "sum" | "avg" | "min" | "max", [arg], false) => {
                let Operand::Typed(arg) = std::mem::replace(arg, Operand::Null) else {
                    return None;
                };
                let ty = aggregate_type(&name, arg.ty)?;
                let prefix = if distinct { "DISTINCT " } else { "" };
                (format!("{prefix}{}", arg.text), ty, Kind::Call)
            }
            ("lower" | "upper", [arg], false) => {
                let arg = std::mem::replace(arg, Operand::Null);
                (
                    self.coerce(arg, Ty::Text, false)?.text,
                    Ty::Text,
                    Kind::Call,
                )
            }
            ("coalesce", args, false) if args.len() >= 2 => {
                let ty = args.iter().find_map(operand_type)?;
                if ty == Ty::Other {
                    return None;
                }
                let mut texts = Vec::with_capacity(args.len());
                for arg in args.iter_mut() {
                    if operand_type(arg).is_some_and(|t| t != ty) {
                        return None;
                    }
                    let arg = std::mem::replace(arg, Operand::Null);
                    texts.push(self.coerce(arg, ty, false)?.text);
                }
                return Some(Node::new(
                    format!("COALESCE({})", texts.join(", ")),
                    ty,
                    Kind::Delimited,
                ));
            }
            _ => return None,
        };
        let mut text = format!("{}({arguments})", quote_ident(&name));
        if let Some(filter) = &function.filter {
            let filter = self.coerce(self.operand(filter)?, Ty::Bool, false)?;
            text.push_str(&format!(" FILTER (WHERE {})", filter.text));
        }
        Some(Node::new(text, ty, kind))
    }
}

fn operand_type(operand: &Operand) -> Option<Ty> {
    match operand {
        Operand::Typed(node) => Some(node.ty),
        _ => None,
    }
}

/// PostgreSQL's `isSimpleNode`: whether `kind` needs no parentheses under `parent`.
fn simple(kind: &Kind, parent: Parent, is_left: bool) -> bool {
    // Under a function, a cast, a boolean operator or an operator, as PostgreSQL's parent
    // switch for operators and null tests decides.
    let under = |parent: Parent| matches!(parent, Parent::Bool(_));
    match kind {
        Kind::Column | Kind::Constant | Kind::Call | Kind::Delimited => true,
        Kind::Cast(inner) => simple(inner, Parent::Cast, true),
        Kind::Binary(op) => match parent {
            Parent::Operator(parent_op) => {
                let priority = |op: &str| match op {
                    "+" | "-" => Some(false),
                    "*" | "/" | "%" => Some(true),
                    _ => None,
                };
                let (Some(high), Some(Some(parent_high))) = (priority(op), parent_op.map(priority))
                else {
                    return false;
                };
                match (high, parent_high) {
                    (true, false) => true,
                    (false, true) => false,
                    // Same priority: only `(a - b) - c` may drop them.
                    _ => is_left,
                }
            }
            other => under(other),
        },
        Kind::Prefix | Kind::NullTest => under(parent),
        Kind::And | Kind::Or | Kind::Not => match parent {
            Parent::Bool(parent_op) => match kind {
                Kind::Or => parent_op == BoolOp::Or,
                _ => matches!(parent_op, BoolOp::And | BoolOp::Or),
            },
            _ => false,
        },
        Kind::ArrayComparison => false,
    }
}
