//! RTSP, the control protocol of streaming media (RFC 2326 for version
//! 1.0, RFC 7826 for 2.0): what IP cameras, set-top boxes and media
//! servers speak to start and steer an RTP stream. Its messages have
//! HTTP's shape, so it is checked before HTTP: a request line is
//! `METHOD SP Request-URI SP RTSP/x.y CRLF` (OPTIONS and GET_PARAMETER are
//! HTTP-looking methods: the version tells them apart), a response's
//! status line `RTSP/x.y SP 3DIGIT`.

use super::AppHint;

/// The request methods of RFC 2326 §10 and RFC 7826 §13 (PLAY_NOTIFY).
const METHODS: [&str; 12] = [
    "DESCRIBE",
    "ANNOUNCE",
    "GET_PARAMETER",
    "OPTIONS",
    "PAUSE",
    "PLAY",
    "PLAY_NOTIFY",
    "RECORD",
    "REDIRECT",
    "SETUP",
    "SET_PARAMETER",
    "TEARDOWN",
];

/// The longest request line read (method, URI, version): camera URIs
/// carry tokens, but a request line longer than this is not RTSP here.
const MAX_LINE: usize = 1024;

/// `x.y` with one digit each side, as both versions write it.
fn version(v: &[u8]) -> bool {
    v.len() >= 3 && v[0].is_ascii_digit() && v[1] == b'.' && v[2].is_ascii_digit()
}

/// An RTSP request line or status line at the start of `p`.
pub(super) fn rtsp(p: &[u8]) -> Option<AppHint<'static>> {
    // One comparison for payloads that start with none of the methods'
    // or the status line's letters.
    if !matches!(
        p.first()?,
        b'A' | b'D' | b'G' | b'O' | b'P' | b'R' | b'S' | b'T'
    ) {
        return None;
    }
    if let Some(rest) = p.strip_prefix(b"RTSP/") {
        let ok = rest.len() >= 7
            && version(rest)
            && rest[3] == b' '
            && rest[4..7].iter().all(u8::is_ascii_digit);
        return ok.then_some(AppHint::Rtsp { method: "response" });
    }
    let method = METHODS
        .iter()
        .find(|m| p.len() > m.len() && p.starts_with(m.as_bytes()) && p[m.len()] == b' ')?;
    let line = &p[..p.len().min(MAX_LINE)];
    let end = line.iter().position(|&c| c == b'\r' || c == b'\n')?;
    let line = &line[method.len() + 1..end];
    // "URI RTSP/x.y": the version is the last word of the line.
    let (uri, v) = line.split_at(line.iter().rposition(|&c| c == b' ')?);
    (!uri.is_empty() && v.len() == 9 && v[1..].starts_with(b"RTSP/") && version(&v[6..]))
        .then_some(AppHint::Rtsp { method })
}

#[cfg(test)]
mod tests {
    use crate::app::test_util::{proto, tcp, udp};
    use crate::app::{inspect, AppHint};

    /// The SETUP of VLC's live555 client in nDPI's rtsp_setup_http.pcapng.
    const SETUP: &[u8] = b"SETUP rtsp://172.28.4.26:8554/trackID=88 RTSP/1.0\r\nCSeq: 4\r\n\
User-Agent: LibVLC/3.0.16 (LIVE555 Streaming Media v2016.11.28)\r\n\
Transport: RTP/AVP;unicast;client_port=50220-50221\r\n\r\n";

    #[test]
    fn requests_and_responses_of_both_versions() {
        assert_eq!(
            inspect(&tcp(63840, 8554, SETUP)),
            Some(AppHint::Rtsp { method: "SETUP" })
        );
        let options = b"OPTIONS rtsp://cam.example/live RTSP/1.0\r\nCSeq: 1\r\n\r\n";
        assert_eq!(
            inspect(&tcp(40000, 554, options)),
            Some(AppHint::Rtsp { method: "OPTIONS" })
        );
        let play = b"PLAY rtsp://media.example.com/movie RTSP/2.0\r\nCSeq: 3\r\n\r\n";
        assert_eq!(proto(&tcp(40000, 9000, play)), Some("rtsp"));
        let ok = b"RTSP/1.0 200 OK\r\nCSeq: 4\r\nSession: 12345678\r\n\r\n";
        assert_eq!(
            inspect(&tcp(554, 40000, ok)),
            Some(AppHint::Rtsp { method: "response" })
        );
        assert_eq!(
            proto(&tcp(554, 40000, b"RTSP/2.0 454 Session Not Found\r\n")),
            Some("rtsp")
        );
    }

    /// HTTP stays HTTP (same methods, another version); broken lines are
    /// neither.
    #[test]
    fn http_and_near_misses_are_not_rtsp() {
        let http_options = b"OPTIONS * HTTP/1.1\r\nHost: a.example\r\n\r\n";
        assert_eq!(proto(&tcp(40000, 80, http_options)), Some("http"));
        assert_eq!(
            proto(&tcp(80, 40000, b"HTTP/1.1 200 OK\r\n\r\n")),
            Some("http")
        );
        for p in [
            &b"SETUP rtsp://a/b RTSP/1.0"[..], // no line end in the segment
            b"SETUP RTSP/1.0\r\n",             // no URI
            b"PLAY rtsp://a/b RTSP/x.0\r\n",
            b"PLAYING rtsp://a/b RTSP/1.0\r\n",
            b"RTSP/1.0 2x0 OK\r\n",
            b"RTSP/1.0\r\n",
            b"TEARDOWN",
        ] {
            assert_ne!(
                proto(&tcp(40000, 554, p)),
                Some("rtsp"),
                "{:?}",
                String::from_utf8_lossy(p)
            );
        }
        // Over UDP only on TCP's terms: not looked for.
        assert_ne!(proto(&udp(40000, 554, SETUP)), Some("rtsp"));
    }
}
