//! Code generation: AST → boolean test tree → cBPF with resolved jumps.

use crate::insn::*;
use crate::parse::{Arith, BinOp, Dir, Expr, Prim, Proto, RelOp};
use crate::FilterError;

const ETH_IP: u16 = 0x0800;
const ETH_IP6: u16 = 0x86dd;
const ETH_ARP: u16 = 0x0806;
const ETH_RARP: u16 = 0x8035;

/// How the link layer looks for one link type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LinkKind {
    Ether,
    Sll,
    Sll2,
    /// LINKTYPE_RAW: IPv4 or IPv6, told apart by the version nibble.
    Raw,
    Ipv4,
    Ipv6,
    /// 4-byte address family in the capturing host's byte order.
    Null,
    /// 4-byte address family in network byte order.
    Loop,
}

pub(crate) fn link_kind(linktype: u32) -> Option<LinkKind> {
    Some(match linktype {
        1 => LinkKind::Ether,
        113 => LinkKind::Sll,
        276 => LinkKind::Sll2,
        101 => LinkKind::Raw,
        228 => LinkKind::Ipv4,
        229 => LinkKind::Ipv6,
        0 => LinkKind::Null,
        108 => LinkKind::Loop,
        _ => return None,
    })
}

/// A boolean test tree.
#[derive(Debug, Clone)]
pub(crate) enum Node {
    True,
    False,
    And(Box<Node>, Box<Node>),
    Or(Box<Node>, Box<Node>),
    Not(Box<Node>),
    /// Run `stmts` (no jumps), then branch on `jcode` (a BPF_JMP
    /// conditional) with operand `k`.
    Test {
        stmts: Vec<Insn>,
        jcode: u16,
        k: u32,
    },
}

fn and(a: Node, b: Node) -> Node {
    match (a, b) {
        (Node::False, _) | (_, Node::False) => Node::False,
        (Node::True, x) | (x, Node::True) => x,
        (a, b) => Node::And(Box::new(a), Box::new(b)),
    }
}

fn or(a: Node, b: Node) -> Node {
    match (a, b) {
        (Node::True, _) | (_, Node::True) => Node::True,
        (Node::False, x) | (x, Node::False) => x,
        (a, b) => Node::Or(Box::new(a), Box::new(b)),
    }
}

fn not(a: Node) -> Node {
    match a {
        Node::True => Node::False,
        Node::False => Node::True,
        Node::Not(x) => *x,
        x => Node::Not(Box::new(x)),
    }
}

fn any(nodes: impl IntoIterator<Item = Node>) -> Node {
    nodes.into_iter().fold(Node::False, or)
}

fn all(nodes: impl IntoIterator<Item = Node>) -> Node {
    nodes.into_iter().fold(Node::True, and)
}

fn size_code(size: u8) -> u16 {
    match size {
        4 => BPF_W,
        2 => BPF_H,
        _ => BPF_B,
    }
}

fn ld_abs(size: u8, off: u32) -> Insn {
    Insn::stmt(BPF_LD | size_code(size) | BPF_ABS, off)
}

fn ld_ind(size: u8, off: u32) -> Insn {
    Insn::stmt(BPF_LD | size_code(size) | BPF_IND, off)
}

fn ldx_iphl(off: u32) -> Insn {
    Insn::stmt(BPF_LDX | BPF_B | BPF_MSH, off)
}

/// `size` bytes at absolute offset `off` equal `v`.
fn cmp(size: u8, off: u32, v: u32) -> Node {
    Node::Test {
        stmts: vec![ld_abs(size, off)],
        jcode: BPF_JMP | BPF_JEQ | BPF_K,
        k: v,
    }
}

/// (word at `off` & `mask`) == `v`.
fn mcmp(size: u8, off: u32, mask: u32, v: u32) -> Node {
    if mask == u32::MAX {
        return cmp(size, off, v);
    }
    if mask == 0 {
        return Node::True;
    }
    Node::Test {
        stmts: vec![
            ld_abs(size, off),
            Insn::stmt(BPF_ALU | BPF_AND | BPF_K, mask),
        ],
        jcode: BPF_JMP | BPF_JEQ | BPF_K,
        k: v,
    }
}

fn with_dir(dir: Dir, src: Node, dst: Node) -> Node {
    match dir {
        Dir::Src => src,
        Dir::Dst => dst,
        Dir::SrcOrDst => or(src, dst),
        Dir::SrcAndDst => and(src, dst),
    }
}

