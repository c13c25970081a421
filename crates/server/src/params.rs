//! Query strings, parsed and validated by hand: axum's `Query` extractor
//! answers its own plain-text 400, and every error here must be JSON naming
//! the parameter and what it accepts. Each endpoint lists the names it
//! takes; any other name is an error too, so a typo (`form=`) is not
//! silently ignored.

use crate::error::ApiError;
use crate::isotime::{parse_absolute, parse_duration};

/// Longest value a client may send (names are bounded by being known, and
/// their count by each being allowed once).
const MAX_VALUE_LEN: usize = 512;

pub const TIME_ACCEPTED: &str = "an RFC 3339 UTC time (2026-12-04T15:00:00Z, fractions allowed), \
Unix seconds (1796396400 or 1796396400.25), `now` or `now-<duration>` (now-5m, now-1h30m); \
`now` is the newest capture time held, not the wall clock";

pub const DURATION_ACCEPTED: &str =
    "a duration: number and unit ns, us, ms, s, m, h, d (100ms, 1s, 5s, 1m, 1h30m)";

/// A decoded query string. Empty values (`class=`) count as absent, so a
/// form or a dashboard can leave a filter blank.
#[derive(Debug, Default)]
pub struct Query {
    pairs: Vec<(String, String)>,
}

impl Query {
    /// Decodes `raw` and checks every name against `accepted`.
    pub fn parse(raw: Option<&str>, accepted: &[&str]) -> Result<Query, ApiError> {
        let list = || {
            if accepted.is_empty() {
                "no parameters".to_string()
            } else {
                accepted.join(", ")
            }
        };
        let mut pairs: Vec<(String, String)> = Vec::new();
        for part in raw.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (name, value) = part.split_once('=').unwrap_or((part, ""));
            let name = decode(name).ok_or_else(|| {
                ApiError::param(
                    name,
                    "malformed percent-encoding in a parameter name",
                    list(),
                )
            })?;
            if !accepted.contains(&name.as_str()) {
                return Err(ApiError::param(
                    &name,
                    format!("unknown parameter `{name}`"),
                    list(),
                ));
            }
            let value = decode(value).ok_or_else(|| {
                ApiError::param(
                    &name,
                    "malformed percent-encoding or not UTF-8",
                    "%XX escapes of UTF-8 text",
                )
            })?;
            if value.len() > MAX_VALUE_LEN {
                return Err(ApiError::param(
                    &name,
                    format!("value longer than {MAX_VALUE_LEN} bytes"),
                    format!("at most {MAX_VALUE_LEN} bytes"),
                ));
            }
            if pairs.iter().any(|(n, _)| *n == name) {
                return Err(ApiError::param(
                    &name,
                    format!("`{name}` given more than once"),
                    "each parameter once",
                ));
            }
            pairs.push((name, value));
        }
        Ok(Query { pairs })
    }

    /// The value of `name`; `None` when absent or empty.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(n, v)| n == name && !v.is_empty())
            .map(|(_, v)| v.as_str())
    }

    /// One of `options` by name, or `default` when absent.
    pub fn choice<T: Copy>(
        &self,
        name: &str,
        options: &[(&str, T)],
        default: Option<T>,
    ) -> Result<Option<T>, ApiError> {
        let Some(v) = self.get(name) else {
            return Ok(default);
        };
        options
            .iter()
            .find(|(n, _)| *n == v)
            .map(|(_, t)| Some(*t))
            .ok_or_else(|| {
                let names: Vec<&str> = options.iter().map(|(n, _)| *n).collect();
                ApiError::param(
                    name,
                    format!("unknown {name} `{}`", clip(v)),
                    names.join(", "),
                )
            })
    }

    /// A whole number in `min..=max` (plain decimal digits only: no sign,
    /// exponent or spaces), or `default` when absent.
    pub fn uint(&self, name: &str, min: u64, max: u64, default: u64) -> Result<u64, ApiError> {
        let Some(v) = self.get(name) else {
            return Ok(default);
        };
        let accepted = format!("a whole number from {min} to {max}");
        if !v.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ApiError::param(
                name,
                format!("`{}` is not a whole number", clip(v)),
                accepted,
            ));
        }
        match v.parse::<u64>() {
            Ok(n) if (min..=max).contains(&n) => Ok(n),
            _ => Err(ApiError::param(
                name,
                format!("{} is out of range", clip(v)),
                accepted,
            )),
        }
    }

    /// A duration in ns, or `None` when absent.
    pub fn duration(&self, name: &str) -> Result<Option<u64>, ApiError> {
        let Some(v) = self.get(name) else {
            return Ok(None);
        };
        match parse_duration(v) {
            Ok(0) => Err(ApiError::param(name, "a zero duration", DURATION_ACCEPTED)),
            Ok(ns) => Ok(Some(ns)),
            Err(why) => Err(ApiError::param(name, why, DURATION_ACCEPTED)),
        }
    }

    /// A time, unresolved (`now` is only known once the history is asked).
    pub fn time(&self, name: &str) -> Result<Option<TimeSpec>, ApiError> {
        let Some(v) = self.get(name) else {
            return Ok(None);
        };
        if let Some(rest) = v.strip_prefix("now") {
            if rest.is_empty() {
                return Ok(Some(TimeSpec::Now(0)));
            }
            let ago = rest
                .strip_prefix('-')
                .ok_or_else(|| {
                    ApiError::param(
                        name,
                        format!("`{}`: only `now` or `now-<duration>`", clip(v)),
                        TIME_ACCEPTED,
                    )
                })
                .and_then(|d| {
                    parse_duration(d).map_err(|why| ApiError::param(name, why, TIME_ACCEPTED))
                })?;
            return Ok(Some(TimeSpec::Now(ago)));
        }
        parse_absolute(v)
            .map(|ns| Some(TimeSpec::Absolute(ns)))
            .map_err(|why| ApiError::param(name, why, TIME_ACCEPTED))
    }

    /// `from` and `to`, unresolved.
    pub fn range(&self) -> Result<RangeSpec, ApiError> {
        Ok(RangeSpec {
            from: self.time("from")?,
            to: self.time("to")?,
        })
    }
}

