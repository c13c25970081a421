//! Arbitrary UTF-8 as a filter expression compiled for EN10MB. A program
//! that compiles is run over a few fixed frames (and their truncations);
//! the unoptimised program must give the same verdicts (documented in the
//! `filter` crate: the optimiser never changes a verdict).
#![no_main]

use libfuzzer_sys::fuzz_target;

const EN10MB: u32 = 1;
const SNAPLEN: u32 = 262_144;

/// Ethernet / 802.1Q VLAN 5 / IPv4 / TCP SYN 192.168.1.2:40000 -> 10.0.0.1:80, 4 payload bytes.
const TCP_VLAN: &[u8] = &[
    0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, // dst, src MAC
    0x81, 0x00, 0x00, 0x05, 0x08, 0x00, // VLAN 5, IPv4
    0x45, 0x00, 0x00, 0x2c, 0x12, 0x34, 0x40, 0x00, 0x40, 0x06, 0x00, 0x00, // IPv4 header
    192, 168, 1, 2, 10, 0, 0, 1, //
    0x9c, 0x40, 0x00, 0x50, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, // TCP
    0x50, 0x02, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, //
    b'G', b'E', b'T', b' ',
];

/// Ethernet (broadcast) / IPv4 / UDP 10.1.2.3:5353 -> 255.255.255.255:53, fragment-free.
const UDP4: &[u8] = &[
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 0x08, 0x00, //
    0x45, 0x00, 0x00, 0x20, 0x00, 0x01, 0x00, 0x00, 0x40, 0x11, 0x00, 0x00, //
    10, 1, 2, 3, 255, 255, 255, 255, //
    0x14, 0xe9, 0x00, 0x35, 0x00, 0x0c, 0x00, 0x00, 1, 2, 3, 4,
];

/// Ethernet (multicast) / IPv6 / fragment header / ICMPv6 echo request.
const ICMP6_FRAG: &[u8] = &[
    0x33, 0x33, 0x00, 0x00, 0x00, 0x01, 0x02, 0x00, 0x00, 0x00, 0x00, 0x02, 0x86, 0xdd, //
    0x60, 0x00, 0x00, 0x00, 0x00, 0x10, 44, 64, // payload 16, next = fragment
    0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, //
    0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, //
    58, 0, 0x00, 0x00, 0xde, 0xad, 0xbe, 0xef, // fragment: offset 0, last
    128, 0, 0x00, 0x00, 0x00, 0x01, 0x00, 0x01, // echo request
];

/// Ethernet / ARP request.
const ARP: &[u8] = &[
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0x00, 0x00, 0x00, 0x00, 0x03, 0x08, 0x06, //
    0x00, 0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x01, //
    0x02, 0x00, 0x00, 0x00, 0x00, 0x03, 10, 0, 0, 3, //
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 10, 0, 0, 1,
];

fn verdicts(prog: &filter::Program, frame: &[u8]) -> [u32; 3] {
    // Full frame, a truncated capture of it, and a short-snaplen view.
    let cut = frame.len() * 2 / 3;
    [
        prog.run(frame, frame.len() as u32),
        prog.run(&frame[..cut], frame.len() as u32),
        prog.run(&frame[..14.min(frame.len())], 1514),
    ]
}

fuzz_target!(|data: &[u8]| {
    let Ok(expr) = std::str::from_utf8(data) else {
        return;
    };
    let prog = match filter::compile(expr, EN10MB, SNAPLEN) {
        Ok(p) => p,
        Err(e) => {
            std::hint::black_box(e.to_string());
            return;
        }
    };
    std::hint::black_box(prog.to_string());
    let unopt = match filter::compile_unoptimized(expr, EN10MB, SNAPLEN) {
        Ok(p) => p,
        // Without the optimiser a program may legitimately exceed the limit.
        Err(filter::FilterError::TooLong(_)) => return,
        Err(e) => panic!("compile_unoptimized fails ({e}) where compile succeeds: {expr:?}"),
    };
    for frame in [TCP_VLAN, UDP4, ICMP6_FRAG, ARP, &[][..]] {
        let a = verdicts(&prog, frame);
        let b = verdicts(&unopt, frame);
        std::hint::black_box(prog.matches(frame, frame.len() as u32));
        assert_eq!(
            a, b,
            "optimised and unoptimised programs disagree on {expr:?} for frame {frame:02x?}"
        );
    }
});
