//! Application-protocol messages with real wire formats: HTTP/1.1
//! (RFC 9112), TLS 1.3 handshake records (RFC 8446, SNI RFC 6066, ALPN
//! RFC 7301), DNS (RFC 1035, AAAA RFC 3596), SIP/SDP (RFC 3261, 4566),
//! RTP (RFC 3550), FTP (RFC 959, EPSV RFC 2428) and the rsync daemon
//! greeting. Encrypted or media bytes are synthetic filler.

use rand::RngCore;

use crate::dist::Rng;
use crate::time::http_date;
use crate::wire::{random_block, Ip};

pub(crate) const UA: &str =
    "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0";

pub(crate) fn http_request(path: &str, host: &str, accept: &str) -> Vec<u8> {
    format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: {UA}\r\nAccept: {accept}\r\n\
         Accept-Language: en-US,en;q=0.5\r\nAccept-Encoding: identity\r\nConnection: keep-alive\r\n\r\n"
    )
    .into_bytes()
}

pub(crate) fn http_response_head(ts_ns: u64, content_type: &str, len: u64) -> Vec<u8> {
    format!(
        "HTTP/1.1 200 OK\r\nDate: {}\r\nServer: nginx\r\nContent-Type: {content_type}\r\n\
         Content-Length: {len}\r\nCache-Control: max-age=3600\r\nConnection: keep-alive\r\n\r\n",
        http_date(ts_ns)
    )
    .into_bytes()
}

fn rand_bytes(rng: &mut Rng, n: usize) -> Vec<u8> {
    let mut v = vec![0u8; n];
    rng.fill_bytes(&mut v);
    v
}

fn push_u16(v: &mut Vec<u8>, x: u16) {
    v.extend_from_slice(&x.to_be_bytes());
}

fn push_u24(v: &mut Vec<u8>, x: usize) {
    v.extend_from_slice(&[(x >> 16) as u8, (x >> 8) as u8, x as u8]);
}

fn ext(v: &mut Vec<u8>, typ: u16, body: &[u8]) {
    push_u16(v, typ);
    push_u16(v, body.len() as u16);
    v.extend_from_slice(body);
}

fn record(typ: u8, legacy: u16, body: &[u8]) -> Vec<u8> {
    let mut r = Vec::with_capacity(body.len() + 5);
    r.push(typ);
    push_u16(&mut r, legacy);
    push_u16(&mut r, body.len() as u16);
    r.extend_from_slice(body);
    r
}

/// A TLS 1.3 ClientHello record offering `alpn`, with SNI `host`.
pub(crate) fn tls_client_hello(rng: &mut Rng, host: &str, alpn: &[&str]) -> Vec<u8> {
    let mut exts = Vec::new();
    // server_name
    let mut sn = Vec::new();
    push_u16(&mut sn, (host.len() + 3) as u16);
    sn.push(0);
    push_u16(&mut sn, host.len() as u16);
    sn.extend_from_slice(host.as_bytes());
    ext(&mut exts, 0, &sn);
    ext(&mut exts, 23, &[]); // extended_master_secret
    ext(&mut exts, 65281, &[0]); // renegotiation_info
    ext(&mut exts, 10, &[0, 6, 0, 0x1d, 0, 0x17, 0, 0x18]); // supported_groups
    ext(&mut exts, 11, &[1, 0]); // ec_point_formats
                                 // ALPN
    let mut al = Vec::new();
    let list: usize = alpn.iter().map(|p| p.len() + 1).sum();
    push_u16(&mut al, list as u16);
    for p in alpn {
        al.push(p.len() as u8);
        al.extend_from_slice(p.as_bytes());
    }
    ext(&mut exts, 16, &al);
    ext(&mut exts, 5, &[1, 0, 0, 0, 0]); // status_request
                                         // key_share: x25519
    let mut ks = Vec::new();
    push_u16(&mut ks, 36);
    push_u16(&mut ks, 0x1d);
    push_u16(&mut ks, 32);
    ks.extend_from_slice(&rand_bytes(rng, 32));
    ext(&mut exts, 51, &ks);
    ext(&mut exts, 43, &[4, 3, 4, 3, 3]); // supported_versions: 1.3, 1.2
    let sigs: [u16; 8] = [
        0x0403, 0x0503, 0x0603, 0x0804, 0x0805, 0x0806, 0x0401, 0x0501,
    ];
    let mut sa = Vec::new();
    push_u16(&mut sa, 16);
    for s in sigs {
        push_u16(&mut sa, s);
    }
    ext(&mut exts, 13, &sa); // signature_algorithms
    ext(&mut exts, 45, &[1, 1]); // psk_key_exchange_modes
    let mut body = Vec::new();
    push_u16(&mut body, 0x0303);
    body.extend_from_slice(&rand_bytes(rng, 32));
    body.push(32);
    body.extend_from_slice(&rand_bytes(rng, 32));
    let suites: [u16; 9] = [
        0x1301, 0x1303, 0x1302, 0xc02b, 0xc02f, 0xcca9, 0xcca8, 0xc02c, 0xc030,
    ];
    push_u16(&mut body, (suites.len() * 2) as u16);
    for s in suites {
        push_u16(&mut body, s);
    }
    body.extend_from_slice(&[1, 0]);
    push_u16(&mut body, exts.len() as u16);
    body.extend_from_slice(&exts);
    let mut hs = vec![1u8];
    push_u24(&mut hs, body.len());
    hs.extend_from_slice(&body);
    record(22, 0x0301, &hs)
}

