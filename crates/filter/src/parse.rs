//! Recursive-descent parser for pcap-filter(7) expressions.
//!
//! `and` and `or` have equal precedence and associate left to right; `not`
//! binds tighter. A bare identifier after a primitive repeats the last
//! qualifiers (`host 1.2.3.4 or 5.6.7.8`).

use crate::lex::{lex, Tok, Token};
use crate::FilterError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Proto {
    Default,
    Ether,
    Ip,
    Ip6,
    Arp,
    Rarp,
    Tcp,
    Udp,
    Icmp,
    Icmp6,
    Sctp,
}

impl Proto {
    fn from_word(w: &str) -> Option<Proto> {
        Some(match w {
            "ether" | "link" => Proto::Ether,
            "ip" => Proto::Ip,
            "ip6" => Proto::Ip6,
            "arp" => Proto::Arp,
            "rarp" => Proto::Rarp,
            "tcp" => Proto::Tcp,
            "udp" => Proto::Udp,
            "icmp" => Proto::Icmp,
            "icmp6" => Proto::Icmp6,
            "sctp" => Proto::Sctp,
            _ => return None,
        })
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            Proto::Default => "",
            Proto::Ether => "ether",
            Proto::Ip => "ip",
            Proto::Ip6 => "ip6",
            Proto::Arp => "arp",
            Proto::Rarp => "rarp",
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
            Proto::Icmp => "icmp",
            Proto::Icmp6 => "icmp6",
            Proto::Sctp => "sctp",
        }
    }

    /// IP protocol number for transport-level qualifiers.
    pub(crate) fn ip_proto(self) -> Option<u8> {
        Some(match self {
            Proto::Tcp => 6,
            Proto::Udp => 17,
            Proto::Icmp => 1,
            Proto::Icmp6 => 58,
            Proto::Sctp => 132,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dir {
    Src,
    Dst,
    SrcOrDst,
    SrcAndDst,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Type {
    Default,
    Host,
    Net,
    Port,
    Portrange,
    Proto,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Quals {
    proto: Proto,
    dir: Option<Dir>,
    ty: Type,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Prim {
    /// Bare protocol: `tcp`, `ip6`, `arp`...
    Proto(Proto),
    /// IPv4 host or network (`mask` = all ones for a host); `proto` is
    /// Default, Ip, Arp or Rarp.
    Net4 {
        proto: Proto,
        dir: Dir,
        addr: u32,
        mask: u32,
    },
    Net6 {
        dir: Dir,
        addr: [u8; 16],
        prefix: u8,
    },
    EtherHost {
        dir: Dir,
        mac: [u8; 6],
    },
    /// Port range (lo == hi for `port`); `proto` is Default, Tcp, Udp or Sctp.
    Port {
        proto: Proto,
        dir: Dir,
        lo: u16,
        hi: u16,
    },
    EtherProto(u16),
    /// `ip proto N` (Ip), `ip6 proto N` (Ip6) or `proto N` (Default).
    IpProto(Proto, u32),
    Vlan(Option<u16>),
    /// `broadcast` with its protocol qualifier (Default, Ether or Ip).
    Broadcast(Proto),
    /// `multicast` with its protocol qualifier (Default, Ether, Ip or Ip6).
    Multicast(Proto),
    /// `outbound` (true) or `inbound` (false).
    Outbound(bool),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RelOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BinOp {
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    And,
    Or,
    Xor,
    Shl,
    Shr,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Arith {
    Const(u32),
    Len,
    /// `proto[index : size]`
    Load {
        proto: Proto,
        index: Box<Arith>,
        size: u8,
    },
    Bin(BinOp, Box<Arith>, Box<Arith>),
    Neg(Box<Arith>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Expr {
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    Not(Box<Expr>),
    /// A primitive and the column where it starts.
    Prim(Prim, usize),
    Rel(RelOp, Arith, Arith, usize),
}

/// Parses an expression. `Ok(None)` for an empty (all-whitespace) one.
pub(crate) fn parse(src: &str) -> Result<Option<Expr>, FilterError> {
    let toks = lex(src)?;
    if matches!(toks[0].tok, Tok::Eof) {
        return Ok(None);
    }
    if toks.len() > MAX_TOKENS {
        return Err(FilterError::syntax(
            toks[MAX_TOKENS].col,
            format!("expression too long (more than {MAX_TOKENS} tokens)"),
        ));
    }
    let mut p = Parser {
        toks,
        pos: 0,
        last: None,
        depth: 0,
    };
    let e = p.expr()?;
    let t = p.peek();
    if !matches!(t.tok, Tok::Eof) {
        return Err(FilterError::syntax(
            t.col,
            format!(
                "expected 'and', 'or' or end of expression, found {}",
                describe(&t.tok)
            ),
        ));
    }
    Ok(Some(e))
}

fn describe(t: &Tok) -> String {
    match t {
        Tok::Word(w) => format!("'{w}'"),
        Tok::Punct(p) => format!("'{p}'"),
        Tok::Eof => "end of expression".into(),
    }
}

const KEYWORDS: &[&str] = &[
    "and",
    "or",
    "not",
    "src",
    "dst",
    "host",
    "net",
    "mask",
    "port",
    "portrange",
    "proto",
    "ether",
    "link",
    "ip",
    "ip6",
    "arp",
    "rarp",
    "tcp",
    "udp",
    "icmp",
    "icmp6",
    "sctp",
    "vlan",
    "greater",
    "less",
    "len",
    "gateway",
    "broadcast",
    "multicast",
    "protochain",
    "mpls",
    "pppoes",
    "pppoed",
    "inbound",
    "outbound",
    "igmp",
    "igrp",
    "pim",
    "vrrp",
    "carp",
    "ah",
    "esp",
    "atalk",
    "aarp",
    "decnet",
    "lat",
    "sca",
    "moprc",
    "mopdl",
    "iso",
    "esis",
    "isis",
    "clnp",
    "stp",
    "ipx",
    "netbeui",
    "geneve",
    "vxlan",
    "llc",
    "ifname",
    "on",
    "rnr",
    "rulenum",
    "reason",
    "rset",
    "ruleset",
    "srnr",
    "subrulenum",
    "action",
    "type",
    "subtype",
    "dir",
    "wlan",
    "ra",
    "ta",
    "addr1",
    "addr2",
    "addr3",
    "addr4",
    "fddi",
    "tr",
    "radio",
    "slip",
    "index",
];

fn named_constant(w: &str) -> Option<u32> {
    Some(match w {
        "icmptype" | "icmp6type" => 0,
        "icmpcode" | "icmp6code" => 1,
        "icmp-echoreply" => 0,
        "icmp-unreach" => 3,
        "icmp-sourcequench" => 4,
        "icmp-redirect" => 5,
        "icmp-echo" => 8,
        "icmp-routeradvert" => 9,
        "icmp-routersolicit" => 10,
        "icmp-timxceed" => 11,
        "icmp-paramprob" => 12,
        "icmp-tstamp" => 13,
        "icmp-tstampreply" => 14,
        "icmp-ireq" => 15,
        "icmp-ireqreply" => 16,
        "icmp-maskreq" => 17,
        "icmp-maskreply" => 18,
        "icmp6-destinationunreach" => 1,
        "icmp6-packettoobig" => 2,
        "icmp6-timeexceeded" => 3,
        "icmp6-parameterproblem" => 4,
        "icmp6-echo" => 128,
        "icmp6-echoreply" => 129,
        "icmp6-multicastlistenerquery" => 130,
        "icmp6-multicastlistenerreportv1" => 131,
        "icmp6-multicastlistenerdone" => 132,
        "icmp6-routersolicit" => 133,
        "icmp6-routeradvert" => 134,
        "icmp6-neighborsolicit" => 135,
        "icmp6-neighboradvert" => 136,
        "icmp6-redirect" => 137,
        "tcpflags" => 13,
        "tcp-fin" => 0x01,
        "tcp-syn" => 0x02,
        "tcp-rst" => 0x04,
        "tcp-push" => 0x08,
        "tcp-ack" => 0x10,
        "tcp-urg" => 0x20,
        "tcp-ece" => 0x40,
        "tcp-cwr" => 0x80,
        _ => return None,
    })
}

/// Parses a C-style unsigned number: decimal, `0x` hex or leading-zero octal.
pub(crate) fn parse_number(w: &str) -> Option<u32> {
    if let Some(h) = w.strip_prefix("0x").or_else(|| w.strip_prefix("0X")) {
        if h.is_empty() {
            return None;
        }
        return u32::from_str_radix(h, 16).ok();
    }
    if w.len() > 1 && w.starts_with('0') {
        return u32::from_str_radix(&w[1..], 8).ok();
    }
    if w.is_empty() || !w.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    w.parse().ok()
}

/// Well-known port names, with the transport they are registered for
/// (as in the netbase /etc/services that tcpdump uses): `Default` when
/// registered for both TCP and UDP.
fn port_name(w: &str) -> Option<(u16, Proto)> {
    Some(match w {
        "ftp-data" => (20, Proto::Tcp),
        "ftp" => (21, Proto::Tcp),
        "ssh" => (22, Proto::Tcp),
        "telnet" => (23, Proto::Tcp),
        "smtp" => (25, Proto::Tcp),
        "domain" => (53, Proto::Default),
        "bootps" => (67, Proto::Udp),
        "bootpc" => (68, Proto::Udp),
        "tftp" => (69, Proto::Udp),
        "http" | "www" => (80, Proto::Tcp),
        "pop3" => (110, Proto::Tcp),
        "ntp" => (123, Proto::Udp),
        "imap" | "imap2" => (143, Proto::Tcp),
        "snmp" => (161, Proto::Default),
        "bgp" => (179, Proto::Tcp),
        "ldap" => (389, Proto::Default),
        "https" => (443, Proto::Default),
        "isakmp" => (500, Proto::Udp),
        "syslog" => (514, Proto::Udp),
        "rtsp" => (554, Proto::Default),
        "imaps" => (993, Proto::Tcp),
        "sip" => (5060, Proto::Default),
        "mdns" => (5353, Proto::Udp),
        _ => return None,
    })
}

fn ip_proto_name(w: &str) -> Option<u8> {
    Some(match w {
        "icmp" => 1,
        "igmp" => 2,
        "tcp" => 6,
        "udp" => 17,
        "gre" => 47,
        "esp" => 50,
        "ah" => 51,
        "icmp6" => 58,
        "ospf" | "ospfigp" => 89,
        "pim" => 103,
        "vrrp" => 112,
        "sctp" => 132,
        _ => return None,
    })
}

fn ether_proto_name(w: &str) -> Option<u16> {
    Some(match w {
        "ip" => 0x0800,
        "ip6" => 0x86dd,
        "arp" => 0x0806,
        "rarp" => 0x8035,
        _ => return None,
    })
}

/// An identifier after qualifiers, with its optional `/len`, `mask M`
/// or `-hi` parts.
struct Id {
    text: String,
    col: usize,
    escaped: bool,
    prefix: Option<(u32, usize)>,
    mask: Option<(String, usize)>,
    range_hi: Option<(String, usize)>,
}

/// Limits that keep recursion (parser, code generator) well within a
/// thread's stack; no useful filter comes near them.
const MAX_TOKENS: usize = 4096;
const MAX_DEPTH: usize = 100;

struct Parser {
    toks: Vec<Token>,
    pos: usize,
    last: Option<Quals>,
    /// Current nesting of `not`, parentheses and unary minus.
    depth: usize,
}

type PResult<T> = Result<T, FilterError>;

impl Parser {
    fn peek(&self) -> &Token {
        &self.toks[self.pos]
    }

    fn peek_at(&self, n: usize) -> &Tok {
        &self.toks[(self.pos + n).min(self.toks.len() - 1)].tok
    }

    fn bump(&mut self) -> Token {
        let t = self.toks[self.pos].clone();
        if self.pos + 1 < self.toks.len() {
            self.pos += 1;
        }
        t
    }

    fn is_word(&self, w: &str) -> bool {
        matches!(&self.peek().tok, Tok::Word(x) if x == w)
    }

    fn is_punct(&self, p: &str) -> bool {
        matches!(&self.peek().tok, Tok::Punct(x) if *x == p)
    }

    fn is_and(&self) -> bool {
        self.is_word("and") || self.is_punct("&&")
    }

    fn is_or(&self) -> bool {
        self.is_word("or") || self.is_punct("||")
    }

    fn is_not(&self) -> bool {
        self.is_word("not") || self.is_punct("!")
    }

    fn expect_punct(&mut self, p: &str, ctx: &str) -> PResult<()> {
        if self.is_punct(p) {
            self.bump();
            Ok(())
        } else {
            let t = self.peek();
            Err(FilterError::syntax(
                t.col,
                format!("expected '{p}' {ctx}, found {}", describe(&t.tok)),
            ))
        }
    }

    fn expr(&mut self) -> PResult<Expr> {
        let mut lhs = self.term()?;
        loop {
            if self.is_and() {
                self.bump();
                let rhs = self.term()?;
                lhs = Expr::And(Box::new(lhs), Box::new(rhs));
            } else if self.is_or() {
                self.bump();
                let rhs = self.term()?;
                lhs = Expr::Or(Box::new(lhs), Box::new(rhs));
            } else {
                return Ok(lhs);
            }
        }
    }

    fn enter(&mut self) -> PResult<()> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(FilterError::syntax(
                self.peek().col,
                format!("expression nested too deeply (more than {MAX_DEPTH} levels)"),
            ));
        }
        Ok(())
    }

    fn term(&mut self) -> PResult<Expr> {
        self.enter()?;
        let r = self.term_inner();
        self.depth -= 1;
        r
    }

    fn term_inner(&mut self) -> PResult<Expr> {
        if self.is_not() {
            self.bump();
            return Ok(Expr::Not(Box::new(self.term()?)));
        }
        if let Some(rel) = self.try_relation()? {
            return Ok(rel);
        }
        let t = self.peek().clone();
        match &t.tok {
            Tok::Punct("(") => {
                self.bump();
                let e = self.expr()?;
                self.expect_punct(")", "to close '('")?;
                Ok(e)
            }
            Tok::Word(w) if KEYWORDS.contains(&w.as_str()) => self.primitive(),
            Tok::Word(_) | Tok::Punct("\\") => match self.last {
                Some(q) => self.id_expr(q),
                None => Err(FilterError::syntax(
                    t.col,
                    format!(
                        "expected a qualifier (host, net, port, src, dst, tcp...) before {}",
                        describe(&t.tok)
                    ),
                )),
            },
            other => Err(FilterError::syntax(
                t.col,
                format!("expected a primitive, found {}", describe(other)),
            )),
        }
    }

    /// Tries `arith relop arith`; restores the position if the input is
    /// not a relation.
    fn try_relation(&mut self) -> PResult<Option<Expr>> {
        let start = self.pos;
        let col = self.peek().col;
        let lhs = match self.arith() {
            Ok(a) => a,
            Err(_) => {
                self.pos = start;
                return Ok(None);
            }
        };
        let op = match &self.peek().tok {
            Tok::Punct("=") | Tok::Punct("==") => RelOp::Eq,
            Tok::Punct("!=") => RelOp::Ne,
            Tok::Punct("<") => RelOp::Lt,
            Tok::Punct("<=") => RelOp::Le,
            Tok::Punct(">") => RelOp::Gt,
            Tok::Punct(">=") => RelOp::Ge,
            _ => {
                // `len`, `proto[...]` or an operator chain without a
                // comparison is an error rather than something else.
                // `len` and `proto[...]` can only start a relation.
                let committed = self.toks[start..self.pos].iter().any(|t| match &t.tok {
                    Tok::Punct(p) => *p == "[",
                    Tok::Word(w) => w == "len",
                    Tok::Eof => false,
                });
                if committed {
                    let t = self.peek();
                    return Err(FilterError::syntax(
                        t.col,
                        format!(
                            "expected a comparison (=, !=, <, <=, >, >=), found {}",
                            describe(&t.tok)
                        ),
                    ));
                }
                self.pos = start;
                return Ok(None);
            }
        };
        self.bump();
        let rhs = self.arith()?;
        Ok(Some(Expr::Rel(op, lhs, rhs, col)))
    }

    fn arith(&mut self) -> PResult<Arith> {
        self.arith_level(0)
    }

    fn binop_at(&self, level: u8) -> Option<BinOp> {
        let Tok::Punct(p) = &self.peek().tok else {
            return None;
        };
        let op = match (level, *p) {
            (0, "|") => BinOp::Or,
            (0, "^") => BinOp::Xor,
            (1, "&") => BinOp::And,
            (2, "<<") => BinOp::Shl,
            (2, ">>") => BinOp::Shr,
            (3, "+") => BinOp::Add,
            (3, "-") => BinOp::Sub,
            (4, "*") => BinOp::Mul,
            (4, "/") => BinOp::Div,
            (4, "%") => BinOp::Mod,
            _ => return None,
        };
        Some(op)
    }

    fn arith_level(&mut self, level: u8) -> PResult<Arith> {
        if level > 4 {
            return self.arith_unary();
        }
        let mut lhs = self.arith_level(level + 1)?;
        while let Some(op) = self.binop_at(level) {
            let col = self.bump().col;
            let rhs = self.arith_level(level + 1)?;
            lhs = fold(op, lhs, rhs, col)?;
        }
        Ok(lhs)
    }

    fn arith_unary(&mut self) -> PResult<Arith> {
        self.enter()?;
        let r = self.arith_unary_inner();
        self.depth -= 1;
        r
    }

    fn arith_unary_inner(&mut self) -> PResult<Arith> {
        if self.is_punct("-") {
            self.bump();
            let e = self.arith_unary()?;
            return Ok(match e {
                Arith::Const(k) => Arith::Const(k.wrapping_neg()),
                e => Arith::Neg(Box::new(e)),
            });
        }
        let t = self.peek().clone();
        match &t.tok {
            Tok::Punct("(") => {
                self.bump();
                let e = self.arith()?;
                self.expect_punct(")", "to close '('")?;
                Ok(e)
            }
            Tok::Word(w) if w == "len" => {
                self.bump();
                Ok(Arith::Len)
            }
            Tok::Word(w) if matches!(self.peek_at(1), Tok::Punct("[")) => {
                let proto = Proto::from_word(w).ok_or_else(|| {
                    FilterError::syntax(t.col, format!("'{w}' cannot be indexed with [...]"))
                })?;
                self.bump();
                self.bump();
                let index = self.arith()?;
                let mut size = 1u8;
                if self.is_punct(":") {
                    self.bump();
                    let st = self.bump();
                    size = match &st.tok {
                        Tok::Word(s) if matches!(parse_number(s), Some(1 | 2 | 4)) => {
                            parse_number(s).unwrap_or(1) as u8
                        }
                        _ => {
                            return Err(FilterError::syntax(
                                st.col,
                                "expected a data size of 1, 2 or 4 after ':'".into(),
                            ))
                        }
                    };
                }
                self.expect_punct("]", &format!("to close '{w}['"))?;
                Ok(Arith::Load {
                    proto,
                    index: Box::new(index),
                    size,
                })
            }
            Tok::Word(w) => {
                if let Some(k) = parse_number(w).or_else(|| named_constant(w)) {
                    self.bump();
                    Ok(Arith::Const(k))
                } else {
                    Err(FilterError::syntax(
                        t.col,
                        format!("expected a number, found '{w}'"),
                    ))
                }
            }
            other => Err(FilterError::syntax(
                t.col,
                format!("expected a number, found {}", describe(other)),
            )),
        }
    }

    fn parse_dir(&mut self) -> Option<Dir> {
        let first = if self.is_word("src") {
            Dir::Src
        } else if self.is_word("dst") {
            Dir::Dst
        } else {
            return None;
        };
        self.bump();
        let other = if first == Dir::Src { "dst" } else { "src" };
        let conj_or = matches!(self.peek_at(0), Tok::Word(w) if w == "or")
            || matches!(self.peek_at(0), Tok::Punct("||"));
        let conj_and = matches!(self.peek_at(0), Tok::Word(w) if w == "and")
            || matches!(self.peek_at(0), Tok::Punct("&&"));
        if (conj_or || conj_and) && matches!(self.peek_at(1), Tok::Word(w) if w == other) {
            self.bump();
            self.bump();
            return Some(if conj_or {
                Dir::SrcOrDst
            } else {
                Dir::SrcAndDst
            });
        }
        Some(first)
    }

    fn primitive(&mut self) -> PResult<Expr> {
        let t = self.peek().clone();
        let col = t.col;
        let Tok::Word(w) = &t.tok else {
            unreachable!("primitive() is only called on a keyword")
        };
        match w.as_str() {
            "vlan" => {
                self.bump();
                let mut id = None;
                if let Tok::Word(n) = &self.peek().tok {
                    if let Some(v) = parse_number(n) {
                        let c = self.peek().col;
                        if v > 4095 {
                            return Err(FilterError::syntax(
                                c,
                                format!("VLAN tag {v} greater than maximum 4095"),
                            ));
                        }
                        self.bump();
                        id = Some(v as u16);
                    }
                }
                self.last = None;
                return Ok(Expr::Prim(Prim::Vlan(id), col));
            }
            "inbound" | "outbound" => {
                self.bump();
                self.last = None;
                return Ok(Expr::Prim(Prim::Outbound(w == "outbound"), col));
            }
            "greater" | "less" => {
                self.bump();
                let nt = self.bump();
                let n = match &nt.tok {
                    Tok::Word(s) => parse_number(s),
                    _ => None,
                }
                .ok_or_else(|| {
                    FilterError::syntax(nt.col, format!("expected a length after '{w}'"))
                })?;
                self.last = None;
                let op = if w == "greater" { RelOp::Ge } else { RelOp::Le };
                return Ok(Expr::Rel(op, Arith::Len, Arith::Const(n), col));
            }
            _ => {}
        }
        let mut proto = Proto::Default;
        if let Some(p) = Proto::from_word(w) {
            proto = p;
            self.bump();
        }
        if self.is_word("broadcast") || self.is_word("multicast") {
            let t = self.bump();
            let bcast = matches!(&t.tok, Tok::Word(x) if x == "broadcast");
            let ok = match proto {
                Proto::Default | Proto::Ether | Proto::Ip => true,
                Proto::Ip6 => !bcast,
                _ => false,
            };
            if !ok {
                return Err(FilterError::syntax(
                    t.col,
                    format!(
                        "'{}' cannot qualify '{}'",
                        proto.name(),
                        if bcast { "broadcast" } else { "multicast" }
                    ),
                ));
            }
            self.last = None;
            let prim = if bcast {
                Prim::Broadcast(proto)
            } else {
                Prim::Multicast(proto)
            };
            return Ok(Expr::Prim(prim, col));
        }
        let dir = self.parse_dir();
        let ty = match &self.peek().tok {
            Tok::Word(x) => match x.as_str() {
                "host" => Type::Host,
                "net" => Type::Net,
                "port" => Type::Port,
                "portrange" => Type::Portrange,
                "proto" => Type::Proto,
                _ => Type::Default,
            },
            _ => Type::Default,
        };
        if ty != Type::Default {
            self.bump();
        }
        if proto == Proto::Default && dir.is_none() && ty == Type::Default {
            return Err(FilterError::syntax(
                col,
                format!("'{w}' is not supported in filter expressions"),
            ));
        }
        if proto != Proto::Default && dir.is_none() && ty == Type::Default {
            if proto == Proto::Ether {
                let n = self.peek();
                return Err(FilterError::syntax(
                    n.col,
                    format!(
                        "expected 'host', 'src', 'dst' or 'proto' after 'ether', found {}",
                        describe(&n.tok)
                    ),
                ));
            }
            self.last = None;
            return Ok(Expr::Prim(Prim::Proto(proto), col));
        }
        let q = Quals { proto, dir, ty };
        self.last = Some(q);
        self.id_expr(q)
    }

    /// An identifier (or a parenthesised list of them joined by and/or)
    /// under qualifiers `q`.
    fn id_expr(&mut self, q: Quals) -> PResult<Expr> {
        if self.is_not() {
            self.bump();
            return Ok(Expr::Not(Box::new(self.id_expr(q)?)));
        }
        if self.is_punct("(") {
            self.bump();
            let mut lhs = self.id_expr(q)?;
            loop {
                if self.is_and() {
                    self.bump();
                    lhs = Expr::And(Box::new(lhs), Box::new(self.id_expr(q)?));
                } else if self.is_or() {
                    self.bump();
                    lhs = Expr::Or(Box::new(lhs), Box::new(self.id_expr(q)?));
                } else {
                    break;
                }
            }
            self.expect_punct(")", "to close '('")?;
            return Ok(lhs);
        }
        let id = self.id(q)?;
        let col = id.col;
        Ok(Expr::Prim(make_prim(q, id)?, col))
    }

    fn id(&mut self, q: Quals) -> PResult<Id> {
        let mut escaped = false;
        if self.is_punct("\\") {
            self.bump();
            escaped = true;
        }
        let t = self.bump();
        let text = match &t.tok {
            Tok::Word(w) if escaped || !KEYWORDS.contains(&w.as_str()) => w.clone(),
            other => {
                return Err(FilterError::syntax(
                    t.col,
                    format!(
                        "{} after {}, found {}",
                        expected_what(q),
                        qual_text(q),
                        describe(other)
                    ),
                ));
            }
        };
        let mut id = Id {
            text,
            col: t.col,
            escaped,
            prefix: None,
            mask: None,
            range_hi: None,
        };
        if self.is_punct("/") && matches!(q.ty, Type::Net | Type::Default | Type::Host) {
            self.bump();
            let nt = self.bump();
            let n = match &nt.tok {
                Tok::Word(s) => parse_number(s),
                _ => None,
            };
            id.prefix = Some((
                n.ok_or_else(|| {
                    FilterError::syntax(nt.col, "expected a prefix length after '/'".into())
                })?,
                nt.col,
            ));
        } else if self.is_word("mask") {
            self.bump();
            let nt = self.bump();
            match &nt.tok {
                Tok::Word(s) => id.mask = Some((s.clone(), nt.col)),
                other => {
                    return Err(FilterError::syntax(
                        nt.col,
                        format!("expected a netmask after 'mask', found {}", describe(other)),
                    ))
                }
            }
        } else if q.ty == Type::Portrange && self.is_punct("-") {
            self.bump();
            let nt = self.bump();
            match &nt.tok {
                Tok::Word(s) => id.range_hi = Some((s.clone(), nt.col)),
                other => {
                    return Err(FilterError::syntax(
                        nt.col,
                        format!(
                            "expected a port number after '-', found {}",
                            describe(other)
                        ),
                    ))
                }
            }
        }
        Ok(id)
    }
}

fn qual_text(q: Quals) -> String {
    let ty = match q.ty {
        Type::Default => "",
        Type::Host => "host",
        Type::Net => "net",
        Type::Port => "port",
        Type::Portrange => "portrange",
        Type::Proto => "proto",
    };
    if !ty.is_empty() {
        return format!("'{ty}'");
    }
    match q.dir {
        Some(Dir::Src) => "'src'".into(),
        Some(Dir::Dst) => "'dst'".into(),
        Some(_) => "direction qualifier".into(),
        None => format!("'{}'", q.proto.name()),
    }
}

fn expected_what(q: Quals) -> &'static str {
    match q.ty {
        Type::Port => "expected a port number",
        Type::Portrange => "expected a port range",
        Type::Net => "expected a network address",
        Type::Proto => "expected a protocol number",
        _ => "expected an address",
    }
}

fn fold(op: BinOp, l: Arith, r: Arith, col: usize) -> PResult<Arith> {
    if let (Arith::Const(a), Arith::Const(b)) = (&l, &r) {
        let (a, b) = (*a, *b);
        let v = match op {
            BinOp::Add => a.wrapping_add(b),
            BinOp::Sub => a.wrapping_sub(b),
            BinOp::Mul => a.wrapping_mul(b),
            BinOp::Div | BinOp::Mod if b == 0 => {
                return Err(FilterError::syntax(col, "division by zero".into()))
            }
            BinOp::Div => a / b,
            BinOp::Mod => a % b,
            BinOp::And => a & b,
            BinOp::Or => a | b,
            BinOp::Xor => a ^ b,
            BinOp::Shl => a.checked_shl(b).unwrap_or(0),
            BinOp::Shr => a.checked_shr(b).unwrap_or(0),
        };
        return Ok(Arith::Const(v));
    }
    if matches!(op, BinOp::Div | BinOp::Mod) && r == Arith::Const(0) {
        return Err(FilterError::syntax(col, "division by zero".into()));
    }
    Ok(Arith::Bin(op, Box::new(l), Box::new(r)))
}

fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let parts: Vec<&str> = s.split(':').collect();
    if parts.len() != 6 {
        return None;
    }
    let mut mac = [0u8; 6];
    for (m, p) in mac.iter_mut().zip(&parts) {
        if p.is_empty() || p.len() > 2 {
            return None;
        }
        *m = u8::from_str_radix(p, 16).ok()?;
    }
    Some(mac)
}

/// Dotted IPv4 with 1 to 4 parts; returns the address (left-aligned) and
/// the number of parts given.
fn parse_v4_parts(s: &str) -> Option<(u32, u32)> {
    let parts: Vec<&str> = s.split('.').collect();
    if parts.is_empty() || parts.len() > 4 {
        return None;
    }
    let mut v = 0u32;
    for p in &parts {
        if p.is_empty() || p.len() > 3 || !p.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let n: u32 = p.parse().ok()?;
        if n > 255 {
            return None;
        }
        v = (v << 8) | n;
    }
    let n = parts.len() as u32;
    Some((v << (8 * (4 - n)), n))
}

fn make_prim(q: Quals, id: Id) -> PResult<Prim> {
    let col = id.col;
    let text = id.text.as_str();
    let err = |c: usize, m: String| Err(FilterError::syntax(c, m));
    let dir = q.dir.unwrap_or(Dir::SrcOrDst);
    match q.ty {
        Type::Proto => {
            if q.dir.is_some() {
                return err(col, "a direction cannot qualify 'proto'".into());
            }
            match q.proto {
                Proto::Ether => {
                    let v = parse_number(text)
                        .or_else(|| ether_proto_name(text).map(u32::from))
                        .ok_or_else(|| {
                            FilterError::syntax(col, format!("unknown ether protocol '{text}'"))
                        })?;
                    if v > 0xffff {
                        return err(col, format!("ether protocol {v} greater than 65535"));
                    }
                    Ok(Prim::EtherProto(v as u16))
                }
                Proto::Default | Proto::Ip | Proto::Ip6 => {
                    let v = parse_number(text)
                        .or_else(|| ip_proto_name(text).map(u32::from))
                        .ok_or_else(|| {
                            FilterError::syntax(col, format!("unknown ip protocol '{text}'"))
                        })?;
                    // Like libpcap, a value over 255 is accepted and never matches.
                    Ok(Prim::IpProto(q.proto, v))
                }
                p => err(
                    col,
                    format!("'proto' cannot be qualified by '{}'", p.name()),
                ),
            }
        }
        Type::Port | Type::Portrange => {
            if !matches!(
                q.proto,
                Proto::Default | Proto::Tcp | Proto::Udp | Proto::Sctp
            ) {
                return err(
                    col,
                    format!("illegal qualifier '{}' of 'port'", q.proto.name()),
                );
            }
            let port = |s: &str, c: usize| -> PResult<(u16, Proto)> {
                if let Some(v) = parse_number(s) {
                    if v > 65535 {
                        return Err(FilterError::syntax(
                            c,
                            format!("illegal port number {v} > 65535"),
                        ));
                    }
                    return Ok((v as u16, Proto::Default));
                }
                port_name(s).ok_or_else(|| {
                    FilterError::syntax(
                        c,
                        format!("expected a port number or known service name, found '{s}'"),
                    )
                })
            };
            let (lo, p1) = port(text, col)?;
            let (hi, p2) = match (&id.range_hi, q.ty) {
                (Some((s, c)), _) => port(s, *c)?,
                (None, Type::Portrange) => {
                    return err(
                        col,
                        format!("expected a port range 'low-high', found '{text}'"),
                    )
                }
                (None, _) => (lo, p1),
            };
            // A service name registered for one transport only restricts
            // the match to it, as libpcap does.
            let mut proto = q.proto;
            for p in [p1, p2] {
                if p != Proto::Default {
                    if proto != Proto::Default && proto != p {
                        return err(col, format!("port '{text}' is {}", p.name()));
                    }
                    proto = p;
                }
            }
            let (lo, hi) = if lo <= hi { (lo, hi) } else { (hi, lo) };
            Ok(Prim::Port { proto, dir, lo, hi })
        }
        Type::Host | Type::Net | Type::Default => {
            if id.escaped {
                return err(col, format!("unexpected '\\' before '{text}'"));
            }
            if let Some(mac) = parse_mac(text) {
                if !matches!(q.proto, Proto::Default | Proto::Ether) || q.ty == Type::Net {
                    return err(col, "ethernet address used in non-ether expression".into());
                }
                return Ok(Prim::EtherHost { dir, mac });
            }
            if q.proto == Proto::Ether {
                return err(
                    col,
                    format!("expected an ethernet address (xx:xx:xx:xx:xx:xx), found '{text}'"),
                );
            }
            if text.contains(':') {
                let a: std::net::Ipv6Addr = text.parse().map_err(|_| {
                    FilterError::syntax(col, format!("invalid IPv6 address '{text}'"))
                })?;
                if !matches!(q.proto, Proto::Default | Proto::Ip6) {
                    return err(
                        col,
                        format!("'{}' modifier applied to ip6 host", q.proto.name()),
                    );
                }
                if id.mask.is_some() {
                    return err(
                        col,
                        "'mask' is not supported for IPv6 networks; use '/len'".into(),
                    );
                }
                let addr = a.octets();
                let prefix = match id.prefix {
                    Some((n, c)) => {
                        if q.ty == Type::Host {
                            return err(
                                c,
                                "a host address cannot have a prefix length; use 'net'".into(),
                            );
                        }
                        if n > 128 {
                            return err(c, format!("IPv6 prefix length {n} greater than 128"));
                        }
                        n as u8
                    }
                    None => 128,
                };
                for (i, b) in addr.iter().enumerate() {
                    let bits = (prefix as usize).saturating_sub(i * 8).min(8);
                    let m = if bits == 0 { 0 } else { 0xffu8 << (8 - bits) };
                    if b & !m != 0 {
                        return err(col, format!("non-network bits set in \"{text}/{prefix}\""));
                    }
                }
                return Ok(Prim::Net6 { dir, addr, prefix });
            }
            let Some((addr, nparts)) = parse_v4_parts(text) else {
                if q.ty == Type::Net || parse_number(text).is_some() {
                    return err(col, format!("expected a network address, found '{text}'"));
                }
                return err(
                    col,
                    format!("expected an IP address; host names are not resolved ('{text}')"),
                );
            };
            if !matches!(
                q.proto,
                Proto::Default | Proto::Ip | Proto::Arp | Proto::Rarp
            ) {
                return err(
                    col,
                    format!("'{}' modifier applied to host", q.proto.name()),
                );
            }
            if q.ty == Type::Host && (id.prefix.is_some() || id.mask.is_some()) {
                return err(col, "mask syntax is for networks only; use 'net'".into());
            }
            let is_net = q.ty == Type::Net || id.prefix.is_some() || id.mask.is_some();
            if !is_net {
                if nparts != 4 {
                    return err(
                        col,
                        format!("expected a full dotted-quad IPv4 address, found '{text}'"),
                    );
                }
                return Ok(Prim::Net4 {
                    proto: q.proto,
                    dir,
                    addr,
                    mask: u32::MAX,
                });
            }
            let mask = if let Some((n, c)) = id.prefix {
                if n > 32 {
                    return err(c, format!("mask length must be <= 32, found {n}"));
                }
                if n == 0 {
                    0
                } else {
                    u32::MAX << (32 - n)
                }
            } else if let Some((m, c)) = &id.mask {
                match parse_v4_parts(m) {
                    Some((v, 4)) => v,
                    _ => return err(*c, format!("expected a dotted-quad netmask, found '{m}'")),
                }
            } else if nparts == 4 {
                u32::MAX
            } else {
                // Implicit mask from the number of parts given (net 10 = 10/8).
                u32::MAX << (32 - 8 * nparts)
            };
            if addr & !mask != 0 {
                return err(col, format!("non-network bits set in \"{text}\""));
            }
            Ok(Prim::Net4 {
                proto: q.proto,
                dir,
                addr,
                mask,
            })
        }
    }
}
