//! UTC timestamps as ISO 8601 without a date-time dependency.

use std::fmt;

/// Displays nanoseconds since the Unix epoch as `2024-05-01T12:00:00.123456789Z`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Utc(pub u64);

/// Converts days since 1970-01-01 to a proleptic Gregorian (year, month, day),
/// using the era-based civil calendar arithmetic (400-year cycles).
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

impl fmt::Display for Utc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = self.0 / 1_000_000_000;
        let nanos = self.0 % 1_000_000_000;
        let (y, mo, d) = civil_from_days((secs / 86_400) as i64);
        let sod = secs % 86_400;
        write!(
            f,
            "{y:04}-{mo:02}-{d:02}T{:02}:{:02}:{:02}.{nanos:09}Z",
            sod / 3600,
            (sod / 60) % 60,
            sod % 60
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_instants() {
        // Reference values from `date -u -d @SECONDS +%FT%T`.
        assert_eq!(Utc(0).to_string(), "1970-01-01T00:00:00.000000000Z");
        assert_eq!(
            Utc(951_782_400_000_000_001).to_string(),
            "2000-02-29T00:00:00.000000001Z"
        );
        assert_eq!(
            Utc(2_147_483_647_000_000_000).to_string(),
            "2038-01-19T03:14:07.000000000Z"
        );
        assert_eq!(
            Utc(4_294_967_295_000_000_000).to_string(),
            "2106-02-07T06:28:15.000000000Z"
        );
    }
}
