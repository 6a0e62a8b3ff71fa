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
        let mut rules = crate::rules::load(&self.rules_path(), self.eval_mode())?;
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
