//! libFuzzer entry point for the frame decoder (see `minqing_fuzz::frame`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    minqing_fuzz::in_libfuzzer();
    minqing_fuzz::Target::Frame.run(data)
});