fn linktype_name(lt: u32) -> String {
    let n = match lt {
        1 => "EN10MB",
        113 => "LINUX_SLL",
        276 => "LINUX_SLL2",
        101 => "RAW",
        228 => "IPV4",
        229 => "IPV6",
        0 => "NULL",
        108 => "LOOP",
        _ => return lt.to_string(),
    };
    n.into()
}

pub(crate) struct Gen {
    kind: LinkKind,
    linktype: u32,
    /// Offset of the ethertype-like field (None when the link type has none).
    off_linktype: u32,
    /// Offset of the network-layer header.
    off_nl: u32,
}

impl Gen {
    pub(crate) fn new(kind: LinkKind, linktype: u32) -> Self {
        let (off_linktype, off_nl) = match kind {
            LinkKind::Ether => (12, 14),
            LinkKind::Sll => (14, 16),
            LinkKind::Sll2 => (0, 20),
            LinkKind::Raw | LinkKind::Ipv4 | LinkKind::Ipv6 => (0, 0),
            LinkKind::Null | LinkKind::Loop => (0, 4),
        };
        Gen {
            kind,
            linktype,
            off_linktype,
            off_nl,
        }
    }

    /// The packet's network protocol is `ethertype`.
    fn linktype(&self, ethertype: u16) -> Node {
        let et = u32::from(ethertype);
        match self.kind {
            LinkKind::Ether => {
                if ethertype <= 1500 {
                    // 802.3 length field: match the LLC DSAP like libpcap.
                    and(
                        not(Node::Test {
                            stmts: vec![ld_abs(2, self.off_linktype)],
                            jcode: BPF_JMP | BPF_JGT | BPF_K,
                            k: 1500,
                        }),
                        cmp(1, self.off_linktype + 2, et),
                    )
                } else {
                    cmp(2, self.off_linktype, et)
                }
            }
            LinkKind::Sll if ethertype <= 1500 => {
                // 802.2 LLC frames carry protocol 4; match the DSAP.
                and(cmp(2, self.off_linktype, 4), cmp(1, self.off_nl, et))
            }
            LinkKind::Sll | LinkKind::Sll2 => cmp(2, self.off_linktype, et),
            LinkKind::Raw => match ethertype {
                ETH_IP => mcmp(1, 0, 0xf0, 0x40),
                ETH_IP6 => mcmp(1, 0, 0xf0, 0x60),
                _ => Node::False,
            },
            LinkKind::Ipv4 => {
                if ethertype == ETH_IP {
                    Node::True
                } else {
                    Node::False
                }
            }
            LinkKind::Ipv6 => {
                if ethertype == ETH_IP6 {
                    Node::True
                } else {
                    Node::False
                }
            }
            LinkKind::Null | LinkKind::Loop => {
                let afs: &[u32] = match ethertype {
                    ETH_IP => &[2],
                    // BSD AF_INET6 values (NetBSD/OpenBSD 24, FreeBSD 28,
                    // Darwin 30) and Linux's 10.
                    ETH_IP6 => &[24, 28, 30, 10],
                    _ => &[],
                };
                let swap = self.kind == LinkKind::Null;
                any(afs.iter().flat_map(|&af| {
                    let mut v = vec![cmp(4, 0, af)];
                    if swap {
                        v.push(cmp(4, 0, af.swap_bytes()));
                    }
                    v
                }))
            }
        }
    }

    fn ip(&self) -> Node {
        self.linktype(ETH_IP)
    }

    fn ip6(&self) -> Node {
        self.linktype(ETH_IP6)
    }

    /// IPv4 with protocol `p`.
    fn ipproto4(&self, p: u32) -> Node {
        and(self.ip(), cmp(1, self.off_nl + 9, p))
    }

    /// IPv6 whose next header is `p`, directly or after a fragment header.
    fn ipproto6(&self, p: u32) -> Node {
        let nl = self.off_nl;
        and(
            self.ip6(),
            or(
                cmp(1, nl + 6, p),
                and(cmp(1, nl + 6, 44), cmp(1, nl + 40, p)),
            ),
        )
    }

    /// Not an IPv4 fragment other than the first.
    fn first_frag4(&self) -> Node {
        not(Node::Test {
            stmts: vec![ld_abs(2, self.off_nl + 6)],
            jcode: BPF_JMP | BPF_JSET | BPF_K,
            k: 0x1fff,
        })
    }

    fn port_value(stmts: Vec<Insn>, lo: u16, hi: u16) -> Node {
        if lo == hi {
            return Node::Test {
                stmts,
                jcode: BPF_JMP | BPF_JEQ | BPF_K,
                k: u32::from(lo),
            };
        }
        // The second test reloads the value: every test is self-contained
        // (the optimiser drops the reload when A is known to hold it).
        and(
            Node::Test {
                stmts: stmts.clone(),
                jcode: BPF_JMP | BPF_JGE | BPF_K,
                k: u32::from(lo),
            },
            not(Node::Test {
                stmts,
                jcode: BPF_JMP | BPF_JGT | BPF_K,
                k: u32::from(hi),
            }),
        )
    }

