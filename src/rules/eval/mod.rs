//! The builtin lazy evaluator over the rnix AST, for the subset of Nix rules files use.
//!
//! Invariants: every expression is evaluated in an environment created for its own file
//! (so an error's position is the node's offset in that environment's file); a thunk being
//! forced is a black hole, so a second visit reports infinite recursion instead of looping;
//! evaluation depth is bounded (by [`MAX_DEPTH`] or less), so deep recursion is an error, never a
//! stack overflow (the caller runs evaluation on a thread with a stack sized for it).

use std::collections::{HashMap, HashSet};
use std::path::{Component, Path, PathBuf};
use std::rc::Rc;

use rnix::ast;
use rowan::ast::AstNode;

mod attrs;
mod ops;

use super::builtins;
use super::nix_builtins::{self, Reach};
use super::strings::{self, Piece};
use super::syntax;
use super::value::{
    Attrs, Closure, Env, EnvId, PartialBuiltin, Pos, Scope, ThunkId, ThunkState, Value,
};

/// Deepest nesting of evaluation steps (expression evaluation, thunk forcing, deep
/// conversion) before evaluation stops with an error, by default.
pub const MAX_DEPTH: usize = 10_000;

/// How many bytes one evaluation may allocate by default ([`Evaluator::with_budget`]): far
/// above what any fleet's rules use (a rules file importing all of nixpkgs' `lib` stays
/// under a tenth of it), far below what would exhaust a machine.
pub const DEFAULT_BUDGET: usize = 256 << 20;

/// What a thunk, an environment, a list element and an attribute cost against the budget
/// (their size, and a scope's map for an environment).
const THUNK_COST: usize = std::mem::size_of::<ThunkState>();
const ENV_COST: usize = std::mem::size_of::<Env>() + 64;
const ITEM_COST: usize = std::mem::size_of::<ThunkId>();
const ATTR_COST: usize = 48;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    Eval,
    /// Outside the builtin evaluator's subset: `Auto` mode falls back to Nix.
    Unsupported,
    /// `throw` (catchable by `tryEval`).
    Throw,
    /// A failed `assert` (catchable by `tryEval`).
    Assert,
    /// The evaluation exceeded its memory budget: an error for the whole file, never a
    /// fallback to Nix (which would take all the memory instead).
    Budget,
}

#[derive(Debug, Clone)]
pub struct EvalError {
    pub kind: ErrorKind,
    pub message: String,
    pub pos: Option<Pos>,
}

impl EvalError {
    pub fn new(message: impl Into<String>) -> Self {
        EvalError {
            kind: ErrorKind::Eval,
            message: message.into(),
            pos: None,
        }
    }

    pub fn unsupported(what: impl Into<String>) -> Self {
        EvalError {
            kind: ErrorKind::Unsupported,
            message: what.into(),
            pos: None,
        }
    }

    pub fn expected(what: &str, got: &Value) -> Self {
        EvalError::new(format!(
            "value is {} while {what} was expected",
            got.type_phrase()
        ))
    }

    /// Sets the position unless a more precise (inner) one is already known.
    pub fn or_at(mut self, pos: Option<Pos>) -> Self {
        if self.pos.is_none() {
            self.pos = pos;
        }
        self
    }
}

pub type R<T> = Result<T, EvalError>;

/// A file the evaluator has read.
pub struct SourceFile {
    /// How to name the file in messages.
    pub display: PathBuf,
    /// Absolute, canonical-form path (relative paths in the file resolve against its parent).
    pub path: PathBuf,
    pub text: String,
    /// Byte offsets where lines start, for positions in messages.
    line_starts: Vec<usize>,
}

/// How a value is turned into a string.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Coerce {
    /// `"${x}"`, `+` on strings, `concatStringsSep`: strings, and sets with `__toString` or
    /// `outPath`. A path would be copied to the store, which the builtin evaluator does not do.
    Interpolate,
    /// Like `Interpolate`, but a path is its own name (`baseNameOf`, `dirOf`).
    PathAsIs,
    /// `toString`: also numbers, Booleans, null and lists.
    ToString,
}

