//! A classic BPF interpreter for filters the kernel cannot run as written
//! (cooked-header loads on `any`). Same semantics as the kernel's: loads
//! outside the packet reject it, division by zero rejects it.

use crate::BpfInsn;

const MEMWORDS: usize = 16;

/// Ancillary data for `SKF_AD_*` loads.
#[derive(Debug, Clone, Copy, Default)]
pub struct Meta {
    pub protocol: u16,
    pub pkttype: u8,
    pub ifindex: i32,
    pub hatype: u16,
}

/// Checks what the kernel's checker checks, so `run` cannot go wrong:
/// known opcodes, jumps inside the program, scratch memory indices, no
/// constant division by zero, and a return at the end.
pub fn validate(prog: &[BpfInsn]) -> Result<(), String> {
    if prog.is_empty() || prog.len() > crate::filter::MAX_INSNS {
        return Err(format!("{} instructions", prog.len()));
    }
    for (pc, i) in prog.iter().enumerate() {
        let class = i.code & 0x07;
        let bad = || {
            Err(format!(
                "instruction {pc} (code {:#06x}) is invalid",
                i.code
            ))
        };
        match class {
            0x00 | 0x01 => {
                // ld / ldx
                let mode = i.code & 0xe0;
                let size = i.code & 0x18;
                let ok = match (class, mode) {
                    (0x00, 0x20 | 0x40) => size != 0x18, // abs/ind: w, h, b
                    (_, 0x00) | (_, 0x80) => size == 0,  // imm, len
                    (_, 0x60) => size == 0 && (i.k as usize) < MEMWORDS,
                    (0x01, 0xa0) => size == 0x10, // msh: b only
                    _ => false,
                };
                if !ok {
                    return bad();
                }
            }
            0x02 | 0x03 => {
                if i.code & !0x07 != 0 || i.k as usize >= MEMWORDS {
                    return bad();
                }
            }
            0x04 => {
                let op = i.code & 0xf0;
                if op > 0xa0 {
                    return bad();
                }
                if (op == 0x30 || op == 0x90) && i.code & 0x08 == 0 && i.k == 0 {
                    return Err(format!("instruction {pc} divides by zero"));
                }
            }
            0x05 => {
                let op = i.code & 0xf0;
                let left = prog.len() - pc - 1;
                let ok = if op == 0x00 {
                    (i.k as usize) < left
                } else {
                    op <= 0x40 && usize::from(i.jt) < left && usize::from(i.jf) < left
                };
                if !ok {
                    return Err(format!("instruction {pc} jumps out of the program"));
                }
            }
            0x06 => {
                if !matches!(i.code & 0x18, 0x00 | 0x10) {
                    return bad();
                }
            }
            _ => {
                // misc: tax (0x00) / txa (0x80)
                if !matches!(i.code & 0xf8, 0x00 | 0x80) {
                    return bad();
                }
            }
        }
    }
    if prog.last().map(|i| i.code & 0x07) != Some(0x06) {
        return Err("the program does not end with a return".into());
    }
    Ok(())
}

fn load(pkt: &[u8], off: u32, size: u16, meta: &Meta) -> Option<u32> {
    let off_i = off as i32;
    if off_i < 0 {
        // Ancillary loads (SKF_AD_OFF + n): the ones a cooked filter uses.
        return match off_i - crate::sys::SKF_AD_OFF {
            0 => Some(u32::from(meta.protocol)),
            4 => Some(u32::from(meta.pkttype)),
            8 => Some(meta.ifindex as u32),
            28 => Some(u32::from(meta.hatype)),
            _ => None,
        };
    }
    let o = off as usize;
    match size {
        0x00 => pkt
            .get(o..o.checked_add(4)?)
            .map(|b| u32::from_be_bytes(b.try_into().unwrap())),
        0x08 => pkt
            .get(o..o.checked_add(2)?)
            .map(|b| u32::from(u16::from_be_bytes(b.try_into().unwrap()))),
        _ => pkt.get(o).map(|&b| u32::from(b)),
    }
}

