//! age plugins: `age1<name>1…` recipients and `AGE-PLUGIN-<NAME>-1…` identities, run as age
//! runs them (the `age-plugin-<name>` binary found in `$PATH`, spoken to over the age plugin
//! protocol by the age crate).
//!
//! - The plugin binary is looked up when a file key is wrapped or unwrapped, never when a
//!   rules file is read: `status` and `rules` work without the plugin installed.
//! - One plugin conversation at a time per process (`PLUGIN_TURN`): rekey works on files in
//!   parallel, but a hardware plugin asking for a PIN or a touch must not see two requests
//!   at once, nor the terminal two interleaved prompts.
//! - What a plugin asks of the user (messages, confirmations, PINs) goes to the [`PluginUi`]
//!   value the caller attached to the recipient ([`crate::Recipient::with_plugin_ui`]) or to
//!   the identities ([`crate::IdentitySet::with_plugin_ui`]); without one, every request
//!   fails and the plugin reports that to age. No process-wide UI: two callers in one
//!   process (a library user's GUI, a test) each keep their own.

use std::sync::{Arc, Mutex};

use age::secrecy::SecretString;

/// Where a plugin's requests to the user go. Implemented by the commands layer (terminal).
pub trait PluginUi: Send + Sync {
    /// A message for the user (e.g. "touch your key").
    fn message(&self, message: &str);
    /// A yes/no question; `None` when nobody can answer.
    fn confirm(&self, message: &str, yes: &str, no: Option<&str>) -> Option<bool>;
    /// A non-secret value; `None` when nobody can answer.
    fn request_public(&self, description: &str) -> Option<String>;
    /// A secret value (PIN, passphrase); `None` when nobody can answer.
    fn request_secret(&self, description: &str) -> Option<SecretString>;
}

/// Held for the length of one plugin conversation. Process-wide on purpose: the terminal
/// and the hardware token a plugin talks to are too, whoever's UI asks.
static PLUGIN_TURN: Mutex<()> = Mutex::new(());

/// The age crate's callbacks, forwarded to the caller's [`PluginUi`] (none: every request
/// fails).
#[derive(Clone)]
struct Callbacks(Option<Arc<dyn PluginUi>>);

impl age::Callbacks for Callbacks {
    fn display_message(&self, message: &str) {
        if let Some(ui) = &self.0 {
            ui.message(message);
        }
    }

    fn confirm(&self, message: &str, yes: &str, no: Option<&str>) -> Option<bool> {
        self.0.as_ref()?.confirm(message, yes, no)
    }

    fn request_public_string(&self, description: &str) -> Option<String> {
        self.0.as_ref()?.request_public(description)
    }

    fn request_passphrase(&self, description: &str) -> Option<SecretString> {
        self.0.as_ref()?.request_secret(description)
    }
}

fn take_turn() -> std::sync::MutexGuard<'static, ()> {
    // A panic in another conversation does not make the next one unsafe.
    PLUGIN_TURN.lock().unwrap_or_else(|e| e.into_inner())
}

/// A plugin recipient from a rules file.
#[derive(Clone)]
pub struct PluginRecipient {
    recipient: age::plugin::Recipient,
    ui: Option<Arc<dyn PluginUi>>,
}

impl PluginRecipient {
    /// Parses `age1<name>1…`; `None` when it is not a valid plugin recipient.
    pub fn parse(s: &str) -> Option<Self> {
        s.parse().ok().map(|recipient| PluginRecipient {
            recipient,
            ui: None,
        })
    }

    /// Sends the plugin's requests to `ui` when encrypting to this recipient.
    pub(crate) fn set_ui(&mut self, ui: Arc<dyn PluginUi>) {
        self.ui = Some(ui);
    }
}

impl age::Recipient for PluginRecipient {
    fn wrap_file_key(
        &self,
        file_key: &age_core::format::FileKey,
    ) -> Result<
        (
            Vec<age_core::format::Stanza>,
            std::collections::HashSet<String>,
        ),
        age::EncryptError,
    > {
        let plugin = age::plugin::RecipientPluginV1::new(
            self.recipient.plugin(),
            std::slice::from_ref(&self.recipient),
            &[],
            Callbacks(self.ui.clone()),
        )
        .map_err(age::EncryptError::PluginResolve)?;
        let _turn = take_turn();
        plugin.wrap_file_key(file_key)
    }
}

/// The identities of one plugin, from an identity file.
pub struct PluginIdentity {
    name: String,
    identities: Vec<age::plugin::Identity>,
    ui: Option<Arc<dyn PluginUi>>,
}

impl PluginIdentity {
    /// Groups `identities` by plugin, in first-seen order.
    pub fn group(identities: Vec<age::plugin::Identity>) -> Vec<PluginIdentity> {
        let mut out: Vec<PluginIdentity> = Vec::new();
        for id in identities {
            match out.iter_mut().find(|g| g.name == id.plugin()) {
                Some(g) => g.identities.push(id),
                None => out.push(PluginIdentity {
                    name: id.plugin().to_string(),
                    identities: vec![id],
                    ui: None,
                }),
            }
        }
        out
    }

    /// Sends the plugin's requests to `ui` when unwrapping with these identities.
    pub(crate) fn set_ui(&mut self, ui: Arc<dyn PluginUi>) {
        self.ui = Some(ui);
    }
}

impl age::Identity for PluginIdentity {
    fn unwrap_stanza(
        &self,
        stanza: &age_core::format::Stanza,
    ) -> Option<Result<age_core::format::FileKey, age::DecryptError>> {
        self.unwrap_stanzas(std::slice::from_ref(stanza))
    }

    fn unwrap_stanzas(
        &self,
        stanzas: &[age_core::format::Stanza],
    ) -> Option<Result<age_core::format::FileKey, age::DecryptError>> {
        let plugin = match age::plugin::IdentityPluginV1::new(
            &self.name,
            &self.identities,
            Callbacks(self.ui.clone()),
        ) {
            Ok(p) => p,
            Err(e) => return Some(Err(age::DecryptError::PluginResolve(e))),
        };
        let _turn = take_turn();
        plugin.unwrap_stanzas(stanzas)
    }
}

/// One line for the errors a plugin reported (the age crate renders each through its
/// localisation, which may add Unicode isolation marks and line breaks).
pub fn describe_errors<E: std::fmt::Display>(errors: &[E]) -> String {
    let parts: Vec<String> = errors
        .iter()
        .map(|e| {
            let text: String = e
                .to_string()
                .chars()
                .filter(|c| !matches!(c, '\u{2068}' | '\u{2069}'))
                .map(|c| if c == '\n' { ' ' } else { c })
                .collect();
            crate::text::escape_controls(text.trim()).into_owned()
        })
        .collect();
    parts.join("; ")
}

/// One line for a failure to find a plugin.
pub fn describe_resolve(e: &age::plugin::ResolveError) -> String {
    describe_errors(std::slice::from_ref(e))
}
