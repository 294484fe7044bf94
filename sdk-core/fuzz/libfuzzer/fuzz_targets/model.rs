#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| fedmr_fuzz::model(data));
