//! SSH facts shared by the git transport and host-key scanning: known_hosts reading and
//! matching.

pub(crate) mod known_hosts;
