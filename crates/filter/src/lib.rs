//! tcpdump-style capture filters (pcap-filter(7) syntax) compiled to
//! classic BPF, and a cBPF interpreter — no libpcap needed.
//!
//! ```
//! let prog = filter::compile("tcp port 443", 1, 262144).unwrap();
//! // The instructions can be attached to a socket with SO_ATTACH_FILTER:
//! // `Insn` is layout-compatible with Linux `struct sock_filter`.
//! assert!(prog.insns().len() <= 4096);
//! // Or run in userspace over captured bytes:
//! assert!(!prog.matches(&[0u8; 60], 60));
//! println!("{prog}"); // listing like `tcpdump -d`
//! ```
//!
//! Supported link types (pcap LINKTYPE numbers): EN10MB (1), LINUX_SLL
//! (113), LINUX_SLL2 (276), RAW (101), IPV4 (228), IPV6 (229), NULL (0)
//! and LOOP (108).
//!
//! # Grammar (a subset of pcap-filter(7), with libpcap's semantics)
//!
//! * primitives: `[proto] [dir] [type] id` with proto `ether`/`link`, `ip`,
//!   `ip6`, `arp`, `rarp`, `tcp`, `udp`, `sctp`; dir `src`, `dst`,
//!   `src or dst`, `src and dst`; type `host`, `net`, `port`, `portrange`.
//!   Ids: IPv4/IPv6 literals, `N/len`, `N mask M`, partial nets (`net 10`),
//!   MAC `xx:xx:xx:xx:xx:xx`, port numbers or a few service names (with
//!   libpcap's TCP-only/UDP-only restriction, e.g. `http` is TCP),
//!   `lo-hi` ranges, `(a or b)` lists. Host names are not resolved.
//! * `ether proto N`, `ip proto N`, `ip6 proto N`, `proto N` (`\name`
//!   allowed); bare `ip`, `ip6`, `arp`, `rarp`, `tcp`, `udp`, `icmp`,
//!   `icmp6`, `sctp`; `greater N`, `less N`; `vlan [id]` (EN10MB; shifts
//!   the offsets of everything after it, like libpcap); `[ether|ip]
//!   broadcast`, `[ether|ip|ip6] multicast`; `inbound`/`outbound`
//!   (LINUX_SLL/SLL2).
//! * relations `arith relop arith` with `len`, numbers, named constants
//!   (`tcpflags`, `tcp-syn`, `icmptype`, `icmp-echo`, ...),
//!   `proto[expr]`/`proto[expr:1|2|4]` for `ether ip ip6 arp rarp tcp udp
//!   icmp icmp6 sctp`, operators `+ - * / % & | ^ << >>` and unary `-`.
//! * `not`/`!`, `and`/`&&`, `or`/`||` (equal precedence, left to right),
//!   parentheses, and the abbreviation rule: a bare id repeats the last
//!   qualifiers (`port 80 or 443`).
//!
//! Like libpcap: `port`/`tcp[...]` only see the first IPv4 fragment; IPv6
//! `port` needs TCP/UDP/SCTP as the first next header; `tcp` & co. also
//! look behind one IPv6 fragment header. Where libpcap refuses an
//! always-false filter ("expression rejects all packets", e.g. `arp` on
//! RAW) this crate returns a program that rejects everything.
//!
//! Code generation is a direct translation followed by a small, safe
//! optimiser (jump threading over tests already decided on every path,
//! removal of reloads of values A/X already hold); [`compile_unoptimized`]
//! skips it. Neither ever skips a load that has not already succeeded on
//! the same path, so verdicts are identical.
//!
//! Known differences from tcpdump 1.10 (libpcap): the protocol check of a
//! load on the right of an arithmetic operator is kept (libpcap drops it,
//! so `len - ip[2:2] > 0` also reads non-IPv4 packets); and a packet whose
//! evaluation reaches an out-of-bounds load is rejected even where
//! libpcap's stronger optimiser had removed that load. Expressions are
//! limited to 4096 tokens and 100 levels of nesting (compiling needs well
//! under 1 MiB of stack).
//!
//! Programs are generated for packets as stored in capture files. For a
//! live `AF_PACKET` socket the kernel sees the same bytes only on a
//! `SOCK_RAW` Ethernet socket; VLAN tags are usually stripped by the
//! kernel there (libpcap switches to ancillary loads for `vlan`, which
//! this crate does not do). The kernel also charges attached programs
//! against `net.core.optmem_max`: very large programs (over ~2000
//! instructions here) can fail with ENOMEM although they are within the
//! 4096-instruction limit; libpcap then falls back to filtering in
//! userspace, which [`Program::matches`] provides.

mod gen;
mod insn;
mod interp;
mod lex;
mod parse;

use std::fmt;

pub use insn::{format_insn, validate, Insn, MAX_INSNS, MEMWORDS};
pub use interp::run;