/// ServerHello (TLS 1.3, TLS_AES_128_GCM_SHA256, x25519) and the
/// middlebox-compatibility ChangeCipherSpec; the encrypted rest of the
/// server's flight is sent as application-data filler.
pub(crate) fn tls_server_hello(rng: &mut Rng, client_hello: &[u8]) -> Vec<u8> {
    // Echo the client's legacy session id (record 5 + hs 4 + ver 2 + rnd 32 + len 1).
    let sid = &client_hello[44..76];
    let mut exts = Vec::new();
    ext(&mut exts, 43, &[3, 4]);
    let mut ks = Vec::new();
    push_u16(&mut ks, 0x1d);
    push_u16(&mut ks, 32);
    ks.extend_from_slice(&rand_bytes(rng, 32));
    ext(&mut exts, 51, &ks);
    let mut body = Vec::new();
    push_u16(&mut body, 0x0303);
    let mut rnd = rand_bytes(rng, 32);
    rnd[0] = rnd[0].wrapping_add(1) | 1; // never the HelloRetryRequest value
    body.extend_from_slice(&rnd);
    body.push(32);
    body.extend_from_slice(sid);
    push_u16(&mut body, 0x1301);
    body.push(0);
    push_u16(&mut body, exts.len() as u16);
    body.extend_from_slice(&exts);
    let mut hs = vec![2u8];
    push_u24(&mut hs, body.len());
    hs.extend_from_slice(&body);
    let mut v = record(22, 0x0303, &hs);
    v.extend_from_slice(&record(20, 0x0303, &[1]));
    v
}

/// Client's second flight: ChangeCipherSpec and an encrypted Finished.
pub(crate) fn tls_client_finished(rng: &mut Rng) -> Vec<u8> {
    let mut v = record(20, 0x0303, &[1]);
    v.extend_from_slice(&record(23, 0x0303, &rand_bytes(rng, 53)));
    v
}

/// `len` bytes of plaintext as one encrypted application-data record.
pub(crate) fn tls_app_record(len: usize, salt: u64) -> Vec<u8> {
    let n = len + 17;
    let b = random_block();
    let start = (salt % (b.len() - n) as u64) as usize;
    record(23, 0x0303, &b[start..start + n])
}

fn dns_name(v: &mut Vec<u8>, name: &str) {
    for label in name.split('.') {
        v.push(label.len() as u8);
        v.extend_from_slice(label.as_bytes());
    }
    v.push(0);
}

pub(crate) const QTYPE_A: u16 = 1;
pub(crate) const QTYPE_AAAA: u16 = 28;

pub(crate) fn dns_query(id: u16, name: &str, qtype: u16) -> Vec<u8> {
    let mut v = Vec::with_capacity(64);
    push_u16(&mut v, id);
    v.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    dns_name(&mut v, name);
    push_u16(&mut v, qtype);
    push_u16(&mut v, 1);
    v
}

