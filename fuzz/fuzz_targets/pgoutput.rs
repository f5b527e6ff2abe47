//! Fuzz target: one pgoutput message (XLogData payload) through the decoder;
//! it must return Ok or Err for every input, never panic.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = tandem::fuzzing::pgoutput(data);
});