pub struct Evaluator {
    pub files: Vec<SourceFile>,
    envs: Vec<Env>,
    thunks: Vec<ThunkState>,
    imports: HashMap<PathBuf, ThunkId>,
    global_env: EnvId,
    builtins_set: Rc<Attrs>,
    depth: usize,
    max_depth: usize,
    /// The directory the root file was named from, to name imported files relative to it.
    root_dirs: Option<(PathBuf, PathBuf)>,
    /// Definition positions of attribute values, for naming where a bad rule is.
    defined_at: HashMap<ThunkId, Pos>,
    /// Bytes the evaluation may allocate ([`DEFAULT_BUDGET`]).
    budget: usize,
    /// Bytes charged for strings, lists, sets and JSON made so far (thunks and environments
    /// are counted from their arenas).
    charged: usize,
}

fn req<T>(node: Option<T>) -> R<T> {
    node.ok_or_else(|| EvalError::new("malformed expression"))
}

fn ident_name(ident: &ast::Ident) -> Rc<str> {
    Rc::from(ident.syntax().text().to_string())
}

/// `p` with `.` and `..` resolved lexically (Nix's `canonPath`; symlinks are not followed).
pub fn canon_path(p: &Path) -> PathBuf {
    let mut out = PathBuf::from("/");
    for c in p.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::Normal(n) => out.push(n),
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    out
}

/// An I/O error without Rust's "(os error N)" suffix.
pub fn io_message(e: &std::io::Error) -> String {
    let s = e.to_string();
    match s.find(" (os error") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}

impl Default for Evaluator {
    fn default() -> Self {
        Self::new()
    }
}

impl Evaluator {
    pub fn new() -> Self {
        let mut ev = Evaluator {
            files: Vec::new(),
            envs: Vec::new(),
            thunks: Vec::new(),
            imports: HashMap::new(),
            global_env: 0,
            builtins_set: Rc::new(Attrs::new()),
            depth: 0,
            max_depth: MAX_DEPTH,
            root_dirs: None,
            defined_at: HashMap::new(),
            budget: DEFAULT_BUDGET,
            charged: 0,
        };
        // Every name Nix's `builtins` has, reachable as Nix reaches it: what is not
        // implemented is there too, and raises "unsupported" when forced.
        let mut set = Attrs::new();
        let mut globals = HashMap::new();
        // `builtins.builtins` is the set itself: filled in once the set is complete.
        let bt = ev.done(Value::Null);
        for (name, reach) in nix_builtins::NAMES {
            let t = match *name {
                "builtins" => bt,
                "true" => ev.done(Value::Bool(true)),
                "false" => ev.done(Value::Bool(false)),
                "null" => ev.done(Value::Null),
                _ => match builtins::TABLE.iter().find(|(n, _, _)| n == name) {
                    Some((_, builtin, _)) => ev.done(Value::Builtin(Rc::new(PartialBuiltin {
                        builtin: *builtin,
                        args: Vec::new(),
                    }))),
                    None => ev.lazy(ThunkState::Unsupported(Rc::from(*name))),
                },
            };
            set.insert(Rc::from(*name), t);
            let global: Rc<str> = match reach {
                Reach::Global => Rc::from(*name),
                Reach::Prefixed => Rc::from(format!("__{name}")),
            };
            globals.insert(global, t);
        }
        let set = Rc::new(set);
        ev.builtins_set = set.clone();
        ev.thunks[bt] = ThunkState::Done(Value::Attrs(set));
        ev.envs.push(Env {
            scope: Scope::Vars(globals),
            parent: None,
            file: None,
        });
        ev.global_env = ev.envs.len() - 1;
        ev
    }

    /// An evaluator that stops at `max_depth` nested evaluation steps.
    pub fn with_max_depth(max_depth: usize) -> Self {
        Evaluator {
            max_depth,
            ..Self::new()
        }
    }

    /// The same evaluator, allowed to allocate `budget` bytes: past it, evaluation stops
    /// with "evaluation exceeds …" (a rules file that doubles a list 40 times would
    /// otherwise take all memory).
    pub fn with_budget(self, budget: usize) -> Self {
        Evaluator { budget, ..self }
    }

    // ---- budget -------------------------------------------------------------------------

    /// Bytes used so far: the arenas, and what was charged.
    fn used(&self) -> usize {
        (self.thunks.len() * THUNK_COST)
            .saturating_add(self.envs.len() * ENV_COST)
            .saturating_add(self.charged)
    }

    /// Counts `bytes` about to be allocated; an error once the budget is exceeded.
    pub fn charge(&mut self, bytes: usize) -> R<()> {
        self.charged = self.charged.saturating_add(bytes);
        self.check_budget()
    }