/// Response to [`dns_query`]: optional CNAME then the addresses of the
/// query's type (none: NODATA).
pub(crate) fn dns_response(
    id: u16,
    name: &str,
    qtype: u16,
    cname: Option<&str>,
    addrs: &[Ip],
    ttl: u32,
) -> Vec<u8> {
    let answers: Vec<&Ip> = addrs
        .iter()
        .filter(|a| (qtype == QTYPE_AAAA) == a.is_v6())
        .collect();
    let an = answers.len() + usize::from(cname.is_some() && !answers.is_empty());
    let mut v = Vec::with_capacity(128);
    push_u16(&mut v, id);
    v.extend_from_slice(&[0x81, 0x80, 0, 1]);
    push_u16(&mut v, an as u16);
    v.extend_from_slice(&[0, 0, 0, 0]);
    dns_name(&mut v, name);
    push_u16(&mut v, qtype);
    push_u16(&mut v, 1);
    let mut owner: u16 = 0xc00c;
    if let (Some(cn), false) = (cname, answers.is_empty()) {
        push_u16(&mut v, owner);
        push_u16(&mut v, 5);
        push_u16(&mut v, 1);
        v.extend_from_slice(&ttl.to_be_bytes());
        let at = v.len() + 2;
        let mut rd = Vec::new();
        dns_name(&mut rd, cn);
        push_u16(&mut v, rd.len() as u16);
        v.extend_from_slice(&rd);
        owner = 0xc000 | at as u16;
    }
    for a in answers {
        push_u16(&mut v, owner);
        push_u16(&mut v, qtype);
        push_u16(&mut v, 1);
        v.extend_from_slice(&ttl.to_be_bytes());
        match a {
            Ip::V4(b) => {
                push_u16(&mut v, 4);
                v.extend_from_slice(b);
            }
            Ip::V6(b) => {
                push_u16(&mut v, 16);
                v.extend_from_slice(b);
            }
        }
    }
    v
}

/// RTP fixed header (RFC 3550 §5.1), no CSRCs.
pub(crate) fn rtp_header(marker: bool, pt: u8, seq: u16, ts: u32, ssrc: u32) -> [u8; 12] {
    let mut h = [0u8; 12];
    h[0] = 0x80;
    h[1] = (u8::from(marker) << 7) | (pt & 0x7f);
    h[2..4].copy_from_slice(&seq.to_be_bytes());
    h[4..8].copy_from_slice(&ts.to_be_bytes());
    h[8..12].copy_from_slice(&ssrc.to_be_bytes());
    h
}

fn ip_sip(ip: &Ip) -> String {
    match ip {
        Ip::V4(_) => ip.to_string(),
        Ip::V6(_) => format!("[{ip}]"),
    }
}

/// The fixed parts of one SIP dialog.
pub(crate) struct SipDialog {
    pub client: Ip,
    pub client_port: u16,
    pub proxy: Ip,
    pub call_id: String,
    pub from_tag: String,
    pub to_tag: String,
    pub branch: String,
    pub caller: String,
    pub callee: String,
}

pub(crate) fn sdp(origin_id: u64, ip: &Ip, port: u16) -> String {
    let fam = if ip.is_v6() { "IP6" } else { "IP4" };
    format!(
        "v=0\r\no=- {origin_id} {origin_id} IN {fam} {ip}\r\ns=-\r\nc=IN {fam} {ip}\r\nt=0 0\r\n\
         m=audio {port} RTP/AVP 0 13\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:13 CN/8000\r\na=ptime:20\r\na=sendrecv\r\n"
    )
}

impl SipDialog {
    fn via(&self, branch_sfx: &str) -> String {
        format!(
            "Via: SIP/2.0/UDP {}:{};branch={}{}",
            ip_sip(&self.client),
            self.client_port,
            self.branch,
            branch_sfx
        )
    }

    fn common(&self, to_tag: bool, cseq: &str) -> String {
        let tt = if to_tag {
            format!(";tag={}", self.to_tag)
        } else {
            String::new()
        };
        format!(
            "From: <sip:{}@example.com>;tag={}\r\nTo: <sip:{}@example.com>{tt}\r\nCall-ID: {}\r\nCSeq: {cseq}\r\n",
            self.caller, self.from_tag, self.callee, self.call_id
        )
    }

    fn with_body(start: String, headers: String, body: Option<&str>) -> Vec<u8> {
        let (ct, b) = match body {
            Some(b) => ("Content-Type: application/sdp\r\n", b),
            None => ("", ""),
        };
        format!(
            "{start}\r\n{headers}{ct}Content-Length: {}\r\n\r\n{b}",
            b.len()
        )
        .into_bytes()
    }

    pub fn invite(&self, sdp: &str) -> Vec<u8> {
        let h = format!(
            "{}\r\nMax-Forwards: 70\r\n{}Contact: <sip:{}@{}:{}>\r\nUser-Agent: trafficscope-synthetic\r\n",
            self.via(""),
            self.common(false, "1 INVITE"),
            self.caller,
            ip_sip(&self.client),
            self.client_port
        );
        Self::with_body(
            format!("INVITE sip:{}@example.com SIP/2.0", self.callee),
            h,
            Some(sdp),
        )
    }

