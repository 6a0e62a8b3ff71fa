//! The builtins rules files use. Every other name Nix's `builtins` has
//! ([`super::nix_builtins`]) is reported as unsupported when used, so `Auto` mode hands the
//! file to Nix.

use std::path::{Path, PathBuf};
use std::rc::Rc;

use super::eval::{canon_path, io_message, Coerce, ErrorKind, EvalError, Evaluator, R};
use super::strings;
use super::value::{Attrs, ThunkId, ThunkState, Value};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Builtin {
    Abort,
    Add,
    All,
    Any,
    AttrNames,
    AttrValues,
    BaseNameOf,
    CatAttrs,
    ConcatLists,
    ConcatMap,
    ConcatStringsSep,
    DeepSeq,
    Div,
    DirOf,
    Elem,
    ElemAt,
    Filter,
    Foldl,
    FromJson,
    GenList,
    GetAttr,
    HasAttr,
    Head,
    Import,
    IntersectAttrs,
    IsAttrs,
    IsBool,
    IsFloat,
    IsFunction,
    IsInt,
    IsList,
    IsNull,
    IsPath,
    IsString,
    Length,
    LessThan,
    ListToAttrs,
    Map,
    MapAttrs,
    Match,
    Mul,
    PathExists,
    ReadDir,
    ReadFile,
    RemoveAttrs,
    ReplaceStrings,
    Seq,
    Sort,
    Split,
    StringLength,
    Sub,
    Substring,
    Tail,
    Throw,
    ToJson,
    ToString,
    Trace,
    TryEval,
    TypeOf,
}

/// Every supported builtin: name under `builtins`, variant, number of arguments.
pub const TABLE: &[(&str, Builtin, usize)] = &[
    ("abort", Builtin::Abort, 1),
    ("add", Builtin::Add, 2),
    ("all", Builtin::All, 2),
    ("any", Builtin::Any, 2),
    ("attrNames", Builtin::AttrNames, 1),
    ("attrValues", Builtin::AttrValues, 1),
    ("baseNameOf", Builtin::BaseNameOf, 1),
    ("catAttrs", Builtin::CatAttrs, 2),
    ("concatLists", Builtin::ConcatLists, 1),
    ("concatMap", Builtin::ConcatMap, 2),
    ("concatStringsSep", Builtin::ConcatStringsSep, 2),
    ("deepSeq", Builtin::DeepSeq, 2),
    ("div", Builtin::Div, 2),
    ("dirOf", Builtin::DirOf, 1),
    ("elem", Builtin::Elem, 2),
    ("elemAt", Builtin::ElemAt, 2),
    ("filter", Builtin::Filter, 2),
    ("foldl'", Builtin::Foldl, 3),
    ("fromJSON", Builtin::FromJson, 1),
    ("genList", Builtin::GenList, 2),
    ("getAttr", Builtin::GetAttr, 2),
    ("hasAttr", Builtin::HasAttr, 2),
    ("head", Builtin::Head, 1),
    ("import", Builtin::Import, 1),
    ("intersectAttrs", Builtin::IntersectAttrs, 2),
    ("isAttrs", Builtin::IsAttrs, 1),
    ("isBool", Builtin::IsBool, 1),
    ("isFloat", Builtin::IsFloat, 1),
    ("isFunction", Builtin::IsFunction, 1),
    ("isInt", Builtin::IsInt, 1),
    ("isList", Builtin::IsList, 1),
    ("isNull", Builtin::IsNull, 1),
    ("isPath", Builtin::IsPath, 1),
    ("isString", Builtin::IsString, 1),
    ("length", Builtin::Length, 1),
    ("lessThan", Builtin::LessThan, 2),
    ("listToAttrs", Builtin::ListToAttrs, 1),
    ("map", Builtin::Map, 2),
    ("mapAttrs", Builtin::MapAttrs, 2),
    ("match", Builtin::Match, 2),
    ("mul", Builtin::Mul, 2),
    ("pathExists", Builtin::PathExists, 1),
    ("readDir", Builtin::ReadDir, 1),
    ("readFile", Builtin::ReadFile, 1),
    ("removeAttrs", Builtin::RemoveAttrs, 2),
    ("replaceStrings", Builtin::ReplaceStrings, 3),
    ("seq", Builtin::Seq, 2),
    ("sort", Builtin::Sort, 2),
    ("split", Builtin::Split, 2),
    ("stringLength", Builtin::StringLength, 1),
    ("sub", Builtin::Sub, 2),
    ("substring", Builtin::Substring, 3),
    ("tail", Builtin::Tail, 1),
    ("throw", Builtin::Throw, 1),
    ("toJSON", Builtin::ToJson, 1),
    ("toString", Builtin::ToString, 1),
    ("trace", Builtin::Trace, 2),
    ("tryEval", Builtin::TryEval, 1),
    ("typeOf", Builtin::TypeOf, 1),
];

