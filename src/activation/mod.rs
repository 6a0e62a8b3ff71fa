//! Activation: manifest, generations, RAM-backed mounts, ownership.
//! (Implemented by the activation work.)
