//! Dates, date-times and times with partial precision, as FHIRPath compares and adds them.

use alloc::format;
use alloc::string::String;
use core::cmp::Ordering;

/// Which of the three temporal types a value is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TemporalKind {
    /// `@2014-01-25`
    Date,
    /// `@2014-01-25T14:30:14.559Z`
    DateTime,
    /// `@T14:30`
    Time,
}

/// A date, date-time or time; components after the precision are absent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Temporal {
    /// Date, date-time or time.
    pub kind: TemporalKind,
    /// The year (0 for times).
    pub year: i32,
    /// 1 to 12.
    pub month: Option<u8>,
    /// 1 to 31.
    pub day: Option<u8>,
    /// 0 to 23.
    pub hour: Option<u8>,
    /// 0 to 59.
    pub minute: Option<u8>,
    /// 0 to 59.
    pub second: Option<u8>,
    /// Milliseconds, and how many digits of fraction were written (1 to 3).
    pub millis: Option<(u16, u8)>,
    /// Time-zone offset in minutes east of UTC.
    pub offset: Option<i16>,
}

fn number(text: &str, len: usize) -> Option<(u32, &str)> {
    let digits = text.get(..len)?;
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((digits.parse().ok()?, text.get(len..)?))
}

fn days_in_month(year: i32, month: u8) -> u8 {
    match month {
        4 | 6 | 9 | 11 => 30,
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        _ => 31,
    }
}

impl Temporal {
    /// Parses a FHIRPath literal (after `@`) or a FHIR `date`/`dateTime`/`instant`/`time` value.
    /// `kind_hint` is `Time` for FHIR `time` values, which have no `T`.
    pub fn parse(text: &str, kind_hint: Option<TemporalKind>) -> Option<Temporal> {
        let mut res = Temporal {
            kind: TemporalKind::Date,
            year: 0,
            month: None,
            day: None,
            hour: None,
            minute: None,
            second: None,
            millis: None,
            offset: None,
        };
        let time_text = if let Some(time) = text.strip_prefix('T') {
            res.kind = TemporalKind::Time;
            time
        } else if kind_hint == Some(TemporalKind::Time) {
            res.kind = TemporalKind::Time;
            text
        } else {
            let (year, mut rest) = number(text, 4)?;
            res.year = i32::try_from(year).ok()?;
            if let Some(after) = rest.strip_prefix('-') {
                let (month, after) = number(after, 2)?;
                res.month = Some(u8::try_from(month).ok().filter(|m| (1..=12).contains(m))?);
                rest = after;
                if let Some(after) = rest.strip_prefix('-') {
                    let (day, after) = number(after, 2)?;
                    let day = u8::try_from(day).ok()?;
                    if day == 0 || day > days_in_month(res.year, res.month.unwrap_or(1)) {
                        return None;
                    }
                    res.day = Some(day);
                    rest = after;
                }
            }
            match rest.strip_prefix('T') {
                None if rest.is_empty() => return Some(res),
                None => {
                    // A date-time literal may carry a zone without a time only in FHIR values.
                    return None;
                }
                Some(time) => {
                    res.kind = TemporalKind::DateTime;
                    if time.is_empty() {
                        return Some(res);
                    }
                    time
                }
            }
        };
        let (hour, mut rest) = number(time_text, 2)?;
        res.hour = Some(u8::try_from(hour).ok().filter(|h| *h < 24)?);
        if let Some(after) = rest.strip_prefix(':') {
            let (minute, after) = number(after, 2)?;
            res.minute = Some(u8::try_from(minute).ok().filter(|m| *m < 60)?);
            rest = after;
            if let Some(after) = rest.strip_prefix(':') {
                let (second, after) = number(after, 2)?;
                res.second = Some(u8::try_from(second).ok().filter(|s| *s < 60)?);
                rest = after;
                if let Some(after) = rest.strip_prefix('.') {
                    let digits = after.bytes().take_while(u8::is_ascii_digit).count();
                    if digits == 0 {
                        return None;
                    }
                    let kept = digits.min(3);
                    let (fraction, _) = number(after, kept)?;
                    let millis = fraction * 10u32.pow(3 - u32::try_from(kept).ok()?);
                    res.millis = Some((u16::try_from(millis).ok()?, u8::try_from(kept).ok()?));
                    rest = after.get(digits..)?;
                }
            }
        }
        if res.kind == TemporalKind::Time {
            return rest.is_empty().then_some(res);
        }
        if rest == "Z" {
            res.offset = Some(0);
        } else if let Some(sign) = rest.chars().next().filter(|c| *c == '+' || *c == '-') {
            let (hours, after) = number(rest.get(1..)?, 2)?;
            let (minutes, after) = number(after.strip_prefix(':')?, 2)?;
            if !after.is_empty() || hours > 14 || minutes > 59 {
                return None;
            }
            let total = i16::try_from(hours * 60 + minutes).ok()?;
            res.offset = Some(if sign == '-' { -total } else { total });
        } else if !rest.is_empty() {
            return None;
        }
        Some(res)
    }

