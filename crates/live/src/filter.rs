//! Rewrites a caller's classic BPF program into the form the kernel runs.

use crate::sys::*;
use crate::{BpfInsn, CookedHeader};

/// Largest program the kernel accepts (`BPF_MAXINSNS`).
pub const MAX_INSNS: usize = 4096;

/// Why a program cannot run in the kernel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FixError {
    Empty,
    TooLong(usize),
    /// Instruction index that reads a cooked-header byte the kernel cannot
    /// provide.
    CookedHeader(usize),
    /// Instruction index that loads the packet length, which the kernel
    /// counts without the cooked header.
    CookedLength(usize),
}

impl FixError {
    /// Whether the program can still run in user space on the cooked frame.
    pub fn user_space_ok(&self) -> bool {
        matches!(self, FixError::CookedHeader(_) | FixError::CookedLength(_))
    }
}

impl std::fmt::Display for FixError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FixError::Empty => write!(f, "the program is empty"),
            FixError::TooLong(n) => {
                write!(f, "{n} instructions, the kernel allows {MAX_INSNS}")
            }
            FixError::CookedHeader(i) => write!(
                f,
                "instruction {i} reads a Linux cooked header field the kernel \
                 cannot supply (only the protocol, packet type, interface index \
                 and ARPHRD type have ancillary loads)"
            ),
            FixError::CookedLength(i) => write!(
                f,
                "instruction {i} loads the packet length, which the kernel counts \
                 without the Linux cooked header"
            ),
        }
    }
}

const SIZE_W: u16 = 0x00;
const SIZE_H: u16 = 0x08;
const SIZE_B: u16 = 0x10;

/// The kernel's equivalent of an absolute load of `size` at `k` inside the
/// cooked header: an ancillary offset, or `None` for a constant zero (the
/// SLL2 reserved field).
fn cooked_field(hdr: CookedHeader, size: u16, k: u32) -> Result<Option<i32>, ()> {
    let ad = |n: i32| Ok(Some(SKF_AD_OFF + n));
    match (hdr, size, k) {
        // SLL v1: packet type (2), ARPHRD type (2), address length (2),
        // address (8), protocol (2).
        (CookedHeader::Sll, SIZE_H, 0) => ad(SKF_AD_PKTTYPE),
        (CookedHeader::Sll, SIZE_H, 2) => ad(SKF_AD_HATYPE),
        (CookedHeader::Sll, SIZE_H, 14) => ad(SKF_AD_PROTOCOL),
        // SLL2: protocol (2), reserved (2), interface index (4), ARPHRD
        // type (2), packet type (1), address length (1), address (8).
        (CookedHeader::Sll2, SIZE_H, 0) => ad(SKF_AD_PROTOCOL),
        (CookedHeader::Sll2, SIZE_H, 2) | (CookedHeader::Sll2, SIZE_B, 2 | 3) => Ok(None),
        (CookedHeader::Sll2, SIZE_W, 4) => ad(SKF_AD_IFINDEX),
        (CookedHeader::Sll2, SIZE_H, 8) => ad(SKF_AD_HATYPE),
        (CookedHeader::Sll2, SIZE_B, 10) => ad(SKF_AD_PKTTYPE),
        _ => Err(()),
    }
}

