//! The builtin lazy evaluator over the rnix AST, for the subset of Nix rules files use.
//!
//! Invariants: every expression is evaluated in an environment created for its own file
//! (so an error's position is the node's offset in that environment's file); a thunk being
//! forced is a black hole, so a second visit reports infinite recursion instead of looping;
//! evaluation depth is bounded by [`MAX_DEPTH`], so deep recursion is an error, never a
//! stack overflow (the caller runs evaluation on a thread with a stack sized for it).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Component, Path, PathBuf};
use std::rc::Rc;

use rnix::ast::{self, HasEntry};
use rowan::ast::AstNode;

use super::builtins;
use super::strings::{self, Piece};
use super::syntax;
use super::value::{
    Attrs, Closure, Env, EnvId, PartialBuiltin, Pos, Scope, ThunkId, ThunkState, Value,
};

/// Deepest nesting of evaluation steps (expression evaluation, thunk forcing, deep
/// conversion) before evaluation stops with an error.
pub const MAX_DEPTH: usize = 10_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    Eval,
    /// Outside the builtin evaluator's subset: `Auto` mode falls back to Nix.
    Unsupported,
    /// `throw` (catchable by `tryEval`).
    Throw,
    /// A failed `assert` (catchable by `tryEval`).
    Assert,
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
    /// The directory the root file was named from, to name imported files relative to it.
    root_dirs: Option<(PathBuf, PathBuf)>,
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
            root_dirs: None,
        };
        let mut set = Attrs::new();
        let mut globals = HashMap::new();
        for (name, builtin, _) in builtins::TABLE {
            let t = ev.done(Value::Builtin(Rc::new(PartialBuiltin {
                builtin: *builtin,
                args: Vec::new(),
            })));
            set.insert(Rc::from(*name), t);
            if builtins::GLOBALS.contains(name) {
                globals.insert(Rc::from(*name), t);
            }
        }
        for (name, v) in [
            ("true", Value::Bool(true)),
            ("false", Value::Bool(false)),
            ("null", Value::Null),
        ] {
            let t = ev.done(v);
            globals.insert(Rc::from(name), t);
        }
        let set = Rc::new(set);
        ev.builtins_set = set.clone();
        let bt = ev.done(Value::Attrs(set));
        globals.insert(Rc::from("builtins"), bt);
        ev.envs.push(Env {
            scope: Scope::Vars(globals),
            parent: None,
            file: None,
        });
        ev.global_env = ev.envs.len() - 1;
        ev
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
                let (l, c) = syntax::line_col(&f.text, pos.offset);
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
        if self.depth >= MAX_DEPTH {
            return Err(EvalError::new(format!(
                "evaluation nested too deeply (more than {MAX_DEPTH} levels; infinite recursion?)"
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
        self.files.push(SourceFile {
            display,
            path: path.clone(),
            text,
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
            ThunkState::Attr { of, name } => self.force(*of).and_then(|v| match v {
                Value::Attrs(set) => match set.get(name) {
                    Some(&t) => self.force(t),
                    None => Err(EvalError::new(format!("attribute '{name}' missing"))),
                },
                other => Err(EvalError::expected("a set", &other)),
            }),
            ThunkState::Var { name, env, at } => self.lookup(name, *env).map_err(|e| e.or_at(*at)),
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
                    builtins::call(self, p.builtin, &args)
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
        if builtins::is_unsupported_global(name) {
            return Err(EvalError::unsupported(format!("the builtin '{name}'")));
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
            E::Path(p) => self.eval_path(p, env),
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
                    let mut defs = BTreeMap::new();
                    self.collect(s, env, env, &mut defs, true)?;
                    let attrs = self.materialize_all(defs);
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
            E::Ident(i) => self.lookup(&ident_name(i), env),
            E::With(w) => {
                let ns = self.thunk_expr(req(w.namespace())?, env);
                let inner = self.child_env(env, Scope::With(ns));
                self.eval(&req(w.body())?, inner)
            }
            E::HasAttr(h) => {
                let mut v = self.eval(&req(h.expr())?, env)?;
                for attr in req(h.attrpath())?.attrs() {
                    let Some(name) = self.attr_key(&attr, env)? else {
                        return Ok(Value::Bool(false));
                    };
                    match &v {
                        Value::Attrs(set) => match set.get(&name) {
                            Some(&t) => v = self.force(t)?,
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

    fn eval_path(&mut self, p: &ast::Path, env: EnvId) -> R<Value> {
        let mut s = String::new();
        for child in p.syntax().children_with_tokens() {
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

    // ---- attribute sets -----------------------------------------------------------------

    /// The name an attribute denotes; `None` for a dynamic attribute that evaluates to null.
    fn attr_key(&mut self, attr: &ast::Attr, env: EnvId) -> R<Option<Rc<str>>> {
        match attr {
            ast::Attr::Ident(i) => Ok(Some(ident_name(i))),
            ast::Attr::Str(s) => Ok(Some(Rc::from(self.eval_str(s, env)?))),
            ast::Attr::Dynamic(d) => {
                let e = req(d.expr())?;
                match self.eval(&e, env)? {
                    Value::Str(s) => Ok(Some(s)),
                    Value::Null => Ok(None),
                    other => {
                        Err(EvalError::expected("a string", &other)
                            .or_at(self.pos(d.syntax(), env)))
                    }
                }
            }
        }
    }

    /// `rec { … }` or `let … in`: bindings see each other. Plain `inherit x` looks `x` up
    /// in the enclosing scope, as in Nix.
    fn bind_recursive(
        &mut self,
        node: &impl HasEntry,
        outer: EnvId,
        is_let: bool,
    ) -> R<(EnvId, Attrs)> {
        let inner = self.child_env(outer, Scope::Vars(HashMap::new()));
        let mut defs = BTreeMap::new();
        self.collect(node, inner, outer, &mut defs, !is_let)?;
        let attrs = self.materialize_all(defs);
        let vars = attrs.iter().map(|(k, v)| (k.clone(), *v)).collect();
        self.envs[inner].scope = Scope::Vars(vars);
        Ok((inner, attrs))
    }

    fn collect(
        &mut self,
        node: &impl HasEntry,
        value_env: EnvId,
        inherit_env: EnvId,
        defs: &mut BTreeMap<Rc<str>, Def>,
        allow_dynamic: bool,
    ) -> R<()> {
        for entry in node.entries() {
            match entry {
                ast::Entry::Inherit(inh) => {
                    let from = match inh.from() {
                        Some(f) => Some(self.thunk_expr(req(f.expr())?, value_env)),
                        None => None,
                    };
                    for attr in inh.attrs() {
                        let at = self.pos(attr.syntax(), value_env);
                        let name = match &attr {
                            ast::Attr::Ident(i) => ident_name(i),
                            ast::Attr::Str(s) if s.parts().count() <= 1 => {
                                Rc::from(self.eval_str(s, value_env)?)
                            }
                            _ => {
                                return Err(EvalError::new(
                                    "dynamic attributes not allowed in inherit",
                                )
                                .or_at(at))
                            }
                        };
                        let t = match from {
                            Some(of) => self.lazy(ThunkState::Attr {
                                of,
                                name: name.clone(),
                            }),
                            None => self.lazy(ThunkState::Var {
                                name: name.clone(),
                                env: inherit_env,
                                at,
                            }),
                        };
                        self.insert_def(defs, &[(name, at)], Def::Thunk(t, at))?;
                    }
                }
                ast::Entry::AttrpathValue(apv) => {
                    let value = req(apv.value())?;
                    let mut keys = Vec::new();
                    let mut skip = false;
                    for attr in req(apv.attrpath())?.attrs() {
                        let at = self.pos(attr.syntax(), value_env);
                        if !allow_dynamic && !matches!(attr, ast::Attr::Ident(_)) {
                            let dynamic = match &attr {
                                ast::Attr::Str(s) => s
                                    .parts()
                                    .any(|p| matches!(p, ast::InterpolPart::Interpolation(_))),
                                _ => true,
                            };
                            if dynamic {
                                return Err(EvalError::new(
                                    "dynamic attributes not allowed in let",
                                )
                                .or_at(at));
                            }
                        }
                        match self.attr_key(&attr, value_env)? {
                            Some(k) => keys.push((k, at)),
                            None => skip = true,
                        }
                    }
                    if skip || keys.is_empty() {
                        continue;
                    }
                    let at = keys.last().and_then(|k| k.1);
                    self.insert_def(
                        defs,
                        &keys,
                        Def::Expr {
                            expr: value,
                            env: value_env,
                            at,
                        },
                    )?;
                }
            }
        }
        Ok(())
    }

    /// Inserts a definition at an attribute path, merging dotted paths and attribute set
    /// literals the way Nix does (`a.b = 1; a.c = 2;`, `a = { b = 1; }; a.c = 2;`).
    fn insert_def(
        &mut self,
        defs: &mut BTreeMap<Rc<str>, Def>,
        keys: &[(Rc<str>, Option<Pos>)],
        def: Def,
    ) -> R<()> {
        let Some(((name, at), rest)) = keys.split_first() else {
            return Ok(());
        };
        if rest.is_empty() {
            match defs.get_mut(name) {
                None => {
                    defs.insert(name.clone(), def);
                    Ok(())
                }
                Some(existing) => {
                    let prior = existing.at();
                    if existing.is_mergeable() && def.is_mergeable() {
                        let new_defs = self.into_nested(def)?;
                        let mut slot = std::mem::replace(existing, Def::Thunk(0, None));
                        let merged = self.nested_mut(&mut slot).and_then(|target| {
                            for (k, d) in new_defs {
                                let a = d.at();
                                self.insert_def(target, &[(k, a)], d)?;
                            }
                            Ok(())
                        });
                        *existing = slot;
                        merged
                    } else {
                        Err(self.duplicate(name, prior, *at))
                    }
                }
            }
        } else {
            let slot = defs
                .entry(name.clone())
                .or_insert_with(|| Def::Nested(BTreeMap::new(), *at));
            if !slot.is_mergeable() {
                let prior = slot.at();
                return Err(self.duplicate(name, prior, *at));
            }
            let mut taken = std::mem::replace(slot, Def::Thunk(0, None));
            let result = self
                .nested_mut(&mut taken)
                .and_then(|target| self.insert_def(target, rest, def));
            defs.insert(name.clone(), taken);
            result
        }
    }

    fn duplicate(&self, name: &str, prior: Option<Pos>, at: Option<Pos>) -> EvalError {
        EvalError::new(format!(
            "attribute '{name}' already defined at {}",
            self.show_pos(prior)
        ))
        .or_at(at)
    }

    /// Turns a mergeable definition into its nested map (expanding an attrset literal).
    fn into_nested(&mut self, def: Def) -> R<BTreeMap<Rc<str>, Def>> {
        match def {
            Def::Nested(m, _) => Ok(m),
            Def::Expr {
                expr: ast::Expr::AttrSet(s),
                env,
                ..
            } => {
                let mut m = BTreeMap::new();
                self.collect(&s, env, env, &mut m, true)?;
                Ok(m)
            }
            _ => Err(EvalError::new("internal error: merging a non-set")),
        }
    }

    fn nested_mut<'a>(&mut self, def: &'a mut Def) -> R<&'a mut BTreeMap<Rc<str>, Def>> {
        if let Def::Expr { .. } = def {
            let at = def.at();
            let owned = std::mem::replace(def, Def::Thunk(0, None));
            *def = Def::Nested(self.into_nested(owned)?, at);
        }
        match def {
            Def::Nested(m, _) => Ok(m),
            _ => Err(EvalError::new("internal error: not a nested set")),
        }
    }

    fn materialize_all(&mut self, defs: BTreeMap<Rc<str>, Def>) -> Attrs {
        defs.into_iter()
            .map(|(k, d)| {
                let t = self.materialize(d);
                (k, t)
            })
            .collect()
    }

    fn materialize(&mut self, def: Def) -> ThunkId {
        match def {
            Def::Expr { expr, env, .. } => self.thunk_expr(expr, env),
            Def::Thunk(t, _) => t,
            Def::Nested(m, _) => {
                let attrs = self.materialize_all(m);
                self.done(Value::Attrs(Rc::new(attrs)))
            }
        }
    }

    // ---- operators ----------------------------------------------------------------------

    fn eval_binop(&mut self, b: &ast::BinOp, env: EnvId) -> R<Value> {
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

    fn list_less(&mut self, a: &[ThunkId], b: &[ThunkId]) -> R<bool> {
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

    fn all_equal(&mut self, pairs: impl Iterator<Item = (ThunkId, ThunkId)>) -> R<bool> {
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

    pub fn coerce(&mut self, v: &Value, how: Coerce) -> R<String> {
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
    pub fn to_json(&mut self, v: &Value) -> R<serde_json::Value> {
        self.enter()?;
        let r = self.to_json_inner(v);
        self.leave();
        r
    }

    fn to_json_inner(&mut self, v: &Value) -> R<serde_json::Value> {
        use serde_json::Value as J;
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
                    out.push(self.to_json(&item)?);
                }
                J::Array(out)
            }
            Value::Attrs(set) => {
                if let Some(&o) = set.get("outPath") {
                    let o = self.force(o)?;
                    return self.to_json(&o);
                }
                let mut out = serde_json::Map::new();
                for (k, t) in set.iter() {
                    let item = self.force(*t)?;
                    out.insert(k.to_string(), self.to_json(&item)?);
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

/// A binding being collected for an attribute set, before thunks are made.
enum Def {
    Expr {
        expr: ast::Expr,
        env: EnvId,
        at: Option<Pos>,
    },
    Thunk(ThunkId, Option<Pos>),
    Nested(BTreeMap<Rc<str>, Def>, Option<Pos>),
}

impl Def {
    fn at(&self) -> Option<Pos> {
        match self {
            Def::Expr { at, .. } | Def::Thunk(_, at) | Def::Nested(_, at) => *at,
        }
    }

    /// A dotted-path set or a non-recursive attribute set literal: Nix merges those.
    fn is_mergeable(&self) -> bool {
        match self {
            Def::Nested(..) => true,
            Def::Expr {
                expr: ast::Expr::AttrSet(s),
                ..
            } => s.rec_token().is_none(),
            _ => false,
        }
    }
}
