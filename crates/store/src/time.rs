//! Calendar arithmetic on integer ns since the Unix epoch (UTC): the day a
//! time falls in (partitions are UTC days), `YYYYMMDD` table suffixes and
//! RFC 3339 text for messages. No time-zone database: UTC only, by design.

/// One second, one minute and one UTC day in ns.
pub const SECOND_NS: u64 = 1_000_000_000;
pub const MINUTE_NS: u64 = 60 * SECOND_NS;
pub const DAY_NS: u64 = 86_400 * SECOND_NS;

/// The UTC day (days since 1970-01-01) that `ns` falls in.
pub fn day_of(ns: u64) -> i64 {
    (ns / DAY_NS) as i64
}

/// Start of `day`, ns.
pub fn day_start_ns(day: i64) -> u64 {
    (day.max(0) as u64).saturating_mul(DAY_NS)
}

/// (year, month 1–12, day 1–31) of a day number (Howard Hinnant's
/// `civil_from_days`: exact for every day, no tables).
pub fn civil(day: i64) -> (i64, u32, u32) {
    let z = day + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// `YYYYMMDD` of a day number: the suffix of its partition tables.
pub fn ymd(day: i64) -> String {
    let (y, m, d) = civil(day);
    format!("{y:04}{m:02}{d:02}")
}

/// RFC 3339 UTC text of a time, to the millisecond: `2024-01-02T03:04:05.678Z`.
pub fn iso(ns: u64) -> String {
    let (y, mo, d) = civil(day_of(ns));
    let s = (ns % DAY_NS) / SECOND_NS;
    let ms = (ns % SECOND_NS) / 1_000_000;
    format!(
        "{y:04}-{mo:02}-{d:02}T{:02}:{:02}:{:02}.{ms:03}Z",
        s / 3600,
        s / 60 % 60,
        s % 60
    )
}

/// A duration for people: `48 h`, `90 days`, `1.5 s`.
pub fn human_duration(ns: u64) -> String {
    if ns >= DAY_NS && ns.is_multiple_of(DAY_NS) {
        format!("{} days", ns / DAY_NS)
    } else if ns >= 3600 * SECOND_NS && ns.is_multiple_of(3600 * SECOND_NS) {
        format!("{} h", ns / (3600 * SECOND_NS))
    } else if ns >= MINUTE_NS && ns.is_multiple_of(MINUTE_NS) {
        format!("{} min", ns / MINUTE_NS)
    } else if ns >= SECOND_NS {
        format!("{} s", ns as f64 / SECOND_NS as f64)
    } else {
        format!("{} ms", ns as f64 / 1e6)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates_match_known_days() {
        assert_eq!(ymd(0), "19700101");
        // 2000-02-29 (leap day of a century leap year) is day 11016.
        assert_eq!(ymd(11_016), "20000229");
        assert_eq!(ymd(11_017), "20000301");
        // 2024-01-01 is day 19723.
        assert_eq!(ymd(19_723), "20240101");
        assert_eq!(ymd(19_722), "20231231");
        assert_eq!(
            iso(1_704_067_200 * SECOND_NS + 5_678_000_000),
            "2024-01-01T00:00:05.678Z"
        );
        assert_eq!(iso(1_704_153_599 * SECOND_NS), "2024-01-01T23:59:59.000Z");
    }

    #[test]
    fn every_day_of_four_centuries_increments() {
        // Consecutive days give consecutive dates: no day skipped or repeated.
        let mut prev = civil(-1);
        for day in 0..146_097 {
            let c = civil(day);
            let next_ok = (c.0 == prev.0 && c.1 == prev.1 && c.2 == prev.2 + 1)
                || (c.0 == prev.0 && c.1 == prev.1 + 1 && c.2 == 1)
                || (c.0 == prev.0 + 1 && c.1 == 1 && c.2 == 1 && prev.1 == 12 && prev.2 == 31);
            assert!(next_ok, "{prev:?} -> {c:?}");
            prev = c;
        }
    }

    #[test]
    fn durations_read_naturally() {
        assert_eq!(human_duration(2 * DAY_NS), "2 days");
        assert_eq!(human_duration(48 * 3600 * SECOND_NS), "2 days");
        assert_eq!(human_duration(36 * 3600 * SECOND_NS), "36 h");
        assert_eq!(human_duration(1_500_000_000), "1.5 s");
    }
}
