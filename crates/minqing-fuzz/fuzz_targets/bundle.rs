//! libFuzzer entry point for enrolment bundle parsing (see `minqing_fuzz::bundle`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    minqing_fuzz::in_libfuzzer();
    minqing_fuzz::Target::Bundle.run(data)
});
