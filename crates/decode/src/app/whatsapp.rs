//! WhatsApp chat over TCP (ports 5222 and 443): the connection starts with
//! "WA" and two small version bytes. The protocol is proprietary; there is
//! no public specification.

/// The WhatsApp connection header after its first byte "W" (matched by the
/// caller): "A", a byte in 1..=9 and a byte below 0x20, on port 5222 or 443
/// (`on_port`).
#[inline]
pub(super) fn whatsapp(p: &[u8], on_port: bool) -> bool {
    p.len() >= 4 && p[1] == b'A' && (1..=9).contains(&p[2]) && p[3] < 0x20 && on_port
}
