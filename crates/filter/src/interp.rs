//! A classic BPF interpreter with the semantics of libpcap's `bpf_filter`
//! and the Linux kernel: packet loads past the captured bytes reject the
//! packet, division by zero rejects, and the return value is the number of
//! bytes to accept (0 = drop).

use crate::insn::*;

/// Runs `insns` over `packet` (the captured bytes) whose original length on
/// the wire was `wire_len`. Returns the accept length (0 = reject).
///
/// Never panics, whatever the program: malformed instructions, jumps out of
/// range or falling off the end reject the packet.
pub fn run(insns: &[Insn], packet: &[u8], wire_len: u32) -> u32 {
    let mut a: u32 = 0;
    let mut x: u32 = 0;
    let mut mem = [0u32; MEMWORDS as usize];
    let mut pc: usize = 0;

    let load = |off: u64, size: u16| -> Option<u32> {
        let width = match size {
            BPF_W => 4,
            BPF_H => 2,
            _ => 1,
        };
        let start = usize::try_from(off).ok()?;
        let end = start.checked_add(width)?;
        let b = packet.get(start..end)?;
        Some(b.iter().fold(0u32, |acc, &v| (acc << 8) | u32::from(v)))
    };

    while let Some(i) = insns.get(pc) {
        pc += 1;
        let k = i.k;
        match class(i.code) {
            BPF_RET => {
                return if i.code & 0x18 == BPF_A { a } else { k };
            }
            BPF_LD => match i.code & 0xe0 {
                BPF_ABS => match load(u64::from(k), i.code & 0x18) {
                    Some(v) => a = v,
                    None => return 0,
                },
                BPF_IND => match load(u64::from(x) + u64::from(k), i.code & 0x18) {
                    Some(v) => a = v,
                    None => return 0,
                },
                BPF_LEN => a = wire_len,
                BPF_IMM => a = k,
                BPF_MEM => match mem.get(k as usize) {
                    Some(&v) => a = v,
                    None => return 0,
                },
                _ => return 0,
            },
            BPF_LDX => match i.code & 0xe0 {
                BPF_IMM => x = k,
                BPF_LEN => x = wire_len,
                BPF_MEM => match mem.get(k as usize) {
                    Some(&v) => x = v,
                    None => return 0,
                },
                BPF_MSH => match load(u64::from(k), BPF_B) {
                    Some(v) => x = (v & 0xf) << 2,
                    None => return 0,
                },
                _ => return 0,
            },
            BPF_ST => match mem.get_mut(k as usize) {
                Some(m) => *m = a,
                None => return 0,
            },
            BPF_STX => match mem.get_mut(k as usize) {
                Some(m) => *m = x,
                None => return 0,
            },
            BPF_ALU => {
                let src = if i.code & BPF_X != 0 { x } else { k };
                a = match i.code & 0xf0 {
                    BPF_ADD => a.wrapping_add(src),
                    BPF_SUB => a.wrapping_sub(src),
                    BPF_MUL => a.wrapping_mul(src),
                    BPF_DIV => match a.checked_div(src) {
                        Some(v) => v,
                        None => return 0,
                    },
                    BPF_MOD => match a.checked_rem(src) {
                        Some(v) => v,
                        None => return 0,
                    },
                    BPF_AND => a & src,
                    BPF_OR => a | src,
                    BPF_XOR => a ^ src,
                    BPF_LSH => a.checked_shl(src).unwrap_or(0),
                    BPF_RSH => a.checked_shr(src).unwrap_or(0),
                    BPF_NEG => a.wrapping_neg(),
                    _ => return 0,
                };
            }
            BPF_JMP => {
                let op = i.code & 0xf0;
                if op == BPF_JA {
                    pc = match pc.checked_add(k as usize) {
                        Some(p) => p,
                        None => return 0,
                    };
                    continue;
                }
                let src = if i.code & BPF_X != 0 { x } else { k };
                let cond = match op {
                    BPF_JEQ => a == src,
                    BPF_JGT => a > src,
                    BPF_JGE => a >= src,
                    BPF_JSET => a & src != 0,
                    _ => return 0,
                };
                pc += usize::from(if cond { i.jt } else { i.jf });
            }
            BPF_MISC => {
                if i.code & 0xf8 == BPF_TXA {
                    a = x;
                } else {
                    x = a;
                }
            }
            _ => return 0,
        }
    }
    0
}
