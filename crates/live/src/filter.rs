//! Rewrites a caller's classic BPF program into the form the kernel runs.

use crate::sys::*;
use crate::BpfInsn;

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
                "instruction {i} reads a Linux cooked header field other than the \
                 packet type or protocol, which the kernel cannot supply"
            ),
        }
    }
}

/// Prepares `prog` for `SO_ATTACH_FILTER`.
///
/// * `cooked`: the program was written against a 16-byte SLL header but the
///   kernel runs it on a packet starting at the network header; packet loads
///   are moved back by 16 bytes, and loads of the packet type (`ldh [0]`) and
///   protocol (`ldh [14]`) become ancillary loads.
/// * `kernel_snaplen`: constant non-zero return values are capped to it, so
///   the kernel copies no more than needed into the ring.
pub fn prepare(
    prog: &[BpfInsn],
    cooked: bool,
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
        let mut k = insn.k;
        let class = insn.code & 0x07;
        let mode = insn.code & 0xe0;
        let size = insn.code & 0x18; // BPF_W 0x00, BPF_H 0x08, BPF_B 0x10
        if class == BPF_RET && (insn.code & 0x18) == BPF_K && k != 0 {
            k = k.min(kernel_snaplen.max(1));
        }
        if cooked
            && (class == BPF_LD || class == BPF_LDX)
            && (mode == BPF_ABS || mode == BPF_IND || mode == BPF_MSH)
            && (k as i32) >= 0
        {
            let hdr = crate::SLL_HDR_LEN as u32;
            if k >= hdr {
                k -= hdr;
            } else if mode == BPF_ABS && class == BPF_LD && size == 0x08 && k == 0 {
                k = (SKF_AD_OFF + SKF_AD_PKTTYPE) as u32;
            } else if mode == BPF_ABS && class == BPF_LD && size == 0x08 && k == 14 {
                k = (SKF_AD_OFF + SKF_AD_PROTOCOL) as u32;
            } else {
                return Err(FixError::CookedHeader(i));
            }
        }
        out.push(SockFilter {
            code: insn.code,
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
        let out = prepare(&p, false, 64).unwrap();
        let ks: Vec<u32> = out.iter().map(|x| x.k).collect();
        assert_eq!(ks, vec![64, 0, 0, 10]);
    }

    #[test]
    fn ethernet_loads_untouched() {
        let p = [i(LDH_ABS, 12), i(JEQ_K, 0x800), i(LDB_ABS, 23), i(RET_K, 1)];
        let out = prepare(&p, false, 100).unwrap();
        assert_eq!(out[0].k, 12);
        assert_eq!(out[2].k, 23);
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
        ];
        let out = prepare(&p, true, 200).unwrap();
        assert_eq!(out[0].k, (SKF_AD_OFF + SKF_AD_PROTOCOL) as u32);
        assert_eq!(out[1].k, (SKF_AD_OFF + SKF_AD_PKTTYPE) as u32);
        assert_eq!(out[2].k, 9);
        assert_eq!(out[3].k, 0);
        assert_eq!(out[4].k, 2);
        assert_eq!(out[5].k, (SKF_AD_OFF + 8) as u32, "ancillary loads kept");
        assert_eq!(out[6].k, 200);
    }

    #[test]
    fn cooked_address_bytes_rejected() {
        let p = [i(LDB_ABS, 6), i(RET_K, 1)];
        assert_eq!(prepare(&p, true, 1), Err(FixError::CookedHeader(0)));
    }

    #[test]
    fn size_limits() {
        assert_eq!(prepare(&[], false, 1), Err(FixError::Empty));
        let long = vec![i(RET_K, 1); MAX_INSNS + 1];
        assert_eq!(prepare(&long, false, 1), Err(FixError::TooLong(4097)));
    }
}
