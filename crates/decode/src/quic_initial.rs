//! The TLS ClientHello inside the client's Initial packets of IETF QUIC.
//!
//! QUIC protects its Initial packets with keys that anyone can derive from
//! the Destination Connection ID of the client's first Initial (RFC 9001
//! §5.2): HKDF-SHA256 over a per-version salt, then AES-128-GCM for the
//! payload and AES-128-ECB header protection. This module undoes that for
//! client Initial packets, collects their CRYPTO frames by offset into a
//! [`QuicCryptoBuf`] (the ClientHello may span several Initial packets, as
//! Chrome's post-quantum key shares make it do) and reads the server name
//! and first ALPN protocol of the ClientHello with the same extension parser
//! as TLS over TCP ([`crate::app::client_hello_names`]).
//!
//! Versions: 1 (RFC 9000/9001), 2 (RFC 9369: its own salt, "quicv2 …"
//! labels and long-header type bits) and drafts 29–34 (draft-29's salt up to
//! draft-32, version 1's from draft-33 on). Other versions are left alone.
//!
//! Nothing here panics on bad input: a truncated packet, a length that runs
//! past the datagram or an authentication tag that does not verify leaves
//! the buffer as it was. Data is only ever taken from packets whose AEAD tag
//! verified.

use aes::cipher::{BlockCipherEncrypt, KeyInit};
use aes::Aes128;
use aes_gcm::aead::inout::InOutBuf;
use aes_gcm::{AeadInOut, Aes128Gcm, Tag};
use hkdf::Hkdf;
use sha2::Sha256;

/// Most CRYPTO-stream bytes kept per flow (offsets at or past it are dropped).
pub const MAX_CRYPTO: usize = 8192;

const SALT_V1: [u8; 20] = [
    0x38, 0x76, 0x2c, 0xf7, 0xf5, 0x59, 0x34, 0xb3, 0x4d, 0x17, 0x9a, 0xe6, 0xa4, 0xc8, 0x0c, 0xad,
    0xcc, 0xbb, 0x7f, 0x0a,
];
const SALT_DRAFT29: [u8; 20] = [
    0xaf, 0xbf, 0xec, 0x28, 0x99, 0x93, 0xd2, 0x4c, 0x9e, 0x97, 0x86, 0xf1, 0x9c, 0x61, 0x11, 0xe0,
    0x43, 0x90, 0xa8, 0x99,
];
const SALT_V2: [u8; 20] = [
    0x0d, 0xed, 0xe3, 0xde, 0xf7, 0x00, 0xa6, 0xdb, 0x81, 0x93, 0x81, 0xbe, 0x6e, 0x26, 0x9d, 0xcb,
    0xf9, 0xbd, 0x2e, 0xd9,
];

/// QUIC version 2 (RFC 9369).
pub const VERSION_2: u32 = 0x6b33_43cf;

/// What a version changes in Initial protection.
#[derive(Debug, Clone, Copy)]
struct Params {
    salt: &'static [u8; 20],
    /// Labels for the packet key, IV and header protection key.
    labels: [&'static [u8]; 3],
    /// Long-header type bits of an Initial packet.
    initial_type: u8,
}

const LABELS_V1: [&[u8]; 3] = [b"quic key", b"quic iv", b"quic hp"];
const LABELS_V2: [&[u8]; 3] = [b"quicv2 key", b"quicv2 iv", b"quicv2 hp"];

fn params(version: u32) -> Option<Params> {
    let (salt, labels, initial_type) = match version {
        // Version 1, and drafts 33 and 34 whose salt it kept.
        1 | 0xff00_0021 | 0xff00_0022 => (&SALT_V1, LABELS_V1, 0),
        // Drafts 29 to 32.
        0xff00_001d..=0xff00_0020 => (&SALT_DRAFT29, LABELS_V1, 0),
        VERSION_2 => (&SALT_V2, LABELS_V2, 1),
        _ => return None,
    };
    Some(Params {
        salt,
        labels,
        initial_type,
    })
}

/// Whether Initial packets of `version` can be decrypted here.
pub fn supported_version(version: u32) -> bool {
    params(version).is_some()
}

/// Whether `datagram` starts with a long-header Initial packet of a
/// supported version: a cheap test of its first five bytes, for deciding
/// whether to call [`client_initial_crypto`]. Says nothing of direction:
/// a server's Initial passes too (and then fails to decrypt with client
/// keys).
#[inline]
pub fn is_initial(datagram: &[u8]) -> bool {
    let [b0, v0, v1, v2, v3, ..] = *datagram else {
        return false;
    };
    if b0 & 0x80 == 0 {
        return false;
    }
    params(u32::from_be_bytes([v0, v1, v2, v3])).is_some_and(|p| (b0 >> 4) & 3 == p.initial_type)
}

/// The client's Initial packet protection keys (RFC 9001 §5.1–5.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InitialKeys {
    pub key: [u8; 16],
    pub iv: [u8; 12],
    pub hp: [u8; 16],
}

