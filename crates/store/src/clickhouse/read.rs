//! Reading the ClickHouse store: the embedded store's queries
//! ([`crate::read::Q`]) over ClickHouse as their engine, so both stores
//! give the same answers for the same history.

use std::path::Path;
use std::sync::Arc;

use super::{quote, tsv_rows, ChError, Client};
use crate::partition::Kind;
use crate::read::{Dialect, Engine, Fail, Row, P, Q, R};
use crate::{StoreError, StoreOptions};

/// A `meta` value (a max-register: the largest value written).
pub(crate) fn meta(c: &Client, key: &str) -> Result<Option<u64>, ChError> {
    let text = c.exec(
        &format!(
            "SELECT count(), max(value) FROM {}.meta WHERE key = {} FORMAT TabSeparated",
            c.db(),
            quote(key)
        ),
        None,
    )?;
    let row = tsv_rows(&text).into_iter().next().unwrap_or_default();
    let n: u64 = field(&row, 0).and_then(|t| t.parse().ok()).unwrap_or(0);
    Ok((n > 0)
        .then(|| field(&row, 1).and_then(|t| t.parse::<i64>().ok()))
        .flatten()
        .map(|v| v.max(0) as u64))
}

fn field(row: &[Option<String>], k: usize) -> Option<&str> {
    row.get(k).and_then(|f| f.as_deref())
}

/// Per source: how far its history reaches (see [`crate::SourceExtent`]).
pub(crate) fn source_extents(c: &Client) -> Result<crate::SourceExtents, ChError> {
    let mut out = crate::SourceExtents::new();
    for (kind, slot) in [(Kind::SrcBins, 0), (Kind::SrcWindows, 1)] {
        let text = c.exec(
            &format!(
                "SELECT source, argMax(row, start_ns), min(start_ns) FROM {}.{} \
                 GROUP BY source FORMAT TabSeparated",
                c.db(),
                kind.prefix()
            ),
            None,
        )?;
        for row in tsv_rows(&text) {
            let (Some(source), Some(json)) = (field(&row, 0), field(&row, 1)) else {
                continue;
            };
            let v: serde_json::Value = serde_json::from_str(json).unwrap_or_default();
            let g = |k: &str| v.get(k).and_then(|x| x.as_u64()).unwrap_or(0);
            let e = out.entry(source.to_string()).or_default();
            if slot == 0 {
                e.bins_start_ns = field(&row, 2).and_then(|v| v.parse().ok()).unwrap_or(0);
                e.bins_end_ns = g("start_ns") + g("width_ns");
                e.ended = v
                    .get("source_ended")
                    .and_then(|x| x.as_bool())
                    .unwrap_or(false);
            } else {
                e.windows_end_ns = g("end_ns");
            }
        }
    }
    Ok(out)
}

/// One row of a `TabSeparated` answer.
struct TsvRow(Vec<Option<String>>);

impl TsvRow {
    fn get(&self, k: usize) -> R<Option<&str>> {
        match self.0.get(k) {
            Some(f) => Ok(f.as_deref()),
            None => Err(Fail::Query(format!(
                "ClickHouse answered {} columns where {} were asked",
                self.0.len(),
                k + 1
            ))),
        }
    }
}

impl Row for TsvRow {
    fn int(&self, k: usize) -> R<Option<i64>> {
        Ok(self.get(k)?.and_then(|t| {
            t.parse::<i64>()
                .ok()
                .or_else(|| t.parse::<f64>().ok().map(|f| f as i64))
        }))
    }
    fn float(&self, k: usize) -> R<Option<f64>> {
        Ok(self.get(k)?.and_then(|t| t.parse::<f64>().ok()))
    }
    fn text(&self, k: usize) -> R<Option<String>> {
        Ok(self.get(k)?.map(str::to_string))
    }
}

/// ClickHouse as an engine of the shared queries.
struct ChEngine<'a> {
    c: &'a Client,
    opts: &'a StoreOptions,
}

impl ChEngine<'_> {
    fn fail(&self, e: ChError) -> Fail {
        Fail::Engine(self.c.fail("cannot read", &e))
    }
}

/// `sql` with `?N` replaced by the literal of `params[N-1]`.
fn bind(sql: &str, params: &[P]) -> String {
    let mut out = String::with_capacity(sql.len() + 16);
    let b = sql.as_bytes();
    let mut k = 0;
    while k < b.len() {
        if b[k] == b'?' {
            let digits = b[k + 1..].iter().take_while(|c| c.is_ascii_digit()).count();
            if digits > 0 {
                let n: usize = sql[k + 1..k + 1 + digits].parse().unwrap_or(0);
                if let Some(p) = n.checked_sub(1).and_then(|i| params.get(i)) {
                    match p {
                        P::I(v) => out.push_str(&v.to_string()),
                        P::S(s) => out.push_str(&quote(s)),
                    }
                    k += 1 + digits;
                    continue;
                }
            }
        }
        // Copy one whole UTF-8 character.
        let ch = sql[k..].chars().next().expect("k is on a char boundary");
        out.push(ch);
        k += ch.len_utf8();
    }
    out
}

