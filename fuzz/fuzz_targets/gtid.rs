//! Fuzz target: MariaDB raw event parsing (GTID, GTID_LIST,
//! BINLOG_CHECKPOINT, ROTATE, QUERY; first byte picks the parser); it must
//! never panic.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = tandem::fuzzing::mariadb_event(data);
});
