//! Key lifecycle library: generate, validate and compare the fleet's OpenSSH ed25519 keys.
//! (Implemented by the key-lifecycle work.)