    /// [`Self::charge`] for `n` list elements.
    pub fn charge_items(&mut self, n: usize) -> R<()> {
        self.charge(n.saturating_mul(ITEM_COST))
    }

    /// [`Self::charge`] for `n` lazy values (thunks) about to be made.
    pub fn charge_thunks(&mut self, n: usize) -> R<()> {
        self.charge(n.saturating_mul(THUNK_COST))
    }

    /// [`Self::charge`] for the top level of `v`, just made.
    fn charge_value(&mut self, v: &Value) -> R<()> {
        match v {
            Value::Str(s) => self.charge(s.len()),
            Value::List(l) => self.charge_items(l.len()),
            Value::Attrs(a) => self.charge(a.len().saturating_mul(ATTR_COST)),
            _ => self.check_budget(),
        }
    }

    fn check_budget(&self) -> R<()> {
        if self.used() > self.budget {
            return Err(EvalError {
                kind: ErrorKind::Budget,
                pos: None,
                message: format!(
                    "evaluation exceeds its memory budget of {} MiB (a list or string that \
                     keeps doubling?); set {} to a number of MiB to allow more",
                    self.budget >> 20,
                    super::BUDGET_ENV
                ),
            });
        }
        Ok(())
    }

    // ---- arenas -------------------------------------------------------------------------

    pub fn done(&mut self, v: Value) -> ThunkId {
        self.thunks.push(ThunkState::Done(v));
        self.thunks.len() - 1
    }

    pub fn lazy(&mut self, state: ThunkState) -> ThunkId {
        self.thunks.push(state);
        self.thunks.len() - 1
    }

    fn thunk_expr(&mut self, expr: ast::Expr, env: EnvId) -> ThunkId {
        // Literals need no suspension.
        if let ast::Expr::Literal(_) | ast::Expr::Lambda(_) = &expr {
            if let Ok(v) = self.eval(&expr, env) {
                return self.done(v);
            }
        }
        self.lazy(ThunkState::Expr { expr, env })
    }

    fn child_env(&mut self, parent: EnvId, scope: Scope) -> EnvId {
        let file = self.envs[parent].file;
        self.envs.push(Env {
            scope,
            parent: Some(parent),
            file,
        });
        self.envs.len() - 1
    }

    fn pos(&self, node: &rnix::SyntaxNode, env: EnvId) -> Option<Pos> {
        self.envs[env].file.map(|file| Pos {
            file,
            offset: node.text_range().start().into(),
        })
    }

    /// `file:line:col` of a position.
    pub fn locate(&self, pos: Pos) -> (PathBuf, usize, usize) {
        match self.files.get(pos.file) {
            Some(f) => {
                let (l, c) = syntax::line_col_indexed(&f.text, &f.line_starts, pos.offset);
                (f.display.clone(), l, c)
            }
            None => (PathBuf::new(), 0, 0),
        }
    }

    fn show_pos(&self, pos: Option<Pos>) -> String {
        match pos {
            Some(p) => {
                let (f, l, c) = self.locate(p);
                format!("{}:{l}:{c}", f.display())
            }
            None => "an unknown position".into(),
        }
    }

    fn enter(&mut self) -> R<()> {
        self.check_budget()?;
        if self.depth >= self.max_depth {
            return Err(EvalError::new(format!(
                "evaluation nested too deeply (more than {} levels; infinite recursion?)",
                self.max_depth
            )));
        }
        self.depth += 1;
        Ok(())
    }

    fn leave(&mut self) {
        self.depth -= 1;
    }

    // ---- files --------------------------------------------------------------------------

    /// Evaluates the rules file `path` (as the user named it), whose contents are `text`,
    /// to weak head normal form.
    pub fn eval_root(&mut self, path: &Path, text: String) -> R<Value> {
        let abs = if path.is_absolute() {
            path.to_path_buf()
        } else {
            let cwd = std::env::current_dir()
                .map_err(|e| EvalError::new(format!("current directory: {}", io_message(&e))))?;
            cwd.join(path)
        };
        let abs = canon_path(&abs);
        let given_dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let abs_dir = abs.parent().map(Path::to_path_buf).unwrap_or_default();
        self.root_dirs = Some((abs_dir, given_dir));
        self.load_file(abs, Some(text))
    }

