//! Readers for plain series files. Gzip is detected by its magic bytes.
//!
//! * one value per line ([`read_values`]); an optional non-numeric title on
//!   the first line is skipped, `#` comments and blank lines are ignored;
//! * a column of a delimited file ([`read_csv_column`], `csv:COL` with COL a
//!   header name or a 1-based index; delimiter `,` `;` tab or whitespace);
//! * `time size` per line, e.g. Bellcore `.TL` files ([`read_time_size`]);
//! * inter-arrival times one per line ([`read_interarrivals`]), turned into
//!   arrival times t_0, t_0 + s_0, ...
pub use crate::binner::bin_events_secs;
use crate::error::InputError;
use flate2::read::MultiGzDecoder;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

/// Event times (seconds) and optional sizes (bytes).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Events {
    pub times: Vec<f64>,
    pub sizes: Option<Vec<f64>>,
}

fn io_err(path: &Path, source: std::io::Error) -> InputError {
    InputError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn parse_err(path: &Path, line: usize, msg: impl Into<String>) -> InputError {
    InputError::Parse {
        path: path.to_path_buf(),
        line,
        msg: msg.into(),
    }
}

/// Opens a text file, transparently decompressing gzip (magic 1f 8b).
pub fn open_text(path: &Path) -> Result<Box<dyn BufRead>, InputError> {
    let mut f = File::open(path).map_err(|e| io_err(path, e))?;
    let mut magic = [0u8; 2];
    let mut got = 0;
    while got < 2 {
        let k = f.read(&mut magic[got..]).map_err(|e| io_err(path, e))?;
        if k == 0 {
            break;
        }
        got += k;
    }
    let head = std::io::Cursor::new(magic[..got].to_vec());
    let chained = head.chain(f);
    if got == 2 && magic == [0x1f, 0x8b] {
        Ok(Box::new(BufReader::with_capacity(
            1 << 16,
            MultiGzDecoder::new(chained),
        )))
    } else {
        Ok(Box::new(BufReader::with_capacity(1 << 16, chained)))
    }
}

/// Iterates (1-based line number, trimmed line) over non-blank, non-comment
/// lines, reporting read errors (including corrupt gzip) with the path.
fn for_each_line(
    path: &Path,
    mut f: impl FnMut(usize, &str) -> Result<(), InputError>,
) -> Result<(), InputError> {
    let mut r = open_text(path)?;
    let mut buf = String::new();
    let mut line = 0;
    loop {
        buf.clear();
        let k = r.read_line(&mut buf).map_err(|e| io_err(path, e))?;
        if k == 0 {
            return Ok(());
        }
        line += 1;
        let t = buf.trim();
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        f(line, t)?;
    }
}

fn parse_f64(path: &Path, line: usize, field: &str, what: &str) -> Result<f64, InputError> {
    let v: f64 = field
        .parse()
        .map_err(|_| parse_err(path, line, format!("{what} {field:?} is not a number")))?;
    if !v.is_finite() {
        return Err(parse_err(
            path,
            line,
            format!("{what} {field:?} is not finite"),
        ));
    }
    Ok(v)
}

fn looks_like_title(s: &str) -> bool {
    s.chars().any(|c| c.is_ascii_alphabetic())
        && s.split_whitespace()
            .next()
            .is_some_and(|f| f.parse::<f64>().is_err())
}

fn non_empty(path: &Path, v: Vec<f64>) -> Result<Vec<f64>, InputError> {
    if v.is_empty() {
        Err(InputError::Invalid {
            path: path.to_path_buf(),
            msg: "no values".into(),
        })
    } else {
        Ok(v)
    }
}

/// One value per line (first field of each line).
pub fn read_values(path: impl AsRef<Path>) -> Result<Vec<f64>, InputError> {
    let path = path.as_ref();
    let mut out = Vec::new();
    let mut first = true;
    for_each_line(path, |line, t| {
        if std::mem::take(&mut first) && looks_like_title(t) {
            return Ok(());
        }
        let field = t.split_whitespace().next().unwrap_or(t);
        out.push(parse_f64(path, line, field, "value")?);
        Ok(())
    })?;
    non_empty(path, out)
}

fn split_fields(t: &str, delim: Option<char>) -> Vec<&str> {
    match delim {
        Some(d) => t.split(d).map(|s| s.trim()).collect(),
        None => t.split_whitespace().collect(),
    }
}

/// A column of a delimited file: `col` is a header name or a 1-based index.
/// The delimiter is guessed from the first line (`,` then `;` then tab, else
/// whitespace). With an index, a non-numeric first row is taken as a header.
pub fn read_csv_column(path: impl AsRef<Path>, col: &str) -> Result<Vec<f64>, InputError> {
    let path = path.as_ref();
    let by_index: Option<usize> = col.parse().ok();
    if by_index == Some(0) {
        return Err(InputError::Invalid {
            path: path.to_path_buf(),
            msg: "column index is 1-based".into(),
        });
    }
    let mut delim: Option<Option<char>> = None;
    let mut idx: Option<usize> = by_index.map(|i| i - 1);
    let mut out = Vec::new();
    let mut first = true;
    for_each_line(path, |line, t| {
        let d = *delim.get_or_insert_with(|| [',', ';', '\t'].into_iter().find(|c| t.contains(*c)));
        let fields = split_fields(t, d);
        if std::mem::take(&mut first) {
            match idx {
                None => {
                    let i = fields
                        .iter()
                        .position(|f| f.trim_matches('"') == col)
                        .ok_or_else(|| {
                            parse_err(path, line, format!("no column named {col:?} in header"))
                        })?;
                    idx = Some(i);
                    return Ok(());
                }
                Some(i) => {
                    if fields.get(i).is_some_and(|f| f.parse::<f64>().is_err()) {
                        return Ok(()); // header row
                    }
                }
            }
        }
        let i = idx.expect("set above");
        let field = fields.get(i).ok_or_else(|| {
            parse_err(
                path,
                line,
                format!("has {} fields, column {} missing", fields.len(), i + 1),
            )
        })?;
        out.push(parse_f64(path, line, field, "value")?);
        Ok(())
    })?;
    non_empty(path, out)
}

/// `time size` per line (Bellcore `.TL`): times must not decrease and sizes
/// must be non-negative.
pub fn read_time_size(path: impl AsRef<Path>) -> Result<Events, InputError> {
    let path = path.as_ref();
    let mut times = Vec::new();
    let mut sizes = Vec::new();
    for_each_line(path, |line, t| {
        let mut it = t.split_whitespace();
        let (Some(a), Some(b)) = (it.next(), it.next()) else {
            return Err(parse_err(path, line, "expected two fields: time size"));
        };
        let tm = parse_f64(path, line, a, "time")?;
        let sz = parse_f64(path, line, b, "size")?;
        if sz < 0.0 {
            return Err(parse_err(path, line, format!("negative size {sz}")));
        }
        if let Some(&prev) = times.last() {
            if tm < prev {
                return Err(parse_err(
                    path,
                    line,
                    format!("time {tm} is earlier than the previous time {prev} (unsorted)"),
                ));
            }
        }
        times.push(tm);
        sizes.push(sz);
        Ok(())
    })?;
    if times.is_empty() {
        return Err(InputError::Invalid {
            path: path.to_path_buf(),
            msg: "no events".into(),
        });
    }
    Ok(Events {
        times,
        sizes: Some(sizes),
    })
}

/// Inter-arrival times (seconds), one per line; returns arrival times
/// t_0 = `start`, t_i = t_{i-1} + s_{i-1} (n + 1 events for n values).
pub fn read_interarrivals(path: impl AsRef<Path>, start: f64) -> Result<Events, InputError> {
    let path = path.as_ref();
    let mut times = vec![start];
    let mut t = start;
    for_each_line(path, |line, s| {
        let field = s.split_whitespace().next().unwrap_or(s);
        let v = parse_f64(path, line, field, "inter-arrival time")?;
        if v < 0.0 {
            return Err(parse_err(
                path,
                line,
                format!("negative inter-arrival time {v}"),
            ));
        }
        t += v;
        times.push(t);
        Ok(())
    })?;
    if times.len() < 2 {
        return Err(InputError::Invalid {
            path: path.to_path_buf(),
            msg: "no inter-arrival times".into(),
        });
    }
    Ok(Events { times, sizes: None })
}

/// Reads a plain series by spec: `values` (one per line) or `csv:COL`.
pub fn read_series_spec(path: impl AsRef<Path>, spec: &str) -> Result<Vec<f64>, InputError> {
    let path = path.as_ref();
    match spec.split_once(':') {
        None if spec == "values" || spec.is_empty() => read_values(path),
        Some(("csv", col)) if !col.is_empty() => read_csv_column(path, col),
        _ => Err(InputError::Invalid {
            path: PathBuf::from(path),
            msg: format!("unknown series spec {spec:?} (expected `values` or `csv:COL`)"),
        }),
    }
}
