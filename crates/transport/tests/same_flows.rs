//! The records' frames give the same flow records as the whole frames:
//! the flow table (and so classification) on an analysis node sees what a
//! local run sees. Checked over every capture of `pcap-apps` and of
//! `pcap-ndpi-more` (hundreds of protocols, damaged captures read up to
//! their damage): the whole frame is sent for exactly the payload packets
//! the table inspects, so any drift between `PayloadWindow` and the flow
//! table's rule shows here as a flow whose application fields differ.

use std::path::{Path, PathBuf};

use flow::{FlowConfig, FlowRecord, FlowTable};
use transport::{BatchWriter, Encoder, Message};

fn captures() -> Vec<PathBuf> {
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data");
    let mut out = Vec::new();
    let mut stack = vec![data.join("pcap-apps"), data.join("pcap-ndpi-more")];
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
    let mut differ = Vec::new();
    for path in &caps {
        // A file that is not a capture at all is another test's business.
        let Ok(mut reader) = capture::CaptureReader::open(path.to_str().unwrap()) else {
            continue;
        };
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
        if a.len() != b.len() {
            differ.push(format!(
                "{}: {} flows, {} from records",
                path.display(),
                a.len(),
                b.len()
            ));
            continue;
        }
        for (x, y) in a.iter().zip(&b) {
            if x != y {
                let fields: Vec<&str> = [
                    ("fwd", x.fwd != y.fwd),
                    ("bwd", x.bwd != y.bwd),
                    ("app", x.app != y.app),
                    ("first", x.first_sizes != y.first_sizes),
                    ("end", x.end_reason != y.end_reason),
                ]
                .into_iter()
                .filter(|f| f.1)
                .map(|f| f.0)
                .collect();
                differ.push(format!(
                    "{} flow {} {}:{} -> {}:{}: {fields:?}",
                    path.display(),
                    x.id,
                    x.src,
                    x.src_port,
                    x.dst,
                    x.dst_port
                ));
            }
        }
        flows += a.len();
    }
    assert!(
        differ.is_empty(),
        "{} flows differ:\n{}",
        differ.len(),
        differ.join("\n")
    );
    eprintln!(
        "{} captures, {flows} flows equal; records {:.1} MB for {:.1} MB of frames",
        caps.len(),
        bytes_records as f64 / 1e6,
        bytes_whole as f64 / 1e6
    );
}