/// A time as given: absolute ns, or `now` minus ns.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum TimeSpec {
    Absolute(u64),
    Now(u64),
}

/// `from`/`to` as given; absent ones default to `now` and `to − span`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RangeSpec {
    pub from: Option<TimeSpec>,
    pub to: Option<TimeSpec>,
}

impl RangeSpec {
    /// Whether resolving needs the newest data time: `to` absent or
    /// relative, or `from` relative (an absent `from` derives from `to`).
    pub fn needs_now(&self) -> bool {
        !matches!(self.to, Some(TimeSpec::Absolute(_)))
            || matches!(self.from, Some(TimeSpec::Now(_)))
    }

    /// `[from, to)` in ns; `default_span` back from `to` when `from` is absent.
    pub fn resolve(&self, now_ns: u64, default_span: u64) -> Result<(u64, u64), ApiError> {
        let at = |name: &str, spec: TimeSpec| match spec {
            TimeSpec::Absolute(ns) => Ok(ns),
            TimeSpec::Now(ago) => now_ns
                .checked_sub(ago)
                .ok_or_else(|| ApiError::param(name, "reaches back before 1970", TIME_ACCEPTED)),
        };
        let to = at("to", self.to.unwrap_or(TimeSpec::Now(0)))?;
        let from = match self.from {
            Some(spec) => at("from", spec)?,
            None => to.saturating_sub(default_span),
        };
        if from >= to {
            return Err(ApiError::param(
                "from",
                format!(
                    "from ({}) must be earlier than to ({})",
                    crate::isotime::format_iso(from),
                    crate::isotime::format_iso(to)
                ),
                "from < to",
            ));
        }
        Ok((from, to))
    }
}

/// Echo at most 64 characters of a client's value in a message.
pub fn clip(v: &str) -> String {
    if v.chars().count() <= 64 {
        v.to_string()
    } else {
        v.chars().take(64).collect::<String>() + "…"
    }
}

/// `application/x-www-form-urlencoded` decoding: `+` is a space, `%XX` a
/// byte; `None` for a bad escape or bytes that are not UTF-8.
fn decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = |c: u8| (c as char).to_digit(16);
                let hi = hex(*b.get(i + 1)?)?;
                let lo = hex(*b.get(i + 2)?)?;
                out.push((hi * 16 + lo) as u8);
                i += 2;
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decoding_and_names() {
        let q = Query::parse(Some("a=x%2By+z&b=&c=%E2%9C%93"), &["a", "b", "c"]).unwrap();
        assert_eq!(q.get("a"), Some("x+y z"));
        assert_eq!(q.get("b"), None);
        assert_eq!(q.get("c"), Some("✓"));
        for (raw, param) in [
            ("a=%zz", "a"),
            ("a=%ff", "a"),
            ("a=%4", "a"),
            ("d=1", "d"),
            ("a=1&a=2", "a"),
        ] {
            let e = Query::parse(Some(raw), &["a"]).unwrap_err();
            assert_eq!(e.parameter.as_deref(), Some(param), "{raw}");
        }
    }

    #[test]
    fn ranges() {
        let q = Query::parse(Some("from=now-5m"), &["from", "to"]).unwrap();
        let r = q.range().unwrap();
        assert!(r.needs_now());
        let now = 1_000_000_000_000;
        assert_eq!(r.resolve(now, 1), Ok((now - 300_000_000_000, now)));
        let q = Query::parse(Some("from=10&to=5"), &["from", "to"]).unwrap();
        let e = q.range().unwrap().resolve(0, 1).unwrap_err();
        assert_eq!(e.parameter.as_deref(), Some("from"));
        let q = Query::parse(Some("from=now+5m"), &["from", "to"]).unwrap();
        assert!(q.range().is_err());
    }
}
