//! Time formatting and parsing of the CLI's duration and rate arguments.

use crate::GenerateError;

use capture::time::civil_from_days as civil;

/// `2025-01-01T00:00:00.000000000Z`.
pub fn iso8601(ts_ns: u64) -> String {
    capture::Utc(ts_ns).to_string()
}

/// IMF-fixdate for HTTP `Date:` headers.
pub(crate) fn http_date(ts_ns: u64) -> String {
    const WD: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MON: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let secs = (ts_ns / 1_000_000_000) as i64;
    let days = secs.div_euclid(86_400);
    let (y, m, d) = civil(days);
    let s = secs.rem_euclid(86_400);
    format!(
        "{}, {d:02} {} {y} {:02}:{:02}:{:02} GMT",
        WD[days.rem_euclid(7) as usize],
        MON[m as usize - 1],
        s / 3600,
        (s / 60) % 60,
        s % 60
    )
}

/// Parses `90`, `90s`, `1.5m`, `10m`, `2h`, `250ms` into nanoseconds.
pub fn parse_duration(s: &str) -> Result<u64, GenerateError> {
    let t = s.trim();
    let (num, mul) = if let Some(n) = t.strip_suffix("ms") {
        (n, 1e6)
    } else if let Some(n) = t.strip_suffix('s') {
        (n, 1e9)
    } else if let Some(n) = t.strip_suffix('m') {
        (n, 60e9)
    } else if let Some(n) = t.strip_suffix('h') {
        (n, 3600e9)
    } else {
        (t, 1e9)
    };
    match num.trim().parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 => Ok((v * mul).round() as u64),
        _ => Err(GenerateError::BadArgument(format!(
            "cannot read duration {s:?}: write a positive number with s, m, h or ms, e.g. 10m or 90s"
        ))),
    }
}

/// Parses `100M`, `1G`, `64k`, `2.5Mbit`, `1000000` into bit/s.
pub fn parse_rate(s: &str) -> Result<f64, GenerateError> {
    let mut t = s.trim().to_ascii_lowercase();
    for suffix in ["bit/s", "bps", "bit"] {
        if let Some(x) = t.strip_suffix(suffix) {
            t = x.to_string();
            break;
        }
    }
    let (num, mul) = match t.chars().last() {
        Some('k') => (&t[..t.len() - 1], 1e3),
        Some('m') => (&t[..t.len() - 1], 1e6),
        Some('g') => (&t[..t.len() - 1], 1e9),
        _ => (&t[..], 1.0),
    };
    match num.trim().parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 => Ok(v * mul),
        _ => Err(GenerateError::BadArgument(format!(
            "cannot read rate {s:?}: write bit/s with an optional k, M or G suffix, e.g. 100M"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert_eq!(iso8601(0), "1970-01-01T00:00:00.000000000Z");
        assert_eq!(
            iso8601(1_735_689_600_000_000_123),
            "2025-01-01T00:00:00.000000123Z"
        );
        assert_eq!(
            iso8601(951_782_400_000_000_000),
            "2000-02-29T00:00:00.000000000Z"
        );
        assert_eq!(
            http_date(1_735_689_600_000_000_000),
            "Wed, 01 Jan 2025 00:00:00 GMT"
        );
    }

    #[test]
    fn parses() {
        assert_eq!(parse_duration("10m").unwrap(), 600_000_000_000);
        assert_eq!(parse_duration("250ms").unwrap(), 250_000_000);
        assert_eq!(parse_rate("100M").unwrap(), 1e8);
        assert_eq!(parse_rate("64kbit/s").unwrap(), 64e3);
        assert!(parse_duration("ten").is_err());
        assert!(parse_rate("-1M").is_err());
    }
}
