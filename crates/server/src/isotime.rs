//! Times and durations as people write them: RFC 3339 UTC times, Unix
//! seconds and durations like `1h30m`, all to and from integer nanoseconds
//! since the Unix epoch. Hand-written (a few civil-calendar formulas) rather
//! than a date crate, because the API needs nothing else from one and every
//! error here must say exactly what was wrong.

/// Nanoseconds per unit, longest unit first (the order `format_duration` tries).
const UNITS: [(&str, u64); 7] = [
    ("d", 86_400_000_000_000),
    ("h", 3_600_000_000_000),
    ("m", 60_000_000_000),
    ("s", 1_000_000_000),
    ("ms", 1_000_000),
    ("us", 1_000),
    ("ns", 1),
];

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's
/// `days_from_civil`), valid for any year the API accepts.
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m as i64 + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Inverse of [`days_from_civil`]: (year, month, day).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (
        if m <= 2 {
            yoe + era * 400 + 1
        } else {
            yoe + era * 400
        },
        m,
        d,
    )
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// `2026-12-04T15:00:00Z`, with as many fraction digits as needed (3, 6 or 9).
pub fn format_iso(ns: u64) -> String {
    let secs = (ns / 1_000_000_000) as i64;
    let frac = ns % 1_000_000_000;
    let (y, mo, d) = civil_from_days(secs.div_euclid(86_400));
    let sod = secs.rem_euclid(86_400);
    let (h, mi, s) = (sod / 3600, sod / 60 % 60, sod % 60);
    let frac = if frac == 0 {
        String::new()
    } else if frac.is_multiple_of(1_000_000) {
        format!(".{:03}", frac / 1_000_000)
    } else if frac.is_multiple_of(1_000) {
        format!(".{:06}", frac / 1_000)
    } else {
        format!(".{frac:09}")
    };
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}{frac}Z")
}

/// Shortest exact spelling with the units [`parse_duration`] reads: `100ms`,
/// `1s`, `90s`, `1h30m`, `0s`.
pub fn format_duration(mut ns: u64) -> String {
    if ns == 0 {
        return "0s".into();
    }
    let mut out = String::new();
    // Whole seconds and above compose (`1h30m`); below a second one unit
    // reads better (`1500ms`, not `1s500ms`).
    if ns.is_multiple_of(1_000_000_000) {
        for (name, unit) in &UNITS[..4] {
            if ns >= *unit {
                out += &format!("{}{name}", ns / unit);
                ns %= unit;
            }
        }
        return out;
    }
    let (name, unit) = UNITS
        .iter()
        .find(|(_, u)| ns.is_multiple_of(*u) && *u < 1_000_000_000)
        .copied()
        .unwrap_or(("ns", 1));
    format!("{}{name}", ns / unit)
}

/// A duration: one or more `<number><unit>` parts, units `ns`, `us`, `ms`,
/// `s`, `m`, `h`, `d` (`100ms`, `1.5s`, `1h30m`). Exact integer nanoseconds;
/// `Err` says what was wrong, for people.
pub fn parse_duration(s: &str) -> Result<u64, String> {
    if s.is_empty() {
        return Err("empty duration".into());
    }
    let mut total: u64 = 0;
    let mut rest = s;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(|| format!("`{s}` lacks a unit after {rest}"))?;
        if num_len == 0 {
            return Err(format!("`{s}`: expected a number at `{rest}`"));
        }
        let (num, tail) = rest.split_at(num_len);
        let unit_len = tail
            .find(|c: char| !c.is_ascii_alphabetic())
            .unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_len);
        let per = UNITS
            .iter()
            .find(|(n, _)| *n == unit)
            .map(|(_, u)| *u)
            .ok_or_else(|| format!("`{s}`: unknown unit `{unit}`"))?;
        let part = scaled(num, per).ok_or_else(|| {
            format!("`{s}`: `{num}{unit}` is not a whole number of nanoseconds or too large")
        })?;
        total = total
            .checked_add(part)
            .ok_or_else(|| format!("`{s}` is too large"))?;
        rest = tail;
    }
    Ok(total)
}

