//! Attribute set construction: `rec`, `let`, dotted paths, `inherit`, merging.

use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;

use rnix::ast::{self, HasEntry};
use rowan::ast::AstNode;

use super::{ident_name, req, EvalError, Evaluator, R};
use crate::rules::value::{Attrs, EnvId, Pos, Scope, ThunkId, ThunkState, Value};

impl Evaluator {
    /// A non-recursive attribute set literal.
    pub(super) fn build_attrs(&mut self, set: &ast::AttrSet, env: EnvId) -> R<Attrs> {
        let mut defs = BTreeMap::new();
        self.collect(set, env, env, &mut defs, true)?;
        Ok(self.materialize_all(defs))
    }

    // ---- attribute sets -----------------------------------------------------------------

    /// The name an attribute denotes; `None` for a dynamic attribute that evaluates to null.
    pub(super) fn attr_key(&mut self, attr: &ast::Attr, env: EnvId) -> R<Option<Rc<str>>> {
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
    pub(super) fn bind_recursive(
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
                                at,
                            }),
                            None => self.lazy(ThunkState::Var {
                                name: name.clone(),
                                env: inherit_env,
                                at,
                            }),
                        };
                        self.insert_def(defs, &[(name, at, false)], Def::Thunk(t, at))?;
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
                        let dynamic = match &attr {
                            ast::Attr::Ident(_) => false,
                            ast::Attr::Str(s) => s
                                .parts()
                                .any(|p| matches!(p, ast::InterpolPart::Interpolation(_))),
                            ast::Attr::Dynamic(_) => true,
                        };
                        match self.attr_key(&attr, value_env)? {
                            Some(k) => keys.push((k, at, dynamic)),
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
    /// literals the way Nix does (`a.b = 1; a.c = 2;`, `a = { b = 1; }; a.c = 2;`). A
    /// dynamic key (`${e}`, `"${e}"`) is never merged: defining it twice is an error, as in
    /// Nix.
    fn insert_def(
        &mut self,
        defs: &mut BTreeMap<Rc<str>, Def>,
        keys: &[(Rc<str>, Option<Pos>, bool)],
        def: Def,
    ) -> R<()> {
        let Some(((name, at, dynamic), rest)) = keys.split_first() else {
            return Ok(());
        };
        if *dynamic {
            if let Some(existing) = defs.get(name) {
                return Err(EvalError::new(format!(
                    "dynamic attribute '{name}' already defined at {}",
                    self.show_pos(existing.at())
                ))
                .or_at(*at));
            }
            // Sealed: a later definition of the same name is a duplicate, never a merge.
            let t = if rest.is_empty() {
                self.materialize(def)
            } else {
                let mut inner = BTreeMap::new();
                self.insert_def(&mut inner, rest, def)?;
                self.materialize(Def::Nested(inner, *at))
            };
            defs.insert(name.clone(), Def::Thunk(t, *at));
            return Ok(());
        }
        if rest.is_empty() {
            match defs.get_mut(name) {
                None => {
                    defs.insert(name.clone(), def);
                    Ok(())
                }
                Some(existing) => {
                    let prior = existing.at();
                    if existing.is_mergeable() && def.is_mergeable() {
                        let new_defs = self.nested_of(def)?;
                        let mut slot = std::mem::replace(existing, Def::Thunk(0, None));
                        let merged = self.nested_mut(&mut slot).and_then(|target| {
                            for (k, d) in new_defs {
                                let a = d.at();
                                self.insert_def(target, &[(k, a, false)], d)?;
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
    fn nested_of(&mut self, def: Def) -> R<BTreeMap<Rc<str>, Def>> {
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
            *def = Def::Nested(self.nested_of(owned)?, at);
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
        let at = def.at();
        let t = match def {
            Def::Expr { expr, env, .. } => self.thunk_expr(expr, env),
            Def::Thunk(t, _) => t,
            Def::Nested(m, _) => {
                let attrs = self.materialize_all(m);
                self.done(Value::Attrs(Rc::new(attrs)))
            }
        };
        if let Some(at) = at {
            self.defined_at.entry(t).or_insert(at);
        }
        t
    }

    /// Where the attribute whose value is thunk `t` was defined, if it came from an
    /// attribute set in source.
    pub fn defined_at(&self, t: ThunkId) -> Option<Pos> {
        self.defined_at.get(&t).copied()
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
