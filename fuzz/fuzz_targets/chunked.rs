//! Any bytes as a chunked body, fed in pieces of any size: the decoder never panics, and the
//! result does not depend on how the input was split.
#![no_main]

use libfuzzer_sys::fuzz_target;
use may_gevent::pywsgi::__private::decode_chunked;

fuzz_target!(|data: &[u8]| {
    let Some((&piece, body)) = data.split_first() else {
        return;
    };
    let mut whole = Vec::new();
    let mut split = Vec::new();
    let a = decode_chunked(body, body.len().max(1), &mut whole);
    let b = decode_chunked(body, usize::from(piece), &mut split);
    assert_eq!(a, b);
    if a.is_some() {
        assert_eq!(whole, split);
    }
});
