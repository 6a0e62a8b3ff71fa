//! Operators, equality, ordering, string coercion and conversion to JSON.

use std::path::Path;
use std::rc::Rc;

use rnix::ast;

use super::{canon_path, req, Coerce, EvalError, Evaluator, R};
use crate::rules::value::{EnvId, ThunkId, Value};

impl Evaluator {
    // ---- operators ----------------------------------------------------------------------

    pub(super) fn eval_binop(&mut self, b: &ast::BinOp, env: EnvId) -> R<Value> {
        use ast::BinOpKind as K;
        let op = req(b.operator())?;
        let lhs = req(b.lhs())?;
        let rhs = req(b.rhs())?;
        match op {
            K::And => Ok(Value::Bool(
                self.eval_bool(&lhs, env)? && self.eval_bool(&rhs, env)?,
            )),
            K::Or => Ok(Value::Bool(
                self.eval_bool(&lhs, env)? || self.eval_bool(&rhs, env)?,
            )),
            K::Implication => Ok(Value::Bool(
                !self.eval_bool(&lhs, env)? || self.eval_bool(&rhs, env)?,
            )),
            K::PipeLeft | K::PipeRight => Err(EvalError::unsupported("the pipe operators")),
            _ => {
                let l = self.eval(&lhs, env)?;
                let r = self.eval(&rhs, env)?;
                self.binary(op, l, r)
            }
        }
    }

    /// A strict binary operator on two values.
    pub fn binary(&mut self, op: ast::BinOpKind, l: Value, r: Value) -> R<Value> {
        use ast::BinOpKind as K;
        use Value as V;
        Ok(match op {
            K::Equal => V::Bool(self.equal(&l, &r)?),
            K::NotEqual => V::Bool(!self.equal(&l, &r)?),
            K::Concat => match (l, r) {
                (V::List(a), V::List(b)) => {
                    self.charge_items(a.len() + b.len())?;
                    let mut v = Vec::with_capacity(a.len() + b.len());
                    v.extend_from_slice(&a);
                    v.extend_from_slice(&b);
                    V::List(Rc::new(v))
                }
                (V::List(_), other) | (other, _) => {
                    return Err(EvalError::expected("a list", &other))
                }
            },
            K::Update => match (l, r) {
                (V::Attrs(a), V::Attrs(b)) => {
                    if a.is_empty() {
                        V::Attrs(b)
                    } else if b.is_empty() {
                        V::Attrs(a)
                    } else {
                        self.charge(a.len().saturating_add(b.len()).saturating_mul(48))?;
                        let mut m = (*a).clone();
                        m.extend(b.iter().map(|(k, v)| (k.clone(), *v)));
                        V::Attrs(Rc::new(m))
                    }
                }
                (V::Attrs(_), other) | (other, _) => {
                    return Err(EvalError::expected("a set", &other))
                }
            },
            K::Add => match (l, r) {
                (V::Int(a), V::Int(b)) => V::Int(
                    a.checked_add(b)
                        .ok_or_else(|| EvalError::new("integer overflow"))?,
                ),
                (V::Float(a), V::Float(b)) => V::Float(a + b),
                (V::Int(a), V::Float(b)) => V::Float(a as f64 + b),
                (V::Float(a), V::Int(b)) => V::Float(a + b as f64),
                (V::Path(p), r) => {
                    let s = match &r {
                        V::Path(q) => q.to_string_lossy().into_owned(),
                        other => self.coerce(other, Coerce::Interpolate)?,
                    };
                    let joined = format!("{}{s}", p.display());
                    V::Path(Rc::new(canon_path(Path::new(&joined))))
                }
                (l @ (V::Str(_) | V::Attrs(_)), r) => {
                    let mut s = self.coerce(&l, Coerce::Interpolate)?;
                    s.push_str(&self.coerce(&r, Coerce::Interpolate)?);
                    V::str(s)
                }
                (l, r) => {
                    return Err(EvalError::new(format!(
                        "cannot add {} to {}",
                        r.type_phrase(),
                        l.type_phrase()
                    )))
                }
            },
            K::Sub | K::Mul | K::Div => arith(op, l, r)?,
            K::Less => V::Bool(self.less_than(&l, &r)?),
            K::More => V::Bool(self.less_than(&r, &l)?),
            K::LessOrEq => V::Bool(!self.less_than(&r, &l)?),
            K::MoreOrEq => V::Bool(!self.less_than(&l, &r)?),
            K::And | K::Or | K::Implication | K::PipeLeft | K::PipeRight => {
                return Err(EvalError::new("internal error: lazy operator"))
            }
        })
    }