    fn display_name(&self, abs: &Path) -> PathBuf {
        if let Some((abs_dir, given_dir)) = &self.root_dirs {
            if let Ok(rel) = abs.strip_prefix(abs_dir) {
                return given_dir.join(rel);
            }
        }
        abs.to_path_buf()
    }

    /// `import path`: evaluated once per file, cached.
    pub fn import(&mut self, path: &Path) -> R<Value> {
        let path = if path.is_dir() {
            path.join("default.nix")
        } else {
            path.to_path_buf()
        };
        self.load_file(path, None)
    }

    fn load_file(&mut self, path: PathBuf, text: Option<String>) -> R<Value> {
        if let Some(&t) = self.imports.get(&path) {
            return self.force(t);
        }
        let display = self.display_name(&path);
        let text = match text {
            Some(t) => t,
            None => std::fs::read_to_string(&path).map_err(|e| {
                EvalError::new(format!(
                    "cannot import '{}': {}",
                    display.display(),
                    io_message(&e)
                ))
            })?,
        };
        let line_starts = syntax::line_starts(&text);
        self.files.push(SourceFile {
            display,
            path: path.clone(),
            text,
            line_starts,
        });
        let file = self.files.len() - 1;
        let expr = syntax::parse(&self.files[file].text).map_err(|e| EvalError {
            kind: ErrorKind::Eval,
            message: e.message,
            pos: Some(Pos {
                file,
                offset: e.offset,
            }),
        })?;
        self.envs.push(Env {
            scope: Scope::Vars(HashMap::new()),
            parent: Some(self.global_env),
            file: Some(file),
        });
        let env = self.envs.len() - 1;
        let t = self.lazy(ThunkState::Expr { expr, env });
        self.imports.insert(path, t);
        self.force(t)
    }

    // ---- forcing ------------------------------------------------------------------------

    /// The value of a thunk, computing it once.
    pub fn force(&mut self, t: ThunkId) -> R<Value> {
        match self.thunks.get(t) {
            Some(ThunkState::Done(v)) => return Ok(v.clone()),
            Some(ThunkState::Forcing) => {
                return Err(EvalError::new("infinite recursion encountered"))
            }
            Some(_) => {}
            None => return Err(EvalError::new("internal error: unknown thunk")),
        }
        self.enter()?;
        let state = std::mem::replace(&mut self.thunks[t], ThunkState::Forcing);
        let result = match &state {
            ThunkState::Expr { expr, env } => self.eval(expr, *env),
            ThunkState::Apply { f, args } => self.apply_all(f.clone(), args),
            ThunkState::Attr { of, name, at } => self
                .force(*of)
                .and_then(|v| match v {
                    Value::Attrs(set) => match set.get(name) {
                        Some(&t) => self.force(t),
                        None => Err(EvalError::new(format!("attribute '{name}' missing"))),
                    },
                    other => Err(EvalError::expected("a set", &other)),
                })
                .map_err(|e| e.or_at(*at)),
            ThunkState::Var { name, env, at } => self.lookup(name, *env).map_err(|e| e.or_at(*at)),
            ThunkState::Unsupported(name) => {
                Err(EvalError::unsupported(format!("builtins.{name}")))
            }
            ThunkState::Forcing | ThunkState::Done(_) => {
                Err(EvalError::new("internal error: thunk state"))
            }
        };
        self.leave();
        match result {
            Ok(v) => {
                self.thunks[t] = ThunkState::Done(v.clone());
                Ok(v)
            }
            Err(e) => {
                // Forcing again re-raises the error rather than reporting recursion.
                self.thunks[t] = state;
                Err(e)
            }
        }
    }

    pub fn force_attrs(&mut self, t: ThunkId) -> R<Rc<Attrs>> {
        match self.force(t)? {
            Value::Attrs(s) => Ok(s),
            other => Err(EvalError::expected("a set", &other)),
        }
    }

    pub fn force_list(&mut self, t: ThunkId) -> R<Rc<Vec<ThunkId>>> {
        match self.force(t)? {
            Value::List(l) => Ok(l),
            other => Err(EvalError::expected("a list", &other)),
        }
    }

    pub fn force_str(&mut self, t: ThunkId) -> R<Rc<str>> {
        match self.force(t)? {
            Value::Str(s) => Ok(s),
            other => Err(EvalError::expected("a string", &other)),
        }
    }

