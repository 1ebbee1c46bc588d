//! Cached timestamps: the `Date` header (IMF-fixdate, RFC 9110 section 5.6.7) and the access log's
//! local time.
//!
//! Each connection keeps its own [`DateCache`], so there is no shared state and no data race; a
//! cache is re-formatted at most once per second (only when the second changes).

use std::time::{SystemTime, UNIX_EPOCH};

/// Length of an IMF-fixdate, e.g. `Sun, 06 Nov 1994 08:49:37 GMT`.
pub(crate) const HTTP_DATE_LEN: usize = 29;

/// Length of `Date: <IMF-fixdate>\r\n`.
pub(crate) const DATE_LINE_LEN: usize = HTTP_DATE_LEN + 8;

/// Length of the access log's `YYYY-MM-DD HH:MM:SS`.
pub(crate) const LOCAL_TIME_LEN: usize = 19;

const DAYS: [&[u8; 3]; 7] = [b"Sun", b"Mon", b"Tue", b"Wed", b"Thu", b"Fri", b"Sat"];
const MONTHS: [&[u8; 3]; 12] = [
    b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov", b"Dec",
];

/// `clock_gettime(clock)`; `None` if it fails.
#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
fn clock_now(clock: libc::clockid_t) -> Option<libc::timespec> {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable `timespec` that outlives the call; `clock_gettime` only
    // writes into it.
    let rc = unsafe { libc::clock_gettime(clock, &mut ts) };
    (rc == 0).then_some(ts)
}

/// Seconds since the Unix epoch, now (with the cheap coarse clock where there is one: only the
/// second matters here).
#[cfg(target_os = "linux")]
pub(crate) fn now_secs() -> u64 {
    match clock_now(libc::CLOCK_REALTIME_COARSE).map(|ts| u64::try_from(ts.tv_sec)) {
        Some(Ok(secs)) => secs,
        _ => SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |dur| dur.as_secs()),
    }
}

/// The clock the access log times requests with: the CPU's time-stamp counter where it is
/// invariant (quanta checks CPUID and calibrates it against `CLOCK_MONOTONIC` once per
/// process), else `CLOCK_MONOTONIC` itself. A TSC read costs a fraction of a `clock_gettime`,
/// which with two per request was most of the access log's cost on pipelined requests.
pub(crate) fn request_clock() -> &'static quanta::Clock {
    static CLOCK: std::sync::OnceLock<quanta::Clock> = std::sync::OnceLock::new();
    CLOCK.get_or_init(quanta::Clock::new)
}

/// Seconds since the Unix epoch, now.
#[cfg(not(target_os = "linux"))]
pub(crate) fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |dur| dur.as_secs())
}

/// Per-connection cache of the formatted `Date` value and the access log's local time.
#[derive(Debug)]
pub(crate) struct DateCache {
    http_secs: u64,
    /// `Date: <IMF-fixdate>\r\n`.
    http: [u8; DATE_LINE_LEN],
    local_secs: u64,
    local: [u8; LOCAL_TIME_LEN],
}

impl Default for DateCache {
    fn default() -> DateCache {
        DateCache::new()
    }
}

impl DateCache {
    pub(crate) fn new() -> DateCache {
        DateCache {
            http_secs: u64::MAX,
            http: *b"Date: Thu, 01 Jan 1970 00:00:00 GMT\r\n",
            local_secs: u64::MAX,
            local: [b' '; LOCAL_TIME_LEN],
        }
    }

    /// The `Date: ...\r\n` header line for the current second.
    pub(crate) fn http_date_line(&mut self) -> &[u8; DATE_LINE_LEN] {
        let secs = now_secs();
        if secs != self.http_secs {
            let mut date = [0u8; HTTP_DATE_LEN];
            format_http_date(secs, &mut date);
            self.http[6..6 + HTTP_DATE_LEN].copy_from_slice(&date);
            self.http_secs = secs;
        }
        &self.http
    }

    /// The local time `YYYY-MM-DD HH:MM:SS` of `secs` (Unix time).
    #[cfg(test)]
    pub(crate) fn local_time(&mut self, secs: u64) -> &str {
        std::str::from_utf8(self.local_time_bytes(secs)).unwrap_or("0000-00-00 00:00:00")
    }

