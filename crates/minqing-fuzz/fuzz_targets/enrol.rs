//! libFuzzer entry point for the enrolment messages (see `minqing_fuzz::enrol`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    minqing_fuzz::in_libfuzzer();
    minqing_fuzz::Target::Enrol.run(data)
});
