//! A services file, any bytes: parsed, checked and built into a table
//! (VIPs allocated), or rejected with a line that is in the file.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // What a line is to a reader: LF, CRLF or a lone CR ends one.
    let lines = text.split(['\n', '\r']).count();
    if let Err((Some(line), error)) = meshdns::table::Table::parse(text) {
        assert!(
            (1..=lines + 1).contains(&line),
            "line {line} of {lines}: {error}"
        );
    }
});
