//! Classic BPF instructions: encoding constants, validation and the
//! `tcpdump -d` style listing.

use std::fmt;

use crate::FilterError;

/// One classic BPF instruction, layout-compatible with Linux
/// `struct sock_filter` (and BSD `struct bpf_insn`).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Insn {
    pub code: u16,
    pub jt: u8,
    pub jf: u8,
    pub k: u32,
}

impl Insn {
    /// A non-jump instruction.
    pub const fn stmt(code: u16, k: u32) -> Self {
        Insn {
            code,
            jt: 0,
            jf: 0,
            k,
        }
    }

    /// A conditional jump instruction with relative offsets.
    pub const fn jump(code: u16, k: u32, jt: u8, jf: u8) -> Self {
        Insn { code, jt, jf, k }
    }
}

/// Maximum number of instructions the Linux kernel accepts (BPF_MAXINSNS).
pub const MAX_INSNS: usize = 4096;
/// Number of scratch memory words (BPF_MEMWORDS).
pub const MEMWORDS: u32 = 16;

// Instruction classes.
pub const BPF_LD: u16 = 0x00;
pub const BPF_LDX: u16 = 0x01;
pub const BPF_ST: u16 = 0x02;
pub const BPF_STX: u16 = 0x03;
pub const BPF_ALU: u16 = 0x04;
pub const BPF_JMP: u16 = 0x05;
pub const BPF_RET: u16 = 0x06;
pub const BPF_MISC: u16 = 0x07;

// Load sizes.
pub const BPF_W: u16 = 0x00;
pub const BPF_H: u16 = 0x08;
pub const BPF_B: u16 = 0x10;

// Load modes.
pub const BPF_IMM: u16 = 0x00;
pub const BPF_ABS: u16 = 0x20;
pub const BPF_IND: u16 = 0x40;
pub const BPF_MEM: u16 = 0x60;
pub const BPF_LEN: u16 = 0x80;
pub const BPF_MSH: u16 = 0xa0;

// ALU operations.
pub const BPF_ADD: u16 = 0x00;
pub const BPF_SUB: u16 = 0x10;
pub const BPF_MUL: u16 = 0x20;
pub const BPF_DIV: u16 = 0x30;
pub const BPF_OR: u16 = 0x40;
pub const BPF_AND: u16 = 0x50;
pub const BPF_LSH: u16 = 0x60;
pub const BPF_RSH: u16 = 0x70;
pub const BPF_NEG: u16 = 0x80;
pub const BPF_MOD: u16 = 0x90;
pub const BPF_XOR: u16 = 0xa0;

// Jump operations.
pub const BPF_JA: u16 = 0x00;
pub const BPF_JEQ: u16 = 0x10;
pub const BPF_JGT: u16 = 0x20;
pub const BPF_JGE: u16 = 0x30;
pub const BPF_JSET: u16 = 0x40;

// Operand source.
pub const BPF_K: u16 = 0x00;
pub const BPF_X: u16 = 0x08;
// Return value source.
pub const BPF_A: u16 = 0x10;

// MISC operations.
pub const BPF_TAX: u16 = 0x00;
pub const BPF_TXA: u16 = 0x80;

pub(crate) fn class(code: u16) -> u16 {
    code & 0x07
}

/// True if `code` is an instruction this crate knows (the classic set that
/// both libpcap's interpreter and the Linux kernel accept).
pub(crate) fn known_opcode(code: u16) -> bool {
    if code & 0xff00 != 0 {
        return false;
    }
    match class(code) {
        BPF_LD => match code & 0xe0 {
            BPF_ABS | BPF_IND => matches!(code & 0x18, BPF_W | BPF_H | BPF_B),
            BPF_IMM | BPF_MEM | BPF_LEN => code & 0x18 == BPF_W,
            _ => false,
        },
        BPF_LDX => match code & 0xe0 {
            BPF_IMM | BPF_MEM | BPF_LEN => code & 0x18 == BPF_W,
            BPF_MSH => code & 0x18 == BPF_B,
            _ => false,
        },
        BPF_ST | BPF_STX => code & 0xf8 == 0,
        BPF_ALU => {
            let op = code & 0xf0;
            op <= BPF_XOR && (op != BPF_NEG || code & BPF_X == 0)
        }
        BPF_JMP => {
            let op = code & 0xf0;
            op <= BPF_JSET && (op != BPF_JA || code & BPF_X == 0)
        }
        BPF_RET => code & !0x18 == BPF_RET && matches!(code & 0x18, BPF_K | BPF_A),
        BPF_MISC => matches!(code & 0xf8, BPF_TAX | BPF_TXA),
        _ => false,
    }
}