    fn port(&self, proto: Proto, dir: Dir, lo: u16, hi: u16) -> Node {
        let protos: Vec<u8> = match proto.ip_proto() {
            Some(p) => vec![p],
            None => vec![132, 6, 17],
        };
        let nl = self.off_nl;
        let v4 = all([
            self.ip(),
            any(protos.iter().map(|&p| cmp(1, nl + 9, u32::from(p)))),
            self.first_frag4(),
            with_dir(
                dir,
                Self::port_value(vec![ldx_iphl(nl), ld_ind(2, nl)], lo, hi),
                Self::port_value(vec![ldx_iphl(nl), ld_ind(2, nl + 2)], lo, hi),
            ),
        ]);
        let v6 = all([
            self.ip6(),
            any(protos.iter().map(|&p| cmp(1, nl + 6, u32::from(p)))),
            with_dir(
                dir,
                Self::port_value(vec![ld_abs(2, nl + 40)], lo, hi),
                Self::port_value(vec![ld_abs(2, nl + 42)], lo, hi),
            ),
        ]);
        or(v6, v4)
    }

    fn net4(&self, proto: Proto, dir: Dir, addr: u32, mask: u32) -> Node {
        let nl = self.off_nl;
        let ip = || {
            and(
                self.ip(),
                with_dir(
                    dir,
                    mcmp(4, nl + 12, mask, addr),
                    mcmp(4, nl + 16, mask, addr),
                ),
            )
        };
        let arp = |et: u16| {
            and(
                self.linktype(et),
                with_dir(
                    dir,
                    mcmp(4, nl + 14, mask, addr),
                    mcmp(4, nl + 24, mask, addr),
                ),
            )
        };
        match proto {
            Proto::Ip => ip(),
            Proto::Arp => arp(ETH_ARP),
            Proto::Rarp => arp(ETH_RARP),
            _ => any([ip(), arp(ETH_ARP), arp(ETH_RARP)]),
        }
    }

    fn net6(&self, dir: Dir, addr: [u8; 16], prefix: u8) -> Node {
        let nl = self.off_nl;
        let side = |base: u32| {
            all((0..4u32).map(|w| {
                let bits = u32::from(prefix).saturating_sub(w * 32).min(32);
                let mask = if bits == 0 {
                    0
                } else {
                    u32::MAX << (32 - bits)
                };
                let i = w as usize * 4;
                let v = u32::from_be_bytes([addr[i], addr[i + 1], addr[i + 2], addr[i + 3]]);
                mcmp(4, base + w * 4, mask, v & mask)
            }))
        };
        and(self.ip6(), with_dir(dir, side(nl + 8), side(nl + 24)))
    }

    fn unsupported(&self, col: usize, what: &str) -> FilterError {
        FilterError::syntax(
            col,
            format!(
                "{what} not supported on link type {}",
                linktype_name(self.linktype)
            ),
        )
    }

