//! Live packet capture on Linux with `AF_PACKET` and a memory-mapped
//! `TPACKET_V3` receive ring, using only `libc` (no libpcap).
//!
//! Needs root or `CAP_NET_RAW`. Behaves like tcpdump/libpcap where it matters:
//!
//! * Ethernet and loopback devices give `LINKTYPE_ETHERNET` (1) frames; `any`
//!   and devices without an Ethernet-style header we understand give Linux
//!   cooked frames with a synthesised header: `LINKTYPE_LINUX_SLL2` (276,
//!   20 bytes, with the interface index), as tcpdump 4.99 / libpcap 1.10
//!   write, or `LINKTYPE_LINUX_SLL` (113, 16 bytes) on request
//!   ([`LiveConfig::cooked_header`], tcpdump `-y LINUX_SLL`);
//!   `ARPHRD_NONE`/`ARPHRD_RAWIP` (tun, wireguard) give `LINKTYPE_RAW` (101).
//! * The kernel delivers every packet sent on `lo` twice to packet sockets
//!   (once as `PACKET_OUTGOING` from the transmit tap, once as `PACKET_HOST`
//!   when the loopback driver receives it). Like libpcap, outgoing copies on
//!   the loopback device are dropped (in the kernel with
//!   `PACKET_IGNORE_OUTGOING` when capturing on `lo`, in user space for `any`).
//! * VLAN tags the kernel moved out of the frame (`TP_STATUS_VLAN_VALID`) are
//!   put back in, as libpcap does: after the MAC addresses (Ethernet), in
//!   place of the SLL protocol field (SLL v1). For SLL2, where libpcap drops
//!   them, the protocol field becomes the tag's TPID and the payload starts
//!   with the TCI and the original protocol (the 802.1Q layout after an
//!   EtherType, which tshark, tcpdump and `decode` read).
//! * The filter is attached before the socket is bound to a protocol, so no
//!   unfiltered packet can reach the ring; [`LiveCapture::set_filter`] on a
//!   running capture drains the ring between a reject-all filter and the new
//!   one.
//!
//! ```no_run
//! use std::time::Duration;
//! use live::{LiveCapture, LiveConfig};
//!
//! let mut cfg = LiveConfig::new("eth0");
//! cfg.snaplen = 96;
//! let mut cap = LiveCapture::open(&cfg)?;
//! let stop = cap.stop_handle(); // move into a thread or signal handler
//! # stop.stop();
//! while !cap.is_stopped() {
//!     cap.next_batch(Duration::from_millis(200), &mut |f| {
//!         println!("{} {} bytes ({} on the wire)", f.ts_ns, f.caplen, f.wire_len);
//!     })?;
//! }
//! let st = cap.stats();
//! eprintln!("{} received, {} dropped by kernel", st.received, st.dropped);
//! # Ok::<(), live::LiveError>(())
//! ```

#![cfg_attr(not(target_os = "linux"), allow(unused))]

#[cfg(target_os = "linux")]
mod bpf;
#[cfg(target_os = "linux")]
mod capture;
#[cfg(target_os = "linux")]
mod filter;
#[cfg(target_os = "linux")]
mod sys;

#[cfg(target_os = "linux")]
pub use capture::{LiveCapture, StopHandle};

use std::time::Duration;

/// pcap link types produced by this crate.
pub const LINKTYPE_ETHERNET: u32 = 1;
/// Raw IPv4/IPv6 packets without a link-layer header.
pub const LINKTYPE_RAW: u32 = 101;
/// Linux cooked capture v1 (16-byte SLL header).
pub const LINKTYPE_LINUX_SLL: u32 = 113;
/// 802.11 with a radiotap header.
pub const LINKTYPE_IEEE802_11_RADIOTAP: u32 = 127;
/// Linux cooked capture v2 (20-byte SLL2 header with the interface index).
pub const LINKTYPE_LINUX_SLL2: u32 = 276;

/// Length of the synthesised Linux cooked (SLL v1) header.
pub const SLL_HDR_LEN: usize = 16;
/// Length of the synthesised Linux cooked v2 (SLL2) header: protocol (2),
/// reserved (2), interface index (4), ARPHRD type (2), packet type (1),
/// address length (1), address (8), multi-byte fields big-endian.
pub const SLL2_HDR_LEN: usize = 20;

