//! Unit-level checks of the public API on hand-built packets and programs.

use filter::consts::*;
use filter::{compile, validate, FilterError, Insn, Program};

const SNAP: u32 = 262_144;

/// Ethernet + IPv4 + TCP/UDP header, ports and addresses as given.
fn eth_ipv4(
    proto: u8,
    src: [u8; 4],
    dst: [u8; 4],
    sport: u16,
    dport: u16,
    frag_off: u16,
) -> Vec<u8> {
    let mut p = vec![
        0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0x08, 0x00,
    ];
    p.extend(ipv4(proto, src, dst, sport, dport, frag_off));
    p
}

fn ipv4(proto: u8, src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16, frag_off: u16) -> Vec<u8> {
    let mut p = vec![0x45, 0, 0, 40, 0, 0];
    p.extend(frag_off.to_be_bytes());
    p.extend([64, proto, 0, 0]);
    p.extend(src);
    p.extend(dst);
    p.extend(sport.to_be_bytes());
    p.extend(dport.to_be_bytes());
    p.extend([0, 0, 0, 0, 0, 0, 0, 0, 0x50, 0x02, 0, 0, 0, 0, 0, 0]);
    p
}

fn ipv6(next: u8, sport: u16, dport: u16) -> Vec<u8> {
    let mut p = vec![0x60, 0, 0, 0, 0, 20, next, 64];
    p.extend(
        [0xfe, 0x80]
            .iter()
            .chain([0u8; 13].iter())
            .chain([1u8].iter()),
    );
    p.extend(
        [0x20, 0x01, 0x0d, 0xb8]
            .iter()
            .chain([0u8; 11].iter())
            .chain([2u8].iter()),
    );
    p.extend(sport.to_be_bytes());
    p.extend(dport.to_be_bytes());
    p.extend([0u8; 16]);
    p
}

fn m(expr: &str, lt: u32, pkt: &[u8]) -> bool {
    compile(expr, lt, SNAP)
        .unwrap_or_else(|e| panic!("{expr}: {e}"))
        .matches(pkt, pkt.len() as u32)
}

#[test]
fn insn_is_sock_filter_layout() {
    assert_eq!(std::mem::size_of::<Insn>(), 8);
    assert_eq!(std::mem::align_of::<Insn>(), 4);
    assert_eq!(std::mem::offset_of!(Insn, code), 0);
    assert_eq!(std::mem::offset_of!(Insn, jt), 2);
    assert_eq!(std::mem::offset_of!(Insn, jf), 3);
    assert_eq!(std::mem::offset_of!(Insn, k), 4);
}

#[test]
fn empty_expression_accepts_all() {
    for e in ["", "   "] {
        let p = compile(e, 1, 1500).unwrap();
        assert_eq!(p.insns(), &[Insn::stmt(BPF_RET | BPF_K, 1500)]);
        assert!(p.matches(&[], 0));
    }
}

#[test]
fn listing_like_tcpdump_d() {
    // Identical to `tcpdump -d ip` on an Ethernet capture.
    let p = compile("ip", 1, SNAP).unwrap();
    assert_eq!(
        p.to_string(),
        "(000) ldh      [12]\n(001) jeq      #0x800           jt 2\tjf 3\n(002) ret      #262144\n(003) ret      #0\n"
    );
    let p = compile("ip[2:2] - 1 > 3", 1, SNAP).unwrap();
    let s = p.to_string();
    assert!(s.contains("(003) sub      #1\n"), "{s}");
    assert!(s.contains("jgt      #0x3 "), "{s}");
    let p = compile("tcp[13] = 2", 1, SNAP).unwrap().to_string();
    assert!(p.contains("ldxb     4*([14]&0xf)"), "{p}");
    assert!(p.contains("ldb      [x + 27]"), "{p}");
    assert!(p.contains("jset     #0x1fff"), "{p}");
}

