//! A toy age plugin for agefleet's tests (tests/plugin.rs): one recipient type and one identity
//! type, speaking the real plugin protocol through the `age-plugin` crate.
//!
//! NOT ENCRYPTION: the wrap key is derived from the recipient string alone, so anyone who has
//! the recipient can unwrap. It exists to exercise the plugin protocol (recipient-v1,
//! identity-v1, prompts), never to protect anything.
//!
//! - `age-plugin-agefleettest` (no flag) prints a new identity and its recipient, as
//!   `age-plugin-*` generators do.
//! - Recipient data: R = SHA-256(K); identity data: K (32 random bytes).
//! - Stanza: `-> agefleettest <base64(R[..4])>`, body = file key XOR SHA-256("agefleettest" || R)[..16].
//! - With `AGEFLEETTEST_PIN` set, unwrapping first asks for a secret through the age client
//!   (`request-secret`) and fails for the identity when the answer differs; with
//!   `AGEFLEETTEST_CONFIRM` set, it first asks a yes/no question (`confirm`) and fails on "no".

use std::collections::{HashMap, HashSet};
use std::convert::Infallible;
use std::io;

use age_core::format::{FileKey, Stanza};
use age_core::secrecy::ExposeSecret;
use age_plugin::identity::{self, IdentityPluginV1};
use age_plugin::recipient::{self, RecipientPluginV1};
use age_plugin::{print_new_identity, run_state_machine, Callbacks, PluginHandler};
use base64::prelude::{Engine, BASE64_STANDARD_NO_PAD};
use sha2::{Digest, Sha256};

const PLUGIN_NAME: &str = "agefleettest";

fn tag(r: &[u8]) -> String {
    BASE64_STANDARD_NO_PAD.encode(&r[..4])
}

fn mask(r: &[u8]) -> [u8; 16] {
    let d = Sha256::new()
        .chain_update(PLUGIN_NAME)
        .chain_update(r)
        .finalize();
    d[..16].try_into().expect("16 bytes")
}

struct Handler;

impl PluginHandler for Handler {
    type RecipientV1 = Recipients;
    type IdentityV1 = Identities;

    fn recipient_v1(self) -> io::Result<Recipients> {
        Ok(Recipients(Vec::new()))
    }

    fn identity_v1(self) -> io::Result<Identities> {
        Ok(Identities(Vec::new()))
    }
}

/// The R of each recipient (or identity) to wrap to.
struct Recipients(Vec<Vec<u8>>);

impl RecipientPluginV1 for Recipients {
    fn add_recipient(
        &mut self,
        index: usize,
        name: &str,
        bytes: &[u8],
    ) -> Result<(), recipient::Error> {
        if name != PLUGIN_NAME || bytes.len() != 32 {
            return Err(recipient::Error::Recipient {
                index,
                message: "not an agefleettest recipient".into(),
            });
        }
        self.0.push(bytes.to_vec());
        Ok(())
    }

    fn add_identity(
        &mut self,
        index: usize,
        name: &str,
        bytes: &[u8],
    ) -> Result<(), recipient::Error> {
        if name != PLUGIN_NAME || bytes.len() != 32 {
            return Err(recipient::Error::Identity {
                index,
                message: "not an agefleettest identity".into(),
            });
        }
        self.0.push(Sha256::digest(bytes).to_vec());
        Ok(())
    }

    fn labels(&mut self) -> HashSet<String> {
        HashSet::new()
    }

    fn wrap_file_keys(
        &mut self,
        file_keys: Vec<FileKey>,
        _callbacks: impl Callbacks<recipient::Error>,
    ) -> io::Result<Result<Vec<Vec<Stanza>>, Vec<recipient::Error>>> {
        Ok(Ok(file_keys
            .iter()
            .map(|fk| {
                self.0
                    .iter()
                    .map(|r| Stanza {
                        tag: PLUGIN_NAME.into(),
                        args: vec![tag(r)],
                        body: fk
                            .expose_secret()
                            .iter()
                            .zip(mask(r))
                            .map(|(a, b)| a ^ b)
                            .collect(),
                    })
                    .collect()
            })
            .collect()))
    }
}

/// The R of each identity given.
struct Identities(Vec<Vec<u8>>);

impl IdentityPluginV1 for Identities {
    fn add_identity(
        &mut self,
        index: usize,
        name: &str,
        bytes: &[u8],
    ) -> Result<(), identity::Error> {
        if name != PLUGIN_NAME || bytes.len() != 32 {
            return Err(identity::Error::Identity {
                index,
                message: "not an agefleettest identity".into(),
            });
        }
        self.0.push(Sha256::digest(bytes).to_vec());
        Ok(())
    }

    fn unwrap_file_keys(
        &mut self,
        files: Vec<Vec<Stanza>>,
        mut callbacks: impl Callbacks<identity::Error>,
    ) -> io::Result<HashMap<usize, Result<FileKey, Vec<identity::Error>>>> {
        let mut out = HashMap::new();
        for (file_index, stanzas) in files.into_iter().enumerate() {
            for stanza in stanzas.iter().filter(|s| s.tag == PLUGIN_NAME) {
                let Some(r) = self.0.iter().find(|r| stanza.args == [tag(r)]) else {
                    continue;
                };
                if std::env::var_os("AGEFLEETTEST_CONFIRM").is_some() {
                    let yes = callbacks.confirm(
                        "agefleettest: use the imaginary key?",
                        "yes",
                        Some("no"),
                    )?;
                    if !matches!(yes, Ok(true)) {
                        out.insert(
                            file_index,
                            Err(vec![identity::Error::Identity {
                                index: 0,
                                message: "declined".into(),
                            }]),
                        );
                        break;
                    }
                }
                if let Ok(expected) = std::env::var("AGEFLEETTEST_PIN") {
                    let _ = callbacks.message("agefleettest: touch the imaginary key")?;
                    let answer = match callbacks.request_secret("agefleettest PIN:")? {
                        Ok(pin) => pin,
                        Err(_) => {
                            out.insert(
                                file_index,
                                Err(vec![identity::Error::Identity {
                                    index: 0,
                                    message: "no PIN given".into(),
                                }]),
                            );
                            break;
                        }
                    };
                    if answer.expose_secret() != expected {
                        out.insert(
                            file_index,
                            Err(vec![identity::Error::Identity {
                                index: 0,
                                message: "wrong PIN".into(),
                            }]),
                        );
                        break;
                    }
                }
                if stanza.body.len() != 16 {
                    out.insert(
                        file_index,
                        Err(vec![identity::Error::Stanza {
                            file_index,
                            stanza_index: 0,
                            message: "bad body length".into(),
                        }]),
                    );
                    break;
                }
                let key = FileKey::try_init_with_mut(|fk| {
                    for ((k, a), b) in fk.iter_mut().zip(&stanza.body).zip(mask(r)) {
                        *k = a ^ b;
                    }
                    Ok::<(), Infallible>(())
                })
                .expect("infallible");
                out.insert(file_index, Ok(key));
                break;
            }
        }
        Ok(out)
    }
}

fn main() -> io::Result<()> {
    let mut args = std::env::args().skip(1);
    match args.next().as_deref() {
        Some(flag) if flag.starts_with("--age-plugin=") => {
            run_state_machine(&flag["--age-plugin=".len()..], Handler)
        }
        Some("--age-plugin") => {
            let sm = args.next().unwrap_or_default();
            run_state_machine(&sm, Handler)
        }
        _ => {
            let k: [u8; 32] = rand::random();
            print_new_identity(PLUGIN_NAME, &k, &Sha256::digest(k));
            Ok(())
        }
    }
}
