//! libFuzzer entry point for sync messages as the relay receives them (see `minqing_fuzz::relay`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    minqing_fuzz::in_libfuzzer();
    minqing_fuzz::Target::SyncMessage.run(data)
});
