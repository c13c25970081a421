//! The AF_PACKET socket, its TPACKET_V3 ring and the stop handle.

use std::ffi::CString;
use std::io;
use std::mem::{size_of, MaybeUninit};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::sys::*;
use crate::{bpf, filter};
use crate::{
    timeout_ms, BpfInsn, CookedHeader, Frame, LiveConfig, LiveError, LiveStats, PacketType,
    DEFAULT_SNAPLEN, LINKTYPE_ETHERNET, LINKTYPE_IEEE802_11_RADIOTAP, LINKTYPE_RAW, SLL2_HDR_LEN,
};

/// Length of an 802.1Q tag (TPID and TCI) put back into a frame.
const VLAN_TAG_LEN: usize = 4;

/// What the kernel always leaves in front of the network header of a
/// `SOCK_DGRAM` packet (`tpacket_rcv`: `TPACKET_ALIGN(tp_hdrlen) + 16 +
/// tp_reserve`), beyond `TPACKET3_HDRLEN`, without the reserve.
const DGRAM_ROOM: usize = 16;

/// Room asked of the kernel in front of each packet (`PACKET_RESERVE`) so a
/// stripped VLAN tag can be put back in place and, for cooked captures, the
/// synthesised header fits in front of the network header as well.
fn packet_reserve(cooked: Option<CookedHeader>) -> usize {
    VLAN_TAG_LEN + cooked.map_or(0, |h| h.header_len().saturating_sub(DGRAM_ROOM))
}

/// Where a VLAN tag the kernel moved out of the packet goes back in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum VlanInsert {
    /// TPID and TCI go in front of the type field at this offset, which
    /// moves 4 bytes on (Ethernet: 12, after the MAC addresses; SLL v1: 14,
    /// the protocol field, as libpcap does).
    BeforeType(usize),
    /// SLL2 (libpcap drops the tag here): the protocol field at offset 0
    /// becomes the TPID, and the TCI and the original protocol go right
    /// after the 20-byte header, the 802.1Q layout that follows an
    /// EtherType, so decoders see protocol 0x8100 and then the tag.
    Sll2,
}

/// Stops a [`LiveCapture`] from another thread or a signal handler.
///
/// `stop` is an atomic store plus one `write(2)` to an eventfd, both
/// async-signal-safe, and wakes a `next_batch` blocked in `poll`.
#[derive(Clone, Debug)]
pub struct StopHandle {
    inner: Arc<StopInner>,
}

#[derive(Debug)]
struct StopInner {
    stopped: AtomicBool,
    efd: OwnedFd,
}