    fn prim(&mut self, p: &Prim, col: usize) -> Result<Node, FilterError> {
        Ok(match p {
            Prim::Proto(proto) => match proto {
                Proto::Ip => self.ip(),
                Proto::Ip6 => self.ip6(),
                Proto::Arp => self.linktype(ETH_ARP),
                Proto::Rarp => self.linktype(ETH_RARP),
                Proto::Icmp => self.ipproto4(1),
                Proto::Icmp6 => self.ipproto6(58),
                Proto::Tcp | Proto::Udp | Proto::Sctp => {
                    let n = u32::from(proto.ip_proto().unwrap_or(0));
                    or(self.ipproto4(n), self.ipproto6(n))
                }
                Proto::Ether | Proto::Default => {
                    return Err(FilterError::syntax(col, "expected a protocol".into()))
                }
            },
            Prim::Net4 {
                proto,
                dir,
                addr,
                mask,
            } => self.net4(*proto, *dir, *addr, *mask),
            Prim::Net6 { dir, addr, prefix } => self.net6(*dir, *addr, *prefix),
            Prim::EtherHost { dir, mac } => {
                if self.kind != LinkKind::Ether {
                    return Err(self.unsupported(col, "ethernet addresses are"));
                }
                let hi = u32::from(u16::from_be_bytes([mac[0], mac[1]]));
                let lo = u32::from_be_bytes([mac[2], mac[3], mac[4], mac[5]]);
                let at = |off: u32| and(cmp(4, off + 2, lo), cmp(2, off, hi));
                with_dir(*dir, at(6), at(0))
            }
            Prim::Port { proto, dir, lo, hi } => self.port(*proto, *dir, *lo, *hi),
            Prim::EtherProto(et) => self.linktype(*et),
            Prim::IpProto(proto, n) => match proto {
                Proto::Ip => self.ipproto4(*n),
                Proto::Ip6 => self.ipproto6(*n),
                _ => or(self.ipproto4(*n), self.ipproto6(*n)),
            },
            Prim::Broadcast(proto) => match proto {
                Proto::Ip => {
                    // Without a known netmask (as when reading files) only
                    // the all-zeros and all-ones destinations count.
                    let dst = self.off_nl + 16;
                    and(self.ip(), or(cmp(4, dst, 0), cmp(4, dst, u32::MAX)))
                }
                _ => {
                    if self.kind != LinkKind::Ether {
                        return Err(self.unsupported(col, "link-layer 'broadcast' is"));
                    }
                    and(cmp(4, 2, u32::MAX), cmp(2, 0, 0xffff))
                }
            },
            Prim::Multicast(proto) => match proto {
                Proto::Ip => and(
                    self.ip(),
                    Node::Test {
                        stmts: vec![ld_abs(1, self.off_nl + 16)],
                        jcode: BPF_JMP | BPF_JGE | BPF_K,
                        k: 224,
                    },
                ),
                Proto::Ip6 => and(self.ip6(), cmp(1, self.off_nl + 24, 0xff)),
                _ => {
                    if self.kind != LinkKind::Ether {
                        return Err(self.unsupported(col, "link-layer 'multicast' is"));
                    }
                    Node::Test {
                        stmts: vec![ld_abs(1, 0)],
                        jcode: BPF_JMP | BPF_JSET | BPF_K,
                        k: 1,
                    }
                }
            },
            Prim::Outbound(out) => {
                // Linux cooked headers carry the packet type; 4 = outgoing.
                let t = match self.kind {
                    LinkKind::Sll => cmp(2, 0, 4),
                    LinkKind::Sll2 => cmp(1, 10, 4),
                    _ => return Err(self.unsupported(col, "'inbound'/'outbound' is")),
                };
                if *out {
                    t
                } else {
                    not(t)
                }
            }
            Prim::Vlan(id) => {
                if self.kind != LinkKind::Ether {
                    return Err(self.unsupported(col, "'vlan' is"));
                }
                let lt = self.off_linktype;
                let mut n = any([0x8100, 0x88a8, 0x9100].map(|t| cmp(2, lt, t)));
                if let Some(id) = id {
                    n = and(n, mcmp(2, lt + 2, 0x0fff, u32::from(*id)));
                }
                // Everything parsed after `vlan` sees headers 4 bytes later.
                self.off_linktype += 4;
                self.off_nl += 4;
                n
            }
        })
    }

    pub(crate) fn expr(&mut self, e: &Expr) -> Result<Node, FilterError> {
        Ok(match e {
            Expr::And(a, b) => {
                let a = self.expr(a)?;
                and(a, self.expr(b)?)
            }
            Expr::Or(a, b) => {
                let a = self.expr(a)?;
                or(a, self.expr(b)?)
            }
            Expr::Not(a) => not(self.expr(a)?),
            Expr::Prim(p, col) => self.prim(p, *col)?,
            Expr::Rel(op, l, r, col) => self.relation(*op, l, r, *col)?,
        })
    }

    fn relation(
        &mut self,
        op: RelOp,
        l: &Arith,
        r: &Arith,
        col: usize,
    ) -> Result<Node, FilterError> {
        let mut pre = Vec::new();
        let (jop, negate) = match op {
            RelOp::Eq => (BPF_JEQ, false),
            RelOp::Ne => (BPF_JEQ, true),
            RelOp::Gt => (BPF_JGT, false),
            RelOp::Ge => (BPF_JGE, false),
            RelOp::Lt => (BPF_JGE, true),
            RelOp::Le => (BPF_JGT, true),
        };
        let test = if let Arith::Const(k) = r {
            let stmts = self.arith(l, 0, &mut pre, col)?;
            Node::Test {
                stmts,
                jcode: BPF_JMP | jop | BPF_K,
                k: *k,
            }
        } else {
            let mut stmts = self.arith(r, 1, &mut pre, col)?;
            stmts.push(Insn::stmt(BPF_ST, 0));
            stmts.extend(self.arith(l, 1, &mut pre, col)?);
            stmts.push(Insn::stmt(BPF_LDX | BPF_MEM, 0));
            Node::Test {
                stmts,
                jcode: BPF_JMP | jop | BPF_X,
                k: 0,
            }
        };
        let test = if negate { not(test) } else { test };
        Ok(and(all(pre), test))
    }