    /// How many components are present: 1 (year) to 6 (seconds, milliseconds included); for
    /// times, 4 (hour) to 6.
    pub fn precision(&self) -> usize {
        [
            self.month.is_some(),
            self.day.is_some(),
            self.hour.is_some(),
            self.minute.is_some(),
            self.second.is_some(),
        ]
        .iter()
        .filter(|present| **present)
        .count()
            + 1
            - usize::from(self.kind == TemporalKind::Time)
    }

    /// The components as numbers (milliseconds folded into seconds), shifted to UTC when the
    /// value has a zone and a time.
    fn components(&self) -> [i64; 6] {
        let mut value = *self;
        if let (Some(offset), Some(_)) = (self.offset, self.hour) {
            value = value.add_minutes(-i64::from(offset)).unwrap_or(value);
        }
        let second_ms = value.second.map_or(0, |s| {
            i64::from(s) * 1000 + value.millis.map_or(0, |(ms, _)| i64::from(ms))
        });
        [
            i64::from(value.year),
            value.month.map_or(0, i64::from),
            value.day.map_or(0, i64::from),
            value.hour.map_or(0, i64::from),
            value.minute.map_or(0, i64::from),
            second_ms,
        ]
    }

    /// The date part of a date or date-time (time and zone dropped).
    pub fn date_part(&self) -> Temporal {
        Temporal {
            kind: TemporalKind::Date,
            hour: None,
            minute: None,
            second: None,
            millis: None,
            offset: None,
            ..*self
        }
    }

    /// A key that orders all values totally (for `sort()`): the components in UTC, missing ones
    /// first, then the precision.
    pub fn sort_key(&self) -> ([i64; 6], usize) {
        let mut key = self.components();
        let present = self.precision()
            + if self.kind == TemporalKind::Time {
                3
            } else {
                0
            };
        for (idx, slot) in key.iter_mut().enumerate() {
            if idx >= present {
                *slot = -1;
            }
        }
        (key, present)
    }

    /// Compares two values of the same kind. `None` when the answer depends on digits one of
    /// them does not have (`@2012 < @2012-01-02`), or the kinds differ.
    pub fn compare(&self, other: &Temporal) -> Option<Ordering> {
        let date_like = |kind| matches!(kind, TemporalKind::Date | TemporalKind::DateTime);
        if self.kind != other.kind && !(date_like(self.kind) && date_like(other.kind)) {
            return None;
        }
        // With a time, a zone on one side only leaves the answer open.
        if self.hour.is_some()
            && other.hour.is_some()
            && self.offset.is_some() != other.offset.is_some()
        {
            return None;
        }
        let skip = if self.kind == TemporalKind::Time {
            3
        } else {
            0
        };
        let (a, b) = (self.components(), other.components());
        let precision_a = self.precision() + skip;
        let precision_b = other.precision() + skip;
        let common = precision_a.min(precision_b);
        for idx in skip..common {
            match a.get(idx).cmp(&b.get(idx)) {
                Ordering::Equal => continue,
                unequal => return Some(unequal),
            }
        }
        (precision_a == precision_b).then_some(Ordering::Equal)
    }

    /// Adds minutes (negative to subtract), carrying into hours, days, months and years;
    /// `None` when the result leaves the years 1 to 9999.
    pub fn add_minutes(&self, minutes: i64) -> Option<Temporal> {
        self.add_millis(minutes.checked_mul(60_000)?)
    }

