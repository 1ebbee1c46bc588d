//! gevent's examples/webproxy.py: a web application that retrieves other websites for you.
//!
//! ```text
//! cargo run --example webproxy                 # serves on 127.0.0.1:8088
//! cargo run --example webproxy -- 0.0.0.0:8000 # some other interface/port
//! ```
//!
//! gevent needs `monkey.patch_all()` so that urllib does not block the server; here the
//! fetch is `may_gevent::client`, which parks only the coroutine of the request (a blocking
//! client would hold a may worker thread, and with it every request queued on that worker).

use std::sync::{LazyLock, OnceLock};

use may_gevent::client::Client;
use may_gevent::pywsgi::{AppResult, Environ, StartResponse, WsgiServer};
use regex::bytes::{Captures, Regex};

const LISTEN: &str = "127.0.0.1:8088";

fn application(env: &mut Environ, start_response: &mut StartResponse<'_>) -> AppResult {
    let proxy_url = format!("http://{}/", env.get("HTTP_HOST").unwrap_or(""));
    let method = env.method().to_owned();
    let mut path = env.path_info().to_owned();
    if !env.query_string().is_empty() {
        path = format!("{path}?{}", env.query_string());
    }
    let path = path.trim_start_matches('/');

    if (method.as_str(), path) == ("GET", "") {
        start_response.call("200 OK", &[("Content-Type", "text/html")])?;
        return Ok(FORM.into());
    }

    if method == "GET" {
        return proxy(path, start_response, &proxy_url);
    }

    if (method.as_str(), path) == ("POST", "") {
        let body = env.input().read_all()?;
        let body = body.trim_ascii();
        let eq = body.iter().position(|&b| b == b'=').unwrap_or(body.len());
        let (key, value) = (&body[..eq], body.get(eq + 1..).unwrap_or_default());
        if key != b"url" {
            return Err(format!("{key:?}").into()); // gevent: assert key == b'url'
        }
        let location = join(&[proxy_url.as_bytes(), &unquote(value)]);
        start_response.call(
            "302 Found",
            &[("Location", &String::from_utf8_lossy(&location))],
        )?;
    } else if method == "POST" {
        start_response.call("404 Not Found", &[])?;
    } else {
        start_response.call("501 Not Implemented", &[])?;
    }
    Ok(().into())
}

fn proxy(path: &str, start_response: &mut StartResponse<'_>, proxy_url: &str) -> AppResult {
    let path = if path.contains("://") {
        path.to_owned()
    } else {
        format!("http://{path}")
    };

    // urllib's urlopen follows up to 10 redirects; 4xx/5xx are responses here too
    static CLIENT: OnceLock<Client> = OnceLock::new();
    let client = CLIENT.get_or_init(|| Client::builder().max_redirects(10).build());
    let fetched = client.get(&path).and_then(|response| {
        println!("{path}: {} {}", response.status(), response.reason());
        let headers: Vec<(String, String)> = response
            .headers()
            .iter()
            .filter(|(k, _)| !DROP_HEADERS.contains(&k.to_ascii_lowercase().as_str()))
            .cloned()
            .collect();
        Ok((response.status_line(), headers, response.bytes()?))
    });
    let (status, headers, data) = match fetched {
        Ok(fetched) => fetched,
        Err(err) => {
            eprintln!("error while reading {path}:\n{err:?}");
            start_response.call("502 Bad Gateway", &[("Content-Type", "text/html")])?;
            let error_str = format!(
                "<h1>{}</h1><h2>{}</h2><pre>{}</pre>",
                escape(&err.to_string()),
                escape(&path),
                escape(&format!("{err:?}"))
            );
            return Ok(error_str.into_bytes().into());
        }
    };
    let (scheme, rest) = path.split_once("://").unwrap_or(("http", &path));
    let host = format!(
        "{scheme}://{}",
        rest.split(['/', '?', '#']).next().unwrap_or("")
    );
    println!("Returning {headers:?}");
    let headers: Vec<(&str, &str)> = headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    start_response.call(&status, &headers)?;
    Ok(fix_links(&data, proxy_url, &host).into())
}