    /// Statements leaving the value of `a` in A. Scratch words from `depth`
    /// up may be used. Protocol prerequisites of loads go into `pre`.
    fn arith(
        &mut self,
        a: &Arith,
        depth: u32,
        pre: &mut Vec<Node>,
        col: usize,
    ) -> Result<Vec<Insn>, FilterError> {
        if depth >= MEMWORDS {
            return Err(FilterError::syntax(
                col,
                "arithmetic expression too complex".into(),
            ));
        }
        Ok(match a {
            Arith::Const(k) => vec![Insn::stmt(BPF_LD | BPF_IMM, *k)],
            Arith::Len => vec![Insn::stmt(BPF_LD | BPF_W | BPF_LEN, 0)],
            Arith::Neg(e) => {
                let mut s = self.arith(e, depth, pre, col)?;
                s.push(Insn::stmt(BPF_ALU | BPF_NEG, 0));
                s
            }
            Arith::Bin(op, l, r) => {
                let alu = match op {
                    BinOp::Add => BPF_ADD,
                    BinOp::Sub => BPF_SUB,
                    BinOp::Mul => BPF_MUL,
                    BinOp::Div => BPF_DIV,
                    BinOp::Mod => BPF_MOD,
                    BinOp::And => BPF_AND,
                    BinOp::Or => BPF_OR,
                    BinOp::Xor => BPF_XOR,
                    BinOp::Shl => BPF_LSH,
                    BinOp::Shr => BPF_RSH,
                };
                if let Arith::Const(k) = **r {
                    let mut s = self.arith(l, depth, pre, col)?;
                    s.push(Insn::stmt(BPF_ALU | alu | BPF_K, k));
                    s
                } else {
                    let mut s = self.arith(r, depth + 1, pre, col)?;
                    s.push(Insn::stmt(BPF_ST, depth));
                    s.extend(self.arith(l, depth + 1, pre, col)?);
                    s.push(Insn::stmt(BPF_LDX | BPF_MEM, depth));
                    s.push(Insn::stmt(BPF_ALU | alu | BPF_X, 0));
                    s
                }
            }
            Arith::Load { proto, index, size } => {
                let nl = self.off_nl;
                let (base, transport) = match proto {
                    Proto::Ether => (0, false),
                    Proto::Ip => {
                        pre.push(self.ip());
                        (nl, false)
                    }
                    Proto::Ip6 => {
                        pre.push(self.ip6());
                        (nl, false)
                    }
                    Proto::Arp => {
                        pre.push(self.linktype(ETH_ARP));
                        (nl, false)
                    }
                    Proto::Rarp => {
                        pre.push(self.linktype(ETH_RARP));
                        (nl, false)
                    }
                    Proto::Tcp | Proto::Udp | Proto::Sctp | Proto::Icmp => {
                        let p = u32::from(proto.ip_proto().unwrap_or(0));
                        pre.push(self.ipproto4(p));
                        pre.push(self.first_frag4());
                        (nl, true)
                    }
                    Proto::Icmp6 => {
                        pre.push(and(self.ip6(), cmp(1, nl + 6, 58)));
                        (nl + 40, false)
                    }
                    Proto::Default => {
                        return Err(FilterError::syntax(
                            col,
                            "expected a protocol before '['".into(),
                        ))
                    }
                };
                match (&**index, transport) {
                    (Arith::Const(k), false) => vec![ld_abs(*size, base.wrapping_add(*k))],
                    (Arith::Const(k), true) => {
                        vec![ldx_iphl(nl), ld_ind(*size, base.wrapping_add(*k))]
                    }
                    (idx, false) => {
                        let mut s = self.arith(idx, depth, pre, col)?;
                        s.push(Insn::stmt(BPF_MISC | BPF_TAX, 0));
                        s.push(ld_ind(*size, base));
                        s
                    }
                    (idx, true) => {
                        let mut s = self.arith(idx, depth + 1, pre, col)?;
                        s.push(Insn::stmt(BPF_ST, depth));
                        s.push(ldx_iphl(nl));
                        s.push(Insn::stmt(BPF_LD | BPF_MEM, depth));
                        s.push(Insn::stmt(BPF_ALU | BPF_ADD | BPF_X, 0));
                        s.push(Insn::stmt(BPF_MISC | BPF_TAX, 0));
                        s.push(ld_ind(*size, base));
                        s
                    }
                }
            }
        })
    }
}

