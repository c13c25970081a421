//! HTTP/1.x (RFC 9112) request lines with their Host header, and responses
//! with their Content-Type; also the WebDAV methods (RFC 4918) and SSDP
//! (UPnP's HTTP over UDP: M-SEARCH, NOTIFY).

use super::{AppHint, MAX_HTTP_PATH};

const HTTP_METHODS: [&str; 18] = [
    "GET",
    "POST",
    "HEAD",
    "PUT",
    "DELETE",
    "OPTIONS",
    "CONNECT",
    "PATCH",
    "TRACE",
    // WebDAV (RFC 4918) and SSDP (UPnP over UDP).
    "PROPFIND",
    "PROPPATCH",
    "MKCOL",
    "COPY",
    "MOVE",
    "LOCK",
    "UNLOCK",
    "M-SEARCH",
    "NOTIFY",
];

pub(super) fn http(p: &[u8]) -> Option<AppHint<'_>> {
    if p.starts_with(b"HTTP/1.") {
        let content_type = header(p, b"content-type:").and_then(|v| {
            let v = v.split(|&c| c == b';').next().unwrap_or(v);
            std::str::from_utf8(v)
                .ok()
                .map(str::trim)
                .filter(|v| !v.is_empty())
        });
        return Some(AppHint::HttpResponse { content_type });
    }
    let method = HTTP_METHODS
        .iter()
        .find(|m| p.len() > m.len() && p.starts_with(m.as_bytes()) && p[m.len()] == b' ')?;
    let target = &p[method.len() + 1..];
    let target = &target[..target.len().min(MAX_HTTP_PATH)];
    let end = target
        .iter()
        .position(|&c| c == b' ' || c == b'\r' || c == b'\n')
        .unwrap_or(target.len());
    let path = utf8_prefix(&target[..end]);
    let host = header(p, b"host:")
        .and_then(|v| std::str::from_utf8(v).ok())
        .map(str::trim);
    Some(AppHint::HttpRequest { method, path, host })
}

/// The longest prefix of `b` that is UTF-8.
fn utf8_prefix(b: &[u8]) -> &str {
    match std::str::from_utf8(b) {
        Ok(s) => s,
        Err(e) => std::str::from_utf8(&b[..e.valid_up_to()]).unwrap_or_default(),
    }
}

/// Value of the header `name` (lower case, with the colon) in the head of
/// an HTTP-like message, searched in its first 4 KiB.
fn header<'a>(p: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    let head = &p[..p.len().min(4096)];
    let first = name[0];
    // Skip the request or status line.
    let mut at = find_newline(head)? + 1;
    loop {
        let rest = &head[at..];
        let end = find_newline(rest).unwrap_or(rest.len());
        let line = &rest[..end];
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            return None;
        }
        if line.len() > name.len()
            && line[0] | 0x20 == first
            && line[..name.len()].eq_ignore_ascii_case(name)
        {
            return Some(&line[name.len()..]);
        }
        if end == rest.len() {
            return None;
        }
        at += end + 1;
    }
}

/// Position of the first b'\n' in `b`, eight bytes at a time.
#[inline]
fn find_newline(b: &[u8]) -> Option<usize> {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    let mut chunks = b.chunks_exact(8);
    let mut at = 0;
    for c in &mut chunks {
        let x = u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]) ^ (LO * 10);
        // The lowest set bit marks the first zero byte exactly.
        let z = x.wrapping_sub(LO) & !x & HI;
        if z != 0 {
            return Some(at + (z.trailing_zeros() / 8) as usize);
        }
        at += 8;
    }
    chunks
        .remainder()
        .iter()
        .position(|&c| c == b'\n')
        .map(|i| at + i)
}

#[cfg(test)]
mod tests {
    use super::find_newline;
    use crate::app::test_util::{tcp, udp};
    use crate::app::{inspect, AppHint};
    use proptest::prelude::*;

    #[test]
    fn http_request_path_and_response_type() {
        let req = b"GET /videos/a.m3u8?x=1 HTTP/1.1\r\nHost: cdn.example.com\r\n\r\n";
        assert_eq!(
            inspect(&tcp(40000, 80, req)),
            Some(AppHint::HttpRequest {
                method: "GET",
                path: "/videos/a.m3u8?x=1",
                host: Some("cdn.example.com")
            })
        );
        let ssdp = b"M-SEARCH * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\n\r\n";
        assert!(matches!(
            inspect(&udp(40000, 1900, ssdp)),
            Some(AppHint::HttpRequest { path: "*", .. })
        ));
        // A target cut by the segment, and one longer than the cap: cut at
        // 256 bytes, backing off to a character boundary ("é" is 2 bytes).
        assert!(matches!(
            inspect(&tcp(40000, 80, b"GET /abc")),
            Some(AppHint::HttpRequest {
                path: "/abc",
                host: None,
                ..
            })
        ));
        let mut long = b"GET /".to_vec();
        long.extend(std::iter::repeat_n(b'a', 254));
        long.extend("é".as_bytes());
        long.extend(b"zz HTTP/1.1\r\n\r\n");
        match inspect(&tcp(40000, 80, &long)) {
            Some(AppHint::HttpRequest { path, .. }) => {
                assert_eq!(path.len(), 255);
                assert!(path.ends_with('a'));
            }
            h => panic!("{h:?}"),
        }
        let bad = b"GET /a\xffb HTTP/1.1\r\n\r\n";
        assert!(matches!(
            inspect(&tcp(40000, 80, bad)),
            Some(AppHint::HttpRequest { path: "/a", .. })
        ));
        let resp = b"HTTP/1.1 200 OK\r\nServer: x\r\nContent-Type:  application/vnd.apple.mpegurl; charset=UTF-8\r\n\r\n#EXTM3U";
        assert_eq!(
            inspect(&tcp(80, 40000, resp)),
            Some(AppHint::HttpResponse {
                content_type: Some("application/vnd.apple.mpegurl")
            })
        );
        let resp = b"HTTP/1.0 204 No Content\r\ncontent-type: video/mp4\r\n\r\n";
        assert_eq!(
            inspect(&tcp(80, 40000, resp)),
            Some(AppHint::HttpResponse {
                content_type: Some("video/mp4")
            })
        );
        // Body lines are not headers.
        let resp = b"HTTP/1.1 200 OK\r\n\r\nContent-Type: text/html\r\n";
        assert_eq!(
            inspect(&tcp(80, 40000, resp)),
            Some(AppHint::HttpResponse { content_type: None })
        );
    }

    proptest! {
        #[test]
        fn find_newline_matches_a_plain_search(
            b in prop::collection::vec(prop::sample::select(vec![b'\n', b'a', 0x8a, 0x0b, 0x09, 0]), 0..40),
        ) {
            prop_assert_eq!(find_newline(&b), b.iter().position(|&c| c == b'\n'));
        }
    }
}
