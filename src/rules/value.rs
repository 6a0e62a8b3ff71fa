//! Runtime values of the builtin evaluator.
//!
//! Thunks and environments live in arenas owned by the evaluator and are referred to by
//! index, so self-referencing values (`rec`, `let`, `attrValues` of a set inside itself)
//! never form reference-counted cycles: everything is freed when the evaluator is dropped.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::rc::Rc;

use super::builtins::Builtin;

/// Index of a thunk in the evaluator's arena.
pub type ThunkId = usize;
/// Index of an environment in the evaluator's arena.
pub type EnvId = usize;
/// Index of a source file known to the evaluator.
pub type FileId = usize;

/// A place in a source file: the file and a byte offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pos {
    pub file: FileId,
    pub offset: usize,
}

/// Attribute set: sorted by name (byte order), as Nix orders them for `attrNames` and JSON.
pub type Attrs = BTreeMap<Rc<str>, ThunkId>;

#[derive(Clone)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(Rc<str>),
    Path(Rc<PathBuf>),
    List(Rc<Vec<ThunkId>>),
    Attrs(Rc<Attrs>),
    Lambda(Rc<Closure>),
    Builtin(Rc<PartialBuiltin>),
}

/// A lambda together with the environment it closes over.
pub struct Closure {
    pub lambda: rnix::ast::Lambda,
    pub env: EnvId,
}

/// A builtin applied to fewer arguments than it takes.
pub struct PartialBuiltin {
    pub builtin: Builtin,
    pub args: Vec<ThunkId>,
}

impl Value {
    /// Nix's wording for the type, as used in "value is X while Y was expected".
    pub fn type_phrase(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "a Boolean",
            Value::Int(_) => "an integer",
            Value::Float(_) => "a float",
            Value::Str(_) => "a string",
            Value::Path(_) => "a path",
            Value::List(_) => "a list",
            Value::Attrs(_) => "a set",
            Value::Lambda(_) => "a function",
            Value::Builtin(_) => "a built-in function",
        }
    }

    /// `builtins.typeOf`.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "bool",
            Value::Int(_) => "int",
            Value::Float(_) => "float",
            Value::Str(_) => "string",
            Value::Path(_) => "path",
            Value::List(_) => "list",
            Value::Attrs(_) => "set",
            Value::Lambda(_) | Value::Builtin(_) => "lambda",
        }
    }

    pub fn str(s: impl Into<Rc<str>>) -> Value {
        Value::Str(s.into())
    }
}

/// What a thunk holds: a suspended computation, a marker that it is being computed (a
/// second visit means infinite recursion), or its value.
pub enum ThunkState {
    /// `expr` in `env`.
    Expr {
        expr: rnix::ast::Expr,
        env: EnvId,
    },
    /// `f` applied to `args`, in order.
    Apply {
        f: Value,
        args: Vec<ThunkId>,
    },
    /// Attribute `name` of the set `of` evaluates to (`inherit (of) name`, at `at`).
    Attr {
        of: ThunkId,
        name: Rc<str>,
        at: Option<Pos>,
    },
    /// Variable `name` looked up in `env` (used by `inherit`).
    Var {
        name: Rc<str>,
        env: EnvId,
        at: Option<Pos>,
    },
    /// A builtin Nix has and the builtin evaluator does not implement (its name under
    /// `builtins`): forcing it is an "unsupported" error, which `Auto` mode hands to Nix.
    Unsupported(Rc<str>),
    /// Being forced right now (the black hole).
    Forcing,
    Done(Value),
}

/// One scope of variables.
pub enum Scope {
    /// Lexical bindings: `let`, `rec`, lambda parameters, the global builtins.
    Vars(std::collections::HashMap<Rc<str>, ThunkId>),
    /// A `with` namespace, forced only when a lookup falls through every lexical scope.
    With(ThunkId),
}

pub struct Env {
    pub scope: Scope,
    pub parent: Option<EnvId>,
    /// The file whose expressions are evaluated in this environment (`None` for globals).
    pub file: Option<FileId>,
}