// ---------------------------------------------------------------------------
// Emission into test units, an optional jump-threading pass, then layout
// with long-jump trampolines.
//
// Every test unit is self-contained: its statements load what its
// conditional jump needs, and nothing after it relies on A, X or scratch
// memory from before. That makes it safe to skip a unit whose outcome is
// already known on every path that reaches it.

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Tgt {
    Unit(usize),
    Accept,
    Reject,
}

#[derive(Debug, Clone)]
struct Unit {
    /// Interned identity of `stmts` (the value the jump looks at).
    key: usize,
    stmts: Vec<Insn>,
    jcode: u16,
    k: u32,
    jt: Tgt,
    jf: Tgt,
}

struct Emitter {
    units: Vec<Unit>,
    keys: std::collections::HashMap<Vec<Insn>, usize>,
    /// Label → target, resolved when the next unit is emitted.
    labels: Vec<Option<Tgt>>,
    pending: Vec<usize>,
    /// Unresolved label operands: (unit, is_jt, label).
    fixups: Vec<(usize, bool, usize)>,
}

const ACCEPT: usize = 0;
const REJECT: usize = 1;

impl Emitter {
    fn new() -> Self {
        Emitter {
            units: Vec::new(),
            keys: std::collections::HashMap::new(),
            labels: vec![Some(Tgt::Accept), Some(Tgt::Reject)],
            pending: Vec::new(),
            fixups: Vec::new(),
        }
    }

    fn label(&mut self) -> usize {
        self.labels.push(None);
        self.labels.len() - 1
    }

    fn place(&mut self, l: usize) {
        self.pending.push(l);
    }

    fn emit(&mut self, n: &Node, t: usize, f: usize) {
        match n {
            // Constants only survive simplification at the root, which
            // `assemble` handles; treat defensively as a jump.
            Node::True | Node::False => {
                let target = if matches!(n, Node::True) { t } else { f };
                let stmts = vec![Insn::stmt(BPF_LD | BPF_IMM, 0)];
                self.push_test(stmts, BPF_JMP | BPF_JEQ | BPF_K, 0, target, target);
            }
            Node::And(a, b) => {
                let m = self.label();
                self.emit(a, m, f);
                self.place(m);
                self.emit(b, t, f);
            }
            Node::Or(a, b) => {
                let m = self.label();
                self.emit(a, t, m);
                self.place(m);
                self.emit(b, t, f);
            }
            Node::Not(a) => self.emit(a, f, t),
            Node::Test { stmts, jcode, k } => {
                self.push_test(stmts.clone(), *jcode, *k, t, f);
            }
        }
    }

    fn push_test(&mut self, stmts: Vec<Insn>, jcode: u16, k: u32, t: usize, f: usize) {
        let idx = self.units.len();
        for l in self.pending.drain(..) {
            self.labels[l] = Some(Tgt::Unit(idx));
        }
        let nkeys = self.keys.len();
        let key = *self.keys.entry(stmts.clone()).or_insert(nkeys);
        self.units.push(Unit {
            key,
            stmts,
            jcode,
            k,
            jt: Tgt::Reject,
            jf: Tgt::Reject,
        });
        self.fixups.push((idx, true, t));
        self.fixups.push((idx, false, f));
    }

    fn finish(mut self) -> Vec<Unit> {
        // Labels still pending sit right before accept/reject; they are
        // only ever placed before a unit, so none should remain.
        debug_assert!(self.pending.is_empty());
        for (u, is_t, l) in std::mem::take(&mut self.fixups) {
            let tgt = self.labels[l].unwrap_or(Tgt::Reject);
            if is_t {
                self.units[u].jt = tgt;
            } else {
                self.units[u].jf = tgt;
            }
        }
        self.units
    }
}

/// What is known about test outcomes on a path: (key, jcode, k) → result,
/// and key → exact value (after a `jeq` succeeded).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Facts {
    tests: std::collections::BTreeMap<(usize, u16, u32), bool>,
    values: std::collections::BTreeMap<usize, u32>,
}

impl Facts {
    fn intersect(&self, other: &Facts) -> Facts {
        Facts {
            tests: self
                .tests
                .iter()
                .filter(|(k, v)| other.tests.get(k) == Some(v))
                .map(|(k, v)| (*k, *v))
                .collect(),
            values: self
                .values
                .iter()
                .filter(|(k, v)| other.values.get(k) == Some(v))
                .map(|(k, v)| (*k, *v))
                .collect(),
        }
    }

