//! age plugins: `age1<name>1…` recipients and `AGE-PLUGIN-<NAME>-1…` identities, run as age
//! runs them (the `age-plugin-<name>` binary found in `$PATH`, spoken to over the age plugin
//! protocol by the age crate).
//!
//! - The plugin binary is looked up when a file key is wrapped or unwrapped, never when a
//!   rules file is read: `status` and `rules` work without the plugin installed.
//! - One plugin conversation at a time per process (`PLUGIN_TURN`): rekey works on files in
//!   parallel, but a hardware plugin asking for a PIN or a touch must not see two requests
//!   at once, nor the terminal two interleaved prompts.
//! - What a plugin asks of the user (messages, confirmations, PINs) goes to the
//!   [`PluginUi`] installed by the commands layer ([`set_ui`]); without one, every request
//!   fails and the plugin reports that to age.

use std::sync::{Arc, Mutex, RwLock};

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

static UI: RwLock<Option<Arc<dyn PluginUi>>> = RwLock::new(None);

/// Held for the length of one plugin conversation.
static PLUGIN_TURN: Mutex<()> = Mutex::new(());

/// Sends plugins' requests to `ui` from now on.
pub fn set_ui(ui: Arc<dyn PluginUi>) {
    if let Ok(mut slot) = UI.write() {
        *slot = Some(ui);
    }
}

fn ui() -> Option<Arc<dyn PluginUi>> {
    UI.read().ok().and_then(|slot| slot.clone())
}

/// The age crate's callbacks, forwarded to the installed [`PluginUi`].
#[derive(Clone, Copy)]
struct Callbacks;

impl age::Callbacks for Callbacks {
    fn display_message(&self, message: &str) {
        if let Some(ui) = ui() {
            ui.message(message);
        }
    }

    fn confirm(&self, message: &str, yes: &str, no: Option<&str>) -> Option<bool> {
        ui()?.confirm(message, yes, no)
    }

    fn request_public_string(&self, description: &str) -> Option<String> {
        ui()?.request_public(description)
    }

    fn request_passphrase(&self, description: &str) -> Option<SecretString> {
        ui()?.request_secret(description)
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
}

impl PluginRecipient {
    /// Parses `age1<name>1…`; `None` when it is not a valid plugin recipient.
    pub fn parse(s: &str) -> Option<Self> {
        s.parse()
            .ok()
            .map(|recipient| PluginRecipient { recipient })
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
            Callbacks,
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
                }),
            }
        }
        out
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
        let plugin =
            match age::plugin::IdentityPluginV1::new(&self.name, &self.identities, Callbacks) {
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
