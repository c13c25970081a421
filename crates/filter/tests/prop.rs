//! Property tests: the interpreter never panics on any packet or any
//! instruction list, and every program `compile` returns validates.

use filter::{compile, compile_unoptimized, run, validate, Insn};
use proptest::prelude::*;

const LINKTYPES: &[u32] = &[0, 1, 101, 108, 113, 228, 229, 276];

const ATOMS: &[&str] = &[
    "tcp",
    "udp",
    "icmp",
    "icmp6",
    "sctp",
    "ip",
    "ip6",
    "arp",
    "rarp",
    "vlan",
    "vlan 7",
    "port 53",
    "src port 80",
    "dst portrange 1-1024",
    "tcp port https",
    "udp port domain",
    "host 10.0.0.1",
    "src host 192.168.1.1",
    "net 10.0.0.0/8",
    "dst net 172.16 ",
    "net 10.0.0.0 mask 255.0.0.0",
    "host ::1",
    "net fe80::/10",
    "src or dst net 2001:db8::/32",
    "ether host 01:02:03:04:05:06",
    "ether proto 0x0800",
    "ip proto 17",
    "ip6 proto 58",
    "proto 6",
    "greater 100",
    "less 60",
    "len > 10",
    "tcp[13] & 2 != 0",
    "tcp[tcpflags] & (tcp-syn|tcp-ack) = tcp-syn",
    "ip[8] < 64",
    "udp[4:2] > 8",
    "icmp[icmptype] = icmp-echo",
    "icmp6[0] = 128",
    "ether[0] & 1 = 1",
    "ip6[6] = 17",
    "arp[7] = 2",
    "ip[ip[0] & 0xf] = 1",
    "tcp[(tcp[12] >> 4) * 4] = 0x16",
    "len - ip[2:2] >= 14",
    "ip[2:2] / 4 % 3 = 1",
];

fn expr_strategy() -> impl Strategy<Value = String> {
    let leaf = prop::sample::select(ATOMS).prop_map(str::to_string);
    leaf.prop_recursive(5, 48, 3, |inner| {
        prop_oneof![
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("{a} and {b}")),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("{a} or {b}")),
            inner.clone().prop_map(|a| format!("not {a}")),
            inner.prop_map(|a| format!("({a})")),
        ]
    })
}

/// Plausible frames (Ethernet; IPv4/IPv6/VLAN/ARP; TCP/UDP) with a few
/// random byte changes and a random truncation, so that filters take many
/// different paths, including out-of-bounds loads.
fn packet_strategy() -> impl Strategy<Value = Vec<u8>> {
    let eth = |et: [u8; 2]| {
        let mut p = vec![1, 0, 0x5e, 0, 0, 1, 0, 0x0c, 0x29, 0, 0, 1];
        p.extend(et);
        p
    };
    let mut v4 = eth([0x08, 0x00]);
    v4.extend([
        0x45, 0, 0, 60, 0, 1, 0x40, 0, 64, 6, 0, 0, 10, 0, 0, 1, 192, 168, 1, 1,
    ]);
    v4.extend([
        0x01, 0xbb, 0x00, 0x35, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x12, 0, 0, 0, 0, 0, 0,
    ]);
    v4.extend([0x16, 3, 1, 0, 0]);
    let mut v6 = eth([0x86, 0xdd]);
    v6.extend([0x60, 0, 0, 0, 0, 16, 17, 64]);
    v6.extend([0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
    v6.extend([0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xfb]);
    v6.extend([
        0x14, 0xe9, 0x14, 0xe9, 0, 16, 0, 0, 0x80, 0, 0, 0, 0, 0, 0, 0,
    ]);
    let mut vlan = eth([0x81, 0x00]);
    vlan.extend([0x00, 0x07]);
    vlan.extend(&v4[12..]);
    let mut arp = eth([0x08, 0x06]);
    arp.extend([
        0, 1, 8, 0, 6, 4, 0, 1, 0, 0x0c, 0x29, 0, 0, 1, 192, 168, 1, 1,
    ]);
    arp.extend([0, 0, 0, 0, 0, 0, 10, 0, 0, 1]);
    let templates = vec![v4, v6, vlan, arp];
    (
        prop::sample::select(templates),
        prop::collection::vec((0usize..96, any::<u8>()), 0..4),
        0usize..110,
    )
        .prop_map(|(mut p, changes, len)| {
            for (i, b) in changes {
                if let Some(x) = p.get_mut(i) {
                    *x = b;
                }
            }
            p.truncate(len.max(1));
            p
        })
}

fn insn_strategy() -> impl Strategy<Value = Insn> {
    (
        any::<u16>(),
        any::<u8>(),
        any::<u8>(),
        prop_oneof![0u32..64, any::<u32>()],
        any::<bool>(),
    )
        .prop_map(|(code, jt, jf, k, small)| Insn {
            // Mostly plausible opcodes (low byte), sometimes anything.
            code: if small { code & 0xff } else { code },
            jt,
            jf,
            k,
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn compiled_programs_validate_and_never_panic(
        expr in expr_strategy(),
        lt in prop::sample::select(LINKTYPES),
        pkt in prop::collection::vec(any::<u8>(), 0..160),
        wire_extra in 0u32..2000,
    ) {
        match compile(&expr, lt, 65535) {
            Ok(p) => {
                prop_assert!(validate(p.insns()).is_ok());
                prop_assert!(p.insns().len() <= 4096);
                let r = p.run(&pkt, pkt.len() as u32 + wire_extra);
                prop_assert!(r == 0 || r == 65535);
            }
            Err(e) => {
                // Only link-type restrictions (vlan / ether host off
                // Ethernet) and size limits are expected here.
                let s = e.to_string();
                prop_assert!(s.starts_with("filter: "), "{}", s);
                prop_assert!(lt != 1 || s.contains("too complex"), "{} on EN10MB: {}", expr, s);
            }
        }
    }

    /// Jump threading and redundant-load removal never change a verdict.
    #[test]
    fn optimised_and_straightforward_programs_agree(
        expr in expr_strategy(),
        pkts in prop::collection::vec(packet_strategy(), 1..24),
    ) {
        if let (Ok(o), Ok(u)) = (compile(&expr, 1, 65535), compile_unoptimized(&expr, 1, 65535)) {
            prop_assert!(o.insns().len() <= u.insns().len());
            for p in &pkts {
                prop_assert_eq!(
                    o.matches(p, p.len() as u32),
                    u.matches(p, p.len() as u32),
                    "{} on {:02x?}\noptimised:\n{}\nstraightforward:\n{}", expr, p, o, u
                );
            }
        }
    }

    #[test]
    fn interpreter_never_panics_on_random_programs(
        prog in prop::collection::vec(insn_strategy(), 0..40),
        pkt in prop::collection::vec(any::<u8>(), 0..100),
        wire in any::<u32>(),
    ) {
        let _ = run(&prog, &pkt, wire);
        let _ = validate(&prog);
    }

    #[test]
    fn parser_never_panics_on_random_text(s in "[a-z0-9 ():.\\[\\]&|!=<>+*/%^\\\\-]{0,40}") {
        let _ = compile(&s, 1, 100);
    }
}
