//! What every command shares: the global flags and the decisions derived from them.

use std::path::PathBuf;

use crate::cli::{GlobalArgs, NixEval};
use crate::names::NameBase;
use crate::rules::EvalMode;

pub struct Context {
    pub global: GlobalArgs,
}

impl Context {
    pub fn new(global: GlobalArgs) -> Self {
        Context { global }
    }

    /// The rules file: `--rules`, else `$RULES` (clap reads it), else `./secrets.nix`.
    pub fn rules_path(&self) -> PathBuf {
        self.global
            .rules
            .clone()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or_else(|| PathBuf::from("./secrets.nix"))
    }

    /// Whether the rules file was named explicitly (flag or environment).
    pub fn rules_given(&self) -> bool {
        self.global
            .rules
            .as_ref()
            .is_some_and(|p| !p.as_os_str().is_empty())
    }

    pub fn eval_mode(&self) -> EvalMode {
        match self.global.nix_eval {
            NixEval::Auto => EvalMode::Auto,
            NixEval::Builtin => EvalMode::Builtin,
            NixEval::Nix => EvalMode::Nix,
        }
    }

    /// Evaluates the rules file, saying under `-v` which backend did it and why.
    pub fn load_rules(&self) -> super::Result<crate::rules::Rules> {
        self.load_rules_alongside(|_| ()).0
    }

    /// [`Context::load_rules`], running `alongside` (given the rules file's directory) on
    /// this thread while the rules are evaluated ([`crate::rules::load_alongside`]).
    pub fn load_rules_alongside<W>(
        &self,
        alongside: impl FnOnce(&std::path::Path) -> W,
    ) -> (super::Result<crate::rules::Rules>, W) {
        let path = self.rules_path();
        let dir = crate::rules::dir_of(&path);
        let (rules, done) =
            crate::rules::load_alongside(&path, self.eval_mode(), || alongside(&dir));
        (
            rules
                .map_err(Into::into)
                .and_then(|r| self.chose_name_base(r)),
            done,
        )
    }

    /// Says under `-v` which backend evaluated `rules` and which directory its names are
    /// relative to.
    fn chose_name_base(
        &self,
        mut rules: crate::rules::Rules,
    ) -> super::Result<crate::rules::Rules> {
        if let Some(reason) = &rules.fallback_reason {
            self.verbose(&format!("falling back to nix-instantiate: {reason}"));
        }
        let rules_dir = rules.dir.clone();
        match rules.choose_name_base(&super::common::cwd()?) {
            NameBase::RulesDir => self.verbose(&format!(
                "rule names are read relative to the rules file's directory {}",
                rules_dir.display()
            )),
            NameBase::CurrentDir => self.verbose(&format!(
                "rule names are read relative to the current directory (as agenix reads them): \
                 it holds the rules' files and {} holds none",
                rules_dir.display()
            )),
        }
        Ok(rules)
    }

    /// A message shown only with `-v`.
    pub fn verbose(&self, msg: &str) {
        if self.global.verbose {
            super::ui::info(msg);
        }
    }
}