impl StopHandle {
    fn new() -> io::Result<StopHandle> {
        // SAFETY: eventfd takes no pointers; a negative return is an error.
        let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` is a freshly created descriptor that nothing else owns.
        let efd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(StopHandle {
            inner: Arc::new(StopInner {
                stopped: AtomicBool::new(false),
                efd,
            }),
        })
    }

    /// Asks the capture to stop: the current or next `next_batch` returns
    /// after handing out what is already in the ring, without blocking.
    pub fn stop(&self) {
        self.inner.stopped.store(true, Ordering::SeqCst);
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from a live u64 to an eventfd we own; the
        // result is ignored (the counter can only saturate, which still wakes).
        unsafe {
            libc::write(
                self.inner.efd.as_raw_fd(),
                (&one as *const u64).cast(),
                size_of::<u64>(),
            );
        }
    }

    /// Whether `stop` has been called.
    pub fn is_stopped(&self) -> bool {
        self.inner.stopped.load(Ordering::SeqCst)
    }
}

/// A live capture on one interface (or `any`).
#[derive(Debug)]
pub struct LiveCapture {
    fd: OwnedFd,
    ring: *mut u8,
    ring_len: usize,
    block_size: usize,
    block_count: usize,
    cur: usize,
    iface: String,
    linktype: u32,
    /// The synthesised header, for cooked (`SOCK_DGRAM`) captures.
    cooked: Option<CookedHeader>,
    /// Where a re-inserted VLAN tag goes, if the link type has a place.
    vlan_insert: Option<VlanInsert>,
    snaplen: u32,
    /// Outgoing packets on this interface are dropped (loopback duplicates).
    lo_ifindex: Option<i32>,
    block_timeout_ms: u32,
    /// A filter run here instead of in the kernel (cooked-header loads the
    /// kernel cannot provide), on the frame as handed out.
    user_filter: Option<Vec<BpfInsn>>,
    stop: StopHandle,
    stats: LiveStats,
}

// SAFETY: the ring pointer refers to a mapping owned by this value (shared
// only with the kernel, synchronised through block_status); nothing else in
// the process aliases it, so moving the capture to another thread is sound.
// It is not `Sync` (next_batch needs `&mut self`).
unsafe impl Send for LiveCapture {}

fn errno(e: &io::Error) -> i32 {
    e.raw_os_error().unwrap_or(0)
}

fn set_opt<T>(fd: RawFd, level: i32, name: i32, val: &T) -> io::Result<()> {
    // SAFETY: passes a pointer to a live `T` and its exact size.
    let r = unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (val as *const T).cast(),
            size_of::<T>() as libc::socklen_t,
        )
    };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

fn get_opt<T: Copy>(fd: RawFd, level: i32, name: i32) -> io::Result<T> {
    let mut val = MaybeUninit::<T>::zeroed();
    let mut len = size_of::<T>() as libc::socklen_t;
    // SAFETY: the kernel writes at most `len` bytes into `val`, which is
    // zero-initialised, and every T used here is plain integers.
    let r = unsafe { libc::getsockopt(fd, level, name, val.as_mut_ptr().cast(), &mut len) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: zero-initialised plain-integer struct, partly overwritten.
    Ok(unsafe { val.assume_init() })
}

fn packet_socket(kind: i32) -> io::Result<OwnedFd> {
    // SAFETY: plain syscall; protocol 0 means the socket receives nothing
    // until bind() names a protocol, so no packet arrives before the filter.
    let fd = unsafe { libc::socket(libc::AF_PACKET, kind | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: freshly created descriptor owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn if_ioctl(fd: RawFd, name: &str, req: libc::c_ulong) -> io::Result<IfReq> {
    let mut ifr = IfReq {
        name: [0; IFNAMSIZ],
        data: [0; 3],
    };
    for (d, s) in ifr.name.iter_mut().zip(name.bytes().take(IFNAMSIZ - 1)) {
        *d = s as libc::c_char;
    }
    // SAFETY: `ifr` is at least as large as the kernel's `struct ifreq` and
    // outlives the call; SIOCGIF* ioctls only read the name and write the union.
    let r = unsafe { libc::ioctl(fd, req as _, &mut ifr as *mut IfReq) };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ifr)
    }
}

fn ifreq_u16(ifr: &IfReq, at: usize) -> u16 {
    let b = ifr.data[0].to_ne_bytes();
    u16::from_ne_bytes([b[at], b[at + 1]])
}

fn name_to_index(name: &str) -> Option<i32> {
    let c = CString::new(name).ok()?;
    // SAFETY: `c` is a valid NUL-terminated string.
    let idx = unsafe { libc::if_nametoindex(c.as_ptr()) };
    (idx != 0).then_some(idx as i32)
}

fn page_size() -> usize {
    // SAFETY: sysconf has no memory-safety preconditions.
    let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if p > 0 {
        p as usize
    } else {
        4096
    }
}

#[inline]
fn rd_u32(b: &[u8], at: usize) -> u32 {
    u32::from_ne_bytes(b[at..at + 4].try_into().unwrap())
}

#[inline]
fn rd_u16(b: &[u8], at: usize) -> u16 {
    u16::from_ne_bytes(b[at..at + 2].try_into().unwrap())
}

impl LiveCapture {
    /// Opens a capture as configured. Packets start arriving in the ring
    /// immediately; read them with [`next_batch`](Self::next_batch).
    pub fn open(cfg: &LiveConfig) -> Result<LiveCapture, LiveError> {
        let iface = cfg.interface.clone();
        let snaplen = cfg.effective_snaplen();
        let any = iface == "any";
        let io_err = |what: &'static str, source: io::Error| LiveError::Io {
            what,
            iface: iface.clone(),
            source,
        };

        // Validate the ring before touching the system.
        let page = page_size();
        let bs = cfg.block_size as usize;
        if bs == 0 || !bs.is_multiple_of(page) {
            return Err(LiveError::InvalidConfig {
                setting: "block_size",
                reason: format!("{bs} is not a positive multiple of the page size ({page})"),
            });
        }
        let per_packet = BLK_HDR_LEN
            + tpacket_align(TPACKET3_HDRLEN + DGRAM_ROOM)
            + packet_reserve(Some(cfg.cooked_header))
            + 64;
        if snaplen as usize + per_packet > bs {
            let need = (snaplen as usize + per_packet).div_ceil(page) * page;
            return Err(LiveError::InvalidConfig {
                setting: "block_size",
                reason: format!(
                    "{bs} bytes cannot hold one packet of snaplen {snaplen}; use at least {need}"
                ),
            });
        }
        if cfg.block_count == 0 {
            return Err(LiveError::InvalidConfig {
                setting: "block_count",
                reason: "must be at least 1".into(),
            });
        }
        const FRAME_SIZE: usize = 2048;
        let frames = (bs / FRAME_SIZE) as u64 * u64::from(cfg.block_count);
        let ring_len = bs
            .checked_mul(cfg.block_count as usize)
            .filter(|_| frames <= u64::from(u32::MAX))
            .ok_or_else(|| LiveError::InvalidConfig {
                setting: "block_count",
                reason: format!("a ring of {} x {bs} bytes is too large", cfg.block_count),
            })?;

        // Resolve the interface first: that needs no privilege.
        let ifindex = if any {
            0
        } else {
            if iface.is_empty() || iface.len() >= IFNAMSIZ || iface.contains('\0') {
                return Err(LiveError::NoSuchInterface(iface));
            }
            name_to_index(&iface).ok_or_else(|| LiveError::NoSuchInterface(iface.clone()))?
        };

        let denied = |e: &io::Error| matches!(errno(e), libc::EPERM | libc::EACCES);
        let mut fd = packet_socket(libc::SOCK_RAW).map_err(|e| {
            if denied(&e) {
                LiveError::PermissionDenied(iface.clone())
            } else {
                io_err("creating the AF_PACKET socket", e)
            }
        })?;

        let mut hatype = 0u16;
        if !any {
            let ifr = if_ioctl(fd.as_raw_fd(), &iface, SIOCGIFHWADDR).map_err(|e| {
                if errno(&e) == libc::ENODEV {
                    LiveError::NoSuchInterface(iface.clone())
                } else {
                    io_err("reading the hardware type (SIOCGIFHWADDR)", e)
                }
            })?;
            hatype = ifreq_u16(&ifr, 0);
            let ifr = if_ioctl(fd.as_raw_fd(), &iface, SIOCGIFFLAGS).map_err(|e| {
                if errno(&e) == libc::ENODEV {
                    LiveError::NoSuchInterface(iface.clone())
                } else {
                    io_err("reading the interface flags (SIOCGIFFLAGS)", e)
                }
            })?;
            if i32::from(ifreq_u16(&ifr, 0)) & libc::IFF_UP == 0 {
                return Err(LiveError::InterfaceDown(iface));
            }
        }

        let cooked_hdr = cfg.cooked_header;
        let cooked_choice = (
            cooked_hdr.linktype(),
            Some(cooked_hdr),
            Some(match cooked_hdr {
                CookedHeader::Sll2 => VlanInsert::Sll2,
                CookedHeader::Sll => VlanInsert::BeforeType(14),
            }),
        );
        let (linktype, cooked, vlan_insert) = if any {
            cooked_choice
        } else {
            match hatype {
                ARPHRD_ETHER | ARPHRD_LOOPBACK => {
                    (LINKTYPE_ETHERNET, None, Some(VlanInsert::BeforeType(12)))
                }
                ARPHRD_NONE | ARPHRD_RAWIP => (LINKTYPE_RAW, None, None),
                ARPHRD_IEEE80211_RADIOTAP => (LINKTYPE_IEEE802_11_RADIOTAP, None, None),
                // Anything else: let the kernel strip the link header and
                // describe it in a cooked header, which works for every type.
                _ => cooked_choice,
            }
        };
        if cooked.is_some() {
            fd = packet_socket(libc::SOCK_DGRAM)
                .map_err(|e| io_err("creating the AF_PACKET socket", e))?;
        }
        let raw = fd.as_raw_fd();

        set_opt(raw, SOL_PACKET, PACKET_VERSION, &TPACKET_V3).map_err(|source| {
            LiveError::Ring {
                setting: "PACKET_VERSION=TPACKET_V3".into(),
                hint: "TPACKET_V3 needs Linux 3.2 or later",
                source,
            }
        })?;
        let reserve = packet_reserve(cooked);
        set_opt(raw, SOL_PACKET, PACKET_RESERVE, &(reserve as u32)).map_err(|source| {
            LiveError::Ring {
                setting: format!("PACKET_RESERVE={reserve}"),
                hint: "the kernel refused header room for VLAN tags",
                source,
            }
        })?;

        // Loopback: the kernel delivers every packet twice (transmit tap as
        // PACKET_OUTGOING, then receive as PACKET_HOST). Drop the outgoing
        // copy in the kernel when capturing on lo (Linux 4.20+), and in user
        // space otherwise (older kernels, `any`).
        let lo_ifindex = if any {
            name_to_index("lo")
        } else if hatype == ARPHRD_LOOPBACK {
            let _ = set_opt(raw, SOL_PACKET, PACKET_IGNORE_OUTGOING, &1i32);
            Some(ifindex)
        } else {
            None
        };

        let mut cap = LiveCapture {
            fd,
            ring: std::ptr::null_mut(),
            ring_len: 0,
            block_size: bs,
            block_count: cfg.block_count as usize,
            cur: 0,
            iface: iface.clone(),
            linktype,
            cooked,
            vlan_insert,
            snaplen,
            lo_ifindex,
            block_timeout_ms: cfg.block_timeout_ms,
            user_filter: None,
            stop: StopHandle::new().map_err(|e| io_err("creating the stop eventfd", e))?,
            stats: LiveStats::default(),
        };

        // The filter goes on before bind(): no unfiltered packet can enter.
        cap.attach(cfg.filter.as_deref())?;

        let req = TpacketReq3 {
            tp_block_size: cfg.block_size,
            tp_block_nr: cfg.block_count,
            tp_frame_size: FRAME_SIZE as u32,
            tp_frame_nr: frames as u32,
            tp_retire_blk_tov: cfg.block_timeout_ms,
            tp_sizeof_priv: 0,
            tp_feature_req_word: 0,
        };
        set_opt(raw, SOL_PACKET, PACKET_RX_RING, &req).map_err(|source| {
            let hint = if errno(&source) == libc::ENOMEM {
                "not enough kernel memory: lower block_count or block_size"
            } else {
                "block_size must be a multiple of the page size and block_count at least 1"
            };
            LiveError::Ring {
                setting: format!(
                    "block_size={} block_count={} block_timeout_ms={}",
                    cfg.block_size, cfg.block_count, cfg.block_timeout_ms
                ),
                hint,
                source,
            }
        })?;

        // SAFETY: maps the ring the kernel just allocated for this socket;
        // the length is exactly block_size * block_count.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                ring_len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                raw,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(LiveError::Ring {
                setting: format!("mmap of {ring_len} bytes"),
                hint: "lower block_count or block_size, or raise the address-space limit",
                source: io::Error::last_os_error(),
            });
        }
        cap.ring = p.cast();
        cap.ring_len = ring_len;

        // SAFETY: all-zero is a valid sockaddr_ll.
        let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_protocol = (libc::ETH_P_ALL as u16).to_be();
        sll.sll_ifindex = ifindex;
        // SAFETY: passes a live sockaddr_ll and its size.
        let r = unsafe {
            libc::bind(
                raw,
                (&sll as *const libc::sockaddr_ll).cast(),
                size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if r < 0 {
            let e = io::Error::last_os_error();
            return Err(match errno(&e) {
                libc::ENODEV | libc::ENXIO => LiveError::NoSuchInterface(iface),
                libc::ENETDOWN => LiveError::InterfaceDown(iface),
                _ => io_err("binding to the interface", e),
            });
        }
        // bind() on an interface that just went down succeeds but leaves
        // ENETDOWN pending.
        if let Ok(err) = get_opt::<i32>(raw, libc::SOL_SOCKET, libc::SO_ERROR) {
            if err == libc::ENETDOWN {
                return Err(LiveError::InterfaceDown(iface));
            } else if err != 0 {
                return Err(io_err(
                    "binding to the interface",
                    io::Error::from_raw_os_error(err),
                ));
            }
        }

        if cfg.promiscuous && !any {
            let mreq = PacketMreq {
                mr_ifindex: ifindex,
                mr_type: PACKET_MR_PROMISC,
                ..PacketMreq::default()
            };
            set_opt(raw, SOL_PACKET, PACKET_ADD_MEMBERSHIP, &mreq)
                .map_err(|e| io_err("enabling promiscuous mode", e))?;
        }
        Ok(cap)
    }

    /// The pcap link type of the frames handed out.
    pub fn linktype(&self) -> u32 {
        self.linktype
    }

    /// Effective snapshot length (bytes kept per frame).
    pub fn snaplen(&self) -> u32 {
        self.snaplen
    }

    /// Interface name as configured.
    pub fn interface(&self) -> &str {
        &self.iface
    }

    /// A handle that stops this capture from another thread or a signal
    /// handler.
    pub fn stop_handle(&self) -> StopHandle {
        self.stop.clone()
    }

    /// Whether the capture was asked to stop.
    pub fn is_stopped(&self) -> bool {
        self.stop.is_stopped()
    }

    /// Waits up to `timeout` for packets, then calls `f` for every frame in
    /// every ready block (frames borrow the ring: no copy) and returns the
    /// blocks to the kernel. Returns the number of frames handed to `f`;
    /// 0 on timeout, on `EINTR`, or once stopped (check
    /// [`is_stopped`](Self::is_stopped)). After a stop it never blocks but
    /// still hands out what the ring holds.
    pub fn next_batch(
        &mut self,
        timeout: Duration,
        f: &mut dyn FnMut(Frame<'_>),
    ) -> Result<usize, LiveError> {
        let (mut n, blocks) = self.drain(f);
        if blocks > 0 || self.is_stopped() {
            return Ok(n);
        }
        let mut fds = [
            libc::pollfd {
                fd: self.fd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: self.stop.inner.efd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        // SAFETY: `fds` is a live array of two pollfd structures.
        let r = unsafe { libc::poll(fds.as_mut_ptr(), 2, timeout_ms(timeout)) };
        if r < 0 {
            let e = io::Error::last_os_error();
            if errno(&e) == libc::EINTR {
                return Ok(0);
            }
            return Err(LiveError::Io {
                what: "poll",
                iface: self.iface.clone(),
                source: e,
            });
        }
        n += self.drain(f).0;
        if fds[0].revents & libc::POLLERR != 0 {
            let err = get_opt::<i32>(self.fd.as_raw_fd(), libc::SOL_SOCKET, libc::SO_ERROR)
                .unwrap_or(libc::EIO);
            if err == libc::ENETDOWN {
                return Err(LiveError::InterfaceWentDown(self.iface.clone()));
            } else if err != 0 {
                return Err(LiveError::Io {
                    what: "capturing",
                    iface: self.iface.clone(),
                    source: io::Error::from_raw_os_error(err),
                });
            }
        }
        Ok(n)
    }

    /// Running totals of the kernel's counters (`PACKET_STATISTICS` resets
    /// on every read, so they are accumulated here).
    pub fn stats(&mut self) -> LiveStats {
        if let Ok(s) = get_opt::<TpacketStatsV3>(self.fd.as_raw_fd(), SOL_PACKET, PACKET_STATISTICS)
        {
            self.stats.received += u64::from(s.tp_packets);
            self.stats.dropped += u64::from(s.tp_drops);
            self.stats.freeze_queue += u64::from(s.tp_freeze_q_cnt);
        }
        self.stats
    }

    /// Replaces the filter on a running capture (`None`: accept all). A
    /// reject-all filter goes on first and everything already captured is
    /// discarded (waiting one block timeout for the kernel to hand over its
    /// partly filled block), so no packet that the new filter would reject
    /// is delivered afterwards.
    pub fn set_filter(&mut self, filter: Option<&[BpfInsn]>) -> Result<(), LiveError> {
        self.attach_raw(&[filter::ret(0)], 1)?;
        let wait = Duration::from_millis(
            u64::from(if self.block_timeout_ms == 0 {
                100
            } else {
                self.block_timeout_ms
            }) + 20,
        );
        loop {
            while self.block_ready(self.cur) {
                self.release(self.cur);
                self.cur = (self.cur + 1) % self.block_count;
            }
            let mut pfd = libc::pollfd {
                fd: self.fd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one live pollfd.
            let r = unsafe { libc::poll(&mut pfd, 1, timeout_ms(wait)) };
            if r == 0 && !self.block_ready(self.cur) {
                break;
            }
            if r < 0 && errno(&io::Error::last_os_error()) != libc::EINTR {
                break;
            }
        }
        self.attach(filter)
    }

    fn attach(&mut self, filter: Option<&[BpfInsn]>) -> Result<(), LiveError> {
        // The kernel counts from the network header: the synthesised cooked
        // header is not part of what it copies.
        let kernel_snap = match self.cooked {
            Some(h) => self.snaplen.saturating_sub(h.header_len() as u32).max(1),
            None => self.snaplen,
        };
        self.user_filter = None;
        match filter {
            Some(prog) => match filter::prepare(prog, self.cooked, kernel_snap) {
                Ok(fixed) => self.attach_raw(&fixed, prog.len()),
                Err(e) if e.user_space_ok() => {
                    // Like libpcap: run it in user space on the cooked frame.
                    // The kernel then passes whole packets (no snapshot cut,
                    // the filter may look past it).
                    bpf::validate(prog).map_err(|reason| LiveError::FilterUnsupported {
                        iface: self.iface.clone(),
                        reason,
                    })?;
                    self.detach()?;
                    self.user_filter = Some(prog.to_vec());
                    Ok(())
                }
                Err(e) => Err(LiveError::FilterUnsupported {
                    iface: self.iface.clone(),
                    reason: e.to_string(),
                }),
            },
            None if self.snaplen < DEFAULT_SNAPLEN => {
                self.attach_raw(&[filter::ret(kernel_snap)], 1)
            }
            None => self.detach(),
        }
    }

    fn detach(&mut self) -> Result<(), LiveError> {
        // The value is ignored, but the kernel wants an int's worth.
        match set_opt(
            self.fd.as_raw_fd(),
            libc::SOL_SOCKET,
            SO_DETACH_FILTER,
            &0i32,
        ) {
            Err(e) if errno(&e) != libc::ENOENT => Err(LiveError::Filter { len: 0, source: e }),
            _ => Ok(()),
        }
    }

    fn attach_raw(&mut self, prog: &[SockFilter], len: usize) -> Result<(), LiveError> {
        let fprog = SockFprog {
            len: prog.len() as u16,
            filter: prog.as_ptr(),
        };
        set_opt(
            self.fd.as_raw_fd(),
            libc::SOL_SOCKET,
            SO_ATTACH_FILTER,
            &fprog,
        )
        .map_err(|source| LiveError::Filter { len, source })
    }

    fn block_status(&self, i: usize) -> &AtomicU32 {
        debug_assert!(i < self.block_count);
        // SAFETY: block i lies inside the mapping and block_status is a
        // 4-byte aligned u32 at offset 8 of the block (blocks are page
        // aligned); the kernel updates it concurrently, hence atomic access.
        unsafe { AtomicU32::from_ptr(self.ring.add(i * self.block_size + BD_BLOCK_STATUS).cast()) }
    }

    fn block_ready(&self, i: usize) -> bool {
        self.block_status(i).load(Ordering::Acquire) & TP_STATUS_USER != 0
    }

    fn release(&self, i: usize) {
        self.block_status(i)
            .store(TP_STATUS_KERNEL, Ordering::Release);
    }

    /// Walks ready blocks (at most one lap). Returns (frames, blocks).
    fn drain(&mut self, f: &mut dyn FnMut(Frame<'_>)) -> (usize, usize) {
        let mut frames = 0;
        let mut blocks = 0;
        while blocks < self.block_count && self.block_ready(self.cur) {
            frames += self.walk_block(self.cur, f);
            self.release(self.cur);
            self.cur = (self.cur + 1) % self.block_count;
            blocks += 1;
        }
        self.stats.delivered += frames as u64;
        (frames, blocks)
    }

    fn walk_block(&mut self, i: usize, f: &mut dyn FnMut(Frame<'_>)) -> usize {
        let bs = self.block_size;
        // SAFETY: block i is inside the mapping; its status is TP_STATUS_USER
        // (checked with acquire ordering), so the kernel does not touch it
        // until `release`, and no other reference to it exists.
        let blk: &mut [u8] = unsafe { std::slice::from_raw_parts_mut(self.ring.add(i * bs), bs) };
        let num = rd_u32(blk, BD_NUM_PKTS);
        let mut off = rd_u32(blk, BD_OFFSET_TO_FIRST_PKT) as usize;
        let mut delivered = 0;
        for _ in 0..num {
            if off < BLK_HDR_LEN || off + TPACKET3_HDRLEN > bs {
                break;
            }
            let next = rd_u32(blk, off + TP_NEXT_OFFSET) as usize;
            let sec = rd_u32(blk, off + TP_SEC);
            let nsec = rd_u32(blk, off + TP_NSEC);
            let snap = rd_u32(blk, off + TP_SNAPLEN) as usize;
            let wire = rd_u32(blk, off + TP_LEN) as usize;
            let status = rd_u32(blk, off + TP_STATUS);
            let mac = rd_u16(blk, off + TP_MAC) as usize;
            let tci = rd_u32(blk, off + TP_VLAN_TCI) as u16;
            let tpid = rd_u16(blk, off + TP_VLAN_TPID);
            let sll = off + TP_SLL_OFFSET;
            let proto_be = [blk[sll + SLL_PROTOCOL], blk[sll + SLL_PROTOCOL + 1]];
            let ifindex = rd_u32(blk, sll + SLL_IFINDEX) as i32;
            let hatype = rd_u16(blk, sll + SLL_HATYPE);
            let pkttype = blk[sll + SLL_PKTTYPE];
            let halen = blk[sll + SLL_HALEN];
            let mut addr = [0u8; 8];
            addr.copy_from_slice(&blk[sll + SLL_ADDR..sll + SLL_ADDR + 8]);
            let hdr_end = off + TPACKET3_HDRLEN;

            let skip = pkttype == PACKET_OUTGOING && Some(ifindex) == self.lo_ifindex;
            let mut start = off + mac;
            let mut len = snap;
            let mut wire_len = wire;
            if !skip && start + len <= bs {
                let mut ok = true;
                if let Some(hdr) = self.cooked {
                    let hl = hdr.header_len();
                    if start >= hdr_end + hl {
                        start -= hl;
                        // The kernel leaves address bytes past halen as they
                        // were; zero them so the output is deterministic.
                        let alen = usize::from(halen).min(addr.len());
                        addr[alen..].fill(0);
                        let h = &mut blk[start..start + hl];
                        match hdr {
                            CookedHeader::Sll2 => {
                                h[0..2].copy_from_slice(&proto_be);
                                h[2..4].fill(0);
                                h[4..8].copy_from_slice(&(ifindex as u32).to_be_bytes());
                                h[8..10].copy_from_slice(&hatype.to_be_bytes());
                                h[10] = pkttype;
                                h[11] = halen;
                                h[12..20].copy_from_slice(&addr);
                            }
                            CookedHeader::Sll => {
                                h[0..2].copy_from_slice(&u16::from(pkttype).to_be_bytes());
                                h[2..4].copy_from_slice(&hatype.to_be_bytes());
                                h[4..6].copy_from_slice(&u16::from(halen).to_be_bytes());
                                h[6..14].copy_from_slice(&addr);
                                h[14..16].copy_from_slice(&proto_be);
                            }
                        }
                        len += hl;
                        wire_len += hl;
                    } else {
                        ok = false;
                    }
                }
                let vlan = tci != 0 || status & TP_STATUS_VLAN_VALID != 0;
                if let (true, true, Some(vi)) = (ok, vlan, self.vlan_insert) {
                    let at = match vi {
                        VlanInsert::BeforeType(o) => o,
                        VlanInsert::Sll2 => SLL2_HDR_LEN,
                    };
                    if start >= hdr_end + VLAN_TAG_LEN && len >= at {
                        let tpid = if status & TP_STATUS_VLAN_TPID_VALID != 0 {
                            tpid
                        } else {
                            0x8100
                        };
                        blk.copy_within(start..start + at, start - VLAN_TAG_LEN);
                        start -= VLAN_TAG_LEN;
                        let f = &mut blk[start..start + at + VLAN_TAG_LEN];
                        match vi {
                            VlanInsert::BeforeType(_) => {
                                f[at..at + 2].copy_from_slice(&tpid.to_be_bytes());
                                f[at + 2..at + 4].copy_from_slice(&tci.to_be_bytes());
                            }
                            VlanInsert::Sll2 => {
                                f[at..at + 2].copy_from_slice(&tci.to_be_bytes());
                                f.copy_within(0..2, at + 2);
                                f[0..2].copy_from_slice(&tpid.to_be_bytes());
                            }
                        }
                        len += VLAN_TAG_LEN;
                        wire_len += VLAN_TAG_LEN;
                    }
                }
                let mut keep = usize::MAX;
                if let (true, Some(prog)) = (ok, &self.user_filter) {
                    let meta = bpf::Meta {
                        protocol: u16::from_be_bytes(proto_be),
                        pkttype,
                        ifindex,
                        hatype,
                    };
                    keep =
                        bpf::run(prog, &blk[start..start + len], wire_len as u32, &meta) as usize;
                    ok = keep != 0;
                }
                if ok {
                    let caplen = len.min(self.snaplen as usize).min(keep);
                    f(Frame {
                        ts_ns: u64::from(sec) * 1_000_000_000 + u64::from(nsec),
                        caplen: caplen as u32,
                        wire_len: wire_len as u32,
                        data: &blk[start..start + caplen],
                        ifindex,
                        direction: PacketType::from_raw(pkttype).direction(),
                        pkt_type: PacketType::from_raw(pkttype),
                        protocol: u16::from_be_bytes(proto_be),
                    });
                    delivered += 1;
                }
            }
            if next == 0 {
                break;
            }
            off += next;
        }
        delivered
    }
}

impl AsRawFd for LiveCapture {
    /// The packet socket, readable when a block is ready (for external
    /// event loops; read frames with `next_batch(Duration::ZERO, ..)`).
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

impl Drop for LiveCapture {
    fn drop(&mut self) {
        if !self.ring.is_null() {
            // SAFETY: unmaps exactly the mapping created in `open`; no frame
            // borrows outlive `next_batch`, so nothing refers to it any more.
            unsafe { libc::munmap(self.ring.cast(), self.ring_len) };
        }
        // The socket closes with `fd`, which also drops promiscuous mode.
    }
}