/// Join URL parts with exactly one `/` between each two.
fn join(parts: &[&[u8]]) -> Vec<u8> {
    let mut url = parts[0].to_vec();
    for part in &parts[1..] {
        match (url.ends_with(b"/"), part.starts_with(b"/")) {
            (true, true) => url.extend_from_slice(&part[1..]),
            (false, false) => {
                url.push(b'/');
                url.extend_from_slice(part);
            }
            _ => url.extend_from_slice(part),
        }
    }
    url
}

/// ```text
/// fix_links(b"><img src=images/hp0.gif width=158", "http://127.0.0.1:8088", "www.google.com")
///   == b"><img src=\"http://127.0.0.1:8088/www.google.com/images/hp0.gif\" width=158"
/// ```
fn fix_links(data: &[u8], proxy_url: &str, host_url: &str) -> Vec<u8> {
    let [link_re_1, link_re_2] = &*LINK_RE;
    let fix_link_cb = |m: &Captures<'_>| {
        let url = ["dq", "sq", "url"]
            .iter()
            .find_map(|g| m.name(g))
            .map_or(&b""[..], |u| u.as_bytes());
        let fixed = if url.windows(3).any(|w| w == b"://") {
            join(&[proxy_url.as_bytes(), url])
        } else {
            join(&[proxy_url.as_bytes(), host_url.as_bytes(), url])
        };
        [&m["before"], b"\"", &fixed, b"\""].concat()
    };
    let data = link_re_1.replace_all(data, fix_link_cb);
    link_re_2.replace_all(&data, fix_link_cb).into_owned()
}

/// gevent's `_link_re_1` (both quote kinds; the regex crate has no backreference) and `_link_re_2`.
static LINK_RE: LazyLock<[Regex; 2]> = LazyLock::new(|| {
    [
        Regex::new(r##"(?P<before>(href|src|action)\s*=\s*)(?:"(?P<dq>[^#"\n][^"\n]*?)"|'(?P<sq>[^#'\n][^'\n]*?)')"##),
        Regex::new(r##"(?P<before>(href|src|action)\s*=\s*)(?P<url>[^'"#>][^ >]*)"##),
    ]
    .map(|re| re.expect("valid regex"))
});

/// urllib.parse.unquote: `%XX` escapes decoded, everything else kept.
fn unquote(s: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        let hex = s
            .get(i + 1..i + 3)
            .and_then(|h| u8::from_str_radix(std::str::from_utf8(h).ok()?, 16).ok());
        match (s[i], hex) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    out
}

/// html.escape
fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#x27;")
}

/// The lowercase names of headers that we will *NOT* forward. gevent's two, and the framing
/// and hop-by-hop headers: the body is re-framed after fix_links changed its length.
const DROP_HEADERS: &[&str] = &[
    "transfer-encoding",
    "set-cookie",
    "content-length",
    "connection",
    "keep-alive",
];

const FORM: &[u8] = br#"<html><head>
<title>Web Proxy - gevent example</title></head><body>
<table width=60% height=100% align=center>
<tr height=30%><td align=center valign=bottom>Type in URL you want to visit and press Enter</td></tr>
<tr><td align=center valign=top>
<form action=/ method=post>
<input size=80 name=url value="http://www.gevent.org"/>
</form>
</td></tr>
</table></body></table>
"#;

fn main() -> Result<(), may_gevent::Error> {
    let listen = std::env::args().nth(1).unwrap_or_else(|| LISTEN.to_owned());
    // compiled at import in Python; here before serving, so that no request waits for it
    LazyLock::force(&LINK_RE);
    // compiling and running the regular expressions takes more than may's 32 KiB of stack
    let server = WsgiServer::builder(listen.as_str(), application)
        .stack_size(256 * 1024)
        .build()?;
    server.init_socket()?;
    println!("Serving on {}...", server.address().expect("bound"));
    server.serve_forever()
}
