#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| simplekv::fuzzing::resp(data));