    pub fn force_int(&mut self, t: ThunkId) -> R<i64> {
        match self.force(t)? {
            Value::Int(i) => Ok(i),
            other => Err(EvalError::expected("an integer", &other)),
        }
    }

    // ---- application --------------------------------------------------------------------

    fn apply_all(&mut self, mut f: Value, args: &[ThunkId]) -> R<Value> {
        for &a in args {
            f = self.apply(f, a)?;
        }
        Ok(f)
    }

    /// Calls `f` with `arg`.
    pub fn apply(&mut self, f: Value, arg: ThunkId) -> R<Value> {
        match f {
            Value::Lambda(c) => self.call_lambda(&c, arg),
            Value::Builtin(p) => {
                let mut args = p.args.clone();
                args.push(arg);
                if args.len() >= p.builtin.arity() {
                    let v = builtins::call(self, p.builtin, &args)?;
                    self.charge_value(&v)?;
                    Ok(v)
                } else {
                    Ok(Value::Builtin(Rc::new(PartialBuiltin {
                        builtin: p.builtin,
                        args,
                    })))
                }
            }
            Value::Attrs(set) if set.contains_key("__functor") => {
                let functor = self.force(set["__functor"])?;
                let me = self.done(Value::Attrs(set));
                let g = self.apply(functor, me)?;
                self.apply(g, arg)
            }
            other => Err(EvalError::new(format!(
                "attempt to call something which is not a function but {}",
                other.type_phrase()
            ))),
        }
    }

    /// Calls `f` with already computed arguments.
    pub fn call_values(&mut self, f: &Value, args: &[ThunkId]) -> R<Value> {
        self.apply_all(f.clone(), args)
    }

    fn call_lambda(&mut self, c: &Closure, arg: ThunkId) -> R<Value> {
        let param = req(c.lambda.param())?;
        let body = req(c.lambda.body())?;
        let env = match param {
            ast::Param::IdentParam(p) => {
                let name = ident_name(&req(p.ident())?);
                let mut vars = HashMap::new();
                vars.insert(name, arg);
                self.child_env(c.env, Scope::Vars(vars))
            }
            ast::Param::Pattern(p) => {
                let at = self.pos(c.lambda.syntax(), c.env);
                let set = self.force_attrs(arg).map_err(|e| e.or_at(at))?;
                let env = self.child_env(c.env, Scope::Vars(HashMap::new()));
                let mut vars = HashMap::new();
                let mut names = HashSet::new();
                for entry in p.pat_entries() {
                    let name = ident_name(&req(entry.ident())?);
                    names.insert(name.clone());
                    let t = match set.get(&name) {
                        Some(&t) => t,
                        None => match entry.default() {
                            Some(d) => self.thunk_expr(d, env),
                            None => {
                                return Err(EvalError::new(format!(
                                    "function 'anonymous lambda' called without required argument '{name}'"
                                ))
                                .or_at(at))
                            }
                        },
                    };
                    vars.insert(name, t);
                }
                if p.ellipsis_token().is_none() {
                    if let Some(extra) = set.keys().find(|k| !names.contains(*k)) {
                        return Err(EvalError::new(format!(
                            "function 'anonymous lambda' called with unexpected argument '{extra}'"
                        ))
                        .or_at(at));
                    }
                }
                if let Some(bind) = p.pat_bind() {
                    vars.insert(ident_name(&req(bind.ident())?), arg);
                }
                self.envs[env].scope = Scope::Vars(vars);
                env
            }
        };
        self.eval(&body, env)
    }

    // ---- variables ----------------------------------------------------------------------

    fn lookup(&mut self, name: &str, env: EnvId) -> R<Value> {
        let mut withs = Vec::new();
        let mut cur = Some(env);
        while let Some(e) = cur {
            match &self.envs[e].scope {
                Scope::Vars(vars) => {
                    if let Some(&t) = vars.get(name) {
                        return self.force(t);
                    }
                }
                Scope::With(t) => withs.push(*t),
            }
            cur = self.envs[e].parent;
        }
        for w in withs {
            let set = self.force_attrs(w)?;
            if let Some(&t) = set.get(name) {
                return self.force(t);
            }
        }
        // Nix parses `__curPos` as the position of the expression, not a variable.
        if name == "__curPos" {
            return Err(EvalError::unsupported("__curPos"));
        }
        Err(EvalError::new(format!("undefined variable '{name}'")))
    }

    // ---- expressions --------------------------------------------------------------------