    pub fn less_than(&mut self, l: &Value, r: &Value) -> R<bool> {
        use Value as V;
        match (l, r) {
            (V::Int(a), V::Int(b)) => Ok(a < b),
            (V::Float(a), V::Float(b)) => Ok(a < b),
            (V::Int(a), V::Float(b)) => Ok((*a as f64) < *b),
            (V::Float(a), V::Int(b)) => Ok(*a < *b as f64),
            (V::Str(a), V::Str(b)) => Ok(a.as_bytes() < b.as_bytes()),
            (V::Path(a), V::Path(b)) => Ok(a.as_os_str() < b.as_os_str()),
            (V::List(a), V::List(b)) => {
                self.enter()?;
                let r = self.list_less(a, b);
                self.leave();
                r
            }
            _ => Err(EvalError::new(format!(
                "cannot compare {} with {}",
                l.type_phrase(),
                r.type_phrase()
            ))),
        }
    }

    pub(super) fn list_less(&mut self, a: &[ThunkId], b: &[ThunkId]) -> R<bool> {
        for (x, y) in a.iter().zip(b) {
            let x = self.force(*x)?;
            let y = self.force(*y)?;
            if !self.equal(&x, &y)? {
                return self.less_than(&x, &y);
            }
        }
        Ok(a.len() < b.len())
    }

    /// `==`: structural, forcing as deep as needed; functions are never equal.
    pub fn equal(&mut self, l: &Value, r: &Value) -> R<bool> {
        use Value as V;
        Ok(match (l, r) {
            (V::Null, V::Null) => true,
            (V::Bool(a), V::Bool(b)) => a == b,
            (V::Int(a), V::Int(b)) => a == b,
            (V::Float(a), V::Float(b)) => a == b,
            (V::Int(a), V::Float(b)) | (V::Float(b), V::Int(a)) => (*a as f64) == *b,
            (V::Str(a), V::Str(b)) => a == b,
            (V::Path(a), V::Path(b)) => a == b,
            (V::List(a), V::List(b)) => {
                if a.len() != b.len() {
                    return Ok(false);
                }
                self.enter()?;
                let r = self.all_equal(a.iter().copied().zip(b.iter().copied()));
                self.leave();
                r?
            }
            (V::Attrs(a), V::Attrs(b)) => {
                if a.len() != b.len() || !a.keys().eq(b.keys()) {
                    return Ok(false);
                }
                self.enter()?;
                let r = self.all_equal(a.values().copied().zip(b.values().copied()));
                self.leave();
                r?
            }
            _ => false,
        })
    }

    pub(super) fn all_equal(&mut self, pairs: impl Iterator<Item = (ThunkId, ThunkId)>) -> R<bool> {
        for (x, y) in pairs {
            let x = self.force(x)?;
            let y = self.force(y)?;
            if !self.equal(&x, &y)? {
                return Ok(false);
            }
        }
        Ok(true)
    }

    // ---- conversions --------------------------------------------------------------------

    /// `v` as a string (a new allocation, charged against the budget).
    pub fn coerce(&mut self, v: &Value, how: Coerce) -> R<String> {
        let s = self.coerce_inner(v, how)?;
        self.charge(s.len())?;
        Ok(s)
    }

    fn coerce_inner(&mut self, v: &Value, how: Coerce) -> R<String> {
        match v {
            Value::Str(s) => Ok(s.to_string()),
            Value::Path(p) => match how {
                Coerce::Interpolate => Err(EvalError::unsupported(
                    "using a path as a string (Nix copies it to the store)",
                )),
                _ => Ok(p.to_string_lossy().into_owned()),
            },
            Value::Attrs(set) => {
                if let Some(&f) = set.get("__toString") {
                    let f = self.force(f)?;
                    let me = self.done(v.clone());
                    let s = self.apply(f, me)?;
                    self.enter()?;
                    let r = self.coerce(&s, how);
                    self.leave();
                    r
                } else if let Some(&o) = set.get("outPath") {
                    let o = self.force(o)?;
                    self.enter()?;
                    let r = self.coerce(&o, how);
                    self.leave();
                    r
                } else {
                    Err(EvalError::new("cannot coerce a set to a string"))
                }
            }
            _ if how != Coerce::ToString => Err(EvalError::new(format!(
                "cannot coerce {} to a string",
                v.type_phrase()
            ))),
            Value::Int(i) => Ok(i.to_string()),
            Value::Float(f) => Ok(format!("{f:.6}")),
            Value::Bool(b) => Ok(if *b { "1".into() } else { String::new() }),
            Value::Null => Ok(String::new()),
            Value::List(items) => {
                let mut out = String::new();
                self.enter()?;
                let r = (|| {
                    for (n, t) in items.iter().enumerate() {
                        let item = self.force(*t)?;
                        out.push_str(&self.coerce(&item, how)?);
                        let empty_list = matches!(&item, Value::List(l) if l.is_empty());
                        if n + 1 < items.len() && !empty_list {
                            out.push(' ');
                        }
                    }
                    Ok(())
                })();
                self.leave();
                r.map(|()| out)
            }
            Value::Lambda(_) | Value::Builtin(_) => Err(EvalError::new(format!(
                "cannot coerce {} to a string",
                v.type_phrase()
            ))),
        }
    }