/// `num` (digits, at most one `.`) times `per`, exactly; `None` when it is
/// not a whole number of units of 1 or overflows.
fn scaled(num: &str, per: u64) -> Option<u64> {
    let (int, frac) = num.split_once('.').unwrap_or((num, ""));
    if (int.is_empty() && frac.is_empty()) || frac.contains('.') || frac.len() > 18 {
        return None;
    }
    let int: u64 = if int.is_empty() { 0 } else { int.parse().ok()? };
    let mut acc = int.checked_mul(per)?;
    if !frac.is_empty() {
        let f: u128 = frac.parse().ok()?;
        let scale = 10u128.pow(frac.len() as u32);
        let x = f * per as u128;
        if !x.is_multiple_of(scale) {
            return None;
        }
        acc = acc.checked_add(u64::try_from(x / scale).ok()?)?;
    }
    Some(acc)
}

/// An absolute time: RFC 3339 (`2026-12-04T15:00:00Z`, `…15:00:00.250Z`,
/// `…15:00:00+01:00`) or Unix seconds (`1796396400`, `1796396400.25`).
pub fn parse_absolute(s: &str) -> Result<u64, String> {
    if s.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        // Seconds since 1970 have at most 11 digits until the year 5138;
        // more is almost surely milliseconds or nanoseconds.
        let int = s.split('.').next().unwrap_or("").trim_start_matches('0');
        if int.len() > 11 {
            return Err(format!(
                "`{s}` is too large for Unix seconds (milliseconds or nanoseconds? give seconds, fractions allowed)"
            ));
        }
        return scaled(s, 1_000_000_000).ok_or_else(|| {
            format!("`{s}` is not Unix seconds before 2554-07-21 (digits, at most one `.` and 9 decimals)")
        });
    }
    if s.starts_with('-') && s[1..].bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return Err(format!("`{s}` is before 1970"));
    }
    parse_rfc3339(s)
}