    /// Evaluates `expr` in `env` to weak head normal form.
    pub fn eval(&mut self, expr: &ast::Expr, env: EnvId) -> R<Value> {
        let r = match self.enter() {
            Ok(()) => {
                let r = self.eval_inner(expr, env);
                self.leave();
                r
            }
            Err(e) => Err(e),
        };
        r.map_err(|e| e.or_at(self.pos(expr.syntax(), env)))
    }

    fn eval_bool(&mut self, expr: &ast::Expr, env: EnvId) -> R<bool> {
        match self.eval(expr, env)? {
            Value::Bool(b) => Ok(b),
            other => {
                Err(EvalError::expected("a Boolean", &other).or_at(self.pos(expr.syntax(), env)))
            }
        }
    }

    fn eval_inner(&mut self, expr: &ast::Expr, env: EnvId) -> R<Value> {
        use ast::Expr as E;
        match expr {
            E::Apply(a) => {
                let f = self.eval(&req(a.lambda())?, env)?;
                let arg = self.thunk_expr(req(a.argument())?, env);
                self.apply(f, arg)
            }
            E::Assert(a) => {
                let cond = req(a.condition())?;
                if self.eval_bool(&cond, env)? {
                    self.eval(&req(a.body())?, env)
                } else {
                    Err(EvalError {
                        kind: ErrorKind::Assert,
                        message: format!("assertion '{}' failed", cond.syntax().text()),
                        pos: self.pos(a.syntax(), env),
                    })
                }
            }
            E::IfElse(i) => {
                if self.eval_bool(&req(i.condition())?, env)? {
                    self.eval(&req(i.body())?, env)
                } else {
                    self.eval(&req(i.else_body())?, env)
                }
            }
            E::Select(s) => self.eval_select(s, env),
            E::Str(s) => self.eval_str(s, env).map(Value::str),
            E::PathAbs(_) | E::PathRel(_) | E::PathHome(_) | E::PathSearch(_) => {
                self.eval_path(expr.syntax(), env)
            }
            E::CurPos(_) => Err(EvalError::unsupported("__curPos")),
            E::Literal(l) => match l.kind() {
                ast::LiteralKind::Integer(i) => i
                    .value()
                    .map(Value::Int)
                    .map_err(|_| EvalError::new("integer literal out of range")),
                ast::LiteralKind::Float(f) => f
                    .value()
                    .map(Value::Float)
                    .map_err(|_| EvalError::new("invalid float literal")),
                ast::LiteralKind::Uri(u) => Ok(Value::str(rnix::ast::AstToken::syntax(&u).text())),
            },
            E::Lambda(l) => Ok(Value::Lambda(Rc::new(Closure {
                lambda: l.clone(),
                env,
            }))),
            E::LegacyLet(_) => Err(EvalError::unsupported("the legacy 'let { … }' syntax")),
            E::LetIn(l) => {
                let (inner, _) = self.bind_recursive(l, env, true)?;
                self.eval(&req(l.body())?, inner)
            }
            E::List(l) => {
                let items = l.items().map(|i| self.thunk_expr(i, env)).collect();
                Ok(Value::List(Rc::new(items)))
            }
            E::BinOp(b) => self.eval_binop(b, env),
            E::Paren(p) => self.eval(&req(p.expr())?, env),
            E::Root(r) => self.eval(&req(r.expr())?, env),
            E::AttrSet(s) => {
                if s.rec_token().is_some() {
                    let (_, attrs) = self.bind_recursive(s, env, false)?;
                    Ok(Value::Attrs(Rc::new(attrs)))
                } else {
                    let attrs = self.build_attrs(s, env)?;
                    Ok(Value::Attrs(Rc::new(attrs)))
                }
            }
            E::UnaryOp(u) => {
                let operand = req(u.expr())?;
                match req(u.operator())? {
                    ast::UnaryOpKind::Invert => Ok(Value::Bool(!self.eval_bool(&operand, env)?)),
                    ast::UnaryOpKind::Negate => match self.eval(&operand, env)? {
                        Value::Int(i) => i
                            .checked_neg()
                            .map(Value::Int)
                            .ok_or_else(|| EvalError::new("integer overflow")),
                        Value::Float(f) => Ok(Value::Float(-f)),
                        other => Err(EvalError::expected("an integer", &other)),
                    },
                }
            }
            E::Ident(i) => match i.syntax().first_token() {
                // The token's text is borrowed from the tree: no allocation per lookup.
                Some(tok) => self.lookup(tok.text(), env),
                None => Err(EvalError::new("malformed identifier")),
            },
            E::With(w) => {
                let ns = self.thunk_expr(req(w.namespace())?, env);
                let inner = self.child_env(env, Scope::With(ns));
                self.eval(&req(w.body())?, inner)
            }
            E::HasAttr(h) => {
                // As Nix: each set on the path is forced, the value found last is not
                // (`{ a = throw "x"; } ? a` is true).
                let mut v = self.eval(&req(h.expr())?, env)?;
                let mut attrs = req(h.attrpath())?.attrs().peekable();
                while let Some(attr) = attrs.next() {
                    let Some(name) = self.attr_key(&attr, env)? else {
                        return Ok(Value::Bool(false));
                    };
                    match &v {
                        Value::Attrs(set) => match set.get(&name) {
                            Some(&t) if attrs.peek().is_some() => v = self.force(t)?,
                            Some(_) => return Ok(Value::Bool(true)),
                            None => return Ok(Value::Bool(false)),
                        },
                        _ => return Ok(Value::Bool(false)),
                    }
                }
                Ok(Value::Bool(true))
            }
            E::Error(_) => Err(EvalError::new("syntax error")),
        }
    }

