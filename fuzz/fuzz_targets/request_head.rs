//! Any bytes as a request head: the strict parser must return, never panic, and its fast
//! tokenizer must never take a head that httparse refuses or splits differently.
#![no_main]

use libfuzzer_sys::fuzz_target;
use may_gevent::pywsgi::__private::{check_fast_head, HeadParser};

fuzz_target!(|data: &[u8]| {
    let mut parser = HeadParser::default();
    if let Ok(Some(len)) = parser.parse(data) {
        assert!(len <= data.len());
    }
    check_fast_head(data);
});