impl Builtin {
    pub fn arity(self) -> usize {
        TABLE
            .iter()
            .find(|(_, b, _)| *b == self)
            .map_or(1, |(_, _, n)| *n)
    }

    fn name(self) -> &'static str {
        TABLE
            .iter()
            .find(|(_, b, _)| *b == self)
            .map_or("?", |(n, _, _)| n)
    }
}

fn list(items: Vec<ThunkId>) -> Value {
    Value::List(Rc::new(items))
}

fn attrs(a: Attrs) -> Value {
    Value::Attrs(Rc::new(a))
}

/// A path argument: a path value, or a string holding an absolute path.
fn path_arg(ev: &mut Evaluator, t: ThunkId) -> R<PathBuf> {
    match ev.force(t)? {
        Value::Path(p) => Ok((*p).clone()),
        v @ (Value::Str(_) | Value::Attrs(_)) => {
            let s = ev.coerce(&v, Coerce::PathAsIs)?;
            if s.starts_with('/') {
                Ok(canon_path(Path::new(&s)))
            } else {
                Err(EvalError::new(format!(
                    "string '{s}' doesn't represent an absolute path"
                )))
            }
        }
        other => Err(EvalError::expected("a path", &other)),
    }
}

/// Runs a builtin whose arguments are all present.
pub fn call(ev: &mut Evaluator, b: Builtin, a: &[ThunkId]) -> R<Value> {
    use Builtin as B;
    let arg = |i: usize| {
        a.get(i)
            .copied()
            .ok_or_else(|| EvalError::new("missing argument"))
    };
    Ok(match b {
        B::Abort => {
            let v = ev.force(arg(0)?)?;
            let msg = ev.coerce(&v, Coerce::ToString)?;
            return Err(EvalError::new(format!(
                "evaluation aborted with the following error message: '{msg}'"
            )));
        }
        B::Throw => {
            let v = ev.force(arg(0)?)?;
            let msg = ev.coerce(&v, Coerce::ToString)?;
            return Err(EvalError {
                kind: ErrorKind::Throw,
                message: msg,
                pos: None,
            });
        }
        // The message is evaluated, as Nix does, but a library does not print it.
        B::Trace => {
            ev.force(arg(0)?)?;
            ev.force(arg(1)?)?
        }
        B::ToString => {
            let v = ev.force(arg(0)?)?;
            Value::str(ev.coerce(&v, Coerce::ToString)?)
        }
        B::BaseNameOf => {
            let v = ev.force(arg(0)?)?;
            let s = ev.coerce(&v, Coerce::PathAsIs)?;
            let s = s.strip_suffix('/').unwrap_or(&s);
            Value::str(s.rsplit('/').next().unwrap_or(""))
        }
        B::DirOf => {
            let v = ev.force(arg(0)?)?;
            let s = ev.coerce(&v, Coerce::PathAsIs)?;
            let dir = match s.rfind('/') {
                None => ".".to_string(),
                Some(0) => "/".to_string(),
                Some(p) => s[..p].to_string(),
            };
            match v {
                Value::Path(_) => Value::Path(Rc::new(canon_path(Path::new(&dir)))),
                _ => Value::str(dir),
            }
        }
        B::IsNull => Value::Bool(matches!(ev.force(arg(0)?)?, Value::Null)),
        B::IsAttrs => Value::Bool(matches!(ev.force(arg(0)?)?, Value::Attrs(_))),
        B::IsBool => Value::Bool(matches!(ev.force(arg(0)?)?, Value::Bool(_))),
        B::IsFloat => Value::Bool(matches!(ev.force(arg(0)?)?, Value::Float(_))),
        B::IsInt => Value::Bool(matches!(ev.force(arg(0)?)?, Value::Int(_))),
        B::IsList => Value::Bool(matches!(ev.force(arg(0)?)?, Value::List(_))),
        B::IsPath => Value::Bool(matches!(ev.force(arg(0)?)?, Value::Path(_))),
        B::IsString => Value::Bool(matches!(ev.force(arg(0)?)?, Value::Str(_))),
        B::IsFunction => Value::Bool(matches!(
            ev.force(arg(0)?)?,
            Value::Lambda(_) | Value::Builtin(_)
        )),
        B::TypeOf => Value::str(ev.force(arg(0)?)?.type_name()),
        B::RemoveAttrs => {
            let set = ev.force_attrs(arg(0)?)?;
            let names = ev.force_list(arg(1)?)?;
            let mut out = (*set).clone();
            for n in names.iter() {
                let n = ev.force_str(*n)?;
                out.remove(&n);
            }
            attrs(out)
        }
        B::Map => {
            let f = ev.force(arg(0)?)?;
            let items = ev.force_list(arg(1)?)?;
            let out = items
                .iter()
                .map(|x| {
                    ev.lazy(ThunkState::Apply {
                        f: f.clone(),
                        args: vec![*x],
                    })
                })
                .collect();
            list(out)
        }
        B::Import => {
            let p = path_arg(ev, arg(0)?)?;
            ev.import(&p)?
        }
        B::AttrValues => list(ev.force_attrs(arg(0)?)?.values().copied().collect()),
        B::AttrNames => {
            let set = ev.force_attrs(arg(0)?)?;
            list(set.keys().map(|k| ev.done(Value::Str(k.clone()))).collect())
        }
        B::ConcatLists => {
            let outer = ev.force_list(arg(0)?)?;
            let mut out = Vec::new();
            for l in outer.iter() {
                let l = ev.force_list(*l)?;
                ev.charge_items(l.len())?;
                out.extend_from_slice(&l);
            }
            list(out)
        }
        B::ConcatMap => {
            let f = ev.force(arg(0)?)?;
            let items = ev.force_list(arg(1)?)?;
            let mut out = Vec::new();
            for x in items.iter() {
                match ev.call_values(&f, &[*x])? {
                    Value::List(l) => {
                        ev.charge_items(l.len())?;
                        out.extend_from_slice(&l)
                    }
                    other => return Err(EvalError::expected("a list", &other)),
                }
            }
            list(out)
        }
        B::Filter => {
            let f = ev.force(arg(0)?)?;
            let items = ev.force_list(arg(1)?)?;
            let mut out = Vec::new();
            for x in items.iter() {
                match ev.call_values(&f, &[*x])? {
                    Value::Bool(true) => out.push(*x),
                    Value::Bool(false) => {}
                    other => return Err(EvalError::expected("a Boolean", &other)),
                }
            }
            list(out)
        }
        B::All | B::Any => {
            let f = ev.force(arg(0)?)?;
            let items = ev.force_list(arg(1)?)?;
            let want = b == B::Any;
            for x in items.iter() {
                match ev.call_values(&f, &[*x])? {
                    Value::Bool(v) if v == want => return Ok(Value::Bool(want)),
                    Value::Bool(_) => {}
                    other => return Err(EvalError::expected("a Boolean", &other)),
                }
            }
            Value::Bool(!want)
        }
        B::Elem => {
            let x = ev.force(arg(0)?)?;
            let items = ev.force_list(arg(1)?)?;
            for y in items.iter() {
                let y = ev.force(*y)?;
                if ev.equal(&x, &y)? {
                    return Ok(Value::Bool(true));
                }
            }
            Value::Bool(false)
        }
        B::Length => Value::Int(ev.force_list(arg(0)?)?.len() as i64),
        B::Head => {
            let l = ev.force_list(arg(0)?)?;
            match l.first() {
                Some(t) => ev.force(*t)?,
                None => return Err(EvalError::new("list index 0 is out of bounds")),
            }
        }
        B::Tail => {
            let l = ev.force_list(arg(0)?)?;
            if l.is_empty() {
                return Err(EvalError::new("'tail' called on an empty list"));
            }
            list(l[1..].to_vec())
        }
        B::ElemAt => {
            let l = ev.force_list(arg(0)?)?;
            let i = ev.force_int(arg(1)?)?;
            match usize::try_from(i).ok().and_then(|i| l.get(i)) {
                Some(t) => ev.force(*t)?,
                None => return Err(EvalError::new(format!("list index {i} is out of bounds"))),
            }
        }
        B::Foldl => {
            let f = ev.force(arg(0)?)?;
            let mut acc = arg(1)?;
            let items = ev.force_list(arg(2)?)?;
            for x in items.iter() {
                let v = ev.call_values(&f, &[acc, *x])?;
                acc = ev.done(v);
            }
            ev.force(acc)?
        }
        B::ListToAttrs => {
            let items = ev.force_list(arg(0)?)?;
            let mut out = Attrs::new();
            for item in items.iter() {
                let set = ev.force_attrs(*item)?;
                let Some(&name) = set.get("name") else {
                    return Err(EvalError::new("attribute 'name' missing"));
                };
                let name = ev.force_str(name)?;
                let Some(&value) = set.get("value") else {
                    return Err(EvalError::new("attribute 'value' missing"));
                };
                // The first occurrence of a name wins.
                out.entry(name).or_insert(value);
            }
            attrs(out)
        }
        B::MapAttrs => {
            let f = ev.force(arg(0)?)?;
            let set = ev.force_attrs(arg(1)?)?;
            let mut out = Attrs::new();
            for (k, v) in set.iter() {
                let name = ev.done(Value::Str(k.clone()));
                let t = ev.lazy(ThunkState::Apply {
                    f: f.clone(),
                    args: vec![name, *v],
                });
                out.insert(k.clone(), t);
            }
            attrs(out)
        }
        B::GenList => {
            let f = ev.force(arg(0)?)?;
            let n = ev.force_int(arg(1)?)?;
            if !(0..=10_000_000).contains(&n) {
                return Err(EvalError::new(format!("cannot create list of size {n}")));
            }
            ev.charge_thunks(2 * n as usize)?;
            let out = (0..n)
                .map(|i| {
                    let it = ev.done(Value::Int(i));
                    ev.lazy(ThunkState::Apply {
                        f: f.clone(),
                        args: vec![it],
                    })
                })
                .collect();
            list(out)
        }
        B::ReadFile => {
            let p = path_arg(ev, arg(0)?)?;
            let text = std::fs::read(&p).map_err(|e| {
                EvalError::new(format!("cannot read '{}': {}", p.display(), io_message(&e)))
            })?;
            let text = String::from_utf8(text).map_err(|_| {
                EvalError::unsupported(format!("the non-UTF-8 file '{}'", p.display()))
            })?;
            Value::str(text)
        }
        // As Nix: the directory itself is reached through symlinks, its entries are not
        // (a symlink is "symlink", whatever it points to).
        B::ReadDir => {
            let p = path_arg(ev, arg(0)?)?;
            let failed = |e: std::io::Error| {
                EvalError::new(format!(
                    "opening directory '{}': {}",
                    p.display(),
                    io_message(&e)
                ))
            };
            let mut set = Attrs::new();
            for entry in std::fs::read_dir(&p).map_err(failed)? {
                let entry = entry.map_err(failed)?;
                let name = entry.file_name().into_string().map_err(|name| {
                    EvalError::unsupported(format!(
                        "the non-UTF-8 file name {name:?} in '{}'",
                        p.display()
                    ))
                })?;
                let t = entry.file_type().map_err(failed)?;
                let kind = if t.is_symlink() {
                    "symlink"
                } else if t.is_dir() {
                    "directory"
                } else if t.is_file() {
                    "regular"
                } else {
                    "unknown"
                };
                let kind = ev.done(Value::str(kind));
                set.insert(Rc::from(name), kind);
            }
            attrs(set)
        }
        B::PathExists => {
            let p = path_arg(ev, arg(0)?)?;
            Value::Bool(p.exists())
        }
        B::FromJson => {
            let s = ev.force_str(arg(0)?)?;
            let j: serde_json::Value = serde_json::from_str(&s)
                .map_err(|e| EvalError::new(format!("while decoding JSON: {e}")))?;
            from_json(ev, &j)
        }
        B::ToJson => {
            let v = ev.force(arg(0)?)?;
            let j = ev.json_value(&v)?;
            Value::str(j.to_string())
        }
        B::Split => {
            let re = ev.force_str(arg(0)?)?;
            let s = ev.force_str(arg(1)?)?;
            let re = strings::compile_regex(&re, false)
                .map_err(|e| EvalError::unsupported(e.to_string()))?;
            let items = strings::split(&re, &s)
                .into_iter()
                .map(|item| match item {
                    strings::SplitItem::Text(t) => ev.done(Value::str(t)),
                    strings::SplitItem::Groups(g) => {
                        let v = groups(ev, g);
                        ev.done(v)
                    }
                })
                .collect();
            list(items)
        }
        B::Match => {
            let re = ev.force_str(arg(0)?)?;
            let s = ev.force_str(arg(1)?)?;
            let re = strings::compile_regex(&re, true)
                .map_err(|e| EvalError::unsupported(e.to_string()))?;
            match strings::full_match(&re, &s) {
                Some(g) => groups(ev, g),
                None => Value::Null,
            }
        }
        B::ReplaceStrings => {
            let from = ev.force_list(arg(0)?)?;
            let to = ev.force_list(arg(1)?)?;
            if from.len() != to.len() {
                return Err(EvalError::new(
                    "'from' and 'to' arguments to 'replaceStrings' have different lengths",
                ));
            }
            let s = ev.force_str(arg(2)?)?;
            let mut f = Vec::with_capacity(from.len());
            for t in from.iter() {
                f.push(ev.force_str(*t)?.to_string());
            }
            let mut r = Vec::with_capacity(to.len());
            for t in to.iter() {
                r.push(ev.force_str(*t)?.to_string());
            }
            // At most every position of `s` replaced by the longest replacement.
            let longest = r.iter().map(String::len).max().unwrap_or(0);
            ev.charge((s.len() + 1).saturating_mul(longest + 1))?;
            Value::str(strings::replace_strings(&f, &r, &s))
        }
        B::HasAttr => {
            let name = ev.force_str(arg(0)?)?;
            Value::Bool(ev.force_attrs(arg(1)?)?.contains_key(&name))
        }
        B::GetAttr => {
            let name = ev.force_str(arg(0)?)?;
            let set = ev.force_attrs(arg(1)?)?;
            match set.get(&name) {
                Some(&t) => ev.force(t)?,
                None => return Err(EvalError::new(format!("attribute '{name}' missing"))),
            }
        }
        B::CatAttrs => {
            let name = ev.force_str(arg(0)?)?;
            let items = ev.force_list(arg(1)?)?;
            let mut out = Vec::new();
            for item in items.iter() {
                if let Some(&t) = ev.force_attrs(*item)?.get(&name) {
                    out.push(t);
                }
            }
            list(out)
        }
        B::IntersectAttrs => {
            let a1 = ev.force_attrs(arg(0)?)?;
            let a2 = ev.force_attrs(arg(1)?)?;
            attrs(
                a2.iter()
                    .filter(|(k, _)| a1.contains_key(*k))
                    .map(|(k, v)| (k.clone(), *v))
                    .collect(),
            )
        }
        B::ConcatStringsSep => {
            let sep = ev.force_str(arg(0)?)?;
            let items = ev.force_list(arg(1)?)?;
            let mut out = String::new();
            for (i, t) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(&sep);
                }
                let v = ev.force(*t)?;
                out.push_str(&ev.coerce(&v, Coerce::Interpolate)?);
            }
            Value::str(out)
        }
        B::StringLength => {
            let v = ev.force(arg(0)?)?;
            Value::Int(ev.coerce(&v, Coerce::Interpolate)?.len() as i64)
        }
        B::Substring => {
            let start = ev.force_int(arg(0)?)?;
            let len = ev.force_int(arg(1)?)?;
            let v = ev.force(arg(2)?)?;
            let s = ev.coerce(&v, Coerce::Interpolate)?;
            if start < 0 {
                return Err(EvalError::new("negative start position in 'substring'"));
            }
            let bytes = s.as_bytes();
            let start = usize::try_from(start)
                .unwrap_or(usize::MAX)
                .min(bytes.len());
            let end = if len < 0 {
                bytes.len()
            } else {
                start
                    .saturating_add(usize::try_from(len).unwrap_or(usize::MAX))
                    .min(bytes.len())
            };
            Value::str(String::from_utf8_lossy(&bytes[start..end]).into_owned())
        }
        B::Add | B::Sub | B::Mul | B::Div | B::LessThan => {
            let l = ev.force(arg(0)?)?;
            let r = ev.force(arg(1)?)?;
            use rnix::ast::BinOpKind as K;
            let op = match b {
                B::Add => K::Add,
                B::Sub => K::Sub,
                B::Mul => K::Mul,
                B::Div => K::Div,
                _ => K::Less,
            };
            ev.binary(op, l, r)?
        }
        B::Seq => {
            ev.force(arg(0)?)?;
            ev.force(arg(1)?)?
        }
        B::DeepSeq => {
            let v = ev.force(arg(0)?)?;
            ev.deep_force(&v)?;
            ev.force(arg(1)?)?
        }
        B::TryEval => match ev.force(arg(0)?) {
            Ok(v) => {
                let ok = ev.done(Value::Bool(true));
                let val = ev.done(v);
                attrs(Attrs::from([
                    (Rc::from("success"), ok),
                    (Rc::from("value"), val),
                ]))
            }
            Err(e) if matches!(e.kind, ErrorKind::Throw | ErrorKind::Assert) => {
                let f = ev.done(Value::Bool(false));
                attrs(Attrs::from([
                    (Rc::from("success"), f),
                    (Rc::from("value"), f),
                ]))
            }
            Err(e) => return Err(e),
        },
        B::Sort => {
            let f = ev.force(arg(0)?)?;
            let items = ev.force_list(arg(1)?)?;
            list(merge_sort(ev, &f, &items)?)
        }
    })
    .map_err(|e: EvalError| {
        if e.kind == ErrorKind::Eval && e.message == "missing argument" {
            EvalError::new(format!("internal error in builtins.{}", b.name()))
        } else {
            e
        }
    })
}

