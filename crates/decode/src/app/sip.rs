//! SIP (RFC 3261): a status line ("SIP/2.0 …") or a request line whose
//! method is one of the core or extension methods and whose Request-URI is
//! a sip:, sips: or tel: URI. TCP or UDP.

use super::AppHint;

const SIP_METHODS: [&str; 13] = [
    "INVITE",
    "ACK",
    "BYE",
    "CANCEL",
    "REGISTER",
    "OPTIONS",
    "PRACK",
    "SUBSCRIBE",
    "NOTIFY",
    "PUBLISH",
    "INFO",
    "REFER",
    "MESSAGE",
];

pub(super) fn sip(p: &[u8]) -> Option<AppHint<'_>> {
    if p.starts_with(b"SIP/2.0 ") {
        return Some(AppHint::Sip { method: "response" });
    }
    let method = SIP_METHODS
        .iter()
        .find(|m| p.len() > m.len() + 5 && p.starts_with(m.as_bytes()) && p[m.len()] == b' ')?;
    let rest = &p[method.len() + 1..];
    (rest.starts_with(b"sip:") || rest.starts_with(b"sips:") || rest.starts_with(b"tel:"))
        .then_some(AppHint::Sip { method })
}
