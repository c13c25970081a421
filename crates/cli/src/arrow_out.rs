//! Flow records as an Arrow IPC file (Feather v2): columnar, typed, read
//! directly by pandas, polars, DuckDB and R's arrow package.

use std::io::Write;
use std::sync::Arc;

use arrow_array::builder::{
    Float64Builder, Int32Builder, ListBuilder, StringBuilder, TimestampNanosecondBuilder,
    UInt16Builder, UInt32Builder, UInt64Builder, UInt8Builder,
};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_ipc::writer::FileWriter;
use arrow_schema::{ArrowError, DataType, Field, Schema, TimeUnit};
use flow::{DirStats, FlowRecord};

/// Rows buffered per record batch.
const BATCH: usize = 65_536;

pub struct ArrowFlowWriter<W: Write> {
    writer: FileWriter<W>,
    schema: Arc<Schema>,
    rows: Vec<FlowRecord>,
}

fn schema() -> Schema {
    let ts = DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into()));
    let mut fields = vec![
        Field::new("id", DataType::UInt64, false),
        Field::new("start", ts.clone(), false),
        Field::new("end", ts, false),
        Field::new("proto", DataType::Utf8, false),
        Field::new("ip_version", DataType::UInt8, false),
        Field::new("src", DataType::Utf8, false),
        Field::new("src_port", DataType::UInt16, false),
        Field::new("dst", DataType::Utf8, false),
        Field::new("dst_port", DataType::UInt16, false),
        Field::new("vlan", DataType::UInt16, false),
        Field::new("tunnel", DataType::Utf8, true),
    ];
    for d in ["fwd", "bwd"] {
        for c in ["packets", "bytes", "ip_bytes", "payload_bytes"] {
            fields.push(Field::new(format!("{d}_{c}"), DataType::UInt64, false));
        }
        for q in ["size", "iat_us"] {
            for s in ["min", "mean", "max", "std"] {
                fields.push(Field::new(format!("{d}_{q}_{s}"), DataType::Float64, false));
            }
        }
        for flag in ["fin", "syn", "rst", "psh", "ack", "urg", "ece", "cwr"] {
            fields.push(Field::new(format!("{d}_{flag}"), DataType::UInt32, false));
        }
    }
    fields.push(Field::new("fragments", DataType::UInt64, false));
    for c in [
        "service",
        "app",
        "tls_sni",
        "tls_alpn",
        "dns_query",
        "dns_qtype",
        "http_method",
        "http_host",
        "quic_version",
        "ssh_banner",
        "end_reason",
    ] {
        fields.push(Field::new(c, DataType::Utf8, c != "end_reason"));
    }
    fields.push(Field::new(
        "first_sizes",
        DataType::List(Arc::new(Field::new("item", DataType::Int32, true))),
        false,
    ));
    fields.push(Field::new(
        "first_iats_us",
        DataType::List(Arc::new(Field::new("item", DataType::Float64, true))),
        false,
    ));
    for c in [
        "http_path",
        "http_content_type",
        "tls_cert_name",
        "protocols",
    ] {
        fields.push(Field::new(c, DataType::Utf8, true));
    }
    Schema::new(fields)
}

impl<W: Write> ArrowFlowWriter<W> {
    pub fn new(out: W) -> Result<Self, ArrowError> {
        let schema = Arc::new(schema());
        Ok(ArrowFlowWriter {
            writer: FileWriter::try_new(out, &schema)?,
            schema,
            rows: Vec::with_capacity(1024),
        })
    }

    pub fn push(&mut self, r: FlowRecord) -> Result<(), ArrowError> {
        self.rows.push(r);
        if self.rows.len() >= BATCH {
            self.write_batch()?;
        }
        Ok(())
    }

    pub fn finish(mut self) -> Result<(), ArrowError> {
        self.write_batch()?;
        self.writer.finish()
    }

