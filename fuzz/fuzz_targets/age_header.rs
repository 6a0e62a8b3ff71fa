//! `Header::parse` over arbitrary bytes (binary or armored): never panics, bounded work,
//! errors are one line.
#![no_main]

use agefleet::envelope::Header;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match Header::parse(data) {
        Ok(h) => {
            // The accessors status uses must hold up on whatever parsed.
            let _ = h.ssh_tags().count();
            let _ = h.x25519_count();
        }
        Err(e) => assert!(!e.to_string().contains('\n'), "multi-line error: {e}"),
    }
    // The streaming reader status uses must agree with the whole-buffer parser.
    let streamed = Header::read_from(data);
    assert_eq!(
        streamed.is_ok(),
        Header::parse(data).is_ok(),
        "read_from and parse disagree"
    );
});