/// Instruction-encoding constants (`BPF_LD`, `BPF_JEQ`, ...).
pub mod consts {
    pub use crate::insn::{
        BPF_A, BPF_ABS, BPF_ADD, BPF_ALU, BPF_AND, BPF_B, BPF_DIV, BPF_H, BPF_IMM, BPF_IND, BPF_JA,
        BPF_JEQ, BPF_JGE, BPF_JGT, BPF_JMP, BPF_JSET, BPF_K, BPF_LD, BPF_LDX, BPF_LEN, BPF_LSH,
        BPF_MEM, BPF_MISC, BPF_MOD, BPF_MSH, BPF_MUL, BPF_NEG, BPF_OR, BPF_RET, BPF_RSH, BPF_ST,
        BPF_STX, BPF_SUB, BPF_TAX, BPF_TXA, BPF_W, BPF_X, BPF_XOR,
    };
}

/// Errors from compiling a filter expression or validating a program.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FilterError {
    /// The expression is malformed or asks for something impossible.
    /// `column` is 1-based, counted in characters.
    #[error("filter: {message} at column {column}")]
    Syntax { column: usize, message: String },
    /// The capture's link type has no filter support here.
    #[error("filter: unsupported link type {linktype} ({name}); supported: EN10MB (1), LINUX_SLL (113), LINUX_SLL2 (276), RAW (101), IPV4 (228), IPV6 (229), NULL (0), LOOP (108)")]
    UnsupportedLinkType { linktype: u32, name: String },
    /// The generated program exceeds the kernel's instruction limit.
    #[error("filter: expression too complex: {0} instructions (limit {MAX_INSNS})")]
    TooLong(usize),
    /// A program failed validation.
    #[error("filter: invalid program: {0}")]
    Invalid(String),
}

impl FilterError {
    pub(crate) fn syntax(column: usize, message: String) -> Self {
        FilterError::Syntax { column, message }
    }
}

/// A validated classic BPF program.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Program {
    insns: Vec<Insn>,
}

impl Program {
    /// Wraps instructions after [`validate`]-ing them.
    pub fn from_insns(insns: Vec<Insn>) -> Result<Self, FilterError> {
        validate(&insns)?;
        Ok(Program { insns })
    }

    /// The instructions, ready for `SO_ATTACH_FILTER` (`sock_fprog`).
    pub fn insns(&self) -> &[Insn] {
        &self.insns
    }

    /// Runs the program: the number of bytes to keep (0 = reject).
    /// `packet` is the captured bytes, `wire_len` the original length.
    pub fn run(&self, packet: &[u8], wire_len: u32) -> u32 {
        interp::run(&self.insns, packet, wire_len)
    }

    /// True if the program accepts the packet.
    pub fn matches(&self, packet: &[u8], wire_len: u32) -> bool {
        self.run(packet, wire_len) != 0
    }
}

impl fmt::Display for Program {
    /// One line per instruction, like `tcpdump -d`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        insn::Listing(&self.insns).fmt(f)
    }
}

/// Name of a pcap link type, for messages.
pub fn linktype_name(linktype: u32) -> &'static str {
    match linktype {
        0 => "NULL",
        1 => "EN10MB",
        6 => "IEEE802",
        9 => "PPP",
        50 => "PPP_HDLC",
        101 => "RAW",
        104 => "C_HDLC",
        105 => "IEEE802_11",
        107 => "FRELAY",
        108 => "LOOP",
        113 => "LINUX_SLL",
        127 => "IEEE802_11_RADIOTAP",
        143 => "DOCSIS",
        192 => "PPI",
        195 => "IEEE802_15_4_WITHFCS",
        226 => "IPNET",
        228 => "IPV4",
        229 => "IPV6",
        231 => "DBUS",
        239 => "NFLOG",
        258 => "PKTAP",
        271 => "VSOCK",
        276 => "LINUX_SLL2",
        _ => "unknown",
    }
}

/// Compiles a pcap-filter expression for captures of `linktype`; accepted
/// packets return `snaplen`. An empty expression accepts everything.
///
/// The upper bits of a pcap header's link-type field (FCS length) are
/// ignored. A `snaplen` of 0 means 262144 (libpcap's maximum), so that an
/// accepting program never returns 0.
pub fn compile(expr: &str, linktype: u32, snaplen: u32) -> Result<Program, FilterError> {
    compile_with(expr, linktype, snaplen, true)
}

/// Like [`compile`] but without the jump-threading / redundant-load pass:
/// a straightforward translation, mainly for testing the optimiser.
pub fn compile_unoptimized(
    expr: &str,
    linktype: u32,
    snaplen: u32,
) -> Result<Program, FilterError> {
    compile_with(expr, linktype, snaplen, false)
}

fn compile_with(
    expr: &str,
    linktype: u32,
    snaplen: u32,
    optimize: bool,
) -> Result<Program, FilterError> {
    let lt = linktype & 0x03ff_ffff;
    let kind = gen::link_kind(lt).ok_or_else(|| FilterError::UnsupportedLinkType {
        linktype: lt,
        name: linktype_name(lt).to_string(),
    })?;
    let node = match parse::parse(expr)? {
        None => gen::Node::True,
        Some(e) => gen::Gen::new(kind, lt).expr(&e)?,
    };
    let snaplen = if snaplen == 0 { 262_144 } else { snaplen };
    let insns = gen::assemble(&node, snaplen, optimize);
    if insns.len() > MAX_INSNS {
        return Err(FilterError::TooLong(insns.len()));
    }
    Program::from_insns(insns)
}
