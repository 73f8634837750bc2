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

fn push_date(out: &mut String, d: time::Date) {
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
/// (Written by hand: it runs for every datetime cell of every import.)
pub fn datetime_text(t: OffsetDateTime) -> String {
    let t = t.to_offset(UtcOffset::UTC);
    let mut out = String::with_capacity(30);
    push_date(&mut out, t.date());
    out.push('T');
    push_digits(&mut out, t.hour() as u32, 2);
    out.push(':');
    push_digits(&mut out, t.minute() as u32, 2);
    out.push(':');
    push_digits(&mut out, t.second() as u32, 2);
    let nanos = t.nanosecond();
    if nanos != 0 {
        out.push('.');
        let mut digits = 9;
        let mut n = nanos;
        while n.is_multiple_of(10) {
            n /= 10;
            digits -= 1;
        }
        push_digits(&mut out, n, digits);
    }
    out.push('Z');
    out
}
