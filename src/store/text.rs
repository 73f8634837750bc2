//! How timestamps, dates and datetimes are written as text, the same on every backend: in
//! SQLite's stored columns, in list cursors, and in the JSON a stored cell reads back as.

use time::{OffsetDateTime, UtcOffset};

/// Formats a timestamp as fixed-width RFC 3339 UTC with milliseconds, so that text order is
/// time order.
pub fn ts(t: OffsetDateTime) -> String {
    let t = t.to_offset(UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.millisecond()
    )
}

/// Writes `n` as `width` zero-padded digits.
fn push_digits(out: &mut String, n: u32, width: usize) {
    let mut buf = [b'0'; 10];
    let mut v = n;
    for slot in buf[..width].iter_mut().rev() {
        *slot = b'0' + (v % 10) as u8;
        v /= 10;
    }
    out.extend(buf[..width].iter().map(|&b| b as char));
}

/// A date column's text: `YYYY-MM-DD`.
pub fn date_text(d: time::Date) -> String {
    let mut out = String::with_capacity(10);
    push_date(&mut out, d);
    out
}

/// Appends a date column's text to `out`.
pub fn push_date(out: &mut String, d: time::Date) {
    let year = d.year();
    if year < 0 {
        out.push('-');
    }
    push_digits(out, year.unsigned_abs(), 4);
    out.push('-');
    push_digits(out, u8::from(d.month()) as u32, 2);
    out.push('-');
    push_digits(out, d.day() as u32, 2);
}

/// A datetime column's text: RFC 3339 in UTC, with a fraction only when there is one.
pub fn datetime_text(t: OffsetDateTime) -> String {
    let mut out = String::with_capacity(30);
    push_datetime(&mut out, t);
    out
}

/// Appends a datetime column's text to `out`. (Written by hand: it runs for every datetime
/// cell of every import.)
pub fn push_datetime(out: &mut String, t: OffsetDateTime) {
    let t = t.to_offset(UtcOffset::UTC);
    push_date(out, t.date());
    out.push('T');
    push_digits(out, t.hour() as u32, 2);
    out.push(':');
    push_digits(out, t.minute() as u32, 2);
    out.push(':');
    push_digits(out, t.second() as u32, 2);
    let nanos = t.nanosecond();
    if nanos != 0 {
        out.push('.');
        let mut digits = 9;
        let mut n = nanos;
        while n.is_multiple_of(10) {
            n /= 10;
            digits -= 1;
        }
        push_digits(out, n, digits);
    }
    out.push('Z');
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::{date, datetime};

    #[test]
    fn datetimes_are_written_in_utc_with_their_fraction_only() {
        assert_eq!(
            datetime_text(datetime!(2024-02-29 23:30:00.120 -02:00)),
            "2024-03-01T01:30:00.12Z"
        );
        assert_eq!(
            datetime_text(datetime!(1999-12-31 23:59:59 UTC)),
            "1999-12-31T23:59:59Z"
        );
        assert_eq!(
            datetime_text(datetime!(2024-01-01 00:00:00.000000001 +05:30)),
            "2023-12-31T18:30:00.000000001Z"
        );
    }

    #[test]
    fn texts_are_appended_to_what_the_buffer_holds() {
        let mut out = String::from("x ");
        push_date(&mut out, date!(-0044 - 03 - 15));
        out.push(' ');
        push_datetime(&mut out, datetime!(0007-01-02 03:04:05 UTC));
        assert_eq!(out, "x -0044-03-15 0007-01-02T03:04:05Z");
        assert_eq!(date_text(date!(2024 - 07 - 09)), "2024-07-09");
    }
}
