//! Server name and ALPN of IETF QUIC flows, from the client's Initials.

use decode::quic_initial::{self, QuicCryptoBuf};
use decode::{Packet, Transport};

use crate::record::AppInfo;

/// Client Initial packets of an IETF QUIC flow decrypted in search of its
/// ClientHello (Chrome's spans two; a Retry or version negotiation adds
/// one or two more).
pub const QUIC_INITIALS: u8 = 4;
/// [`QuicClientHello::initials`] once the ClientHello was read or given up.
pub(crate) const QUIC_DONE: u8 = u8::MAX;

/// Per-flow state for reading the ClientHello out of a QUIC flow's client
/// Initials: one byte while unused, a CRYPTO-stream buffer only between the
/// first client Initial and the complete ClientHello.
#[derive(Debug, Default, Clone)]
pub struct QuicClientHello {
    /// Client Initial packets decrypted so far, [`QUIC_DONE`] after.
    pub(crate) initials: u8,
    buf: Option<Box<QuicCryptoBuf>>,
}

impl QuicClientHello {
    /// Looks at one packet of the flow (`forward`: from its initiator); a
    /// client Initial is decrypted and its CRYPTO data added, and the
    /// server name and ALPN fill `app` (the first value of each wins). The
    /// buffer goes once the ClientHello is complete or after
    /// [`QUIC_INITIALS`] client Initials.
    #[inline]
    pub fn observe(&mut self, pkt: &Packet<'_>, forward: bool, app: &mut AppInfo) {
        if forward
            && self.initials < QUIC_INITIALS
            && matches!(pkt.transport, Transport::Udp { .. })
            && quic_initial::is_initial(pkt.payload)
        {
            self.client_initial(pkt.payload, app);
        }
    }

    #[cold]
    fn client_initial(&mut self, datagram: &[u8], app: &mut AppInfo) {
        self.initials += 1;
        let buf = self.buf.get_or_insert_with(Box::default);
        let mut done = self.initials >= QUIC_INITIALS;
        if quic_initial::client_initial_crypto(datagram, buf).is_ok() {
            if let Some(ch) = buf.client_hello() {
                if app.tls_sni.is_none() {
                    app.tls_sni = ch.sni.map(str::to_string);
                }
                if app.tls_alpn.is_none() {
                    app.tls_alpn = ch.alpn.map(str::to_string);
                }
                done |= ch.complete;
            }
        }
        if done {
            self.buf = None;
            self.initials = QUIC_DONE;
        }
    }

    /// Whether a CRYPTO buffer is held now.
    pub fn buffering(&self) -> bool {
        self.buf.is_some()
    }
}