/// HKDF-Expand-Label (RFC 8446 §7.1) with an empty context.
fn expand_label(prk: &Hkdf<Sha256>, label: &[u8], out: &mut [u8]) {
    let mut info = [0u8; 2 + 1 + 6 + 16 + 1];
    let n = 4 + 6 + label.len();
    info[..2].copy_from_slice(&(out.len() as u16).to_be_bytes());
    info[2] = (6 + label.len()) as u8;
    info[3..9].copy_from_slice(b"tls13 ");
    info[9..9 + label.len()].copy_from_slice(label);
    info[n - 1] = 0;
    // Outputs of at most 32 bytes from SHA-256 cannot fail.
    let _ = prk.expand(&info[..n], out);
}

/// The client Initial keys of `version` for the Destination Connection ID
/// `dcid` of the client's first Initial packet; `None` for an unsupported
/// version.
pub fn client_initial_keys(version: u32, dcid: &[u8]) -> Option<InitialKeys> {
    let p = params(version)?;
    let initial = Hkdf::<Sha256>::new(Some(&p.salt[..]), dcid);
    let mut secret = [0u8; 32];
    expand_label(&initial, b"client in", &mut secret);
    let client = Hkdf::<Sha256>::from_prk(&secret).ok()?;
    let mut k = InitialKeys {
        key: [0; 16],
        iv: [0; 12],
        hp: [0; 16],
    };
    expand_label(&client, p.labels[0], &mut k.key);
    expand_label(&client, p.labels[1], &mut k.iv);
    expand_label(&client, p.labels[2], &mut k.hp);
    Some(k)
}

/// Why a datagram yielded no CRYPTO data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InitialError {
    /// No long-header Initial packet of a supported version.
    NotInitial,
    /// A length or field ran past the end of the datagram.
    Truncated,
    /// A field out of range (connection id over 20 bytes, packet too short
    /// to sample).
    Malformed,
    /// The AEAD tag did not verify: not a client Initial, or damaged.
    Decrypt,
}

/// A CRYPTO stream being reassembled from client Initial packets: bytes by
/// offset (up to [`MAX_CRYPTO`]) with a bitmap of those received, plus a
/// scratch buffer for decryption. Grows only as data arrives.
#[derive(Debug, Clone, Default)]
pub struct QuicCryptoBuf {
    data: Vec<u8>,
    have: Vec<u64>,
    scratch: Vec<u8>,
}

/// What the reassembled CRYPTO stream says of the ClientHello so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientHelloInfo<'a> {
    pub sni: Option<&'a str>,
    /// First protocol of the ALPN list.
    pub alpn: Option<&'a str>,
    /// The whole message has arrived (else the fields come from the
    /// contiguous prefix received so far).
    pub complete: bool,
}

impl QuicCryptoBuf {
    pub fn new() -> Self {
        Self::default()
    }

    /// Copies `bytes` in at stream offset `off` (the part below
    /// [`MAX_CRYPTO`]).
    fn write(&mut self, off: u64, bytes: &[u8]) {
        if off >= MAX_CRYPTO as u64 {
            return;
        }
        let off = off as usize;
        let end = (off + bytes.len()).min(MAX_CRYPTO);
        if end <= off {
            return;
        }
        if self.data.len() < end {
            self.data.resize(end, 0);
            self.have.resize(end.div_ceil(64), 0);
        }
        self.data[off..end].copy_from_slice(&bytes[..end - off]);
        for i in off..end {
            self.have[i / 64] |= 1 << (i % 64);
        }
    }

    /// The bytes received without a gap from offset 0.
    pub fn contiguous(&self) -> &[u8] {
        let mut n = 0;
        for &w in &self.have {
            if w == u64::MAX {
                n += 64;
            } else {
                n += w.trailing_ones() as usize;
                break;
            }
        }
        &self.data[..n.min(self.data.len())]
    }

    /// The ClientHello at the start of the stream, once its first bytes are
    /// in: the server name and ALPN found in what has arrived.
    pub fn client_hello(&self) -> Option<ClientHelloInfo<'_>> {
        let c = self.contiguous();
        if c.len() < 4 || c[0] != 1 {
            return None;
        }
        let need = 4 + (usize::from(c[1]) << 16 | usize::from(c[2]) << 8 | usize::from(c[3]));
        let msg = &c[..need.min(c.len())];
        let (sni, alpn) = crate::app::client_hello_names(msg);
        Some(ClientHelloInfo {
            sni,
            alpn,
            complete: c.len() >= need,
        })
    }
}

/// A QUIC variable-length integer at `*at`, advancing `*at`.
fn varint(b: &[u8], at: &mut usize) -> Option<u64> {
    let first = *b.get(*at)?;
    let len = 1usize << (first >> 6);
    let bytes = b.get(*at..*at + len)?;
    let mut v = u64::from(first & 0x3f);
    for &x in &bytes[1..] {
        v = v << 8 | u64::from(x);
    }
    *at += len;
    Some(v)
}

