//! The thin syscall layer (mount, statfs, chown, renameat, no-follow opens). Everything that
//! needs a raw system call goes through here, on top of `rustix`.