    fn outcome(&self, u: &Unit) -> Option<bool> {
        if u.jcode & BPF_X != 0 {
            return None;
        }
        if let Some(&r) = self.tests.get(&(u.key, u.jcode, u.k)) {
            return Some(r);
        }
        let v = *self.values.get(&u.key)?;
        Some(match u.jcode & 0xf0 {
            BPF_JEQ => v == u.k,
            BPF_JGT => v > u.k,
            BPF_JGE => v >= u.k,
            BPF_JSET => v & u.k != 0,
            _ => return None,
        })
    }

    fn after(&self, u: &Unit, result: bool) -> Facts {
        let mut f = self.clone();
        if u.jcode & BPF_X == 0 {
            f.tests.insert((u.key, u.jcode, u.k), result);
            if result && u.jcode & 0xf0 == BPF_JEQ {
                f.values.insert(u.key, u.k);
            }
        }
        f
    }
}

fn reachable(units: &[Unit]) -> Vec<bool> {
    let mut r = vec![false; units.len()];
    if let Some(first) = r.first_mut() {
        *first = true;
    }
    for i in 0..units.len() {
        if !r[i] {
            continue;
        }
        for t in [units[i].jt, units[i].jf] {
            if let Tgt::Unit(v) = t {
                r[v] = true;
            }
        }
    }
    r
}

/// Jump threading: an edge into a test whose result is implied by what
/// every path to that edge has already tested goes straight to the
/// implied successor. Then unreachable tests are dropped and reloads of a
/// value A already holds are removed.
fn optimize(units: &mut Vec<Unit>) {
    // Bounded for safety; each round only shortens paths.
    for _ in 0..64 {
        let n = units.len();
        let live = reachable(units);
        let mut facts_in: Vec<Option<Facts>> = vec![None; n];
        if n > 0 {
            facts_in[0] = Some(Facts::default());
        }
        let mut changed = false;
        for u in 0..n {
            if !live[u] {
                continue;
            }
            let Some(fin) = facts_in[u].clone() else {
                continue;
            };
            for result in [true, false] {
                let edge = fin.after(&units[u], result);
                let orig = if result { units[u].jt } else { units[u].jf };
                let mut t = orig;
                while let Tgt::Unit(v) = t {
                    match edge.outcome(&units[v]) {
                        Some(true) => t = units[v].jt,
                        Some(false) => t = units[v].jf,
                        None => break,
                    }
                }
                if t != orig {
                    changed = true;
                    if result {
                        units[u].jt = t;
                    } else {
                        units[u].jf = t;
                    }
                }
                if let Tgt::Unit(v) = t {
                    facts_in[v] = Some(match facts_in[v].take() {
                        None => edge,
                        Some(old) => old.intersect(&edge),
                    });
                }
            }
        }
        if !changed {
            break;
        }
    }

    // Drop unreachable units and renumber.
    let live = reachable(units);
    let mut new_index = vec![usize::MAX; units.len()];
    let mut kept = Vec::new();
    for (i, u) in units.iter().enumerate() {
        if live[i] {
            new_index[i] = kept.len();
            kept.push(u.clone());
        }
    }
    for u in &mut kept {
        for t in [&mut u.jt, &mut u.jf] {
            if let Tgt::Unit(v) = *t {
                *t = Tgt::Unit(new_index[v]);
            }
        }
    }

    // A after a unit holds the value of its key. Drop the statements of a
    // unit all of whose predecessors leave that same value in A.
    let n = kept.len();
    let mut a_in: Vec<Option<Option<usize>>> = vec![None; n];
    if n > 0 {
        a_in[0] = Some(None);
    }
    for unit in &kept {
        let key = unit.key;
        for t in [unit.jt, unit.jf] {
            if let Tgt::Unit(v) = t {
                a_in[v] = Some(match a_in[v] {
                    None => Some(key),
                    Some(prev) if prev == Some(key) => Some(key),
                    Some(_) => None,
                });
            }
        }
    }
    for (u, a) in kept.iter_mut().zip(a_in) {
        if a == Some(Some(u.key)) {
            u.stmts.clear();
        }
    }

    // Same for X and the IPv4 header-length load (`ldxb 4*([k]&0xf)`):
    // drop a leading one when every predecessor leaves X holding it.
    let msh = BPF_LDX | BPF_B | BPF_MSH;
    let mut x_in: Vec<Option<Option<u32>>> = vec![None; n];
    if n > 0 {
        x_in[0] = Some(None);
    }
    for u in 0..n {
        let mut x = x_in[u].unwrap_or(None);
        for st in &kept[u].stmts {
            if st.code == msh {
                x = Some(st.k);
            } else if class(st.code) == BPF_LDX || st.code == BPF_MISC | BPF_TAX {
                x = None;
            }
        }
        for t in [kept[u].jt, kept[u].jf] {
            if let Tgt::Unit(v) = t {
                x_in[v] = Some(match x_in[v] {
                    None => x,
                    Some(prev) if prev == x => x,
                    Some(_) => None,
                });
            }
        }
    }
    for (u, x) in kept.iter_mut().zip(x_in) {
        if let (Some(Some(k)), Some(first)) = (x, u.stmts.first()) {
            if first.code == msh && first.k == k {
                u.stmts.remove(0);
            }
        }
    }
    *units = kept;
}