/// Decrypts the client Initial packets of one UDP datagram (coalesced long
/// headers are walked; Handshake and 0-RTT packets are skipped) and adds
/// their CRYPTO frames to `out`. Returns how many Initial packets were
/// decrypted, or why none was. `out` is left unchanged by packets that do
/// not verify.
pub fn client_initial_crypto(
    datagram: &[u8],
    out: &mut QuicCryptoBuf,
) -> Result<usize, InitialError> {
    let mut rest = datagram;
    let mut done = 0;
    let mut err = InitialError::NotInitial;
    // Long headers of a supported version follow one another; anything
    // else (a short header, version negotiation, trailing padding) ends the
    // walk, since its length cannot be known.
    while rest.len() >= 7 && rest[0] & 0x80 != 0 {
        let Some(p) = params(u32::from_be_bytes([rest[1], rest[2], rest[3], rest[4]])) else {
            break;
        };
        match long_packet(rest, p, out) {
            Ok((len, outcome)) => {
                match outcome {
                    Ok(true) => done += 1,
                    Ok(false) => {}
                    Err(e) => err = e,
                }
                rest = &rest[len..];
            }
            Err(e) => {
                err = e;
                break;
            }
        }
    }
    if done > 0 {
        Ok(done)
    } else {
        Err(err)
    }
}

/// One long-header packet at the start of `p`: its length and, for an
/// Initial, whether it decrypted (its CRYPTO data then went into `out`).
/// `Err` when the packet's own length cannot be read.
fn long_packet(
    p: &[u8],
    v: Params,
    out: &mut QuicCryptoBuf,
) -> Result<(usize, Result<bool, InitialError>), InitialError> {
    use InitialError::*;
    let ptype = (p[0] >> 4) & 3;
    // Retry (type 3 in version 1, 0 in version 2) has no length field and
    // ends the datagram.
    let retry = if v.initial_type == 0 { 3 } else { 0 };
    if ptype == retry {
        return Err(NotInitial);
    }
    let mut at = 5;
    let dcid_len = usize::from(p[at]);
    if dcid_len > 20 {
        return Err(Malformed);
    }
    let dcid = p.get(at + 1..at + 1 + dcid_len).ok_or(Truncated)?;
    at += 1 + dcid_len;
    let scid_len = usize::from(*p.get(at).ok_or(Truncated)?);
    if scid_len > 20 {
        return Err(Malformed);
    }
    at += 1 + scid_len;
    let initial = ptype == v.initial_type;
    if initial {
        let token = varint(p, &mut at).ok_or(Truncated)?;
        at = usize::try_from(token)
            .ok()
            .and_then(|t| at.checked_add(t))
            .ok_or(Truncated)?;
    }
    let length = varint(p, &mut at).ok_or(Truncated)?;
    let pn_off = at;
    let end = usize::try_from(length)
        .ok()
        .and_then(|l| pn_off.checked_add(l))
        .filter(|&e| e <= p.len())
        .ok_or(Truncated)?;
    if !initial {
        return Ok((end, Ok(false)));
    }
    let version = u32::from_be_bytes([p[1], p[2], p[3], p[4]]);
    Ok((end, decrypt(&p[..end], version, dcid, pn_off, out)))
}

/// Removes header protection from the Initial packet `p` (exactly one
/// packet, its packet number at `pn_off`), decrypts it and hands its frames
/// to [`crypto_frames`].
fn decrypt(
    p: &[u8],
    version: u32,
    dcid: &[u8],
    pn_off: usize,
    out: &mut QuicCryptoBuf,
) -> Result<bool, InitialError> {
    use InitialError::*;
    // The sample: 16 bytes from 4 past the packet-number offset.
    let sample = p.get(pn_off + 4..pn_off + 20).ok_or(Malformed)?;
    let keys = client_initial_keys(version, dcid).ok_or(NotInitial)?;
    let mut mask = [0u8; 16];
    mask.copy_from_slice(sample);
    Aes128::new(&keys.hp.into()).encrypt_block((&mut mask).into());
    let first = p[0] ^ (mask[0] & 0x0f);
    let pn_len = usize::from(first & 3) + 1;
    let hdr_len = pn_off + pn_len;
    // Room for the 16-byte tag after the header (the sample's presence
    // already implies it).
    let ct_end = p
        .len()
        .checked_sub(16)
        .filter(|&e| e >= hdr_len)
        .ok_or(Malformed)?;
    let ct = &p[hdr_len..ct_end];
    let tag = Tag::try_from(&p[ct_end..]).map_err(|_| Malformed)?;
    let buf = &mut out.scratch;
    buf.clear();
    buf.extend_from_slice(&p[..hdr_len]);
    buf[0] = first;
    let mut pn = 0u64;
    for i in 0..pn_len {
        buf[pn_off + i] ^= mask[1 + i];
        pn = pn << 8 | u64::from(buf[pn_off + i]);
    }
    buf.resize(hdr_len + ct.len(), 0);
    let (aad, plain) = buf.split_at_mut(hdr_len);
    // The packet number as sent stands for the full one: only wrong past
    // 2^(8·pn_len) packets, never the case for a client's first Initials.
    let mut nonce = keys.iv;
    for (n, b) in nonce[4..].iter_mut().zip(pn.to_be_bytes()) {
        *n ^= b;
    }
    let io = InOutBuf::new(ct, plain).map_err(|_| Malformed)?;
    Aes128Gcm::new(&keys.key.into())
        .decrypt_inout_detached(&nonce.into(), aad, io, &tag)
        .map_err(|_| Decrypt)?;
    let plain = std::mem::take(&mut out.scratch);
    crypto_frames(&plain[hdr_len..], out);
    out.scratch = plain;
    Ok(true)
}

