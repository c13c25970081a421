//! One frame: the first 2 bytes pick the link type (see
//! `common::linktype_from_selector`), the rest is the captured frame. It is
//! decoded, inspected and counted into flow tables (twice, the second time
//! later and with the wire length from the headers, to take the flow path
//! for an existing flow).
#![no_main]

use libfuzzer_sys::fuzz_target;

mod common;

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let linktype = common::linktype_from_selector([data[0], data[1]]);
    let frame = &data[2..];
    let pkt = common::decode_and_inspect(linktype, frame);
    let mut tables = common::Tables::new();
    tables.process(&pkt, 1_000_000_000, frame.len() as u32);
    tables.process(&pkt, 1_000_000_500, u32::MAX);
    tables.flush();
});