/// Checks a program the way the kernel's `sk_chk_filter` does: non-empty,
/// at most [`MAX_INSNS`] instructions, known opcodes, every jump lands
/// inside the program, scratch memory indices in range, no division by a
/// constant zero, and the last instruction is a `ret`.
pub fn validate(insns: &[Insn]) -> Result<(), FilterError> {
    let invalid = |pc: usize, why: &str| FilterError::Invalid(format!("instruction {pc}: {why}"));
    if insns.is_empty() {
        return Err(FilterError::Invalid("empty program".into()));
    }
    if insns.len() > MAX_INSNS {
        return Err(FilterError::TooLong(insns.len()));
    }
    let n = insns.len();
    for (pc, i) in insns.iter().enumerate() {
        if !known_opcode(i.code) {
            return Err(invalid(pc, &format!("unknown opcode {:#06x}", i.code)));
        }
        match class(i.code) {
            BPF_JMP => {
                if i.code & 0xf0 == BPF_JA {
                    if (pc as u64 + 1 + u64::from(i.k)) >= n as u64 {
                        return Err(invalid(pc, "ja jumps past the end"));
                    }
                } else if pc + 1 + usize::from(i.jt) >= n || pc + 1 + usize::from(i.jf) >= n {
                    return Err(invalid(pc, "conditional jump past the end"));
                }
            }
            BPF_ST | BPF_STX if i.k >= MEMWORDS => {
                return Err(invalid(pc, "scratch memory index out of range"));
            }
            BPF_LD | BPF_LDX if i.code & 0xe0 == BPF_MEM && i.k >= MEMWORDS => {
                return Err(invalid(pc, "scratch memory index out of range"));
            }
            BPF_ALU if i.code & BPF_X == 0 => {
                let op = i.code & 0xf0;
                if (op == BPF_DIV || op == BPF_MOD) && i.k == 0 {
                    return Err(invalid(pc, "division by constant zero"));
                }
            }
            _ => {}
        }
    }
    if class(insns[n - 1].code) != BPF_RET {
        return Err(invalid(n - 1, "program does not end in ret"));
    }
    Ok(())
}

/// Formats one instruction at index `pc` like libpcap's `bpf_image`
/// (the lines of `tcpdump -d`).
pub fn format_insn(i: &Insn, pc: usize) -> String {
    let k = i.k;
    let (op, operand): (&str, String) = match i.code {
        c if c == BPF_RET | BPF_K => ("ret", format!("#{k}")),
        c if c == BPF_RET | BPF_A => ("ret", String::new()),
        c if c == BPF_LD | BPF_W | BPF_ABS => ("ld", format!("[{k}]")),
        c if c == BPF_LD | BPF_H | BPF_ABS => ("ldh", format!("[{k}]")),
        c if c == BPF_LD | BPF_B | BPF_ABS => ("ldb", format!("[{k}]")),
        c if c == BPF_LD | BPF_W | BPF_LEN => ("ld", "#pktlen".into()),
        c if c == BPF_LD | BPF_W | BPF_IND => ("ld", format!("[x + {k}]")),
        c if c == BPF_LD | BPF_H | BPF_IND => ("ldh", format!("[x + {k}]")),
        c if c == BPF_LD | BPF_B | BPF_IND => ("ldb", format!("[x + {k}]")),
        c if c == BPF_LD | BPF_IMM => ("ld", format!("#{k:#x}")),
        c if c == BPF_LDX | BPF_IMM => ("ldx", format!("#{k:#x}")),
        c if c == BPF_LDX | BPF_B | BPF_MSH => ("ldxb", format!("4*([{k}]&0xf)")),
        c if c == BPF_LD | BPF_MEM => ("ld", format!("M[{k}]")),
        c if c == BPF_LDX | BPF_MEM => ("ldx", format!("M[{k}]")),
        c if c == BPF_LDX | BPF_W | BPF_LEN => ("ldx", "#pktlen".into()),
        c if c == BPF_ST => ("st", format!("M[{k}]")),
        c if c == BPF_STX => ("stx", format!("M[{k}]")),
        c if c == BPF_MISC | BPF_TAX => ("tax", String::new()),
        c if c == BPF_MISC | BPF_TXA => ("txa", String::new()),
        c if c == BPF_JMP | BPF_JA => ("ja", format!("{}", pc as u64 + 1 + u64::from(k))),
        c if c == BPF_ALU | BPF_NEG => ("neg", String::new()),
        c if class(c) == BPF_ALU => {
            let name = match c & 0xf0 {
                BPF_ADD => "add",
                BPF_SUB => "sub",
                BPF_MUL => "mul",
                BPF_DIV => "div",
                BPF_MOD => "mod",
                BPF_AND => "and",
                BPF_OR => "or",
                BPF_XOR => "xor",
                BPF_LSH => "lsh",
                BPF_RSH => "rsh",
                _ => "unimp",
            };
            let operand = if c & BPF_X != 0 {
                "x".to_string()
            } else if matches!(c & 0xf0, BPF_AND | BPF_OR | BPF_XOR) {
                format!("#{k:#x}")
            } else {
                format!("#{k}")
            };
            (name, operand)
        }
        c if class(c) == BPF_JMP => {
            let name = match c & 0xf0 {
                BPF_JEQ => "jeq",
                BPF_JGT => "jgt",
                BPF_JGE => "jge",
                BPF_JSET => "jset",
                _ => "unimp",
            };
            let operand = if c & BPF_X != 0 {
                "x".to_string()
            } else {
                format!("#{k:#x}")
            };
            let line = format!(
                "({pc:03}) {name:<8} {operand:<16} jt {}\tjf {}",
                pc + 1 + usize::from(i.jt),
                pc + 1 + usize::from(i.jf)
            );
            return line;
        }
        _ => ("unimp", format!("{:#06x}", i.code)),
    };
    format!("({pc:03}) {op:<8} {operand}")
}

/// Helper to print a whole instruction listing.
pub(crate) struct Listing<'a>(pub &'a [Insn]);

impl fmt::Display for Listing<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (pc, i) in self.0.iter().enumerate() {
            writeln!(f, "{}", format_insn(i, pc))?;
        }
        Ok(())
    }
}