/// Prepares `prog` for `SO_ATTACH_FILTER`.
///
/// * `cooked`: the program was written against a cooked header (SLL2,
///   20 bytes, or SLL, 16) but the kernel runs it on a packet starting at
///   the network header; packet loads are moved back by the header length,
///   and loads of header fields the kernel knows (protocol, packet type,
///   interface index, ARPHRD type) become ancillary loads. Loads of the
///   SLL2 reserved field become `ld #0`. Anything else in the header, and
///   the packet length (which the kernel counts without the header), make
///   it fail with an error for which [`FixError::user_space_ok`] holds.
/// * `kernel_snaplen`: constant non-zero return values are capped to it, so
///   the kernel copies no more than needed into the ring.
pub fn prepare(
    prog: &[BpfInsn],
    cooked: Option<CookedHeader>,
    kernel_snaplen: u32,
) -> Result<Vec<SockFilter>, FixError> {
    if prog.is_empty() {
        return Err(FixError::Empty);
    }
    if prog.len() > MAX_INSNS {
        return Err(FixError::TooLong(prog.len()));
    }
    let mut out = Vec::with_capacity(prog.len());
    for (i, insn) in prog.iter().enumerate() {
        let mut code = insn.code;
        let mut k = insn.k;
        let class = insn.code & 0x07;
        let mode = insn.code & 0xe0;
        let size = insn.code & 0x18; // BPF_W 0x00, BPF_H 0x08, BPF_B 0x10
        if class == BPF_RET && (insn.code & 0x18) == BPF_K && k != 0 {
            k = k.min(kernel_snaplen.max(1));
        }
        if let Some(hdr) = cooked {
            let load = class == BPF_LD || class == BPF_LDX;
            if load && mode == BPF_LEN {
                return Err(FixError::CookedLength(i));
            }
            if load && (mode == BPF_ABS || mode == BPF_IND || mode == BPF_MSH) && (k as i32) >= 0 {
                let len = hdr.header_len() as u32;
                if k >= len {
                    k -= len;
                } else if mode == BPF_ABS && class == BPF_LD {
                    match cooked_field(hdr, size, k) {
                        // The kernel returns the whole field whatever the
                        // load size, so the size is kept as written.
                        Ok(Some(ad)) => k = ad as u32,
                        Ok(None) => {
                            code = BPF_LD | BPF_IMM;
                            k = 0;
                        }
                        Err(()) => return Err(FixError::CookedHeader(i)),
                    }
                } else {
                    return Err(FixError::CookedHeader(i));
                }
            }
        }
        out.push(SockFilter {
            code,
            jt: insn.jt,
            jf: insn.jf,
            k,
        });
    }
    Ok(out)
}