fn parse_rfc3339(s: &str) -> Result<u64, String> {
    let bad = |why: &str| format!("`{s}`: {why}");
    let b = s.as_bytes();
    let digits = |r: std::ops::Range<usize>| -> Option<u32> {
        let part = b.get(r)?;
        part.iter()
            .all(u8::is_ascii_digit)
            .then(|| part.iter().fold(0u32, |a, d| a * 10 + (d - b'0') as u32))
    };
    let sep = |i: usize, c: &[u8]| b.get(i).is_some_and(|x| c.contains(x));
    if !(sep(4, b"-") && sep(7, b"-") && sep(10, b"Tt ") && sep(13, b":") && sep(16, b":")) {
        return Err(bad(
            "expected YYYY-MM-DDTHH:MM:SS with a zone (Z or ±HH:MM)",
        ));
    }
    let (y, mo, d) = (digits(0..4), digits(5..7), digits(8..10));
    let (h, mi, sec) = (digits(11..13), digits(14..16), digits(17..19));
    let (Some(y), Some(mo), Some(d), Some(h), Some(mi), Some(sec)) = (y, mo, d, h, mi, sec) else {
        return Err(bad("expected digits in YYYY-MM-DDTHH:MM:SS"));
    };
    if !(1..=12).contains(&mo) {
        return Err(bad("month must be 01–12"));
    }
    if d == 0 || d > days_in_month(y as i64, mo) {
        return Err(bad("no such day in that month"));
    }
    if h > 23 || mi > 59 || sec > 59 {
        return Err(bad("hour 00–23, minute and second 00–59"));
    }
    let mut i = 19;
    let mut frac_ns = 0u64;
    if b.get(i) == Some(&b'.') {
        let n = b[i + 1..].iter().take_while(|c| c.is_ascii_digit()).count();
        if n == 0 || n > 9 {
            return Err(bad("1 to 9 digits of fraction after the `.`"));
        }
        frac_ns = digits(i + 1..i + 1 + n).unwrap_or(0) as u64 * 10u64.pow(9 - n as u32);
        i += 1 + n;
    }
    let offset_s: i64 = match &b[i..] {
        b"Z" | b"z" => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let (Some(oh), Some(om)) = (
                digits(i + 1..i + 3).filter(|_| h1.is_ascii_digit() && h2.is_ascii_digit()),
                digits(i + 4..i + 6).filter(|_| m1.is_ascii_digit() && m2.is_ascii_digit()),
            ) else {
                return Err(bad("zone offset must be ±HH:MM"));
            };
            if oh > 23 || om > 59 {
                return Err(bad("zone offset must be ±HH:MM"));
            }
            let o = (oh * 3600 + om * 60) as i64;
            if *sign == b'+' {
                o
            } else {
                -o
            }
        }
        [] => return Err(bad("add a zone: Z for UTC (or ±HH:MM)")),
        [b' ', ..] => {
            return Err(bad(
                "a space where the zone should be: write `+` as %2B in a URL, or use Z",
            ))
        }
        _ => return Err(bad("zone must be Z or ±HH:MM")),
    };
    let secs =
        days_from_civil(y as i64, mo, d) * 86_400 + (h * 3600 + mi * 60 + sec) as i64 - offset_s;
    if secs < 0 {
        return Err(bad("before 1970-01-01T00:00:00Z"));
    }
    (secs as u64)
        .checked_mul(1_000_000_000)
        .and_then(|n| n.checked_add(frac_ns))
        .ok_or_else(|| bad("after 2554-07-21, beyond nanoseconds in 64 bits"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_round_trips_and_known_values() {
        assert_eq!(format_iso(0), "1970-01-01T00:00:00Z");
        // 2000-03-01 (after a leap day of a century leap year): 951868800.
        assert_eq!(
            parse_absolute("2000-03-01T00:00:00Z"),
            Ok(951_868_800_000_000_000)
        );
        assert_eq!(
            parse_absolute("2024-02-29T12:34:56.5Z"),
            Ok(1_709_210_096_500_000_000)
        );
        assert_eq!(
            format_iso(1_709_210_096_500_000_000),
            "2024-02-29T12:34:56.500Z"
        );
        assert_eq!(
            parse_absolute("2024-02-29T13:34:56.5+01:00"),
            parse_absolute("2024-02-29T12:34:56.5Z")
        );
        for ns in [
            1u64,
            999,
            1_000_000_123,
            1_796_396_400_000_000_000,
            u64::MAX,
        ] {
            assert_eq!(parse_absolute(&format_iso(ns)), Ok(ns), "{ns}");
        }
        // Every day for 400 years (a full Gregorian cycle) round-trips.
        for day in 0..146_097i64 {
            let (y, m, d) = civil_from_days(day);
            assert_eq!(days_from_civil(y, m, d), day);
        }
    }

    #[test]
    fn iso_rejects() {
        for s in [
            "2023-02-29T00:00:00Z",
            "2026-13-01T00:00:00Z",
            "2026-12-04T24:00:00Z",
            "2026-12-04T15:00:00",
            "2026-12-04T15:00:00 01:00",
            "2026-12-04T15:00:00.Z",
            "2026-12-04T15:00:00.1234567890Z",
            "1969-12-31T23:59:59Z",
            "2600-01-01T00:00:00Z",
            "2026-12-04",
            "yesterday",
            "-5",
            "1e9",
            "200000000000",
            "1.0000000001",
        ] {
            assert!(parse_absolute(s).is_err(), "{s}");
        }
        assert_eq!(parse_absolute("1.5"), Ok(1_500_000_000));
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("100ms"), Ok(100_000_000));
        assert_eq!(parse_duration("1h30m"), Ok(5_400_000_000_000));
        assert_eq!(parse_duration("1.5s"), Ok(1_500_000_000));
        assert_eq!(parse_duration("0.5ns").ok(), None);
        for bad in ["", "5", "s", "5x", "1..5s", "-1s", "99999999999d"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
        for ns in [
            1,
            100_000_000,
            1_000_000_000,
            90_000_000_000,
            5_400_000_000_000,
        ] {
            assert_eq!(parse_duration(&format_duration(ns)), Ok(ns));
        }
        assert_eq!(format_duration(5_400_000_000_000), "1h30m");
        assert_eq!(format_duration(1_500_000_000), "1500ms");
    }
}