    fn write_batch(&mut self) -> Result<(), ArrowError> {
        if self.rows.is_empty() {
            return Ok(());
        }
        let rows = std::mem::take(&mut self.rows);
        let n = rows.len();
        let u64col = |f: &dyn Fn(&FlowRecord) -> u64| -> ArrayRef {
            let mut b = UInt64Builder::with_capacity(n);
            rows.iter().for_each(|r| b.append_value(f(r)));
            Arc::new(b.finish())
        };
        let u16col = |f: &dyn Fn(&FlowRecord) -> u16| -> ArrayRef {
            let mut b = UInt16Builder::with_capacity(n);
            rows.iter().for_each(|r| b.append_value(f(r)));
            Arc::new(b.finish())
        };
        let strcol = |f: &dyn Fn(&FlowRecord) -> Option<String>| -> ArrayRef {
            let mut b = StringBuilder::new();
            rows.iter().for_each(|r| b.append_option(f(r)));
            Arc::new(b.finish())
        };
        let f64col = |f: &dyn Fn(&FlowRecord) -> f64| -> ArrayRef {
            let mut b = Float64Builder::with_capacity(n);
            rows.iter().for_each(|r| b.append_value(f(r)));
            Arc::new(b.finish())
        };
        let tscol = |f: &dyn Fn(&FlowRecord) -> u64| -> ArrayRef {
            let mut b = TimestampNanosecondBuilder::with_capacity(n).with_timezone("UTC");
            rows.iter().for_each(|r| b.append_value(f(r) as i64));
            Arc::new(b.finish())
        };
        let mut cols: Vec<ArrayRef> = vec![
            u64col(&|r| r.id),
            tscol(&|r| r.start_ns),
            tscol(&|r| r.end_ns),
            strcol(&|r| Some(decode::protocol_name(r.protocol).to_string())),
            {
                let mut b = UInt8Builder::with_capacity(n);
                rows.iter().for_each(|r| b.append_value(r.ip_version));
                Arc::new(b.finish())
            },
            strcol(&|r| Some(r.src.to_string())),
            u16col(&|r| r.src_port),
            strcol(&|r| Some(r.dst.to_string())),
            u16col(&|r| r.dst_port),
            u16col(&|r| r.vlan),
            strcol(&|r| r.tunnel.map(str::to_string)),
        ];
        let dirs: [fn(&FlowRecord) -> &DirStats; 2] = [|r| &r.fwd, |r| &r.bwd];
        for d in dirs {
            cols.push(u64col(&|r| d(r).packets));
            cols.push(u64col(&|r| d(r).bytes));
            cols.push(u64col(&|r| d(r).ip_bytes));
            cols.push(u64col(&|r| d(r).payload_bytes));
            let stats: [fn(&DirStats) -> &flow::Stat; 2] = [|s| &s.size, |s| &s.iat_us];
            for q in stats {
                cols.push(f64col(&|r| q(d(r)).min));
                cols.push(f64col(&|r| q(d(r)).mean));
                cols.push(f64col(&|r| q(d(r)).max));
                cols.push(f64col(&|r| q(d(r)).std));
            }
            for bit in 0..8 {
                let mut b = UInt32Builder::with_capacity(n);
                rows.iter()
                    .for_each(|r| b.append_value(d(r).tcp_flags[bit]));
                cols.push(Arc::new(b.finish()));
            }
        }
        cols.push(u64col(&|r| r.fragments));
        cols.push(strcol(&|r| r.app.service.map(str::to_string)));
        cols.push(strcol(&|r| r.app.detected.map(str::to_string)));
        cols.push(strcol(&|r| r.app.tls_sni.clone()));
        cols.push(strcol(&|r| r.app.tls_alpn.clone()));
        cols.push(strcol(&|r| r.app.dns_query.clone()));
        cols.push(strcol(&|r| r.app.dns_qtype.map(str::to_string)));
        cols.push(strcol(&|r| r.app.http_method.clone()));
        cols.push(strcol(&|r| r.app.http_host.clone()));
        cols.push(strcol(&|r| r.app.quic_version.clone()));
        cols.push(strcol(&|r| r.app.ssh_banner.clone()));
        cols.push(strcol(&|r| Some(r.end_reason.as_str().to_string())));
        let mut sizes = ListBuilder::new(Int32Builder::new());
        let mut iats = ListBuilder::new(Float64Builder::new());
        for r in &rows {
            for (s, d) in r.first_sizes.iter().zip(&r.first_dirs) {
                sizes.values().append_value(*s as i32 * *d as i32);
            }
            sizes.append(true);
            for v in &r.first_iats_us {
                iats.values().append_value(*v);
            }
            iats.append(true);
        }
        cols.push(Arc::new(sizes.finish()));
        cols.push(Arc::new(iats.finish()));
        cols.push(strcol(&|r| r.app.http_path.clone()));
        cols.push(strcol(&|r| r.app.http_content_type.clone()));
        cols.push(strcol(&|r| r.app.tls_cert_name.clone()));
        cols.push(strcol(&|r| {
            (r.app.protocols != 0).then(|| flow::AppInfo::protocols_joined(r.app.protocols))
        }));
        let batch = RecordBatch::try_new(self.schema.clone(), cols)?;
        self.writer.write(&batch)
    }
}