fn groups(ev: &mut Evaluator, g: Vec<Option<String>>) -> Value {
    list(
        g.into_iter()
            .map(|s| ev.done(s.map_or(Value::Null, Value::str)))
            .collect(),
    )
}

/// A stable merge sort with a fallible "less than" (Nix's `sort` is stable).
fn merge_sort(ev: &mut Evaluator, less: &Value, items: &[ThunkId]) -> R<Vec<ThunkId>> {
    if items.len() <= 1 {
        return Ok(items.to_vec());
    }
    let mid = items.len() / 2;
    let left = merge_sort(ev, less, &items[..mid])?;
    let right = merge_sort(ev, less, &items[mid..])?;
    let mut out = Vec::with_capacity(items.len());
    let (mut i, mut j) = (0, 0);
    while i < left.len() && j < right.len() {
        let right_first = match ev.call_values(less, &[right[j], left[i]])? {
            Value::Bool(b) => b,
            other => return Err(EvalError::expected("a Boolean", &other)),
        };
        if right_first {
            out.push(right[j]);
            j += 1;
        } else {
            out.push(left[i]);
            i += 1;
        }
    }
    out.extend_from_slice(&left[i..]);
    out.extend_from_slice(&right[j..]);
    Ok(out)
}

fn from_json(ev: &mut Evaluator, j: &serde_json::Value) -> Value {
    use serde_json::Value as J;
    match j {
        J::Null => Value::Null,
        J::Bool(b) => Value::Bool(*b),
        J::Number(n) => match n.as_i64() {
            Some(i) => Value::Int(i),
            None => Value::Float(n.as_f64().unwrap_or(f64::NAN)),
        },
        J::String(s) => Value::str(s.as_str()),
        J::Array(a) => {
            let items = a
                .iter()
                .map(|x| {
                    let v = from_json(ev, x);
                    ev.done(v)
                })
                .collect();
            list(items)
        }
        J::Object(o) => {
            let mut out = Attrs::new();
            for (k, x) in o {
                let v = from_json(ev, x);
                let t = ev.done(v);
                out.insert(Rc::from(k.as_str()), t);
            }
            attrs(out)
        }
    }
}
