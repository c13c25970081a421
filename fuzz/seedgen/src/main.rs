//! Seed corpora for the fuzz targets.
//!
//! `seedgen CAPTURE_DIR CAPTURE_CORPUS DECODE_CORPUS`
//!
//! * For `capture_reader`: gzip- and zstd-compressed copies of the small
//!   captures in CAPTURE_DIR (the plain copies are made by seed.sh), so the
//!   decompression paths start with valid streams.
//! * For `decode_packet`: every distinct frame (up to 64 per capture, at
//!   most 16 KiB each) of a link type the target can select, written as the
//!   2-byte big-endian link type followed by the frame.

use std::collections::HashSet;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::io::Write;
use std::path::{Path, PathBuf};

const LINKTYPES: [u32; 11] = [1, 0, 108, 9, 50, 51, 101, 113, 228, 229, 276];
const MAX_FRAMES_PER_FILE: usize = 64;
const MAX_FRAME: usize = 16 << 10;
const MAX_COMPRESS_INPUT: u64 = 16 << 10;

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else { return };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            walk(&p, out);
        } else if p.is_file() {
            out.push(p);
        }
    }
}

fn hash(b: &[u8]) -> u64 {
    let mut h = DefaultHasher::new();
    b.hash(&mut h);
    h.finish()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 4 {
        eprintln!("usage: seedgen CAPTURE_DIR CAPTURE_CORPUS DECODE_CORPUS");
        std::process::exit(2);
    }
    let (src, cap_out, dec_out) = (Path::new(&args[1]), Path::new(&args[2]), Path::new(&args[3]));
    std::fs::create_dir_all(cap_out).expect("create capture corpus dir");
    std::fs::create_dir_all(dec_out).expect("create decode corpus dir");
    let mut files = Vec::new();
    walk(src, &mut files);
    files.sort();
    let mut seen = HashSet::new();
    let (mut frames, mut compressed) = (0usize, 0usize);
    for path in &files {
        let name: String = path
            .strip_prefix(src)
            .unwrap_or(path)
            .to_string_lossy()
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() || c == '.' || c == '-' { c } else { '_' })
            .collect();
        let Ok(bytes) = std::fs::read(path) else { continue };
        let Ok(mut reader) = capture::CaptureReader::new(&name, Box::new(std::io::Cursor::new(bytes.clone()))) else {
            continue; // not a capture (README etc.)
        };
        // Compressed variants of small plain captures.
        if reader.compression() == capture::Compression::None && bytes.len() as u64 <= MAX_COMPRESS_INPUT {
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            gz.write_all(&bytes).unwrap();
            std::fs::write(cap_out.join(format!("{name}.gz")), gz.finish().unwrap()).unwrap();
            let zst = ruzstd::encoding::compress_to_vec(&bytes[..], ruzstd::encoding::CompressionLevel::Fastest);
            std::fs::write(cap_out.join(format!("{name}.zst")), zst).unwrap();
            compressed += 2;
        }
        let mut n = 0;
        while let Ok(Some(frame)) = reader.next_frame() {
            if n >= MAX_FRAMES_PER_FILE {
                break;
            }
            if !LINKTYPES.contains(&frame.linktype.0) || frame.data.len() > MAX_FRAME {
                continue;
            }
            let mut seed = Vec::with_capacity(frame.data.len() + 2);
            seed.extend_from_slice(&(frame.linktype.0 as u16).to_be_bytes());
            seed.extend_from_slice(frame.data);
            if !seen.insert(hash(&seed)) {
                continue;
            }
            n += 1;
            frames += 1;
            std::fs::write(dec_out.join(format!("{name}-{}", frame.number)), &seed).unwrap();
        }
    }
    eprintln!("seedgen: {frames} frames for decode_packet, {compressed} compressed captures for capture_reader");
}