impl Engine for ChEngine<'_> {
    fn meta(&self, key: &str) -> R<Option<u64>> {
        meta(self.c, key).map_err(|e| self.fail(e))
    }

    fn bounds(&self, kind: Kind) -> R<Option<(u64, u64)>> {
        let col = kind.time_column();
        let text = self
            .c
            .exec(
                &format!(
                    "SELECT count(), min({col}), max({col}) FROM {}.{} FORMAT TabSeparated",
                    self.c.db(),
                    kind.prefix()
                ),
                None,
            )
            .map_err(|e| self.fail(e))?;
        let row = TsvRow(tsv_rows(&text).into_iter().next().unwrap_or_default());
        if row.int(0)?.unwrap_or(0) == 0 {
            return Ok(None);
        }
        let u = |v: Option<i64>| v.unwrap_or(0).max(0) as u64;
        Ok(Some((u(row.int(1)?), u(row.int(2)?))))
    }

    fn union(&self, kind: Kind, lo: u64, hi: u64, cols: &str, where_: &str) -> R<Option<String>> {
        Ok((lo < hi).then(|| {
            format!(
                "SELECT {cols} FROM {}.{} FINAL WHERE {where_}",
                self.c.db(),
                kind.prefix()
            )
        }))
    }

    fn each(&self, sql: &str, params: &[P], f: &mut dyn FnMut(&dyn Row) -> R<()>) -> R<()> {
        let text = self
            .c
            .exec(&format!("{} FORMAT TabSeparated", bind(sql, params)), None)
            .map_err(|e| self.fail(e))?;
        for row in tsv_rows(&text) {
            f(&TsvRow(row))?;
        }
        Ok(())
    }

    fn size_bytes(&self) -> u64 {
        let sql = format!(
            "SELECT sum(bytes) FROM system.parts WHERE database = {} AND active \
             FORMAT TabSeparated",
            quote(self.c.db())
        );
        self.c
            .exec(&sql, None)
            .ok()
            .and_then(|t| t.trim().parse().ok())
            .unwrap_or(0)
    }

    fn dialect(&self) -> Dialect {
        Dialect::ClickHouse
    }

    fn opts(&self) -> &StoreOptions {
        self.opts
    }
}

/// The ClickHouse store as the server's [`History`]. ClickHouse has no
/// snapshot across statements: a query made of several statements may see
/// a commit land between them (a bin more in one part of the answer).
pub struct ChHistory {
    client: Arc<Client>,
    opts: StoreOptions,
}

impl ChHistory {
    pub(crate) fn new(client: Arc<Client>, opts: StoreOptions) -> ChHistory {
        ChHistory { client, opts }
    }

    fn with<T>(&self, f: impl FnOnce(&Q<'_>) -> R<T>) -> Result<T, StoreError> {
        let e = ChEngine {
            c: &self.client,
            opts: &self.opts,
        };
        let shown = self.client.url.to_string();
        f(&Q { e: &e }).map_err(|x| x.into_store(Path::new(&shown)))
    }
}

crate::read::history_via_q!(ChHistory);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bind_replaces_numbered_parameters_with_literals() {
        let sql = bind(
            "a >= ?1 AND b = ?2 AND c = ?10 AND d = '?'",
            &[
                P::I(-5),
                P::S("it's \\ é".into()),
                P::I(3),
                P::I(4),
                P::I(5),
                P::I(6),
                P::I(7),
                P::I(8),
                P::I(9),
                P::I(10),
            ],
        );
        assert_eq!(
            sql,
            "a >= -5 AND b = 'it\\'s \\\\ é' AND c = 10 AND d = '?'"
        );
    }

    #[test]
    fn tsv_fields_unescape() {
        let rows = tsv_rows("1\t\\N\ta\\tb\\\\c\\n\n2\t{\"x\":\"\\\\\\\"\"}\t\n");
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0][0].as_deref(), Some("1"));
        assert_eq!(rows[0][1], None);
        assert_eq!(rows[0][2].as_deref(), Some("a\tb\\c\n"));
        assert_eq!(rows[1][1].as_deref(), Some("{\"x\":\"\\\"\"}"));
        assert_eq!(rows[1][2].as_deref(), Some(""));
    }
}
