//! Tests of the proxy URL parser and the SOCKS5 / HTTP CONNECT handshakes.

use super::env::*;
use super::*;

/// Reliability I, defect 10: no error or log line of a proxy URL quotes its password.
#[test]
fn proxy_url_errors_hide_the_credentials() {
    for url in [
        "socks5://user:s3cret@proxy:notaport",
        "socks5://user:s3cret@",
        "ftp://user:s3cret@proxy:1080",
        "user:s3cret@proxy:1080",
        "socks5://user:s3cret@[::1",
        "socks5://user:s3cret@[::1]x",
        "socks5://user:s3%ZZcret@proxy",
        "http://user:s3cret%FF@proxy",
    ] {
        let e = parse_proxy_url(url).unwrap_err().to_string();
        assert!(!e.contains("s3"), "{url}: {e}");
        let warned = proxy_from_env("broker", Some(url), None);
        assert!(warned.is_none());
    }
    assert_eq!(
        redacted("socks5://u:p@proxy:1080/x"),
        "socks5://***@proxy:1080/x"
    );
    assert_eq!(redacted("u:p@proxy"), "***@proxy");
    assert_eq!(redacted("http://proxy:8080"), "http://proxy:8080");
}

#[test]
fn base64_matches_rfc4648_vectors() {
    for (i, o) in [
        ("", ""),
        ("f", "Zg=="),
        ("fo", "Zm8="),
        ("foo", "Zm9v"),
        ("foob", "Zm9vYg=="),
        ("fooba", "Zm9vYmE="),
        ("foobar", "Zm9vYmFy"),
        ("user:pass", "dXNlcjpwYXNz"),
    ] {
        assert_eq!(base64(i.as_bytes()), o, "{i}");
    }
}

#[test]
fn parses_proxy_urls() {
    let p = parse_proxy_url("socks5h://proxy.example:1081").unwrap();
    assert_eq!(
        p,
        ProxyOptions {
            proxy_type: ProxyType::Socks5,
            addr: "proxy.example".into(),
            port: 1081,
            username: None,
            password: None,
            rdns: true
        }
    );
    let p = parse_proxy_url("socks://u%40x:p%3Aw@10.0.0.1").unwrap();
    assert_eq!((p.port, p.rdns), (1080, true));
    assert_eq!(p.username.as_deref(), Some("u@x"));
    assert_eq!(p.password.as_deref(), Some("p:w"));
    let p = parse_proxy_url("socks5://h:1").unwrap();
    assert!(!p.rdns);
    let p = parse_proxy_url("HTTP://user@[::1]/").unwrap();
    assert_eq!(
        (p.proxy_type, p.addr.as_str(), p.port),
        (ProxyType::Http, "::1", 8080)
    );
    assert_eq!(
        (p.username.as_deref(), p.password.as_deref()),
        (Some("user"), None)
    );
    let p = parse_proxy_url("http://[::1]:3128").unwrap();
    assert_eq!((p.addr.as_str(), p.port), ("::1", 3128));
    for bad in [
        "proxy:1080",
        "ftp://h",
        "http://",
        "http://h:0",
        "http://h:x",
        "socks://h:99999",
    ] {
        assert!(parse_proxy_url(bad).is_err(), "{bad}");
    }
}

#[test]
fn no_proxy_matching() {
    assert!(bypass("broker.example.com", "example.com"));
    assert!(bypass("broker.example.com", ".example.com"));
    assert!(bypass("broker.example.com", "*.example.com"));
    assert!(bypass("Broker.Example.COM", "other, EXAMPLE.com:1883"));
    assert!(bypass("example.com", "example.com"));
    assert!(!bypass("badexample.com", "example.com"));
    assert!(!bypass("example.com.evil", "example.com"));
    assert!(bypass("anything", "*"));
    assert!(bypass("127.0.0.1", "localhost,127.0.0.1"));
    assert!(bypass("::1", "[::1]:1883"));
    assert!(bypass("::1", "::1"));
    assert!(!bypass("host", ""));
    assert!(!bypass("host", " , ,"));
}

#[test]
fn env_values_pick_the_proxy() {
    assert_eq!(proxy_from_env("b", None, None), None);
    assert_eq!(proxy_from_env("b", Some(""), None), None);
    let p = proxy_from_env("b.example", Some("http://p:3128"), Some("other")).unwrap();
    assert_eq!((p.proxy_type, p.port), (ProxyType::Http, 3128));
    assert_eq!(
        proxy_from_env("b.example", Some("http://p:3128"), Some("example")),
        None
    );
    assert_eq!(
        proxy_from_env("b.example", Some("http://p:3128"), Some("*")),
        None
    );
    assert_eq!(proxy_from_env("b", Some("gopher://p"), None), None);
}

