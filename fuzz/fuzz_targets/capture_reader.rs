//! Arbitrary bytes as a capture file (pcap, pcapng, or either behind gzip /
//! zstd magic): every frame is read, decoded, inspected and run through flow
//! tables. Must never panic, hang or allocate without bound.
#![no_main]

use libfuzzer_sys::fuzz_target;

mod common;

/// Stop after this many frames: a small compressed input can expand to
/// millions of tiny records, which is slow but not a bug.
const MAX_FRAMES: usize = 100_000;

fuzz_target!(|data: &[u8]| {
    let src = std::io::Cursor::new(data.to_vec());
    let mut reader = match capture::CaptureReader::new("fuzz", Box::new(src)) {
        Ok(r) => r,
        Err(e) => {
            std::hint::black_box(e.to_string());
            return;
        }
    };
    std::hint::black_box((reader.format(), reader.compression(), reader.first_linktype()));
    let mut tables = common::Tables::new();
    let mut n = 0;
    loop {
        match reader.next_frame() {
            Ok(Some(frame)) => {
                let pkt = common::decode_and_inspect(frame.linktype, frame.data);
                tables.process(&pkt, frame.ts_ns, frame.wire_len);
                n += 1;
                if n >= MAX_FRAMES {
                    break;
                }
            }
            Ok(None) => break,
            Err(e) => {
                std::hint::black_box((e.to_string(), e.packet()));
                break;
            }
        }
    }
    std::hint::black_box((reader.stats(), reader.offset()));
    tables.flush();
});