    /// [`local_time`](Self::local_time) as bytes (ASCII), without a UTF-8 check.
    pub(crate) fn local_time_bytes(&mut self, secs: u64) -> &[u8] {
        if secs != self.local_secs {
            format_local_time(secs, &mut self.local);
            self.local_secs = secs;
        }
        &self.local
    }
}

/// Formats `secs` (Unix time) as an IMF-fixdate: `Sun, 06 Nov 1994 08:49:37 GMT`.
pub(crate) fn format_http_date(secs: u64, out: &mut [u8; HTTP_DATE_LEN]) {
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (year, month, day) = civil_from_days(days as i64);
    let weekday = ((days + 4) % 7) as usize; // 1970-01-01 was a Thursday
    out[0..3].copy_from_slice(DAYS[weekday]);
    out[3..5].copy_from_slice(b", ");
    two_digits(&mut out[5..7], day);
    out[7] = b' ';
    out[8..11].copy_from_slice(MONTHS[(month - 1) as usize]);
    out[11] = b' ';
    four_digits(&mut out[12..16], year);
    out[16] = b' ';
    two_digits(&mut out[17..19], (rem / 3600) as u32);
    out[19] = b':';
    two_digits(&mut out[20..22], (rem % 3600 / 60) as u32);
    out[22] = b':';
    two_digits(&mut out[23..25], (rem % 60) as u32);
    out[25..29].copy_from_slice(b" GMT");
}

/// Broken-down time, as `localtime_r` gives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Tm {
    pub(crate) year: i64,
    pub(crate) month: u32,
    pub(crate) day: u32,
    pub(crate) hour: u32,
    pub(crate) minute: u32,
    pub(crate) second: u32,
}

/// Formats `secs` (Unix time) in the local time zone as `YYYY-MM-DD HH:MM:SS` (Python's
/// `str(datetime.now().replace(microsecond=0))`, which gevent's access log uses).
pub(crate) fn format_local_time(secs: u64, out: &mut [u8; LOCAL_TIME_LEN]) {
    let tm = local_tm(secs).unwrap_or_else(|| utc_tm(secs));
    format_tm(&tm, out);
}

pub(crate) fn format_tm(tm: &Tm, out: &mut [u8; LOCAL_TIME_LEN]) {
    four_digits(&mut out[0..4], tm.year);
    out[4] = b'-';
    two_digits(&mut out[5..7], tm.month);
    out[7] = b'-';
    two_digits(&mut out[8..10], tm.day);
    out[10] = b' ';
    two_digits(&mut out[11..13], tm.hour);
    out[13] = b':';
    two_digits(&mut out[14..16], tm.minute);
    out[16] = b':';
    two_digits(&mut out[17..19], tm.second);
}

pub(crate) fn utc_tm(secs: u64) -> Tm {
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (year, month, day) = civil_from_days(days as i64);
    Tm {
        year,
        month,
        day,
        hour: (rem / 3600) as u32,
        minute: (rem % 3600 / 60) as u32,
        second: (rem % 60) as u32,
    }
}

/// The local broken-down time through `localtime_r(3)` (thread-safe, no shared static buffer; it
/// does not yield, so it is safe on a coroutine).
#[allow(unsafe_code)]
fn local_tm(secs: u64) -> Option<Tm> {
    let time: libc::time_t = libc::time_t::try_from(secs).ok()?;
    let mut tm = std::mem::MaybeUninit::<libc::tm>::zeroed();
    // SAFETY: `time` and `tm` are valid, properly aligned and live for the call; `localtime_r`
    // writes only into `tm` and returns either a pointer to it or null on failure.
    let res = unsafe { libc::localtime_r(&time, tm.as_mut_ptr()) };
    if res.is_null() {
        return None;
    }
    // SAFETY: `localtime_r` succeeded, so it initialised `tm` (which was zeroed before anyway,
    // and every field of `libc::tm` is valid when zeroed).
    let tm = unsafe { tm.assume_init() };
    Some(Tm {
        year: i64::from(tm.tm_year) + 1900,
        month: u32::try_from(tm.tm_mon + 1).unwrap_or(1),
        day: u32::try_from(tm.tm_mday).unwrap_or(1),
        hour: u32::try_from(tm.tm_hour).unwrap_or(0),
        minute: u32::try_from(tm.tm_min).unwrap_or(0),
        second: u32::try_from(tm.tm_sec).unwrap_or(0),
    })
}

