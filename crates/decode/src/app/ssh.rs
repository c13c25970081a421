//! SSH (RFC 4253, section 4.2): the identification string ("SSH-2.0-…")
//! each side sends first over TCP, kept as the banner.

use super::AppHint;

/// The banner of a payload that starts with "SSH-": up to the first CR or
/// LF within 255 bytes, when it is UTF-8.
#[inline]
pub(super) fn ssh(p: &[u8]) -> Option<AppHint<'_>> {
    let end = p.iter().take(255).position(|&c| c == b'\r' || c == b'\n');
    let banner = &p[..end.unwrap_or(p.len().min(255))];
    std::str::from_utf8(banner)
        .ok()
        .map(|banner| AppHint::Ssh { banner })
}