    fn eval_select(&mut self, s: &ast::Select, env: EnvId) -> R<Value> {
        let mut v = self.eval(&req(s.expr())?, env)?;
        for attr in req(s.attrpath())?.attrs() {
            let at = self.pos(attr.syntax(), env);
            let name = match self.attr_key(&attr, env)? {
                Some(n) => n,
                None => return Err(EvalError::expected("a string", &Value::Null).or_at(at)),
            };
            let next = match &v {
                Value::Attrs(set) => match set.get(&name) {
                    Some(&t) => Some(t),
                    None if s.default_expr().is_none() && Rc::ptr_eq(set, &self.builtins_set) => {
                        return Err(EvalError::unsupported(format!("builtins.{name}")).or_at(at))
                    }
                    None => None,
                },
                _ => None,
            };
            match next {
                Some(t) => v = self.force(t)?,
                None => {
                    if let Some(d) = s.default_expr() {
                        return self.eval(&d, env);
                    }
                    return Err(match &v {
                        Value::Attrs(_) => EvalError::new(format!("attribute '{name}' missing")),
                        other => EvalError::expected("a set", other),
                    }
                    .or_at(at));
                }
            }
        }
        Ok(v)
    }

    fn eval_str(&mut self, s: &ast::Str, env: EnvId) -> R<String> {
        let mut out = String::new();
        for piece in strings::pieces(s) {
            match piece {
                Piece::Text(t) => out.push_str(&t),
                Piece::Interp(i) => {
                    let at = self.pos(i.syntax(), env);
                    let v = self.eval(&req(i.expr())?, env)?;
                    let s = self
                        .coerce(&v, Coerce::Interpolate)
                        .map_err(|e| e.or_at(at))?;
                    out.push_str(&s);
                }
            }
        }
        Ok(out)
    }

    fn eval_path(&mut self, path: &rnix::SyntaxNode, env: EnvId) -> R<Value> {
        let mut s = String::new();
        for child in path.children_with_tokens() {
            match child {
                rnix::NodeOrToken::Token(t) => s.push_str(t.text()),
                rnix::NodeOrToken::Node(n) => {
                    if let Some(i) = ast::Interpol::cast(n) {
                        let v = self.eval(&req(i.expr())?, env)?;
                        s.push_str(&self.coerce(&v, Coerce::PathAsIs)?);
                    }
                }
            }
        }
        if s.starts_with('<') {
            return Err(EvalError::unsupported(format!(
                "the search path {s} (NIX_PATH lookup)"
            )));
        }
        if s.starts_with('~') {
            return Err(EvalError::unsupported(format!(
                "the home-relative path {s}"
            )));
        }
        if s.starts_with('/') {
            return Ok(Value::Path(Rc::new(canon_path(Path::new(&s)))));
        }
        let dir = self.envs[env]
            .file
            .and_then(|f| self.files.get(f))
            .and_then(|f| f.path.parent().map(Path::to_path_buf))
            .unwrap_or_else(|| PathBuf::from("/"));
        Ok(Value::Path(Rc::new(canon_path(&dir.join(s)))))
    }
}
