//! Exact decimal numbers for FHIRPath arithmetic: a 128-bit integer and a decimal scale, so
//! that `0.1 + 0.2 = 0.3` and `1.50` keeps its precision.

use alloc::string::String;
use core::cmp::Ordering;
use core::fmt;

/// Most digits kept after the decimal point.
const MAX_SCALE: u32 = 28;
/// Digits after the point of a division's result, beyond what the operands have.
const DIVISION_SCALE: u32 = 8;

/// `mantissa / 10^scale`. Packed to 8-byte alignment: FHIRPath items hold decimals, and
/// 16-byte aligned items would make every collection an over-aligned allocation.
#[derive(Debug, Clone, Copy)]
#[repr(C, packed(8))]
pub struct Decimal {
    mantissa: i128,
    scale: u32,
}

fn pow10(exp: u32) -> Option<i128> {
    10i128.checked_pow(exp)
}

impl Decimal {
    /// An integer as a decimal.
    pub fn from_i64(value: i64) -> Self {
        Decimal {
            mantissa: i128::from(value),
            scale: 0,
        }
    }

    /// Parses `-12.340` (no exponent); `None` for anything else or too many digits.
    pub fn parse(text: &str) -> Option<Self> {
        let (negative, digits) = match text.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, text.strip_prefix('+').unwrap_or(text)),
        };
        let (whole, fraction) = match digits.split_once('.') {
            Some((whole, fraction)) => (whole, fraction),
            None => (digits, ""),
        };
        if whole.is_empty()
            || !whole.bytes().all(|b| b.is_ascii_digit())
            || !fraction.bytes().all(|b| b.is_ascii_digit())
        {
            return None;
        }
        if digits.contains('.') && fraction.is_empty() {
            return None;
        }
        let scale = u32::try_from(fraction.len())
            .ok()
            .filter(|scale| *scale <= MAX_SCALE)?;
        let mut mantissa: i128 = 0;
        for byte in whole.bytes().chain(fraction.bytes()) {
            mantissa = mantissa
                .checked_mul(10)?
                .checked_add(i128::from(byte - b'0'))?;
        }
        Some(Decimal {
            mantissa: if negative { -mantissa } else { mantissa },
            scale,
        })
    }

    /// Parses the JSON number text of a FHIR decimal, exponent included (`1.5e3`).
    pub fn parse_json(text: &str) -> Option<Self> {
        let Some(cut) = text.find(['e', 'E']) else {
            return Self::parse(text);
        };
        let base = Self::parse(text.get(..cut)?)?;
        let exponent: i32 = text.get(cut + 1..)?.trim_start_matches('+').parse().ok()?;
        if exponent >= 0 {
            let factor = pow10(u32::try_from(exponent).ok()?)?;
            Some(Decimal {
                mantissa: base.mantissa.checked_mul(factor)?,
                scale: base.scale,
            })
        } else {
            let scale = base.scale.checked_add(exponent.unsigned_abs())?;
            (scale <= MAX_SCALE).then_some(Decimal {
                mantissa: base.mantissa,
                scale,
            })
        }
    }

    /// Digits after the point, as written.
    pub fn scale(&self) -> u32 {
        self.scale
    }

    /// The value at a larger scale (same number, more zeros); `None` on overflow.
    fn rescale(self, scale: u32) -> Option<Self> {
        if scale < self.scale {
            return None;
        }
        let factor = pow10(scale - self.scale)?;
        Some(Decimal {
            mantissa: self.mantissa.checked_mul(factor)?,
            scale,
        })
    }

    fn aligned(self, other: Self) -> Option<(i128, i128, u32)> {
        let scale = self.scale.max(other.scale);
        Some((
            self.rescale(scale)?.mantissa,
            other.rescale(scale)?.mantissa,
            scale,
        ))
    }

    /// `self + other`.
    pub fn checked_add(self, other: Self) -> Option<Self> {
        let (a, b, scale) = self.aligned(other)?;
        Some(Decimal {
            mantissa: a.checked_add(b)?,
            scale,
        })
    }

    /// `self - other`.
    pub fn checked_sub(self, other: Self) -> Option<Self> {
        let (a, b, scale) = self.aligned(other)?;
        Some(Decimal {
            mantissa: a.checked_sub(b)?,
            scale,
        })
    }

    /// `self * other`.
    pub fn checked_mul(self, other: Self) -> Option<Self> {
        let res = Decimal {
            mantissa: self.mantissa.checked_mul(other.mantissa)?,
            scale: self.scale + other.scale,
        };
        Some(if res.scale > MAX_SCALE {
            res.round(MAX_SCALE)
        } else {
            res
        })
    }

    /// `self / other`, with 8 more digits than the operands; `None` when `other` is zero.
    pub fn checked_div(self, other: Self) -> Option<Self> {
        if other.mantissa == 0 {
            return None;
        }
        let scale = (self.scale.max(other.scale) + DIVISION_SCALE).min(MAX_SCALE);
        // (a / 10^sa) / (b / 10^sb) = a * 10^(scale + sb - sa) / b / 10^scale; one more digit to round.
        let shift = (scale + 1 + other.scale).checked_sub(self.scale)?;
        let numerator = self.mantissa.checked_mul(pow10(shift)?)?;
        let raw = Decimal {
            mantissa: numerator / other.mantissa,
            scale: scale + 1,
        };
        Some(raw.round(scale).trimmed())
    }

    /// Truncating division, as `div`; `None` when `other` is zero.
    pub fn int_div(self, other: Self) -> Option<Self> {
        let (a, b, _) = self.aligned(other)?;
        if b == 0 {
            return None;
        }
        Some(Decimal {
            mantissa: a.checked_div(b)?,
            scale: 0,
        })
    }

    /// Remainder of truncating division, as `mod`; `None` when `other` is zero.
    pub fn checked_rem(self, other: Self) -> Option<Self> {
        let (a, b, scale) = self.aligned(other)?;
        if b == 0 {
            return None;
        }
        Some(Decimal {
            mantissa: a.checked_rem(b)?,
            scale,
        })
    }

    /// Rounds half away from zero to `scale` digits.
    pub fn round(self, scale: u32) -> Self {
        if scale >= self.scale {
            return self;
        }
        let Some(factor) = pow10(self.scale - scale) else {
            return Decimal { mantissa: 0, scale };
        };
        let quotient = self.mantissa / factor;
        let remainder = (self.mantissa % factor).abs();
        let up = remainder * 2 >= factor;
        let mantissa = if up {
            quotient + self.mantissa.signum()
        } else {
            quotient
        };
        Decimal { mantissa, scale }
    }

    /// The same value written with `scale` digits after the point (only adds zeros).
    pub fn rescaled(self, scale: u32) -> Option<Self> {
        self.rescale(scale)
    }

    /// The greatest value with `scale` digits not above this one.
    pub fn floor_at(self, scale: u32) -> Self {
        self.directed(scale, false)
    }

    /// The least value with `scale` digits not below this one.
    pub fn ceiling_at(self, scale: u32) -> Self {
        self.directed(scale, true)
    }

    fn directed(self, scale: u32, up: bool) -> Self {
        if scale >= self.scale {
            return self.rescale(scale).unwrap_or(self);
        }
        let Some(factor) = pow10(self.scale - scale) else {
            return Decimal { mantissa: 0, scale };
        };
        let quotient = self.mantissa / factor;
        let exact = self.mantissa % factor == 0;
        let mantissa = match (exact, up, self.mantissa < 0) {
            (true, _, _) => quotient,
            (false, true, false) => quotient + 1,
            (false, false, true) => quotient - 1,
            _ => quotient,
        };
        Decimal { mantissa, scale }
    }

    /// Equal values (`1.0` and `1.00`) have the same key.
    pub fn equality_key(&self) -> (i128, u32) {
        let trimmed = self.trimmed();
        (trimmed.mantissa, trimmed.scale)
    }

    /// The same value without trailing zeros after the point.
    pub fn trimmed(mut self) -> Self {
        while self.scale > 0 && self.mantissa % 10 == 0 {
            self.mantissa /= 10;
            self.scale -= 1;
        }
        self
    }

    /// Largest integer not above the value.
    pub fn floor(self) -> Self {
        let truncated = self.truncate();
        if self.mantissa < 0 && truncated.cmp_value(&self) != Ordering::Equal {
            Decimal {
                mantissa: truncated.mantissa - 1,
                scale: 0,
            }
        } else {
            truncated
        }
    }

    /// Smallest integer not below the value.
    pub fn ceiling(self) -> Self {
        let truncated = self.truncate();
        if self.mantissa > 0 && truncated.cmp_value(&self) != Ordering::Equal {
            Decimal {
                mantissa: truncated.mantissa + 1,
                scale: 0,
            }
        } else {
            truncated
        }
    }

    /// The integer part.
    pub fn truncate(self) -> Self {
        let factor = pow10(self.scale).unwrap_or(1);
        Decimal {
            mantissa: self.mantissa / factor,
            scale: 0,
        }
    }

    /// Absolute value.
    pub fn abs(self) -> Self {
        Decimal {
            // Saturates for the one value with no positive counterpart (i128::MIN).
            mantissa: self.mantissa.saturating_abs(),
            scale: self.scale,
        }
    }

    /// `-self`.
    pub fn negated(self) -> Self {
        Decimal {
            mantissa: self.mantissa.saturating_neg(),
            scale: self.scale,
        }
    }

    /// True for an integer value.
    pub fn is_integer(&self) -> bool {
        self.trimmed().scale == 0
    }

    /// The value as an `i64` when it is an integer in range.
    pub fn to_i64(&self) -> Option<i64> {
        let trimmed = self.trimmed();
        if trimmed.scale != 0 {
            return None;
        }
        i64::try_from(trimmed.mantissa).ok()
    }

    /// The value as a float (for `sqrt`, `ln`, `exp`, `power`).
    pub fn to_f64(&self) -> f64 {
        let mut divisor = 1.0f64;
        for _ in 0..self.scale {
            divisor *= 10.0;
        }
        self.mantissa as f64 / divisor
    }

    /// A float as a decimal with at most 8 digits after the point.
    pub fn from_f64(value: f64) -> Option<Self> {
        if !value.is_finite() {
            return None;
        }
        let scaled = value * 1e8;
        if scaled.abs() > 1e30 {
            return None;
        }
        let rounded = if scaled >= 0.0 {
            (scaled + 0.5) as i128
        } else {
            (scaled - 0.5) as i128
        };
        Some(
            Decimal {
                mantissa: rounded,
                scale: 8,
            }
            .trimmed(),
        )
    }

    /// Compares values (precision ignored: `1.0` equals `1`).
    pub fn cmp_value(&self, other: &Self) -> Ordering {
        match self.aligned(*other) {
            Some((a, b, _)) => a.cmp(&b),
            None => self
                .to_f64()
                .partial_cmp(&other.to_f64())
                .unwrap_or(Ordering::Equal),
        }
    }

    /// The decimal as text, keeping its scale.
    pub fn to_text(&self) -> String {
        alloc::format!("{self}")
    }
}

impl fmt::Display for Decimal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let digits = alloc::format!("{}", self.mantissa.unsigned_abs());
        let scale = self.scale as usize;
        if self.mantissa < 0 {
            f.write_str("-")?;
        }
        if scale == 0 {
            return f.write_str(&digits);
        }
        let padded = if digits.len() <= scale {
            alloc::format!("{}{digits}", "0".repeat(scale + 1 - digits.len()))
        } else {
            digits
        };
        let cut = padded.len() - scale;
        write!(f, "{}.{}", &padded[..cut], &padded[cut..])
    }
}