/// Days since 1970-01-01 to (year, month 1..=12, day 1..=31) in the proleptic Gregorian calendar
/// (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
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

fn two_digits(out: &mut [u8], value: u32) {
    out[0] = b'0' + (value / 10 % 10) as u8;
    out[1] = b'0' + (value % 10) as u8;
}

fn four_digits(out: &mut [u8], value: i64) {
    let value = value.clamp(0, 9999) as u32;
    out[0] = b'0' + (value / 1000) as u8;
    out[1] = b'0' + (value / 100 % 10) as u8;
    out[2] = b'0' + (value / 10 % 10) as u8;
    out[3] = b'0' + (value % 10) as u8;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_request_clock_agrees_with_instant() {
        let clock = request_clock();
        for _ in 0..3 {
            let (i0, r0) = (std::time::Instant::now(), clock.raw());
            // a sleep to measure, not to synchronise
            std::thread::sleep(std::time::Duration::from_millis(20));
            let (r1, i1) = (clock.raw(), std::time::Instant::now());
            let ours = clock.delta_as_nanos(r0, r1);
            let std = i1.duration_since(i0).as_nanos() as u64;
            assert!(ours >= 20_000_000, "{ours}");
            // read inside the Instant pair: not longer than it but for the calibration's error
            assert!(ours <= std + std / 1000, "{ours} > {std}");
        }
    }

    fn http(secs: u64) -> String {
        let mut out = [0u8; HTTP_DATE_LEN];
        format_http_date(secs, &mut out);
        String::from_utf8(out.to_vec()).unwrap()
    }

    #[test]
    fn imf_fixdate() {
        assert_eq!(http(0), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(http(784_111_777), "Sun, 06 Nov 1994 08:49:37 GMT");
        // 2026-11-21 15:00:31 UTC (gevent inventory example)
        assert_eq!(http(1_795_273_231), "Sat, 21 Nov 2026 15:00:31 GMT");
        assert_eq!(http(951_782_400), "Tue, 29 Feb 2000 00:00:00 GMT");
    }

    #[test]
    fn local_time_shape() {
        let mut out = [0u8; LOCAL_TIME_LEN];
        format_tm(
            &Tm {
                year: 2026,
                month: 11,
                day: 21,
                hour: 15,
                minute: 8,
                second: 43,
            },
            &mut out,
        );
        assert_eq!(&out, b"2026-11-21 15:08:43");
        let mut cache = DateCache::new();
        let text = cache.local_time(now_secs()).to_owned();
        assert_eq!(text.len(), LOCAL_TIME_LEN);
        assert_eq!(&text[4..5], "-");
        assert_eq!(&text[13..14], ":");
    }

    #[test]
    fn utc_matches_http() {
        let tm = utc_tm(784_111_777);
        assert_eq!(
            (tm.year, tm.month, tm.day, tm.hour, tm.minute, tm.second),
            (1994, 11, 6, 8, 49, 37)
        );
    }

    #[test]
    fn cache_is_stable_within_a_second() {
        // Two calls bracketed by one clock second: the same line, for that second, and the
        // second call is served from the cache (not re-formatted). Retried, boundedly, when
        // the second changes in between.
        for _ in 0..100 {
            let mut cache = DateCache::new();
            let before = now_secs();
            let a = *cache.http_date_line();
            cache.http[6..6 + HTTP_DATE_LEN].copy_from_slice(&[b'#'; HTTP_DATE_LEN]);
            let b = *cache.http_date_line();
            let after = now_secs();
            if before != after {
                continue;
            }
            assert_eq!(a.len(), DATE_LINE_LEN);
            assert_eq!(
                std::str::from_utf8(&a).unwrap(),
                format!("Date: {}\r\n", http(before))
            );
            assert_eq!(
                &b[6..6 + HTTP_DATE_LEN],
                &[b'#'; HTTP_DATE_LEN],
                "re-formatted"
            );
            // local time: the same second gives the same text, the next one a new text
            let first = cache.local_time(before).to_owned();
            assert_eq!(cache.local_time(before), first);
            assert_ne!(cache.local_time(before + 1), first);
            assert_eq!(cache.local_time(before), first);
            return;
        }
        panic!("the clock second changed during every attempt");
    }
}