    /// The JSON value `nix-instantiate --eval --strict --json` prints for `v`.
    pub fn json_value(&mut self, v: &Value) -> R<serde_json::Value> {
        self.enter()?;
        let r = self.json_value_inner(v);
        self.leave();
        r
    }

    pub(super) fn json_value_inner(&mut self, v: &Value) -> R<serde_json::Value> {
        use serde_json::Value as J;
        // Shared values are copied once per use: a small set of nested references can
        // stand for an exponentially large JSON document.
        self.charge(std::mem::size_of::<J>())?;
        if let Value::Str(s) = v {
            self.charge(s.len())?;
        }
        Ok(match v {
            Value::Null => J::Null,
            Value::Bool(b) => J::Bool(*b),
            Value::Int(i) => J::from(*i),
            Value::Float(f) => float_json(*f)?,
            Value::Str(s) => J::String(s.to_string()),
            Value::Path(_) => {
                return Err(EvalError::unsupported(
                    "a path in the result (Nix copies it to the store)",
                ))
            }
            Value::List(items) => {
                let mut out = Vec::with_capacity(items.len());
                for t in items.iter() {
                    let item = self.force(*t)?;
                    out.push(self.json_value(&item)?);
                }
                J::Array(out)
            }
            Value::Attrs(set) => {
                if let Some(&o) = set.get("outPath") {
                    let o = self.force(o)?;
                    return self.json_value(&o);
                }
                let mut out = serde_json::Map::new();
                for (k, t) in set.iter() {
                    let item = self.force(*t)?;
                    out.insert(k.to_string(), self.json_value(&item)?);
                }
                J::Object(out)
            }
            Value::Lambda(_) | Value::Builtin(_) => {
                return Err(EvalError::new("cannot convert a function to JSON"))
            }
        })
    }

    /// Forces `v` completely (`deepSeq`).
    pub fn deep_force(&mut self, v: &Value) -> R<()> {
        self.enter()?;
        let r = (|| {
            match v {
                Value::List(items) => {
                    for t in items.iter() {
                        let item = self.force(*t)?;
                        self.deep_force(&item)?;
                    }
                }
                Value::Attrs(set) => {
                    for t in set.values() {
                        let item = self.force(*t)?;
                        self.deep_force(&item)?;
                    }
                }
                _ => {}
            }
            Ok(())
        })();
        self.leave();
        r
    }
}

fn arith(op: ast::BinOpKind, l: Value, r: Value) -> R<Value> {
    use ast::BinOpKind as K;
    use Value as V;
    let overflow = || EvalError::new("integer overflow");
    Ok(match (l, r) {
        (V::Int(a), V::Int(b)) => V::Int(match op {
            K::Sub => a.checked_sub(b).ok_or_else(overflow)?,
            K::Mul => a.checked_mul(b).ok_or_else(overflow)?,
            _ => {
                if b == 0 {
                    return Err(EvalError::new("division by zero"));
                }
                a.checked_div(b).ok_or_else(overflow)?
            }
        }),
        (a @ (V::Int(_) | V::Float(_)), b @ (V::Int(_) | V::Float(_))) => {
            let f = |v: V| match v {
                V::Int(i) => i as f64,
                V::Float(f) => f,
                _ => 0.0,
            };
            let (a, b) = (f(a), f(b));
            V::Float(match op {
                K::Sub => a - b,
                K::Mul => a * b,
                _ => {
                    if b == 0.0 {
                        return Err(EvalError::new("division by zero"));
                    }
                    a / b
                }
            })
        }
        (V::Int(_) | V::Float(_), other) | (other, _) => {
            return Err(EvalError::expected("an integer", &other))
        }
    })
}

/// A float as Nix prints it in JSON: C++ stream formatting, six significant digits.
fn float_json(f: f64) -> R<serde_json::Value> {
    if !f.is_finite() {
        return Err(EvalError::new("cannot convert a non-finite float to JSON"));
    }
    if f == 0.0 {
        return Ok(serde_json::Value::from(0));
    }
    let sci = format!("{f:.5e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let text = if (-4..6).contains(&exp) {
        let decimals = (5 - exp).max(0) as usize;
        let s = format!("{f:.decimals$}");
        trim_zeros(&s)
    } else {
        format!(
            "{}e{}{:02}",
            trim_zeros(mantissa),
            if exp < 0 { '-' } else { '+' },
            exp.abs()
        )
    };
    serde_json::from_str(&text).map_err(|_| EvalError::new("cannot convert a float to JSON"))
}

fn trim_zeros(s: &str) -> String {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s.to_string()
    }
}
