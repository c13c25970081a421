//! The Linux kernel's own checker (sk_chk_filter) is an independent judge
//! of program validity: every compiled program must attach with
//! SO_ATTACH_FILTER. A plain UDP socket is enough (no privileges needed).

#![cfg(all(
    target_os = "linux",
    any(target_arch = "x86_64", target_arch = "aarch64")
))]

use std::net::UdpSocket;
use std::os::fd::AsRawFd;

use filter::consts::*;
use filter::{compile, Insn};

#[repr(C)]
struct SockFprog {
    len: u16,
    filter: *const Insn,
}

extern "C" {
    fn setsockopt(fd: i32, level: i32, name: i32, val: *const std::ffi::c_void, len: u32) -> i32;
}

const SOL_SOCKET: i32 = 1;
const SO_ATTACH_FILTER: i32 = 26;

fn attach(sock: &UdpSocket, insns: &[Insn]) -> std::io::Result<()> {
    let prog = SockFprog {
        len: insns.len() as u16,
        filter: insns.as_ptr(),
    };
    // SAFETY: `prog` points at `insns`, which outlives the call; the kernel
    // copies the program during setsockopt.
    let rc = unsafe {
        setsockopt(
            sock.as_raw_fd(),
            SOL_SOCKET,
            SO_ATTACH_FILTER,
            (&prog as *const SockFprog).cast(),
            std::mem::size_of::<SockFprog>() as u32,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

#[test]
fn kernel_accepts_every_compiled_program() {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    // Sanity: the kernel does reject a broken program.
    let broken = [
        Insn::jump(BPF_JMP | BPF_JEQ | BPF_K, 0, 5, 0),
        Insn::stmt(BPF_RET | BPF_K, 1),
    ];
    assert!(
        attach(&sock, &broken).is_err(),
        "kernel accepted a jump out of range"
    );

    let long: Vec<String> = (1..=90).map(|i| format!("port {i}")).collect();
    let long = long.join(" or ");
    let exprs = [
        "",
        "tcp port 443 or udp port 53",
        "host 192.168.1.1 or net 10.0.0.0/8 or net fe80::/10",
        "ether host 01:02:03:04:05:06 or broadcast or multicast",
        "vlan 100 and vlan and tcp portrange 1000-2000",
        "tcp[tcpflags] & (tcp-syn|tcp-fin) != 0",
        "tcp[((tcp[12] & 0xf0) >> 2)] = 0x16",
        "ip[ip[0] & 0xf] = 1 and ip6[6] = 17 or icmp6[0] = 128",
        "len - ip[2:2] >= 14 and (ip[2:2] + 1) * 2 / 3 % 5 ^ 1 | 2 & 3 << 1 >> 1 != len",
        "-(len) = 5",
        "not (tcp or udp) and not arp and not icmp",
        "inbound and ip or outbound",
        &long,
    ];
    let mut attached = 0;
    for e in exprs {
        for lt in [0u32, 1, 101, 108, 113, 228, 229, 276] {
            let Ok(p) = compile(e, lt, 65535) else {
                continue;
            };
            // A fresh socket each time: replacing a filter charges both the
            // old and the new one against net.core.optmem_max.
            let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
            attach(&sock, p.insns()).unwrap_or_else(|err| {
                panic!("kernel rejects '{e}' for link type {lt}: {err}\n{p}")
            });
            attached += 1;
        }
    }
    assert!(attached > 60, "{attached}");
}
