//! libFuzzer entry point for the relay's session input (see `minqing_fuzz::relay`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    minqing_fuzz::in_libfuzzer();
    minqing_fuzz::Target::RelaySession.run(data)
});
