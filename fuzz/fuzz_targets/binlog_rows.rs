//! Fuzz target: a binlog rows event with its TABLE_MAP (layout in
//! `tandem::fuzzing::binlog_rows`) through the row-image decoder; it must
//! never panic.
//!
//! tandem catches the panics mysql_common raises while decoding cells (the
//! service turns them into decode errors), so the abort-on-panic hook that
//! libfuzzer-sys installs is wrapped to let panics located inside
//! mysql_common unwind to that catch; any other panic still aborts.
#![no_main]

use std::sync::Once;

static HOOK: Once = Once::new();

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    HOOK.call_once(|| {
        let abort = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !info.location().is_some_and(|l| l.file().contains("mysql_common")) {
                abort(info);
            }
        }));
    });
    let _ = tandem::fuzzing::binlog_rows(data);
});