#[test]
fn errors_have_positions() {
    let e = compile("tcp port and", 1, SNAP).unwrap_err();
    assert_eq!(
        e.to_string(),
        "filter: expected a port number after 'port', found 'and' at column 10"
    );
    assert!(matches!(e, FilterError::Syntax { column: 10, .. }));
    let e = compile("host 1.2.3.4 and port 99999", 1, SNAP).unwrap_err();
    assert!(matches!(e, FilterError::Syntax { column: 23, .. }), "{e}");
    let e = compile("tcp and (udp", 1, SNAP).unwrap_err().to_string();
    assert!(e.contains("expected ')'") && e.contains("column 13"), "{e}");
    let e = compile("host example.com", 1, SNAP)
        .unwrap_err()
        .to_string();
    assert!(e.contains("host names are not resolved"), "{e}");
}

#[test]
fn unsupported_link_type_is_named() {
    let e = compile("tcp", 127, SNAP).unwrap_err().to_string();
    assert!(
        e.contains("unsupported link type 127 (IEEE802_11_RADIOTAP)"),
        "{e}"
    );
    // FCS bits in the pcap link-type field are ignored.
    assert!(compile("tcp", 0x0400_0001, SNAP).is_ok());
}

#[test]
fn ethernet_ipv4_primitives() {
    let p = eth_ipv4(6, [10, 1, 2, 3], [192, 168, 1, 1], 40000, 443, 0);
    assert!(m("tcp port 443", 1, &p));
    assert!(m("tcp dst port https", 1, &p));
    assert!(!m("udp port 443", 1, &p));
    assert!(!m("src port 443", 1, &p));
    assert!(m("portrange 400-500", 1, &p));
    assert!(m("src net 10.0.0.0/8 and dst host 192.168.1.1", 1, &p));
    assert!(m("src and dst net 0.0.0.0/0", 1, &p));
    assert!(!m("src and dst net 10", 1, &p));
    assert!(m("net 192.168 mask 255.255.0.0 or 1.1.1.1", 1, &p) == m("net 192.168.0.0/16", 1, &p));
    assert!(m("host 1.1.1.1 or 192.168.1.1", 1, &p));
    assert!(m(
        "ether src 66:77:88:99:aa:bb and ether dst 00:11:22:33:44:55",
        1,
        &p
    ));
    assert!(m("tcp[tcpflags] & tcp-syn != 0", 1, &p));
    assert!(m("ip[9] = 6 and ip[0] & 0xf = 5 and len = 54", 1, &p));
    assert!(!m("ip6 or arp or vlan", 1, &p));
    // Non-first fragments carry no ports.
    let f = eth_ipv4(6, [10, 1, 2, 3], [192, 168, 1, 1], 40000, 443, 0x0010);
    assert!(m("tcp", 1, &f));
    assert!(!m("port 443", 1, &f));
    assert!(!m("tcp[13] = 2", 1, &f));
}

#[test]
fn vlan_shifts_following_offsets() {
    let inner = eth_ipv4(17, [10, 0, 0, 1], [10, 0, 0, 2], 53, 5353, 0);
    let mut p = inner[..12].to_vec();
    p.extend([0x81, 0x00, 0x00, 0x64]); // VLAN 100
    p.extend(&inner[12..]);
    assert!(m("vlan 100 and udp port 53", 1, &p));
    assert!(m("vlan and host 10.0.0.2", 1, &p));
    assert!(!m("vlan 101", 1, &p));
    assert!(!m("udp", 1, &p)); // untagged view sees ethertype 0x8100
    assert!(m("ether proto 0x8100", 1, &p));
}

