//! Reader behaviour on real captures: truncation at every kind of offset,
//! compression, byte order, and what is said about files that are not captures.

use std::io::{Cursor, Write};
use std::path::{Path, PathBuf};

use capture::{CaptureError, CaptureReader, CaptureWriter, OutputFormat};

fn data() -> PathBuf {
    let d = std::env::var("TRAFFICSCOPE_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|_| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data"));
    assert!(d.is_dir(), "test data not found at {}", d.display());
    d
}

/// (ts_ns, wire_len, bytes) of every frame, or the error that stopped reading.
type Frames = Vec<(u64, u32, Vec<u8>)>;

fn read_all(name: &str, bytes: Vec<u8>) -> (Frames, Option<CaptureError>) {
    let mut out = Vec::new();
    let mut r = match CaptureReader::new(name, Box::new(Cursor::new(bytes))) {
        Ok(r) => r,
        Err(e) => return (out, Some(e)),
    };
    loop {
        match r.next_frame() {
            Ok(Some(f)) => out.push((f.ts_ns, f.wire_len, f.data.to_vec())),
            Ok(None) => return (out, None),
            Err(e) => return (out, Some(e)),
        }
    }
}

/// Record boundaries of a classic pcap file, walked independently of the reader:
/// end offset of each record.
fn pcap_boundaries(b: &[u8]) -> Vec<usize> {
    let be = b[0] == 0xa1;
    let rd = |o: usize| {
        let v = [b[o], b[o + 1], b[o + 2], b[o + 3]];
        if be {
            u32::from_be_bytes(v)
        } else {
            u32::from_le_bytes(v)
        }
    };
    let mut ends = Vec::new();
    let mut off = 24;
    while off + 16 <= b.len() {
        let caplen = rd(off + 8) as usize;
        off += 16 + caplen;
        ends.push(off);
    }
    ends
}

/// End offsets of the packet-carrying blocks (EPB, SPB, PB) of a pcapng file,
/// and of all blocks (where a cut is clean).
fn pcapng_packet_ends(b: &[u8]) -> (Vec<usize>, Vec<usize>) {
    let mut ends = Vec::new();
    let mut all = Vec::new();
    let mut off = 0;
    let mut be = false;
    while off + 12 <= b.len() {
        if b[off..off + 4] == [0x0a, 0x0d, 0x0d, 0x0a] {
            be = b[off + 8] == 0x1a;
        }
        let rd = |o: usize| {
            let v = [b[o], b[o + 1], b[o + 2], b[o + 3]];
            if be {
                u32::from_be_bytes(v)
            } else {
                u32::from_le_bytes(v)
            }
        };
        let btype = rd(off);
        let len = rd(off + 4) as usize;
        off += len;
        all.push(off);
        if matches!(btype, 2 | 3 | 6) {
            ends.push(off);
        }
    }
    (ends, all)
}

fn check_truncations(path: &Path, ends: &[usize], clean: &[usize]) {
    let full = std::fs::read(path).unwrap();
    let (all, err) = read_all("full", full.clone());
    assert!(err.is_none(), "{}: {err:?}", path.display());
    assert_eq!(all.len(), ends.len(), "{}", path.display());
    // Every byte offset in the first 2 KiB, then every boundary ±1 and a stride.
    let mut cuts: Vec<usize> = (1..full.len().min(2048)).collect();
    for &e in ends {
        cuts.extend([e.saturating_sub(1), e, e + 1]);
    }
    cuts.extend((0..full.len()).step_by(97));
    cuts.retain(|&c| c > 0 && c < full.len());
    cuts.sort_unstable();
    cuts.dedup();
    let header_len = if full[0] == 0x0a { 28 } else { 24 };
    for cut in cuts {
        let (got, err) = read_all("cut", full[..cut].to_vec());
        let complete = ends.iter().filter(|&&e| e <= cut).count();
        if cut < header_len {
            assert!(got.is_empty());
            assert!(err.is_some(), "cut {cut} inside the file header must fail");
            continue;
        }
        assert_eq!(
            got.len(),
            complete,
            "{} cut at {cut}: exactly the complete records must be read",
            path.display()
        );
        assert_eq!(
            &got[..],
            &all[..complete],
            "prefix records must be identical"
        );
        let at_boundary = clean.contains(&cut);
        match err {
            None => assert!(
                at_boundary,
                "{} cut at {cut}: missing truncation error",
                path.display()
            ),
            Some(CaptureError::Truncated { packet, offset, .. }) => {
                assert_eq!(packet, complete as u64 + 1, "cut {cut}: packet number");
                assert!(
                    offset as usize <= cut,
                    "cut {cut}: offset {offset} past the end"
                );
            }
            Some(other) => {
                // A cut inside a non-packet pcapng block may look corrupt; it
                // must still name a position inside the file.
                let msg = other.to_string();
                assert!(msg.contains("byte offset"), "cut {cut}: {msg}");
            }
        }
    }
}