/// Which Linux cooked header to synthesise for `any` and for devices whose
/// link header is not passed through.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum CookedHeader {
    /// `LINKTYPE_LINUX_SLL2` (276): 20 bytes, carries the interface index
    /// (tcpdump 4.99 / libpcap 1.10 and later).
    #[default]
    Sll2,
    /// `LINKTYPE_LINUX_SLL` (113): 16 bytes, no interface index (older
    /// tcpdump, `-y LINUX_SLL`).
    Sll,
}

impl CookedHeader {
    /// The pcap link type of frames with this header.
    pub fn linktype(self) -> u32 {
        match self {
            CookedHeader::Sll2 => LINKTYPE_LINUX_SLL2,
            CookedHeader::Sll => LINKTYPE_LINUX_SLL,
        }
    }

    /// Header length in bytes.
    pub fn header_len(self) -> usize {
        match self {
            CookedHeader::Sll2 => SLL2_HDR_LEN,
            CookedHeader::Sll => SLL_HDR_LEN,
        }
    }

    /// The header for a link type (`LINKTYPE_LINUX_SLL2` or
    /// `LINKTYPE_LINUX_SLL`), None for any other.
    pub fn from_linktype(linktype: u32) -> Option<CookedHeader> {
        match linktype {
            LINKTYPE_LINUX_SLL2 => Some(CookedHeader::Sll2),
            LINKTYPE_LINUX_SLL => Some(CookedHeader::Sll),
            _ => None,
        }
    }
}

/// tcpdump's default and maximum snapshot length (`-s 0` means this).
pub const DEFAULT_SNAPLEN: u32 = 262_144;

/// One classic BPF instruction, layout-compatible with the kernel's
/// `struct sock_filter` (and libpcap's `struct bpf_insn`).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BpfInsn {
    pub code: u16,
    pub jt: u8,
    pub jf: u8,
    pub k: u32,
}

impl BpfInsn {
    /// Builds an instruction.
    pub const fn new(code: u16, jt: u8, jf: u8, k: u32) -> Self {
        BpfInsn { code, jt, jf, k }
    }
}

/// What to capture and how the ring is sized.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveConfig {
    /// Interface name, or `"any"` for all interfaces (cooked frames).
    pub interface: String,
    /// Bytes kept per packet (tcpdump `-s`); 0 (or more than the default)
    /// means [`DEFAULT_SNAPLEN`].
    /// With `any` this includes the synthesised cooked header (20 bytes for
    /// SLL2, 16 for SLL), as with tcpdump.
    pub snaplen: u32,
    /// Put the interface into promiscuous mode (tcpdump default; `-p` clears
    /// it). Ignored for `any`. Reverts automatically when the capture closes.
    pub promiscuous: bool,
    /// Size of one ring block in bytes: a multiple of the page size, larger
    /// than `snaplen` plus ~128 bytes of headers (bigger packets are cut).
    pub block_size: u32,
    /// Number of blocks; the ring is `block_size * block_count` bytes.
    pub block_count: u32,
    /// The kernel hands a partly filled block to user space after this many
    /// milliseconds, bounding latency at low packet rates. 0 lets the kernel
    /// pick from the link speed.
    pub block_timeout_ms: u32,
    /// Classic BPF program run in the kernel (tcpdump `-f`/expression).
    /// Write it against the frames as handed out (see
    /// [`LiveCapture::linktype`]). For cooked frames (`any`) the kernel sees
    /// the packet from its network header, so offsets are moved back by the
    /// cooked header's length and loads of its protocol, packet type,
    /// interface index (SLL2) and ARPHRD type become ancillary loads; a
    /// program that reads other cooked-header bytes (the address) or the
    /// packet length runs in user space instead, as libpcap does for the
    /// former. Constant returns are capped to the snapshot length.
    pub filter: Option<Vec<BpfInsn>>,
    /// The cooked header synthesised on `any` (and on devices whose link
    /// header is not passed through): SLL2 by default, as tcpdump 4.99.
    pub cooked_header: CookedHeader,
}

impl Default for LiveConfig {
    fn default() -> Self {
        LiveConfig {
            interface: String::from("any"),
            snaplen: DEFAULT_SNAPLEN,
            promiscuous: true,
            block_size: 1 << 20,
            block_count: 4,
            block_timeout_ms: 64,
            filter: None,
            cooked_header: CookedHeader::Sll2,
        }
    }
}

impl LiveConfig {
    /// Defaults (tcpdump-like) for one interface.
    pub fn new(interface: impl Into<String>) -> Self {
        LiveConfig {
            interface: interface.into(),
            ..LiveConfig::default()
        }
    }