#[test]
fn other_link_types() {
    let ip4 = ipv4(17, [10, 0, 0, 1], [10, 0, 0, 2], 1234, 53, 0);
    let ip6 = ipv6(6, 1234, 80);
    // RAW and IPV4/IPV6.
    assert!(m("udp port 53", 101, &ip4));
    assert!(m("ip6 and tcp port 80 and src net fe80::/10", 101, &ip6));
    assert!(m("udp", 228, &ip4) && !m("ip6", 228, &ip4));
    assert!(m("tcp and dst net 2001:db8::/32", 229, &ip6) && !m("ip", 229, &ip6));
    // NULL: host byte order of the capturing machine, either order.
    for af in [2u32.to_le_bytes(), 2u32.to_be_bytes()] {
        let mut p = af.to_vec();
        p.extend(&ip4);
        assert!(m("ip and udp dst port 53", 0, &p));
        assert!(!m("ip6", 0, &p));
    }
    for af in [24u32, 28, 30, 10] {
        let mut p = af.to_le_bytes().to_vec();
        p.extend(&ip6);
        assert!(m("ip6 and port 80", 0, &p), "AF {af}");
    }
    // LOOP: network byte order only.
    let mut p = 2u32.to_be_bytes().to_vec();
    p.extend(&ip4);
    assert!(m("udp", 108, &p));
    let mut p = 2u32.to_le_bytes().to_vec();
    p.extend(&ip4);
    assert!(!m("udp", 108, &p));
    // SLL (16-byte header, protocol at 14) and SLL2 (20 bytes, protocol at 0).
    let mut sll = vec![0u8; 14];
    sll.extend([0x08, 0x00]);
    sll.extend(&ip4);
    assert!(m("udp port 53 and host 10.0.0.1", 113, &sll));
    let mut sll2 = vec![0x86, 0xdd];
    sll2.extend([0u8; 18]);
    sll2.extend(&ip6);
    assert!(m("tcp dst port 80", 276, &sll2));
    assert!(compile("vlan", 276, SNAP).is_err());
}

#[test]
fn ipv6_transport_rules() {
    // `tcp` looks through one fragment header; `port` does not.
    let mut p = ipv6(44, 0, 0);
    p.truncate(40);
    p.extend([6, 0, 0, 0, 0, 0, 0, 0]); // fragment header, next = TCP
    p.extend([0x04, 0xd2, 0x00, 0x50]);
    let mut e = vec![0u8; 12];
    e.extend([0x86, 0xdd]);
    e.extend(&p);
    assert!(m("tcp", 1, &e));
    assert!(!m("port 80", 1, &e));
}

#[test]
fn long_programs_use_trampolines() {
    let expr: Vec<String> = (1..=60).map(|i| format!("port {i}")).collect();
    let expr = expr.join(" or ");
    let p = compile(&expr, 1, SNAP).unwrap();
    assert!(p.insns().len() > 600, "{}", p.insns().len());
    assert!(p.insns().iter().any(|i| i.code == BPF_JMP | BPF_JA));
    validate(p.insns()).unwrap();
    for port in [1u16, 30, 60] {
        assert!(p.matches(&eth_ipv4(6, [1, 1, 1, 1], [2, 2, 2, 2], 9999, port, 0), 54));
    }
    assert!(!p.matches(&eth_ipv4(6, [1, 1, 1, 1], [2, 2, 2, 2], 9999, 61, 0), 54));
    // Far beyond the kernel limit: a clear error, not a broken program.
    let huge: Vec<String> = (1..=400).map(|i| format!("port {i}")).collect();
    assert!(matches!(
        compile(&huge.join(" or "), 1, SNAP),
        Err(FilterError::TooLong(_))
    ));
}

#[test]
fn interpreter_semantics() {
    let ret = |k| Insn::stmt(BPF_RET | BPF_K, k);
    // Out-of-bounds load rejects.
    let p = Program::from_insns(vec![Insn::stmt(BPF_LD | BPF_W | BPF_ABS, 2), ret(1)]).unwrap();
    assert_eq!(p.run(&[1, 2, 3, 4, 5], 5), 0);
    assert_eq!(p.run(&[1, 2, 3, 4, 5, 6], 6), 1);
    // Division by X = 0 rejects.
    let p = Program::from_insns(vec![
        Insn::stmt(BPF_LDX | BPF_IMM, 0),
        Insn::stmt(BPF_ALU | BPF_DIV | BPF_X, 0),
        ret(1),
    ])
    .unwrap();
    assert_eq!(p.run(&[], 0), 0);
    // `ret a` returns the wire length loaded with `ld #pktlen`.
    let p = Program::from_insns(vec![
        Insn::stmt(BPF_LD | BPF_W | BPF_LEN, 0),
        Insn::stmt(BPF_RET | BPF_A, 0),
    ])
    .unwrap();
    assert_eq!(p.run(&[0; 10], 1514), 1514);
    // Scratch memory, msh and indirect loads.
    let p = Program::from_insns(vec![
        Insn::stmt(BPF_LDX | BPF_B | BPF_MSH, 0), // X = 4 * (0x45 & 0xf) = 20
        Insn::stmt(BPF_STX, 3),
        Insn::stmt(BPF_LD | BPF_MEM, 3),
        Insn::jump(BPF_JMP | BPF_JEQ | BPF_K, 20, 0, 1),
        Insn::stmt(BPF_RET | BPF_A, 0),
        ret(0),
    ])
    .unwrap();
    assert_eq!(p.run(&[0x45], 1), 20);
}