    /// Adds milliseconds to the time part, carrying into the date part (a time wraps around
    /// midnight); `None` when the result leaves the years 1 to 9999.
    pub fn add_millis(&self, millis: i64) -> Option<Temporal> {
        let mut res = *self;
        let current = i64::from(self.hour.unwrap_or(0)) * 3_600_000
            + i64::from(self.minute.unwrap_or(0)) * 60_000
            + i64::from(self.second.unwrap_or(0)) * 1000
            + self.millis.map_or(0, |(ms, _)| i64::from(ms));
        let total = current.checked_add(millis)?;
        let days = total.div_euclid(86_400_000);
        let rest = total.rem_euclid(86_400_000);
        if self.hour.is_some() {
            res.hour = Some((rest / 3_600_000) as u8);
        }
        if self.minute.is_some() {
            res.minute = Some((rest / 60_000 % 60) as u8);
        }
        if self.second.is_some() {
            res.second = Some((rest / 1000 % 60) as u8);
        }
        if let Some((_, digits)) = self.millis {
            res.millis = Some(((rest % 1000) as u16, digits));
        }
        if days != 0 && self.kind != TemporalKind::Time && self.day.is_some() {
            res = res.add_days(days)?;
        }
        Some(res)
    }

    /// Adds days, carrying into months and years; `None` outside the years 1 to 9999.
    pub fn add_days(&self, days: i64) -> Option<Temporal> {
        let mut res = *self;
        let (Some(month), Some(day)) = (self.month, self.day) else {
            return Some(res);
        };
        // More than 10,000 years of days cannot stay within the years 1 to 9999.
        if days.unsigned_abs() > 3_700_000 {
            return None;
        }
        let ordinal =
            days_from_civil(i64::from(self.year), u32::from(month), u32::from(day)) + days;
        let (year, month, day) = civil_from_days(ordinal);
        res.year = i32::try_from(year)
            .ok()
            .filter(|year| (1..=9999).contains(year))?;
        res.month = Some(month as u8);
        res.day = Some(day as u8);
        Some(res)
    }

    /// Adds calendar months (the day is clamped to the end of the month); `None` outside the
    /// years 1 to 9999.
    pub fn add_months(&self, months: i64) -> Option<Temporal> {
        let mut res = *self;
        if months.unsigned_abs() > 120_000 {
            return None;
        }
        let Some(month) = self.month else {
            res.year = i32::try_from(i64::from(self.year) + months / 12)
                .ok()
                .filter(|year| (1..=9999).contains(year))?;
            return Some(res);
        };
        let index = i64::from(self.year) * 12 + i64::from(month) - 1 + months;
        res.year = i32::try_from(index.div_euclid(12))
            .ok()
            .filter(|year| (1..=9999).contains(year))?;
        res.month = Some((index.rem_euclid(12) + 1) as u8);
        if let Some(day) = self.day {
            res.day = Some(day.min(days_in_month(res.year, res.month.unwrap_or(1))));
        }
        Some(res)
    }

    /// The value as FHIRPath/FHIR text (without `@`).
    pub fn to_text(&self) -> String {
        let mut res = String::new();
        if self.kind != TemporalKind::Time {
            res.push_str(&format!("{:04}", self.year));
            if let Some(month) = self.month {
                res.push_str(&format!("-{month:02}"));
            }
            if let Some(day) = self.day {
                res.push_str(&format!("-{day:02}"));
            }
            if self.kind == TemporalKind::DateTime {
                res.push('T');
            }
        }
        if let Some(hour) = self.hour {
            res.push_str(&format!("{hour:02}"));
            if let Some(minute) = self.minute {
                res.push_str(&format!(":{minute:02}"));
            }
            if let Some(second) = self.second {
                res.push_str(&format!(":{second:02}"));
            }
            if let Some((millis, _)) = self.millis {
                res.push_str(&format!(".{millis:03}"));
            }
        }
        match self.offset {
            Some(0) => res.push('Z'),
            Some(offset) => {
                let sign = if offset < 0 { '-' } else { '+' };
                let abs = offset.unsigned_abs();
                res.push_str(&format!("{sign}{:02}:{:02}", abs / 60, abs % 60));
            }
            None => {}
        }
        res
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let yoe = year - era * 400;
    let month = i64::from(month);
    let doy = (153 * (if month > 2 { month - 3 } else { month + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}
