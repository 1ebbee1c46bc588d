//! Any bytes as everything a client sends on one connection, through the whole engine
//! (parsing, body decoding, the application, responses): it must return, never panic, and
//! every response it writes starts with a status line.
#![no_main]

use std::io::{self, Read, Write};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use may_gevent::pywsgi::{
    handle_connection, AccessLog, AppResult, Connection, Environ, StartResponse, WsgiConfig,
};

struct Memory {
    input: io::Cursor<Vec<u8>>,
    output: Arc<Mutex<Vec<u8>>>,
}

impl Read for Memory {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.input.read(buf)
    }
}

impl Write for Memory {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.output.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Connection for Memory {
    fn set_read_timeout(&mut self, _: Option<Duration>) -> io::Result<()> {
        Ok(())
    }
    fn set_write_timeout(&mut self, _: Option<Duration>) -> io::Result<()> {
        Ok(())
    }
}

fn app(env: &mut Environ, start_response: &mut StartResponse<'_>) -> AppResult {
    let mut body = Vec::new();
    env.input().read_to_end(&mut body)?;
    let _ = env.get("HTTP_HOST");
    start_response.call("200 OK", &[("Content-Type", "text/plain")])?;
    Ok(vec![env.path_info().as_bytes().to_vec(), body].into())
}

fuzz_target!(|data: &[u8]| {
    let config = WsgiConfig::new().access_log(AccessLog::Off);
    let output = Arc::new(Mutex::new(Vec::new()));
    let conn = Memory {
        input: io::Cursor::new(data.to_vec()),
        output: output.clone(),
    };
    handle_connection(conn, None, &config, &app);
    let output = output.lock().unwrap();
    assert!(output.is_empty() || output.starts_with(b"HTTP/1.1 "));
});