#[derive(Debug, Clone, Copy)]
enum Item {
    Stmt(Insn),
    Cond {
        code: u16,
        k: u32,
        jt: usize,
        jf: usize,
    },
    Ja(usize),
    Label(usize),
}

/// Generates the final instruction list for a test tree.
pub(crate) fn assemble(root: &Node, snaplen: u32, opt: bool) -> Vec<Insn> {
    match root {
        Node::True => return vec![Insn::stmt(BPF_RET | BPF_K, snaplen)],
        Node::False => return vec![Insn::stmt(BPF_RET | BPF_K, 0)],
        _ => {}
    }
    let mut e = Emitter::new();
    e.emit(root, ACCEPT, REJECT);
    let mut units = e.finish();
    if opt {
        optimize(&mut units);
    }

    // Labels: unit i → i, accept → n, reject → n + 1; more for trampolines.
    let n = units.len();
    let lbl = |t: Tgt| match t {
        Tgt::Unit(v) => v,
        Tgt::Accept => n,
        Tgt::Reject => n + 1,
    };
    let mut items = Vec::new();
    for (i, u) in units.iter().enumerate() {
        items.push(Item::Label(i));
        items.extend(u.stmts.iter().map(|s| Item::Stmt(*s)));
        items.push(Item::Cond {
            code: u.jcode,
            k: u.k,
            jt: lbl(u.jt),
            jf: lbl(u.jf),
        });
    }
    items.push(Item::Label(n));
    items.push(Item::Stmt(Insn::stmt(BPF_RET | BPF_K, snaplen)));
    items.push(Item::Label(n + 1));
    items.push(Item::Stmt(Insn::stmt(BPF_RET | BPF_K, 0)));
    let mut nlabels = n + 2;

    loop {
        // Positions of instructions and labels.
        let mut label_pos = vec![0usize; nlabels];
        let mut pos = Vec::with_capacity(items.len());
        let mut p = 0usize;
        for it in &items {
            pos.push(p);
            match it {
                Item::Label(l) => label_pos[*l] = p,
                _ => p += 1,
            }
        }
        // Conditional jumps whose offsets exceed 255 get `ja` trampolines
        // placed right after them.
        let mut fixes = Vec::new();
        for (idx, it) in items.iter().enumerate() {
            if let Item::Cond { jt, jf, .. } = it {
                let here = pos[idx];
                let long_t = label_pos[*jt] - here - 1 > 255;
                let long_f = label_pos[*jf] - here - 1 > 255;
                if long_t || long_f {
                    fixes.push((idx, long_t, long_f));
                }
            }
        }
        if fixes.is_empty() {
            let mut out = Vec::with_capacity(p);
            for it in &items {
                let here = out.len();
                match *it {
                    Item::Stmt(i) => out.push(i),
                    Item::Ja(l) => out.push(Insn::stmt(
                        BPF_JMP | BPF_JA,
                        (label_pos[l] - here - 1) as u32,
                    )),
                    Item::Cond { code, k, jt, jf } => out.push(Insn::jump(
                        code,
                        k,
                        (label_pos[jt] - here - 1) as u8,
                        (label_pos[jf] - here - 1) as u8,
                    )),
                    Item::Label(_) => {}
                }
            }
            return out;
        }
        for &(idx, long_t, long_f) in fixes.iter().rev() {
            let Item::Cond { code, k, jt, jf } = items[idx] else {
                continue;
            };
            let mut tramp = Vec::new();
            let (mut njt, mut njf) = (jt, jf);
            if long_t {
                tramp.push(Item::Label(nlabels));
                tramp.push(Item::Ja(jt));
                njt = nlabels;
                nlabels += 1;
            }
            if long_f {
                tramp.push(Item::Label(nlabels));
                tramp.push(Item::Ja(jf));
                njf = nlabels;
                nlabels += 1;
            }
            items[idx] = Item::Cond {
                code,
                k,
                jt: njt,
                jf: njf,
            };
            // Nothing falls through into the trampolines: every path
            // reaches the code after them through (symbolic) labels.
            items.splice(idx + 1..idx + 1, tramp);
        }
    }
}
