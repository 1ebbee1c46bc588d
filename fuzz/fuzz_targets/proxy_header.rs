//! Any bytes as the start of a connection to a server with the PROXY protocol on: the header
//! scanner never panics, a header it finds lies within the input, and every shorter prefix of
//! that header is "incomplete" (so the reader never stops early or reads past the header).
#![no_main]

use libfuzzer_sys::fuzz_target;
use may_gevent::pywsgi::__private::scan_proxy_header;

fuzz_target!(|data: &[u8]| {
    let data = &data[..data.len().min(may_gevent::PROXY_V2_MAX + 64)];
    if let Ok(Some(len)) = scan_proxy_header(data) {
        assert!(len <= data.len() && len >= 15);
        for cut in 0..len {
            assert_eq!(scan_proxy_header(&data[..cut]), Ok(None), "prefix {cut} of {len}");
        }
        // the same header with anything after it is the same header
        assert_eq!(scan_proxy_header(&data[..len]), Ok(Some(len)));
    }
});