/// `ret #n`.
pub fn ret(n: u32) -> SockFilter {
    SockFilter {
        code: BPF_RET | BPF_K,
        jt: 0,
        jf: 0,
        k: n,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LDH_ABS: u16 = 0x28;
    const LDB_ABS: u16 = 0x30;
    const LDH_IND: u16 = 0x48;
    const LDXB_MSH: u16 = 0xb1;
    const JEQ_K: u16 = 0x15;
    const RET_K: u16 = 0x06;
    const RET_A: u16 = 0x16;

    fn i(code: u16, k: u32) -> BpfInsn {
        BpfInsn::new(code, 0, 0, k)
    }

    #[test]
    fn caps_returns_to_snaplen() {
        let p = [i(RET_K, 262_144), i(RET_K, 0), i(RET_A, 0), i(RET_K, 10)];
        let out = prepare(&p, None, 64).unwrap();
        let ks: Vec<u32> = out.iter().map(|x| x.k).collect();
        assert_eq!(ks, vec![64, 0, 0, 10]);
    }

    #[test]
    fn ethernet_loads_untouched() {
        let p = [i(LDH_ABS, 12), i(JEQ_K, 0x800), i(LDB_ABS, 23), i(RET_K, 1)];
        let out = prepare(&p, None, 100).unwrap();
        assert_eq!(out[0].k, 12);
        assert_eq!(out[2].k, 23);
    }

    const LD_ABS: u16 = 0x20;
    const LD_LEN: u16 = 0x80;
    const LDX_LEN: u16 = 0x81;
    const SLL: Option<CookedHeader> = Some(CookedHeader::Sll);
    const SLL2: Option<CookedHeader> = Some(CookedHeader::Sll2);

    fn ad(n: i32) -> u32 {
        (SKF_AD_OFF + n) as u32
    }

    #[test]
    fn sll2_offsets_move_to_network_header() {
        // As crates/filter compiles `inbound and udp port 53` for LINUX_SLL2
        // (and the loads it never emits).
        let p = [
            i(LDB_ABS, 10),     // packet type
            i(LDH_ABS, 0),      // protocol
            i(LD_ABS, 4),       // interface index
            i(LDH_ABS, 8),      // ARPHRD type
            i(LDB_ABS, 20 + 9), // IPv4 protocol
            i(LDXB_MSH, 20),
            i(LDH_IND, 22),
            i(LDH_ABS, 2), // reserved
            i(LDB_ABS, 3),
            i(LDH_ABS, ad(8)),
            i(RET_K, 4000),
        ];
        let out = prepare(&p, SLL2, 200).unwrap();
        let ks: Vec<u32> = out.iter().map(|x| x.k).collect();
        assert_eq!(
            ks,
            vec![
                ad(SKF_AD_PKTTYPE),
                ad(SKF_AD_PROTOCOL),
                ad(SKF_AD_IFINDEX),
                ad(SKF_AD_HATYPE),
                9,
                0,
                2,
                0,
                0,
                ad(8),
                200
            ]
        );
        // Sizes kept for the ancillary loads, `ld #0` for the reserved field.
        assert_eq!(out[0].code, LDB_ABS);
        assert_eq!(out[2].code, LD_ABS);
        assert_eq!((out[7].code, out[8].code), (0x00, 0x00));
        assert_eq!(out[4].code, LDB_ABS);
    }

    #[test]
    fn sll2_fields_the_kernel_lacks_are_rejected() {
        for (code, k) in [
            (LDB_ABS, 11),  // address length
            (LDB_ABS, 12),  // address
            (LD_ABS, 16),   // address
            (LDH_ABS, 10),  // packet type + address length
            (LD_ABS, 0),    // protocol + reserved
            (LDB_ABS, 0),   // half the protocol
            (LDH_ABS, 4),   // half the interface index
            (LDXB_MSH, 19), // msh inside the header
            (LDH_IND, 4),   // indexed load inside the header
        ] {
            let p = [i(code, k), i(RET_K, 1)];
            let e = prepare(&p, SLL2, 1).unwrap_err();
            assert_eq!(e, FixError::CookedHeader(0), "code {code:#x} k {k}");
            assert!(e.user_space_ok());
        }
    }

    #[test]
    fn packet_length_loads_go_to_user_space_when_cooked() {
        for code in [LD_LEN, LDX_LEN] {
            let p = [i(RET_K, 1), i(code, 0), i(RET_K, 1)];
            assert_eq!(prepare(&p, SLL2, 1), Err(FixError::CookedLength(1)));
            assert_eq!(prepare(&p, SLL, 1), Err(FixError::CookedLength(1)));
            assert!(prepare(&p, None, 1).is_ok(), "Ethernet lengths are right");
        }
        assert!(FixError::CookedLength(0).user_space_ok());
        assert!(!FixError::Empty.user_space_ok());
    }

    #[test]
    fn cooked_offsets_move_to_network_header() {
        let p = [
            i(LDH_ABS, 14),
            i(LDH_ABS, 0),
            i(LDB_ABS, 25),
            i(LDXB_MSH, 16),
            i(LDH_IND, 18),
            i(LDH_ABS, (SKF_AD_OFF + 8) as u32),
            i(RET_K, 4000),
            i(LDH_ABS, 2),
        ];
        let out = prepare(&p, SLL, 200).unwrap();
        assert_eq!(out[0].k, (SKF_AD_OFF + SKF_AD_PROTOCOL) as u32);
        assert_eq!(out[1].k, (SKF_AD_OFF + SKF_AD_PKTTYPE) as u32);
        assert_eq!(out[2].k, 9);
        assert_eq!(out[3].k, 0);
        assert_eq!(out[4].k, 2);
        assert_eq!(out[5].k, (SKF_AD_OFF + 8) as u32, "ancillary loads kept");
        assert_eq!(out[6].k, 200);
        assert_eq!(out[7].k, ad(SKF_AD_HATYPE));
    }

    #[test]
    fn cooked_address_bytes_rejected() {
        let p = [i(LDB_ABS, 6), i(RET_K, 1)];
        assert_eq!(prepare(&p, SLL, 1), Err(FixError::CookedHeader(0)));
        let p = [i(LDH_ABS, 4), i(RET_K, 1)];
        assert_eq!(prepare(&p, SLL, 1), Err(FixError::CookedHeader(0)));
    }

    #[test]
    fn size_limits() {
        assert_eq!(prepare(&[], None, 1), Err(FixError::Empty));
        let long = vec![i(RET_K, 1); MAX_INSNS + 1];
        assert_eq!(prepare(&long, None, 1), Err(FixError::TooLong(4097)));
    }
}