    /// Total ring size in bytes.
    pub fn ring_size(&self) -> u64 {
        u64::from(self.block_size) * u64::from(self.block_count)
    }

    /// Sets `block_count` so the ring is about `bytes` (tcpdump `-B`, which
    /// takes KiB), with at least two blocks.
    pub fn set_buffer_size(&mut self, bytes: u64) {
        let bs = u64::from(self.block_size.max(1));
        self.block_count = (bytes.div_ceil(bs)).clamp(2, u64::from(u32::MAX)) as u32;
    }

    /// Snapshot length as tcpdump treats `-s`: 0 and anything above
    /// [`DEFAULT_SNAPLEN`] mean [`DEFAULT_SNAPLEN`].
    pub fn effective_snaplen(&self) -> u32 {
        if self.snaplen == 0 || self.snaplen > DEFAULT_SNAPLEN {
            DEFAULT_SNAPLEN
        } else {
            self.snaplen
        }
    }
}

/// Direction of a packet relative to the capturing host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PacketDirection {
    /// Received by the interface (`sll_pkttype` host, broadcast, multicast,
    /// other host).
    Incoming,
    /// Sent by this host (`PACKET_OUTGOING`).
    Outgoing,
}

/// The kernel's `sll_pkttype` classification.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PacketType {
    /// Addressed to this host.
    Host,
    /// Link-layer broadcast.
    Broadcast,
    /// Link-layer multicast.
    Multicast,
    /// Addressed to another host (seen in promiscuous mode).
    OtherHost,
    /// Sent by this host.
    Outgoing,
    /// Any other value.
    Other(u8),
}

impl PacketType {
    /// Converts `sll_pkttype`.
    pub fn from_raw(v: u8) -> Self {
        match v {
            0 => PacketType::Host,
            1 => PacketType::Broadcast,
            2 => PacketType::Multicast,
            3 => PacketType::OtherHost,
            4 => PacketType::Outgoing,
            o => PacketType::Other(o),
        }
    }

    /// The raw `sll_pkttype` value.
    pub fn raw(self) -> u8 {
        match self {
            PacketType::Host => 0,
            PacketType::Broadcast => 1,
            PacketType::Multicast => 2,
            PacketType::OtherHost => 3,
            PacketType::Outgoing => 4,
            PacketType::Other(o) => o,
        }
    }

    /// Incoming unless the kernel marked it outgoing.
    pub fn direction(self) -> PacketDirection {
        if self == PacketType::Outgoing {
            PacketDirection::Outgoing
        } else {
            PacketDirection::Incoming
        }
    }
}

/// One captured packet, borrowed from the ring (valid during the callback).
#[derive(Debug, Clone, Copy)]
pub struct Frame<'a> {
    /// Capture time, nanoseconds since the Unix epoch.
    pub ts_ns: u64,
    /// Bytes in `data` (≤ snaplen).
    pub caplen: u32,
    /// Length of the packet on the wire (including any synthesised cooked
    /// header or re-inserted VLAN tag, like libpcap's `len`).
    pub wire_len: u32,
    /// Frame bytes in the capture's link type.
    pub data: &'a [u8],
    /// Interface the packet was seen on.
    pub ifindex: i32,
    /// Incoming or outgoing.
    pub direction: PacketDirection,
    /// Full `sll_pkttype`.
    pub pkt_type: PacketType,
    /// `sll_protocol` (EtherType, host byte order).
    pub protocol: u16,
}

/// Kernel counters, accumulated since the capture was opened.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LiveStats {
    /// Packets that passed the filter, including dropped ones (the kernel's
    /// `tp_packets`, as libpcap's `ps_recv`). On `lo` this counts each packet
    /// once; on `any` loopback packets count twice (both copies).
    pub received: u64,
    /// Packets dropped because the ring was full (`tp_drops`).
    pub dropped: u64,
    /// Times the kernel froze the ring queue because it was full
    /// (`tp_freeze_q_cnt`).
    pub freeze_queue: u64,
    /// Frames handed to callers by `next_batch`.
    pub delivered: u64,
}