#[test]
fn truncated_pcap_gives_exactly_the_prefix_and_a_located_error() {
    let d = data();
    for f in [
        "pcap-apps/ndpi/web/chrome.pcap",
        "pcap-edge/tcpdump/tcp-handshake-nano.pcap",
        "pcap-edge/tcpdump/pptp.pcap", // big-endian
        "pcap-apps/ndpi/voip-conferencing/sip.pcap",
    ] {
        let p = d.join(f);
        let ends = pcap_boundaries(&std::fs::read(&p).unwrap());
        let mut clean = ends.clone();
        clean.push(24);
        check_truncations(&p, &ends, &clean);
    }
}

#[test]
fn truncated_pcapng_gives_exactly_the_prefix_and_a_located_error() {
    let d = data();
    for f in [
        "pcap-apps/ndpi/video/dazn.pcapng",
        "pcap-edge/pcapng-test-generator/output_be/difficult/test202.pcapng",
        "pcap-edge/pcapng-test-generator/output_le/advanced/test102.pcapng",
        "pcap-apps/ndpi/voip-conferencing/rtp.pcapng",
    ] {
        let p = d.join(f);
        let (ends, clean) = pcapng_packet_ends(&std::fs::read(&p).unwrap());
        check_truncations(&p, &ends, &clean);
    }
}

#[test]
fn gzip_and_zstd_read_like_the_plain_file() {
    let p = data().join("pcap-apps/ndpi/video/dazn.pcapng");
    let plain = std::fs::read(&p).unwrap();
    let (frames, err) = read_all("plain", plain.clone());
    assert!(err.is_none());
    assert_eq!(frames.len(), 12);

    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&plain).unwrap();
    let (g, err) = read_all("x.gz", gz.finish().unwrap());
    assert!(err.is_none(), "{err:?}");
    assert_eq!(g, frames);

    let zs =
        ruzstd::encoding::compress_to_vec(&plain[..], ruzstd::encoding::CompressionLevel::Fastest);
    let (z, err) = read_all("x.zst", zs);
    assert!(err.is_none(), "{err:?}");
    assert_eq!(z, frames);

    // A truncated gzip stream: the prefix, then an error (never a hang).
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&plain).unwrap();
    let mut bytes = gz.finish().unwrap();
    bytes.truncate(bytes.len() / 2);
    let (g, err) = read_all("half.gz", bytes);
    assert!(err.is_some());
    assert!(g.len() < frames.len());
    assert_eq!(&g[..], &frames[..g.len()]);
}

#[test]
fn not_a_capture_says_what_it_looks_like() {
    let cases: [(&[u8], &str); 4] = [
        (b"{\"a\": 1}\n", "JSON text"),
        (b"hello world, this is text\n", "text"),
        (b"PK\x03\x04\x14\x00\x00\x00", "zip archive"),
        (b"", "empty file"),
    ];
    for (bytes, want) in cases {
        let Err(e) = CaptureReader::new("f", Box::new(Cursor::new(bytes.to_vec()))) else {
            panic!("{want}: accepted");
        };
        let msg = e.to_string();
        assert!(msg.contains("not a capture") && msg.contains(want), "{msg}");
    }
}

#[test]
fn written_pcap_and_pcapng_read_back_identically() {
    let p = data().join("pcap-apps/ndpi/web/chrome.pcap");
    let (frames, _) = read_all("in", std::fs::read(&p).unwrap());
    for format in [OutputFormat::Pcap, OutputFormat::PcapNg] {
        let mut w = CaptureWriter::new(Vec::new(), format, 0);
        for (ts, wl, data) in &frames {
            w.write_frame(*ts, *wl, capture::LinkType::ETHERNET, data)
                .unwrap();
        }
        let bytes = w.into_inner().unwrap();
        let (back, err) = read_all("out", bytes);
        assert!(err.is_none());
        assert_eq!(back, frames, "{format:?}");
    }
}

#[test]
fn a_lying_record_length_costs_no_memory_until_the_bytes_exist() {
    // pcap header + one record header claiming a 112 MiB packet, then EOF
    // (found by the capture_reader fuzz target).
    let mut f = vec![
        0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0, 1, 0, 0, 0,
    ];
    f.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 7, 0, 0, 0, 7]);
    let (frames, err) = read_all("lie.pcap", f);
    assert!(frames.is_empty());
    assert!(
        matches!(err, Some(CaptureError::Truncated { packet: 1, .. })),
        "{err:?}"
    );
    // The largest allocation of the whole test binary stays at the reader's
    // normal buffer size, far from the 112 MiB the header claimed.
    let largest = LARGEST.load(std::sync::atomic::Ordering::Relaxed);
    assert!(largest <= 8 << 20, "largest allocation {largest} bytes");
}

/// Records the largest single allocation, to check memory bounds without timing.
struct Tracking;
static LARGEST: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

// SAFETY: defers to the system allocator; only records sizes.
unsafe impl std::alloc::GlobalAlloc for Tracking {
    unsafe fn alloc(&self, l: std::alloc::Layout) -> *mut u8 {
        LARGEST.fetch_max(l.size(), std::sync::atomic::Ordering::Relaxed);
        unsafe { std::alloc::System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: std::alloc::Layout) {
        unsafe { std::alloc::System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: std::alloc::Layout, new: usize) -> *mut u8 {
        LARGEST.fetch_max(new, std::sync::atomic::Ordering::Relaxed);
        unsafe { std::alloc::System.realloc(p, l, new) }
    }
}

#[global_allocator]
static GLOBAL: Tracking = Tracking;
