//! Fuzz target: one pgoutput text value (first byte picks the type OID)
//! through the value decoder; it must never panic.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = tandem::fuzzing::pg_text_value(data);
});