#[test]
fn validate_rejects_bad_options() {
    let ok = ProxyOptions {
        addr: "p".into(),
        port: 1080,
        ..Default::default()
    };
    validate(&ok).unwrap();
    assert!(validate(&ProxyOptions {
        addr: "".into(),
        ..ok.clone()
    })
    .is_err());
    assert!(validate(&ProxyOptions {
        port: 0,
        ..ok.clone()
    })
    .is_err());
    assert!(validate(&ProxyOptions {
        password: Some("x".into()),
        ..ok.clone()
    })
    .is_err());
    assert!(validate(&ProxyOptions {
        username: Some("u".repeat(256)),
        ..ok
    })
    .is_err());
}

/// A scripted peer: replays `input`, records what was written.
struct Script {
    input: std::io::Cursor<Vec<u8>>,
    output: Vec<u8>,
}
impl Read for Script {
    fn read(&mut self, b: &mut [u8]) -> std::io::Result<usize> {
        self.input.read(b)
    }
}
impl Write for Script {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.output.extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
fn script(input: &[u8]) -> Script {
    Script {
        input: std::io::Cursor::new(input.to_vec()),
        output: Vec::new(),
    }
}

#[test]
fn socks5_bytes_with_auth_and_rdns() {
    let px = ProxyOptions {
        addr: "p".into(),
        port: 1,
        username: Some("u".into()),
        password: Some("pw".into()),
        rdns: true,
        ..Default::default()
    };
    let mut s = script(&[5, 2, 1, 0, 5, 0, 0, 1, 1, 2, 3, 4, 0, 80, 0xAA]);
    socks5(&mut s, &px, "broker", 1883).unwrap();
    let mut want = vec![5, 2, 0, 2, 1, 1, b'u', 2, b'p', b'w', 5, 1, 0, 3, 6];
    want.extend_from_slice(b"broker");
    want.extend_from_slice(&1883u16.to_be_bytes());
    assert_eq!(s.output, want);
    // Nothing past the reply was consumed.
    assert_eq!(s.input.position(), 14);
}

#[test]
fn socks5_refusals() {
    let px = ProxyOptions {
        addr: "p".into(),
        port: 1,
        ..Default::default()
    };
    let mut s = script(&[5, 0xFF]);
    assert!(
        matches!(socks5(&mut s, &px, "1.2.3.4", 1), Err(Error::Proxy(m)) if m.contains("requires authentication"))
    );
    let mut s = script(&[5, 0, 5, 5, 0, 1, 0, 0, 0, 0, 0, 0]);
    assert!(
        matches!(socks5(&mut s, &px, "1.2.3.4", 1), Err(Error::Proxy(m)) if m.contains("connection refused"))
    );
    assert_eq!(&s.output[3..], &[5, 1, 0, 1, 1, 2, 3, 4, 0, 1]);
    let mut s = script(&[5, 0, 5]);
    assert!(
        matches!(socks5(&mut s, &px, "1.2.3.4", 1), Err(Error::Proxy(m)) if m.contains("closed"))
    );
}

#[test]
fn http_connect_bytes_and_status() {
    let px = ProxyOptions {
        proxy_type: ProxyType::Http,
        addr: "p".into(),
        port: 1,
        username: Some("user".into()),
        password: Some("pass".into()),
        ..Default::default()
    };
    let mut s = script(b"HTTP/1.1 200 Connection established\r\nX: y\r\n\r\n\x20\x02");
    http_connect(&mut s, &px, "::1", 1883).unwrap();
    assert_eq!(
        String::from_utf8(s.output).unwrap(),
        "CONNECT [::1]:1883 HTTP/1.1\r\nHost: [::1]:1883\r\nProxy-Authorization: Basic dXNlcjpwYXNz\r\n\r\n"
    );
    let mut rest = Vec::new();
    s.input.read_to_end(&mut rest).unwrap();
    assert_eq!(rest, b"\x20\x02");
    let mut s = script(b"HTTP/1.0 407 Proxy Authentication Required\r\n\r\n");
    let e = http_connect(&mut s, &px, "h", 1).unwrap_err();
    assert!(matches!(&e, Error::Proxy(m) if m.contains("407")), "{e}");
}
