//! The records' frames give the same flow records as the whole frames:
//! the flow table (and so classification) on an analysis node sees what a
//! local run sees. Checked over every capture of `pcap-apps`.

use std::path::{Path, PathBuf};

use flow::{FlowConfig, FlowRecord, FlowTable};
use transport::{BatchWriter, Encoder, Message};

fn captures() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/pcap-apps");
    let mut out = Vec::new();
    let mut stack = vec![root];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "pcap" || x == "pcapng") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

fn flows_of(frames: &[(u64, u32, u32, Vec<u8>)]) -> Vec<FlowRecord> {
    let mut t = FlowTable::new(FlowConfig::default());
    let mut out = Vec::new();
    for (ts, wire, lt, data) in frames {
        let pkt = decode::decode(capture::LinkType(*lt), data);
        t.process(&pkt, *ts, *wire, &mut |r| out.push(r));
    }
    t.flush(&mut |r| out.push(r));
    out.sort_by_key(|r| (r.start_ns, r.src, r.src_port, r.dst, r.dst_port, r.protocol));
    out
}

#[test]
fn trimmed_records_give_the_flow_records_of_whole_frames() {
    let caps = captures();
    if caps.is_empty() {
        assert!(
            std::env::var_os("CI").is_none(),
            "../shared/data/pcap-apps is missing"
        );
        eprintln!("skipped: ../shared/data/pcap-apps is missing");
        return;
    }
    let (mut bytes_whole, mut bytes_records, mut flows) = (0usize, 0usize, 0usize);
    for path in &caps {
        let mut reader = capture::CaptureReader::open(path.to_str().unwrap()).unwrap();
        let mut enc = Encoder::new(&FlowConfig::default(), flow::LocalNets::default());
        let mut whole = Vec::new();
        let mut trimmed = Vec::new();
        let mut batch = BatchWriter::default();
        batch.begin("t", 1, 0);
        while let Ok(Some(f)) = reader.next_frame() {
            whole.push((f.ts_ns, f.wire_len, f.linktype.0, f.data.to_vec()));
            bytes_whole += f.data.len();
            let r = enc.encode(&f);
            batch.push(&r);
        }
        let msg = batch.finish().to_vec();
        bytes_records += msg.len();
        let m = Message::parse(&msg).unwrap();
        for r in m.records() {
            trimmed.push((r.ts_ns, r.wire_len, r.linktype as u32, r.frame.to_vec()));
        }
        assert_eq!(trimmed.len(), whole.len());
        let a = flows_of(&whole);
        let b = flows_of(&trimmed);
        assert_eq!(a.len(), b.len(), "{}", path.display());
        for (x, y) in a.iter().zip(&b) {
            assert_eq!(x, y, "{}", path.display());
        }
        flows += a.len();
    }
    eprintln!(
        "{} captures, {flows} flows equal; records {:.1} MB for {:.1} MB of frames",
        caps.len(),
        bytes_records as f64 / 1e6,
        bytes_whole as f64 / 1e6
    );
}
