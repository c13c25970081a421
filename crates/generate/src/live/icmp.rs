//! ICMP echo for live `voip-icmp`: an unprivileged ping socket
//! (`SOCK_DGRAM`, `IPPROTO_ICMP[V6]`) when `net.ipv4.ping_group_range`
//! allows it, else a raw socket (root or CAP_NET_RAW). The far end's kernel
//! answers, as it answered the original system's `ping`.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use super::net::{bind, sockaddr};
use crate::GenerateError;

pub(crate) struct Pinger {
    fd: OwnedFd,
    v6: bool,
    raw: bool,
    /// Echo identifier on the wire (the kernel's choice for ping sockets).
    pub ident: u16,
    to: SocketAddr,
}

fn socket(fam: i32, ty: i32, proto: i32) -> io::Result<OwnedFd> {
    // SAFETY: plain socket(2); ownership taken at once.
    let fd = unsafe { libc::socket(fam, ty | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK, proto) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd is fresh and valid.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn local_port(fd: &OwnedFd) -> io::Result<u16> {
    // SAFETY: zeroed storage is valid; getsockname fills at most `len` bytes.
    let mut ss: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    // SAFETY: as above.
    if unsafe {
        libc::getsockname(
            fd.as_raw_fd(),
            (&mut ss as *mut libc::sockaddr_storage).cast(),
            &mut len,
        )
    } != 0
    {
        return Err(io::Error::last_os_error());
    }
    // Both sockaddr_in and sockaddr_in6 keep the port right after the family.
    // SAFETY: the storage holds an AF_INET or AF_INET6 address.
    let port =
        unsafe { (*(&ss as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>()).sin_port };
    Ok(u16::from_be(port))
}

/// Internet checksum (RFC 1071).
fn checksum(b: &[u8]) -> u16 {
    let mut acc: u32 = 0;
    for c in b.chunks(2) {
        acc += u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]));
    }
    while acc >> 16 != 0 {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    !(acc as u16)
}

impl Pinger {
    /// An echo socket from `from` to `to`; `ident` is used on raw sockets.
    pub fn open(from: IpAddr, to: IpAddr, ident: u16) -> Result<Pinger, GenerateError> {
        let v6 = to.is_ipv6();
        let (fam, proto) = if v6 {
            (libc::AF_INET6, libc::IPPROTO_ICMPV6)
        } else {
            (libc::AF_INET, libc::IPPROTO_ICMP)
        };
        let to = SocketAddr::new(to, 0);
        let ping = socket(fam, libc::SOCK_DGRAM, proto).and_then(|fd| {
            bind(&fd, SocketAddr::new(from, 0))?;
            let id = local_port(&fd)?;
            Ok((fd, id))
        });
        let (fd, raw, ident) = match ping {
            Ok((fd, id)) => (fd, false, id),
            Err(ping_err) => match socket(fam, libc::SOCK_RAW, proto) {
                Ok(fd) => {
                    bind(&fd, SocketAddr::new(from, 0)).map_err(|e| {
                        GenerateError::BadArgument(format!(
                            "cannot bind the ICMP socket to {from}: {e}"
                        ))
                    })?;
                    (fd, true, ident)
                }
                Err(raw_err) => {
                    return Err(GenerateError::BadArgument(format!(
                        "voip-icmp needs an ICMP socket: a ping socket was refused ({ping_err}) and a raw socket too ({raw_err}); \
                         allow ping sockets with `sudo sysctl -w net.ipv4.ping_group_range=\"0 2147483647\"`, \
                         or run as root or with CAP_NET_RAW (`sudo setcap cap_net_raw+ep $(which trafficscope)`)"
                    )))
                }
            },
        };
        Ok(Pinger {
            fd,
            v6,
            raw,
            ident,
            to,
        })
    }

    /// Sends echo request `seq` carrying `data`.
    pub fn send(&self, seq: u16, data: &[u8]) -> io::Result<()> {
        let mut b = Vec::with_capacity(8 + data.len());
        b.push(if self.v6 { 128 } else { 8 });
        b.push(0);
        b.extend_from_slice(&[0, 0]);
        b.extend_from_slice(&self.ident.to_be_bytes());
        b.extend_from_slice(&seq.to_be_bytes());
        b.extend_from_slice(data);
        if self.raw && !self.v6 {
            // Ping sockets and ICMPv6 raw sockets get their checksum from
            // the kernel; an ICMPv4 raw socket must carry its own.
            let c = checksum(&b);
            b[2..4].copy_from_slice(&c.to_be_bytes());
        }
        let (ss, len) = sockaddr(self.to);
        // SAFETY: b and ss are live for the call.
        let r = unsafe {
            libc::sendto(
                self.fd.as_raw_fd(),
                b.as_ptr().cast(),
                b.len(),
                0,
                (&ss as *const libc::sockaddr_storage).cast(),
                len,
            )
        };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Discards whatever has arrived (echo replies; a raw socket also sees
    /// other ICMP), so the receive queue never fills.
    pub fn drain(&self) {
        let mut buf = [0u8; 2048];
        // SAFETY: buf is live; the socket is non-blocking.
        while unsafe { libc::recv(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) } > 0
        {
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn checksum_matches_rfc1071_example() {
        // RFC 1071 §3: 0001 f203 f4f5 f6f7 sums to ddf2; checksum is !ddf2.
        let b = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(super::checksum(&b), !0xddf2);
    }
}