/// Walks the frames of a decrypted Initial payload, copying CRYPTO frames
/// into `out`; stops at the end or at a frame type an Initial may not carry.
fn crypto_frames(f: &[u8], out: &mut QuicCryptoBuf) {
    let mut at = 0;
    let mut walk = || -> Option<()> {
        while at < f.len() {
            let t = varint(f, &mut at)?;
            match t {
                0x00 | 0x01 => {} // PADDING, PING
                0x02 | 0x03 => {
                    // ACK: largest, delay, range count, first range, ranges.
                    varint(f, &mut at)?;
                    varint(f, &mut at)?;
                    let n = varint(f, &mut at)?;
                    varint(f, &mut at)?;
                    for _ in 0..n.min(f.len() as u64) {
                        varint(f, &mut at)?;
                        varint(f, &mut at)?;
                    }
                    if t == 0x03 {
                        for _ in 0..3 {
                            varint(f, &mut at)?;
                        }
                    }
                }
                0x06 => {
                    let off = varint(f, &mut at)?;
                    let len = usize::try_from(varint(f, &mut at)?).ok()?;
                    let data = f.get(at..at.checked_add(len)?)?;
                    out.write(off, data);
                    at += len;
                }
                0x1c => {
                    // CONNECTION_CLOSE: error code, frame type, reason.
                    varint(f, &mut at)?;
                    varint(f, &mut at)?;
                    let len = usize::try_from(varint(f, &mut at)?).ok()?;
                    at = at.checked_add(len)?;
                }
                _ => return None,
            }
        }
        Some(())
    };
    let _ = walk();
}

