//! TeamSpeak 3 over UDP: the connection-init packet, which starts with
//! "TS3INIT1". The protocol is proprietary; there is no public
//! specification.

use super::AppHint;

/// A TeamSpeak 3 init packet ("TS3INIT1" …).
#[inline]
pub(super) fn teamspeak(p: &[u8]) -> Option<AppHint<'static>> {
    p.starts_with(b"TS3INIT1").then_some(AppHint::TeamSpeak)
}