/// Errors, each with the fix in one line.
#[derive(Debug, thiserror::Error)]
pub enum LiveError {
    #[error("no such interface '{0}' (list them with `ip link`)")]
    NoSuchInterface(String),
    #[error(
        "capturing on '{0}' needs root or CAP_NET_RAW: run as root or \
         `sudo setcap cap_net_raw+ep /path/to/trafficscope`"
    )]
    PermissionDenied(String),
    #[error("interface '{0}' is down (bring it up with `ip link set {0} up`)")]
    InterfaceDown(String),
    #[error("interface '{0}' went down or was removed during the capture")]
    InterfaceWentDown(String),
    #[error("invalid capture setting {setting}: {reason}")]
    InvalidConfig {
        setting: &'static str,
        reason: String,
    },
    #[error("cannot set up the capture ring ({setting}): {source}; {hint}")]
    Ring {
        setting: String,
        hint: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("the kernel rejected the capture filter ({len} instructions): {source}")]
    Filter {
        len: usize,
        #[source]
        source: std::io::Error,
    },
    #[error("the capture filter cannot run on '{iface}': {reason}")]
    FilterUnsupported { iface: String, reason: String },
    #[error("{what} failed on '{iface}': {source}")]
    Io {
        what: &'static str,
        iface: String,
        #[source]
        source: std::io::Error,
    },
    #[error("live capture needs Linux (AF_PACKET)")]
    Unsupported,
}

/// Poll timeout in milliseconds for `poll(2)`: sub-millisecond positive
/// timeouts round up so callers do not spin.
pub(crate) fn timeout_ms(t: Duration) -> i32 {
    if t.is_zero() {
        return 0;
    }
    let ms = t.as_micros().div_ceil(1000);
    ms.min(i32::MAX as u128) as i32
}

#[cfg(not(target_os = "linux"))]
mod unsupported {
    use super::*;

    /// Placeholder: live capture needs Linux.
    #[derive(Debug)]
    pub struct LiveCapture(());

    /// Placeholder: live capture needs Linux.
    #[derive(Clone, Debug)]
    pub struct StopHandle(());

    impl StopHandle {
        pub fn stop(&self) {}
    }

    impl LiveCapture {
        pub fn open(_: &LiveConfig) -> Result<LiveCapture, LiveError> {
            Err(LiveError::Unsupported)
        }
        pub fn linktype(&self) -> u32 {
            0
        }
        pub fn next_batch(
            &mut self,
            _: Duration,
            _: &mut dyn FnMut(Frame<'_>),
        ) -> Result<usize, LiveError> {
            Err(LiveError::Unsupported)
        }
        pub fn stats(&mut self) -> Result<LiveStats, LiveError> {
            Err(LiveError::Unsupported)
        }
        pub fn stop_handle(&self) -> StopHandle {
            StopHandle(())
        }
        pub fn is_stopped(&self) -> bool {
            true
        }
    }
}
#[cfg(not(target_os = "linux"))]
pub use unsupported::{LiveCapture, StopHandle};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bpf_insn_matches_sock_filter_layout() {
        assert_eq!(std::mem::size_of::<BpfInsn>(), 8);
        assert_eq!(std::mem::align_of::<BpfInsn>(), 4);
    }

    #[test]
    fn timeout_rounding() {
        assert_eq!(timeout_ms(Duration::ZERO), 0);
        assert_eq!(timeout_ms(Duration::from_micros(1)), 1);
        assert_eq!(timeout_ms(Duration::from_millis(250)), 250);
        assert_eq!(timeout_ms(Duration::from_secs(u64::MAX)), i32::MAX);
    }

    #[test]
    fn config_defaults_are_tcpdump_like() {
        let c = LiveConfig::new("eth0");
        assert_eq!(c.effective_snaplen(), 262_144);
        assert!(c.promiscuous);
        assert_eq!(c.ring_size(), 4 << 20);
        let mut c = c;
        c.set_buffer_size(10 << 20);
        assert_eq!(c.block_count, 10);
        c.snaplen = 0;
        assert_eq!(c.effective_snaplen(), DEFAULT_SNAPLEN);
        c.snaplen = 1 << 30;
        assert_eq!(c.effective_snaplen(), DEFAULT_SNAPLEN);
        c.snaplen = 96;
        assert_eq!(c.effective_snaplen(), 96);
    }

    #[test]
    fn packet_type_direction() {
        for v in 0..=5u8 {
            assert_eq!(PacketType::from_raw(v).raw(), v);
        }
        assert_eq!(
            PacketType::from_raw(4).direction(),
            PacketDirection::Outgoing
        );
        assert_eq!(
            PacketType::from_raw(0).direction(),
            PacketDirection::Incoming
        );
    }
}