/// Builds a protected client Initial packet of `version` carrying the
/// frames `payload` (the inverse of [`client_initial_crypto`], written from
/// RFC 9001 §5.3–5.4): empty token, 4-byte packet number `pn`. For tests
/// and synthetic captures; `None` for an unsupported version or a
/// connection id over 20 bytes.
pub fn protect_client_initial(
    version: u32,
    dcid: &[u8],
    scid: &[u8],
    pn: u32,
    payload: &[u8],
) -> Option<Vec<u8>> {
    let v = params(version)?;
    if dcid.len() > 20 || scid.len() > 20 {
        return None;
    }
    let k = client_initial_keys(version, dcid)?;
    let mut pkt = vec![0xc3 | v.initial_type << 4];
    pkt.extend_from_slice(&version.to_be_bytes());
    pkt.push(dcid.len() as u8);
    pkt.extend_from_slice(dcid);
    pkt.push(scid.len() as u8);
    pkt.extend_from_slice(scid);
    pkt.push(0); // token length
                 // Length (packet number, frames, tag) as a 4-byte varint.
    let len = u32::try_from(4 + payload.len() + 16)
        .ok()
        .filter(|&l| l < 1 << 30)?;
    pkt.extend_from_slice(&(0x8000_0000 | len).to_be_bytes());
    let pn_off = pkt.len();
    pkt.extend_from_slice(&pn.to_be_bytes());
    let mut nonce = k.iv;
    for (n, b) in nonce[8..].iter_mut().zip(pn.to_be_bytes()) {
        *n ^= b;
    }
    let hdr_len = pkt.len();
    pkt.extend_from_slice(payload);
    let (hdr, body) = pkt.split_at_mut(hdr_len);
    let tag = Aes128Gcm::new(&k.key.into())
        .encrypt_inout_detached(&nonce.into(), hdr, body.into())
        .ok()?;
    pkt.extend_from_slice(&tag);
    let mut mask = [0u8; 16];
    mask.copy_from_slice(&pkt[pn_off + 4..pn_off + 20]);
    Aes128::new(&k.hp.into()).encrypt_block((&mut mask).into());
    pkt[0] ^= mask[0] & 0x0f;
    for i in 0..4 {
        pkt[pn_off + i] ^= mask[1 + i];
    }
    Some(pkt)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn hex(s: &str) -> Vec<u8> {
        let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    const DCID: &str = "8394c8f03e515708";

    /// RFC 9001 Appendix A.2 (and RFC 9369 A.2): the CRYPTO frame of the
    /// client Initial, before PADDING to 1162 bytes.
    const RFC_CRYPTO_FRAME: &str = "
        060040f1010000ed0303ebf8fa56f129 39b9584a3896472ec40bb863cfd3e868
        04fe3a47f06a2b69484c000004130113 02010000c000000010000e00000b6578
        616d706c652e636f6dff01000100000a 00080006001d00170018001000070005
        04616c706e0005000501000000000033 00260024001d00209370b2c9caa47fba
        baf4559fedba753de171fa71f50f1ce1 5d43e994ec74d748002b000302030400
        0d0010000e0403050306030203080408 050806002d00020101001c0002400100
        3900320408ffffffffffffffff050480 00ffff07048000ffff08011001048000
        75300901100f088394c8f03e51570806 048000ffff";

    /// RFC 9001 Appendix A.2: the protected client Initial.
    const RFC9001_CLIENT_INITIAL: &str = "
        c000000001088394c8f03e5157080000 449e7b9aec34d1b1c98dd7689fb8ec11
        d242b123dc9bd8bab936b47d92ec356c 0bab7df5976d27cd449f63300099f399
        1c260ec4c60d17b31f8429157bb35a12 82a643a8d2262cad67500cadb8e7378c
        8eb7539ec4d4905fed1bee1fc8aafba1 7c750e2c7ace01e6005f80fcb7df6212
        30c83711b39343fa028cea7f7fb5ff89 eac2308249a02252155e2347b63d58c5
        457afd84d05dfffdb20392844ae81215 4682e9cf012f9021a6f0be17ddd0c208
        4dce25ff9b06cde535d0f920a2db1bf3 62c23e596d11a4f5a6cf3948838a3aec
        4e15daf8500a6ef69ec4e3feb6b1d98e 610ac8b7ec3faf6ad760b7bad1db4ba3
        485e8a94dc250ae3fdb41ed15fb6a8e5 eba0fc3dd60bc8e30c5c4287e53805db
        059ae0648db2f64264ed5e39be2e20d8 2df566da8dd5998ccabdae053060ae6c
        7b4378e846d29f37ed7b4ea9ec5d82e7 961b7f25a9323851f681d582363aa5f8
        9937f5a67258bf63ad6f1a0b1d96dbd4 faddfcefc5266ba6611722395c906556
        be52afe3f565636ad1b17d508b73d874 3eeb524be22b3dcbc2c7468d54119c74
        68449a13d8e3b95811a198f3491de3e7 fe942b330407abf82a4ed7c1b311663a
        c69890f4157015853d91e923037c227a 33cdd5ec281ca3f79c44546b9d90ca00
        f064c99e3dd97911d39fe9c5d0b23a22 9a234cb36186c4819e8b9c5927726632
        291d6a418211cc2962e20fe47feb3edf 330f2c603a9d48c0fcb5699dbfe58964
        25c5bac4aee82e57a85aaf4e2513e4f0 5796b07ba2ee47d80506f8d2c25e50fd
        14de71e6c418559302f939b0e1abd576 f279c4b2e0feb85c1f28ff18f58891ff
        ef132eef2fa09346aee33c28eb130ff2 8f5b766953334113211996d20011a198
        e3fc433f9f2541010ae17c1bf202580f 6047472fb36857fe843b19f5984009dd
        c324044e847a4f4a0ab34f719595de37 252d6235365e9b84392b061085349d73
        203a4a13e96f5432ec0fd4a1ee65accd d5e3904df54c1da510b0ff20dcc0c77f
        cb2c0e0eb605cb0504db87632cf3d8b4 dae6e705769d1de354270123cb11450e
        fc60ac47683d7b8d0f811365565fd98c 4c8eb936bcab8d069fc33bd801b03ade
        a2e1fbc5aa463d08ca19896d2bf59a07 1b851e6c239052172f296bfb5e724047
        90a2181014f3b94a4e97d117b4381303 68cc39dbb2d198065ae3986547926cd2
        162f40a29f0c3c8745c0f50fba3852e5 66d44575c29d39a03f0cda721984b6f4
        40591f355e12d439ff150aab7613499d bd49adabc8676eef023b15b65bfc5ca0
        6948109f23f350db82123535eb8a7433 bdabcb909271a6ecbcb58b936a88cd4e
        8f2e6ff5800175f113253d8fa9ca8885 c2f552e657dc603f252e1a8e308f76f0
        be79e2fb8f5d5fbbe2e30ecadd220723 c8c0aea8078cdfcb3868263ff8f09400
        54da48781893a7e49ad5aff4af300cd8 04a6b6279ab3ff3afb64491c85194aab
        760d58a606654f9f4400e8b38591356f bf6425aca26dc85244259ff2b19c41b9
        f96f3ca9ec1dde434da7d2d392b905dd f3d1f9af93d1af5950bd493f5aa731b4
        056df31bd267b6b90a079831aaf579be 0a39013137aac6d404f518cfd4684064
        7e78bfe706ca4cf5e9c5453e9f7cfd2b 8b4c8d169a44e55c88d4a9a7f9474241
        e221af44860018ab0856972e194cd934";

    /// RFC 9001 Appendix A.3: the server's protected Initial.
    const RFC9001_SERVER_INITIAL: &str = "
        cf000000010008f067a5502a4262b500 4075c0d95a482cd0991cd25b0aac406a
        5816b6394100f37a1c69797554780bb3 8cc5a99f5ede4cf73c3ec2493a1839b3
        dbcba3f6ea46c5b7684df3548e7ddeb9 c3bf9c73cc3f3bded74b562bfb19fb84
        022f8ef4cdd93795d77d06edbb7aaf2f 58891850abbdca3d20398c276456cbc4
        2158407dd074ee";

    /// RFC 9369 Appendix A.2: the protected client Initial of QUIC v2.
    const RFC9369_CLIENT_INITIAL: &str = "
        d76b3343cf088394c8f03e5157080000 449ea0c95e82ffe67b6abcdb4298b485
        dd04de806071bf03dceebfa162e75d6c 96058bdbfb127cdfcbf903388e99ad04
        9f9a3dd4425ae4d0992cfff18ecf0fdb 5a842d09747052f17ac2053d21f57c5d
        250f2c4f0e0202b70785b7946e992e58 a59ac52dea6774d4f03b55545243cf1a
        12834e3f249a78d395e0d18f4d766004 f1a2674802a747eaa901c3f10cda5500
        cb9122faa9f1df66c392079a1b40f0de 1c6054196a11cbea40afb6ef5253cd68
        18f6625efce3b6def6ba7e4b37a40f77 32e093daa7d52190935b8da58976ff33
        12ae50b187c1433c0f028edcc4c2838b 6a9bfc226ca4b4530e7a4ccee1bfa2a3
        d396ae5a3fb512384b2fdd851f784a65 e03f2c4fbe11a53c7777c023462239dd
        6f7521a3f6c7d5dd3ec9b3f233773d4b 46d23cc375eb198c63301c21801f6520
        bcfb7966fc49b393f0061d974a2706df 8c4a9449f11d7f3d2dcbb90c6b877045
        636e7c0c0fe4eb0f697545460c806910 d2c355f1d253bc9d2452aaa549e27a1f
        ac7cf4ed77f322e8fa894b6a83810a34 b361901751a6f5eb65a0326e07de7c12
        16ccce2d0193f958bb3850a833f7ae43 2b65bc5a53975c155aa4bcb4f7b2c4e5
        4df16efaf6ddea94e2c50b4cd1dfe060 17e0e9d02900cffe1935e0491d77ffb4
        fdf85290fdd893d577b1131a610ef6a5 c32b2ee0293617a37cbb08b847741c3b
        8017c25ca9052ca1079d8b78aebd4787 6d330a30f6a8c6d61dd1ab5589329de7
        14d19d61370f8149748c72f132f0fc99 f34d766c6938597040d8f9e2bb522ff9
        9c63a344d6a2ae8aa8e51b7b90a4a806 105fcbca31506c446151adfeceb51b91
        abfe43960977c87471cf9ad4074d30e1 0d6a7f03c63bd5d4317f68ff325ba3bd
        80bf4dc8b52a0ba031758022eb025cdd 770b44d6d6cf0670f4e990b22347a7db
        848265e3e5eb72dfe8299ad7481a4083 22cac55786e52f633b2fb6b614eaed18
        d703dd84045a274ae8bfa73379661388 d6991fe39b0d93debb41700b41f90a15
        c4d526250235ddcd6776fc77bc97e7a4 17ebcb31600d01e57f32162a8560cacc
        7e27a096d37a1a86952ec71bd89a3e9a 30a2a26162984d7740f81193e8238e61
        f6b5b984d4d3dfa033c1bb7e4f0037fe bf406d91c0dccf32acf423cfa1e70710
        10d3f270121b493ce85054ef58bada42 310138fe081adb04e2bd901f2f13458b
        3d6758158197107c14ebb193230cd115 7380aa79cae1374a7c1e5bbcb80ee23e
        06ebfde206bfb0fcbc0edc4ebec30966 1bdd908d532eb0c6adc38b7ca7331dce
        8dfce39ab71e7c32d318d136b6100671 a1ae6a6600e3899f31f0eed19e3417d1
        34b90c9058f8632c798d4490da498730 7cba922d61c39805d072b589bd52fdf1
        e86215c2d54e6670e07383a27bbffb5a ddf47d66aa85a0c6f9f32e59d85a44dd
        5d3b22dc2be80919b490437ae4f36a0a e55edf1d0b5cb4e9a3ecabee93dfc6e3
        8d209d0fa6536d27a5d6fbb17641cde2 7525d61093f1b28072d111b2b4ae5f89
        d5974ee12e5cf7d5da4d6a31123041f3 3e61407e76cffcdcfd7e19ba58cf4b53
        6f4c4938ae79324dc402894b44faf8af bab35282ab659d13c93f70412e85cb19
        9a37ddec600545473cfb5a05e08d0b20 9973b2172b4d21fb69745a262ccde96b
        a18b2faa745b6fe189cf772a9f84cbfc";

    /// The ClientHello of the RFC frame: the CRYPTO frame minus its
    /// type (06), offset (00) and two-byte length (40f1).
    fn rfc_client_hello() -> Vec<u8> {
        hex(RFC_CRYPTO_FRAME)[4..].to_vec()
    }

    #[test]
    fn rfc9001_client_initial_keys() {
        let k = client_initial_keys(1, &hex(DCID)).unwrap();
        assert_eq!(k.key.to_vec(), hex("1f369613dd76d5467730efcbe3b1a22d"));
        assert_eq!(k.iv.to_vec(), hex("fa044b2f42a3fd3b46fb255c"));
        assert_eq!(k.hp.to_vec(), hex("9f50449e04a0e810283a1e9933adedd2"));
        // Drafts 33 and 34 kept version 1's salt.
        assert_eq!(client_initial_keys(0xff00_0021, &hex(DCID)), Some(k));
        assert_ne!(client_initial_keys(0xff00_001d, &hex(DCID)), Some(k));
        assert_eq!(client_initial_keys(0xff00_001c, &hex(DCID)), None);
    }

    #[test]
    fn rfc9369_client_initial_keys() {
        let k = client_initial_keys(VERSION_2, &hex(DCID)).unwrap();
        assert_eq!(k.key.to_vec(), hex("8b1a0bc121284290a29e0971b5cd045d"));
        assert_eq!(k.iv.to_vec(), hex("91f73e2351d8fa91660e909f"));
        assert_eq!(k.hp.to_vec(), hex("45b95e15235d6f45a6b19cbcb0294ba9"));
    }

    fn check_rfc_packet(packet: &str) {
        let pkt = hex(packet);
        assert_eq!(pkt.len(), 1200);
        assert!(is_initial(&pkt));
        let mut buf = QuicCryptoBuf::new();
        assert_eq!(client_initial_crypto(&pkt, &mut buf), Ok(1));
        // The CRYPTO frame holds the whole ClientHello (241 bytes at
        // offset 0); the rest of the payload is PADDING.
        let ch = rfc_client_hello();
        assert_eq!(ch.len(), 0xf1);
        assert_eq!(buf.contiguous(), &ch[..]);
        // The unprotected payload: the frame, then zeros up to 1162 bytes.
        let mut payload = hex(RFC_CRYPTO_FRAME);
        payload.resize(1162, 0);
        assert_eq!(&buf.scratch[22..], &payload[..]);
        assert_eq!(
            buf.client_hello(),
            Some(ClientHelloInfo {
                sni: Some("example.com"),
                alpn: Some("alpn"),
                complete: true,
            })
        );
    }

    #[test]
    fn rfc9001_client_initial_decrypts() {
        check_rfc_packet(RFC9001_CLIENT_INITIAL);
        // The unprotected header of A.2.
        let mut buf = QuicCryptoBuf::new();
        client_initial_crypto(&hex(RFC9001_CLIENT_INITIAL), &mut buf).unwrap();
        assert_eq!(
            buf.scratch[..22],
            hex("c300000001088394c8f03e5157080000449e00000002")[..]
        );
    }

    #[test]
    fn rfc9369_client_initial_decrypts() {
        check_rfc_packet(RFC9369_CLIENT_INITIAL);
        let mut buf = QuicCryptoBuf::new();
        client_initial_crypto(&hex(RFC9369_CLIENT_INITIAL), &mut buf).unwrap();
        assert_eq!(
            buf.scratch[..22],
            hex("d36b3343cf088394c8f03e5157080000449e00000002")[..]
        );
    }

    #[test]
    fn wrong_keys_or_damage_give_nothing() {
        // The server's Initial (A.3) is an Initial too, but client keys
        // derived from its Destination CID do not open it.
        let server = hex(RFC9001_SERVER_INITIAL);
        assert!(is_initial(&server));
        let mut buf = QuicCryptoBuf::new();
        assert_eq!(
            client_initial_crypto(&server, &mut buf),
            Err(InitialError::Decrypt)
        );
        assert!(buf.client_hello().is_none());
        // One flipped ciphertext bit fails the tag.
        let mut pkt = hex(RFC9001_CLIENT_INITIAL);
        pkt[600] ^= 1;
        assert_eq!(
            client_initial_crypto(&pkt, &mut buf),
            Err(InitialError::Decrypt)
        );
        assert!(buf.contiguous().is_empty());
        // The v1 packet relabelled as v2 (same type bits → not an Initial
        // there; with v2's Initial bits, the wrong keys).
        let mut pkt = hex(RFC9001_CLIENT_INITIAL);
        pkt[1..5].copy_from_slice(&VERSION_2.to_be_bytes());
        assert!(!is_initial(&pkt));
        pkt[0] = (pkt[0] & 0xcf) | 0x10;
        assert!(is_initial(&pkt));
        assert!(client_initial_crypto(&pkt, &mut buf).is_err());
        // Short header, unknown version, version negotiation.
        assert!(!is_initial(&[0x40, 0, 0, 0, 1, 0, 0]));
        assert!(!is_initial(&[0xc0, 0x1a, 0x2a, 0x3a, 0x4a, 0, 0]));
        assert!(!is_initial(&[0x80, 0, 0, 0, 0, 0, 0]));
        assert!(buf.contiguous().is_empty());
    }

    fn protect(version: u32, dcid: &[u8], pn: u32, payload: &[u8]) -> Vec<u8> {
        protect_client_initial(version, dcid, &[], pn, payload).unwrap()
    }

    fn crypto_frame(off: u64, data: &[u8]) -> Vec<u8> {
        let mut f = vec![0x06];
        f.extend_from_slice(&(0x8000_0000 | off as u32).to_be_bytes());
        f.extend_from_slice(&(0x4000 | data.len() as u16).to_be_bytes());
        f.extend_from_slice(data);
        f
    }

    /// A ClientHello cut in three pieces sent out of order over two
    /// datagrams (PING, PADDING and an ACK in between, as Chrome does), the
    /// first datagram coalescing a Handshake-typed packet after the Initial.
    #[test]
    fn client_hello_split_over_packets_and_frames() {
        let ch = rfc_client_hello();
        let dcid = hex("0011223344556677");
        let (a, rest) = ch.split_at(60);
        let (b, c) = rest.split_at(100);
        let mut p1 = vec![0x01, 0x00, 0x00];
        p1.extend(crypto_frame(160, c));
        p1.extend([0x02, 0x00, 0x00, 0x00, 0x00]); // ACK 0, no ranges
        p1.extend(crypto_frame(0, a));
        p1.resize(1100, 0);
        let mut d1 = protect(1, &dcid, 0, &p1);
        // A coalesced "Handshake" packet (type 2) of 30 opaque bytes.
        d1.extend([0xe0, 0, 0, 0, 1, 0, 0, 30]);
        d1.extend([0xaa; 30]);
        let mut buf = QuicCryptoBuf::new();
        assert_eq!(client_initial_crypto(&d1, &mut buf), Ok(1));
        assert_eq!(buf.contiguous(), a);
        let part = buf.client_hello().unwrap();
        assert!(!part.complete);
        // The name (bytes 58..69) is cut.
        assert_eq!(part.sni, None);
        let mut p2 = vec![0x00; 20];
        p2.extend(crypto_frame(60, b));
        p2.resize(1100, 0);
        let d2 = protect(1, &dcid, 1, &p2);
        assert_eq!(client_initial_crypto(&d2, &mut buf), Ok(1));
        assert_eq!(buf.contiguous(), &ch[..]);
        let full = buf.client_hello().unwrap();
        assert!(full.complete);
        assert_eq!(full.sni, Some("example.com"));
        assert_eq!(full.alpn, Some("alpn"));
        // Two Initials coalesced in one datagram, under QUIC v2.
        let mut buf = QuicCryptoBuf::new();
        let mut d = protect(VERSION_2, &dcid, 0, &{
            let mut p = crypto_frame(100, &ch[100..]);
            p.resize(600, 0);
            p
        });
        d.extend(protect(VERSION_2, &dcid, 1, &{
            let mut p = crypto_frame(0, &ch[..100]);
            p.resize(600, 0);
            p
        }));
        assert_eq!(client_initial_crypto(&d, &mut buf), Ok(2));
        assert!(buf.client_hello().unwrap().complete);
    }

    #[test]
    fn crypto_offsets_past_the_bound_are_dropped() {
        let mut buf = QuicCryptoBuf::new();
        buf.write(MAX_CRYPTO as u64 - 2, &[1, 2, 3, 4]);
        buf.write(u64::MAX - 1, &[1, 2, 3]);
        assert_eq!(buf.data.len(), MAX_CRYPTO);
        assert!(buf.contiguous().is_empty());
        buf.write(0, &[1, 0, 0]);
        assert_eq!(buf.contiguous(), &[1, 0, 0]);
        assert_eq!(buf.client_hello(), None);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// Random bytes, and the RFC packets cut short, damaged or padded
        /// with garbage, never panic; a cut packet never decrypts.
        #[test]
        fn arbitrary_datagrams_never_panic(
            bytes in prop::collection::vec(any::<u8>(), 0..1400),
            which in 0usize..2,
            cut in 0usize..1300,
            flip in 0usize..1200,
            head in any::<u8>(),
        ) {
            let mut buf = QuicCryptoBuf::new();
            let _ = client_initial_crypto(&bytes, &mut buf);
            let _ = buf.client_hello();
            let mut r = bytes.clone();
            r.insert(0, 0xc0);
            r.splice(1..1, [0, 0, 0, 1]);
            let _ = client_initial_crypto(&r, &mut buf);
            let pkt = hex([RFC9001_CLIENT_INITIAL, RFC9369_CLIENT_INITIAL][which]);
            let cut = cut.min(pkt.len());
            let mut buf = QuicCryptoBuf::new();
            let res = client_initial_crypto(&pkt[..cut], &mut buf);
            prop_assert!(res.is_err() || cut == pkt.len());
            let mut damaged = pkt.clone();
            damaged[flip] ^= head | 1;
            let _ = client_initial_crypto(&damaged, &mut buf);
            let mut trailing = pkt;
            trailing.extend_from_slice(&bytes);
            let mut buf = QuicCryptoBuf::new();
            let res = client_initial_crypto(&trailing, &mut buf);
            prop_assert!(res.is_ok());
            prop_assert_eq!(buf.client_hello().and_then(|c| c.sni), Some("example.com"));
        }
    }
}
