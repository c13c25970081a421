//! Kernel ABI for AF_PACKET / TPACKET_V3 (from `<linux/if_packet.h>`,
//! `<linux/filter.h>`, `<linux/sockios.h>`), written out here so the crate
//! does not depend on which `libc` release happens to export them.

#![allow(dead_code)]

use libc::c_int;

// Socket options (level SOL_PACKET).
pub const SOL_PACKET: c_int = 263;
pub const PACKET_ADD_MEMBERSHIP: c_int = 1;
pub const PACKET_RX_RING: c_int = 5;
pub const PACKET_STATISTICS: c_int = 6;
pub const PACKET_VERSION: c_int = 10;
pub const PACKET_RESERVE: c_int = 12;
pub const PACKET_IGNORE_OUTGOING: c_int = 23;

pub const PACKET_MR_PROMISC: u16 = 1;
pub const TPACKET_V3: c_int = 2;

// Socket options (level SOL_SOCKET); 26/27 on every Linux architecture.
pub const SO_ATTACH_FILTER: c_int = 26;
pub const SO_DETACH_FILTER: c_int = 27;

// sll_pkttype values.
pub const PACKET_HOST: u8 = 0;
pub const PACKET_BROADCAST: u8 = 1;
pub const PACKET_MULTICAST: u8 = 2;
pub const PACKET_OTHERHOST: u8 = 3;
pub const PACKET_OUTGOING: u8 = 4;

// Block / packet status bits.
pub const TP_STATUS_KERNEL: u32 = 0;
pub const TP_STATUS_USER: u32 = 1;
pub const TP_STATUS_VLAN_VALID: u32 = 1 << 4;
pub const TP_STATUS_VLAN_TPID_VALID: u32 = 1 << 6;

pub const TPACKET_ALIGNMENT: usize = 16;
pub const fn tpacket_align(x: usize) -> usize {
    (x + TPACKET_ALIGNMENT - 1) & !(TPACKET_ALIGNMENT - 1)
}

/// `struct tpacket_req3`.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
pub struct TpacketReq3 {
    pub tp_block_size: u32,
    pub tp_block_nr: u32,
    pub tp_frame_size: u32,
    pub tp_frame_nr: u32,
    pub tp_retire_blk_tov: u32,
    pub tp_sizeof_priv: u32,
    pub tp_feature_req_word: u32,
}

/// `struct tpacket_stats_v3`.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
pub struct TpacketStatsV3 {
    pub tp_packets: u32,
    pub tp_drops: u32,
    pub tp_freeze_q_cnt: u32,
}

/// `struct packet_mreq`.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
pub struct PacketMreq {
    pub mr_ifindex: c_int,
    pub mr_type: u16,
    pub mr_alen: u16,
    pub mr_address: [u8; 8],
}

/// `struct sock_filter`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SockFilter {
    pub code: u16,
    pub jt: u8,
    pub jf: u8,
    pub k: u32,
}

/// `struct sock_fprog`.
#[repr(C)]
#[derive(Debug)]
pub struct SockFprog {
    pub len: u16,
    pub filter: *const SockFilter,
}

// Offsets inside `struct tpacket_block_desc` (version, offset_to_priv, then
// `struct tpacket_hdr_v1`).
pub const BD_BLOCK_STATUS: usize = 8;
pub const BD_NUM_PKTS: usize = 12;
pub const BD_OFFSET_TO_FIRST_PKT: usize = 16;
pub const BD_BLK_LEN: usize = 20;
/// Size of the block descriptor (with its 8-byte aligned seq_num and two
/// timestamps), rounded like the kernel's `BLK_HDR_LEN`.
pub const BLK_HDR_LEN: usize = 48;

// Offsets inside `struct tpacket3_hdr` (48 bytes).
pub const TP_NEXT_OFFSET: usize = 0;
pub const TP_SEC: usize = 4;
pub const TP_NSEC: usize = 8;
pub const TP_SNAPLEN: usize = 12;
pub const TP_LEN: usize = 16;
pub const TP_STATUS: usize = 20;
pub const TP_MAC: usize = 24;
pub const TP_NET: usize = 26;
pub const TP_RXHASH: usize = 28;
pub const TP_VLAN_TCI: usize = 32;
pub const TP_VLAN_TPID: usize = 36;
pub const TPACKET3_HDR_SIZE: usize = 48;
/// `struct sockaddr_ll` follows the header at `TPACKET_ALIGN(sizeof(tpacket3_hdr))`.
pub const TP_SLL_OFFSET: usize = tpacket_align(TPACKET3_HDR_SIZE);
pub const SOCKADDR_LL_SIZE: usize = 20;
/// `TPACKET3_HDRLEN`: what the kernel reserves before packet data.
pub const TPACKET3_HDRLEN: usize = TP_SLL_OFFSET + SOCKADDR_LL_SIZE;

// Offsets inside `struct sockaddr_ll`.
pub const SLL_PROTOCOL: usize = 2; // big-endian u16
pub const SLL_IFINDEX: usize = 4;
pub const SLL_HATYPE: usize = 8;
pub const SLL_PKTTYPE: usize = 10;
pub const SLL_HALEN: usize = 11;
pub const SLL_ADDR: usize = 12;

// ioctls (`<linux/sockios.h>`).
pub const SIOCGIFFLAGS: libc::c_ulong = 0x8913;
pub const SIOCGIFHWADDR: libc::c_ulong = 0x8927;
pub const IFNAMSIZ: usize = 16;

/// `struct ifreq`: a 16-byte name then a union whose largest member is
/// `struct ifmap` (24 bytes on 64-bit targets, fewer on 32-bit ones).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct IfReq {
    pub name: [libc::c_char; IFNAMSIZ],
    pub data: [u64; 3],
}

// ARPHRD_* values used for link-type selection.
pub const ARPHRD_ETHER: u16 = 1;
pub const ARPHRD_RAWIP: u16 = 519;
pub const ARPHRD_LOOPBACK: u16 = 772;
pub const ARPHRD_IEEE80211_RADIOTAP: u16 = 803;
pub const ARPHRD_NONE: u16 = 0xfffe;

// cBPF opcodes needed to rewrite filters.
pub const BPF_LD: u16 = 0x00;
pub const BPF_LDX: u16 = 0x01;
pub const BPF_RET: u16 = 0x06;
pub const BPF_K: u16 = 0x00;
pub const BPF_ABS: u16 = 0x20;
pub const BPF_IND: u16 = 0x40;
pub const BPF_MSH: u16 = 0xa0;
pub const BPF_IMM: u16 = 0x00;
pub const BPF_LEN: u16 = 0x80;
pub const SKF_AD_OFF: i32 = -0x1000;
pub const SKF_AD_PROTOCOL: i32 = 0;
pub const SKF_AD_PKTTYPE: i32 = 4;
pub const SKF_AD_IFINDEX: i32 = 8;
pub const SKF_AD_HATYPE: i32 = 28;