/// Runs a validated program; returns how many bytes to keep (0 = reject).
pub fn run(prog: &[BpfInsn], pkt: &[u8], wire_len: u32, meta: &Meta) -> u32 {
    let (mut a, mut x) = (0u32, 0u32);
    let mut mem = [0u32; MEMWORDS];
    let mut pc = 0usize;
    while let Some(i) = prog.get(pc) {
        pc += 1;
        let k = i.k;
        match i.code & 0x07 {
            0x00 | 0x01 => {
                let size = i.code & 0x18;
                let v = match i.code & 0xe0 {
                    0x00 => Some(k),
                    0x80 => Some(wire_len),
                    0x60 => Some(mem[k as usize % MEMWORDS]),
                    0x20 => load(pkt, k, size, meta),
                    0x40 => load(pkt, x.wrapping_add(k), size, meta),
                    _ => load(pkt, k, 0x10, meta).map(|b| (b & 0x0f) * 4), // msh
                };
                let Some(v) = v else { return 0 };
                if i.code & 0x07 == 0x00 {
                    a = v;
                } else {
                    x = v;
                }
            }
            0x02 => mem[k as usize % MEMWORDS] = a,
            0x03 => mem[k as usize % MEMWORDS] = x,
            0x04 => {
                let src = if i.code & 0x08 != 0 { x } else { k };
                a = match i.code & 0xf0 {
                    0x00 => a.wrapping_add(src),
                    0x10 => a.wrapping_sub(src),
                    0x20 => a.wrapping_mul(src),
                    0x30 => match a.checked_div(src) {
                        Some(v) => v,
                        None => return 0,
                    },
                    0x40 => a | src,
                    0x50 => a & src,
                    0x60 => a.checked_shl(src).unwrap_or(0),
                    0x70 => a.checked_shr(src).unwrap_or(0),
                    0x80 => a.wrapping_neg(),
                    0x90 => match a.checked_rem(src) {
                        Some(v) => v,
                        None => return 0,
                    },
                    _ => a ^ src,
                };
            }
            0x05 => {
                let src = if i.code & 0x08 != 0 { x } else { k };
                let cond = match i.code & 0xf0 {
                    0x00 => {
                        pc += k as usize;
                        continue;
                    }
                    0x10 => a == src,
                    0x20 => a > src,
                    0x30 => a >= src,
                    _ => a & src != 0,
                };
                pc += usize::from(if cond { i.jt } else { i.jf });
            }
            0x06 => return if i.code & 0x18 == 0x10 { a } else { k },
            _ => {
                if i.code & 0xf8 == 0x80 {
                    a = x;
                } else {
                    x = a;
                }
            }
        }
    }
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn i(code: u16, jt: u8, jf: u8, k: u32) -> BpfInsn {
        BpfInsn::new(code, jt, jf, k)
    }

    /// Ethernet + IPv4 (IHL 5) + UDP to `dport`.
    fn udp_frame(dport: u16) -> Vec<u8> {
        let mut f = vec![0u8; 14 + 20 + 8 + 4];
        f[12..14].copy_from_slice(&[0x08, 0x00]);
        f[14] = 0x45;
        f[14 + 9] = 17;
        f[14 + 22..14 + 24].copy_from_slice(&dport.to_be_bytes());
        f
    }

    fn udp_port_prog(port: u16) -> Vec<BpfInsn> {
        vec![
            i(0x28, 0, 0, 12),
            i(0x15, 0, 8, 0x0800),
            i(0x30, 0, 0, 23),
            i(0x15, 0, 6, 17),
            i(0x28, 0, 0, 20),
            i(0x45, 4, 0, 0x1fff),
            i(0xb1, 0, 0, 14),
            i(0x48, 0, 0, 16),
            i(0x15, 0, 1, u32::from(port)),
            i(0x06, 0, 0, 96),
            i(0x06, 0, 0, 0),
        ]
    }

    #[test]
    fn udp_port_program() {
        let p = udp_port_prog(53);
        validate(&p).unwrap();
        let m = Meta::default();
        assert_eq!(run(&p, &udp_frame(53), 46, &m), 96);
        assert_eq!(run(&p, &udp_frame(54), 46, &m), 0);
        // Truncated packet: the load fails, the packet is rejected.
        assert_eq!(run(&p, &udp_frame(53)[..30], 46, &m), 0);
    }

    #[test]
    fn alu_memory_and_returns() {
        // A = len; M[3] = A; A = 7; A *= 6; X = A; A = M[3]; A += X; ret A
        let p = [
            i(0x80, 0, 0, 0),
            i(0x02, 0, 0, 3),
            i(0x00, 0, 0, 7),
            i(0x24, 0, 0, 6),
            i(0x07, 0, 0, 0),
            i(0x60, 0, 0, 3),
            i(0x0c, 0, 0, 0),
            i(0x16, 0, 0, 0),
        ];
        validate(&p).unwrap();
        assert_eq!(run(&p, &[], 100, &Meta::default()), 142);
        // Division by a zero X rejects.
        let p = [
            i(0x00, 0, 0, 5),
            i(0x01, 0, 0, 0),
            i(0x3c, 0, 0, 0),
            i(0x16, 0, 0, 0),
        ];
        validate(&p).unwrap();
        assert_eq!(run(&p, &[], 0, &Meta::default()), 0);
    }

    #[test]
    fn ancillary_loads() {
        let m = Meta {
            protocol: 0x86dd,
            pkttype: 4,
            ifindex: 7,
            hatype: 772,
        };
        let ad = |n: i32| (crate::sys::SKF_AD_OFF + n) as u32;
        let p = [i(0x20, 0, 0, ad(0)), i(0x16, 0, 0, 0)];
        assert_eq!(run(&p, &[], 0, &m), 0x86dd);
        let p = [i(0x20, 0, 0, ad(4)), i(0x16, 0, 0, 0)];
        assert_eq!(run(&p, &[], 0, &m), 4);
        let p = [i(0x20, 0, 0, ad(8)), i(0x16, 0, 0, 0)];
        assert_eq!(run(&p, &[], 0, &m), 7);
        let p = [i(0x28, 0, 0, ad(28)), i(0x16, 0, 0, 0)];
        assert_eq!(run(&p, &[], 0, &m), 772);
        let p = [i(0x20, 0, 0, ad(44)), i(0x06, 0, 0, 1)];
        assert_eq!(run(&p, &[], 0, &m), 0, "unknown ancillary load rejects");
    }

    #[test]
    fn validation_rejects_what_the_kernel_rejects() {
        assert!(validate(&[]).is_err());
        assert!(validate(&[i(0x05, 0, 0, 0)]).is_err(), "ja off the end");
        assert!(validate(&[i(0x15, 1, 0, 0), i(0x06, 0, 0, 0)]).is_err());
        assert!(
            validate(&[i(0x34, 0, 0, 0), i(0x06, 0, 0, 0)]).is_err(),
            "div #0"
        );
        assert!(
            validate(&[i(0x60, 0, 0, 16), i(0x06, 0, 0, 0)]).is_err(),
            "M[16]"
        );
        assert!(validate(&[i(0x00, 0, 0, 1)]).is_err(), "no return");
        assert!(validate(&[i(0xff, 0, 0, 0), i(0x06, 0, 0, 0)]).is_err());
        validate(&udp_port_prog(1)).unwrap();
    }
}