    pub fn response(
        &self,
        code: u16,
        reason: &str,
        cseq: &str,
        to_tag: bool,
        sdp: Option<&str>,
    ) -> Vec<u8> {
        let branch_sfx = if cseq.ends_with("BYE") { "b" } else { "" };
        let mut h = format!("{}\r\n{}", self.via(branch_sfx), self.common(to_tag, cseq));
        if sdp.is_some() {
            h.push_str(&format!(
                "Contact: <sip:{}@{}:5060>\r\n",
                self.callee,
                ip_sip(&self.proxy)
            ));
        }
        Self::with_body(format!("SIP/2.0 {code} {reason}"), h, sdp)
    }

    pub fn ack(&self) -> Vec<u8> {
        let h = format!(
            "{}\r\nMax-Forwards: 70\r\n{}",
            self.via("a"),
            self.common(true, "1 ACK")
        );
        Self::with_body(
            format!(
                "ACK sip:{}@{}:5060 SIP/2.0",
                self.callee,
                ip_sip(&self.proxy)
            ),
            h,
            None,
        )
    }

    pub fn bye(&self) -> Vec<u8> {
        let h = format!(
            "{}\r\nMax-Forwards: 70\r\n{}",
            self.via("b"),
            self.common(true, "2 BYE")
        );
        Self::with_body(
            format!(
                "BYE sip:{}@{}:5060 SIP/2.0",
                self.callee,
                ip_sip(&self.proxy)
            ),
            h,
            None,
        )
    }
}

/// A small but valid MPEG-DASH MPD listing the ladder.
pub(crate) fn mpd(ladder: &[u64], seg_s: u32, total_s: u64) -> Vec<u8> {
    let mut reps = String::new();
    for (i, b) in ladder.iter().enumerate() {
        let (w, h) = match i {
            0 => (640, 360),
            1 => (854, 480),
            2 => (1280, 720),
            3 => (1280, 720),
            4 => (1920, 1080),
            _ => (2560, 1440),
        };
        reps.push_str(&format!(
            "      <Representation id=\"v{i}\" bandwidth=\"{b}\" width=\"{w}\" height=\"{h}\" codecs=\"avc1.640028\"/>\n"
        ));
    }
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
<MPD xmlns=\"urn:mpeg:dash:schema:mpd:2011\" type=\"static\" mediaPresentationDuration=\"PT{total_s}S\" minBufferTime=\"PT{seg_s}S\" profiles=\"urn:mpeg:dash:profile:isoff-on-demand:2011\">\n\
  <Period>\n\
    <AdaptationSet mimeType=\"video/mp4\" segmentAlignment=\"true\">\n\
      <SegmentTemplate timescale=\"1000\" duration=\"{}\" initialization=\"init-$RepresentationID$.mp4\" media=\"seg-$Number%05d$-$Bandwidth$.m4s\" startNumber=\"1\"/>\n\
{reps}    </AdaptationSet>\n\
  </Period>\n\
</MPD>\n",
        seg_s * 1000
    )
    .into_bytes()
}

/// RTCP compound packet (RFC 3550 §6.4.1, §6.5): a sender report without
/// reception blocks, then SDES with the CNAME.
pub(crate) fn rtcp_sr_sdes(
    ssrc: u32,
    unix_ns: u64,
    rtp_ts: u32,
    packets: u32,
    octets: u32,
    cname: &str,
) -> Vec<u8> {
    let mut v = Vec::with_capacity(64);
    v.extend_from_slice(&[0x80, 200, 0, 6]);
    v.extend_from_slice(&ssrc.to_be_bytes());
    let secs = unix_ns / 1_000_000_000 + 2_208_988_800;
    let frac = ((unix_ns % 1_000_000_000) << 32) / 1_000_000_000;
    v.extend_from_slice(&(secs as u32).to_be_bytes());
    v.extend_from_slice(&(frac as u32).to_be_bytes());
    v.extend_from_slice(&rtp_ts.to_be_bytes());
    v.extend_from_slice(&packets.to_be_bytes());
    v.extend_from_slice(&octets.to_be_bytes());
    // SDES: one chunk, CNAME item, end item, padded to 32 bits.
    let mut chunk = ssrc.to_be_bytes().to_vec();
    chunk.push(1);
    chunk.push(cname.len() as u8);
    chunk.extend_from_slice(cname.as_bytes());
    chunk.push(0);
    chunk.resize(chunk.len().div_ceil(4) * 4, 0);
    let words = (4 + chunk.len()) / 4 - 1;
    v.extend_from_slice(&[0x81, 202]);
    v.extend_from_slice(&(words as u16).to_be_bytes());
    v.extend_from_slice(&chunk);
    v
}
