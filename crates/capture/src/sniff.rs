//! Says what a file that is not a capture looks like, so the error helps.

/// A short description of the content type of `head` (the first bytes of a
/// file), for "not a capture" messages.
pub fn describe_non_capture(head: &[u8]) -> String {
    if head.is_empty() {
        return "an empty file (0 bytes)".to_string();
    }
    let known: &[(&[u8], &str)] = &[
        (
            b"BZh",
            "bzip2-compressed data (decompress it first: bunzip2)",
        ),
        (
            &[0xfd, b'7', b'z', b'X', b'Z'],
            "xz-compressed data (decompress it first: unxz)",
        ),
        (b"PK\x03\x04", "a zip archive (unzip it first)"),
        (b"\x7fELF", "an ELF executable"),
        (b"\x89PNG", "a PNG image"),
        (b"%PDF", "a PDF document"),
        (
            b"snoop\0\0\0",
            "a Solaris snoop capture (convert it with editcap -F pcap)",
        ),
        (
            b"GMBU",
            "a Microsoft Network Monitor capture (convert it with editcap -F pcap)",
        ),
        (
            b"XCP\0",
            "a NetXray/Sniffer capture (convert it with editcap -F pcap)",
        ),
        (b"PAR1", "a Parquet file"),
        (b"SQLite format 3", "an SQLite database"),
    ];
    for (magic, what) in known {
        if head.starts_with(magic) {
            return what.to_string();
        }
    }
    let sample = &head[..head.len().min(512)];
    let printable = sample
        .iter()
        .filter(|&&c| c == b'\n' || c == b'\r' || c == b'\t' || (0x20..0x7f).contains(&c))
        .count();
    if printable * 100 >= sample.len() * 95 {
        let first_line: String = String::from_utf8_lossy(sample)
            .lines()
            .next()
            .unwrap_or("")
            .chars()
            .take(60)
            .collect();
        let kind = match sample.iter().find(|c| !c.is_ascii_whitespace()) {
            Some(b'{') | Some(b'[') => "JSON text",
            Some(b'<') => "XML/HTML text",
            _ => "text",
        };
        return format!("{kind} (first line: {first_line:?})");
    }
    let hex: Vec<String> = head.iter().take(8).map(|b| format!("{b:02x}")).collect();
    format!("unknown binary data (first bytes: {})", hex.join(" "))
}