#[test]
fn validation() {
    let ret = Insn::stmt(BPF_RET | BPF_K, 1);
    assert!(validate(&[]).is_err());
    assert!(validate(&[Insn::stmt(BPF_LD | BPF_IMM, 1)]).is_err()); // no ret
    assert!(validate(&[Insn::jump(BPF_JMP | BPF_JEQ | BPF_K, 0, 1, 0), ret]).is_err());
    assert!(validate(&[Insn::stmt(BPF_JMP | BPF_JA, 1), ret]).is_err());
    assert!(validate(&[Insn::stmt(BPF_ST, 16), ret]).is_err());
    assert!(validate(&[Insn::stmt(BPF_ALU | BPF_DIV | BPF_K, 0), ret]).is_err());
    assert!(validate(&[Insn::stmt(0xffff, 0), ret]).is_err());
    assert!(matches!(
        validate(&vec![ret; 4097]),
        Err(FilterError::TooLong(4097))
    ));
    assert!(validate(&vec![ret; 4096]).is_ok());
}

#[test]
fn precedence_is_left_to_right() {
    // pcap-filter: `and` and `or` have equal precedence, left-associative.
    let udp53 = eth_ipv4(17, [1, 1, 1, 1], [2, 2, 2, 2], 1000, 53, 0);
    // (udp or tcp) and port 80  -> false for udp/53
    assert!(!m("udp or tcp and port 80", 1, &udp53));
    // udp or (tcp and port 80) -> true
    assert!(m("udp or (tcp and port 80)", 1, &udp53));
    assert!(m("not tcp and udp", 1, &udp53));
    assert!(m("port 80 or 53 and not 443", 1, &udp53));
}

#[test]
fn arithmetic_keeps_protocol_checks_of_both_operands() {
    // libpcap 1.10 drops the checks of the right operand of an arithmetic
    // operator (`len - ip[2:2]` then reads IPv6 bytes as if IPv4); here a
    // load's protocol check always applies, wherever the load appears.
    let ip6 = ipv6(17, 1, 2);
    assert!(!m("len - ip[2:2] >= 14", 101, &ip6));
    assert!(m("not (len - ip[2:2] >= 14)", 101, &ip6));
    let ip4 = ipv4(17, [1, 1, 1, 1], [2, 2, 2, 2], 1, 2, 0);
    assert!(m("len - ip[2:2] >= 0", 101, &ip4));
}

#[test]
fn huge_or_deep_expressions_are_errors_not_crashes() {
    // Run in a thread with the default 2 MiB stack of spawned threads.
    std::thread::Builder::new()
        .stack_size(2 * 1024 * 1024)
        .spawn(|| {
            let deep = format!("{}tcp{}", "(".repeat(1000), ")".repeat(1000));
            let e = compile(&deep, 1, SNAP).unwrap_err().to_string();
            assert!(e.contains("nested too deeply"), "{e}");
            let nots = format!("{}tcp", "not ".repeat(1000));
            assert!(compile(&nots, 1, SNAP).is_err());
            let minus = format!("{}1 = len", "-".repeat(1000));
            assert!(compile(&minus, 1, SNAP).is_err());
            let long = vec!["tcp"; 3000].join(" or ");
            assert!(compile(&long, 1, SNAP).is_err());
            let longest = vec!["tcp"; 2048].join(" or ");
            let _ = compile(&longest, 1, SNAP);
            let ok = format!("{}tcp{}", "(".repeat(90), ")".repeat(90));
            assert!(compile(&ok, 1, SNAP).is_ok());
        })
        .unwrap()
        .join()
        .unwrap();
}
