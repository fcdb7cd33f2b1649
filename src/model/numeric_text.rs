//! PostgreSQL's `numeric` as digits: the text it prints, the base-10000 digit groups its binary
//! format and its division scale are counted in. A value is an Arrow decimal's unscaled integer
//! and scale; a negative scale (`1e5` is planned as 1 with scale -5) stands for trailing zeros.

use datafusion::arrow::datatypes::i256;

/// A decimal value split at its point: the sign, the integer digits without leading zeros
/// (empty for zero) and the fraction's digits, as many as the scale says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NumericDigits {
    pub negative: bool,
    pub integer: String,
    pub fraction: String,
}

/// Base-10000 digit groups, none of them zero at either end, and the power of 10000 the first
/// one stands for. Zero has no groups and weight 0.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NumericGroups {
    pub groups: Vec<i16>,
    pub weight: i16,
}

const GROUP_DIGITS: usize = 4;

impl NumericDigits {
    pub fn new(unscaled: i256, scale: i8) -> NumericDigits {
        // The magnitude's digits come from the text (i256::MIN has no positive counterpart).
        let text = unscaled.to_string();
        let mut digits = text.trim_start_matches('-').to_owned();
        let zero = digits == "0";
        let fraction = if scale <= 0 {
            if !zero {
                digits.extend(std::iter::repeat_n('0', scale.unsigned_abs().into()));
            }
            String::new()
        } else {
            let scale = usize::from(scale.unsigned_abs());
            if digits.len() <= scale {
                digits.insert_str(0, &"0".repeat(scale + 1 - digits.len()));
            }
            digits.split_off(digits.len() - scale)
        };
        NumericDigits {
            negative: unscaled < i256::ZERO && !zero,
            integer: digits.trim_start_matches('0').to_owned(),
            fraction,
        }
    }

    /// The text `numeric_out` prints: every digit of the scale, `0` before a bare fraction.
    pub fn text(&self) -> String {
        let mut text = String::with_capacity(self.integer.len() + self.fraction.len() + 3);
        if self.negative {
            text.push('-');
        }
        text.push_str(if self.integer.is_empty() {
            "0"
        } else {
            &self.integer
        });
        if !self.fraction.is_empty() {
            text.push('.');
            text.push_str(&self.fraction);
        }
        text
    }

    pub fn groups(&self) -> NumericGroups {
        let lead = (GROUP_DIGITS - self.integer.len() % GROUP_DIGITS) % GROUP_DIGITS;
        let trail = (GROUP_DIGITS - self.fraction.len() % GROUP_DIGITS) % GROUP_DIGITS;
        let integer = format!("{}{}", "0".repeat(lead), self.integer);
        let fraction = format!("{}{}", self.fraction, "0".repeat(trail));
        let mut groups: Vec<i16> = integer
            .as_bytes()
            .chunks(GROUP_DIGITS)
            .chain(fraction.as_bytes().chunks(GROUP_DIGITS))
            .map(|chunk| {
                chunk
                    .iter()
                    .fold(0, |group, d| group * 10 + i16::from(d - b'0'))
            })
            .collect();
        let leading_zeros = groups.iter().take_while(|g| **g == 0).count();
        groups.drain(..leading_zeros);
        while groups.last() == Some(&0) {
            groups.pop();
        }
        let weight = if groups.is_empty() {
            0
        } else {
            (integer.len() / GROUP_DIGITS) as i16 - 1 - leading_zeros as i16
        };
        NumericGroups { groups, weight }
    }
}

/// The scale PostgreSQL gives `dividend / divisor` (numeric.c's `select_div_scale`): at least
/// 16 significant digits of the quotient as its first digit groups estimate it, and never fewer
/// than either operand's display scale.
pub fn division_scale(dividend: &NumericDigits, divisor: &NumericDigits) -> i32 {
    const MIN_SIGNIFICANT_DIGITS: i32 = 16;
    const MAX_DISPLAY_SCALE: i32 = 1000;
    let lead = |digits: &NumericDigits| {
        let groups = digits.groups();
        (groups.weight, groups.groups.first().copied().unwrap_or(0))
    };
    let ((weight1, first1), (weight2, first2)) = (lead(dividend), lead(divisor));
    let mut quotient_weight = i32::from(weight1) - i32::from(weight2);
    if first1 <= first2 {
        quotient_weight -= 1;
    }
    (MIN_SIGNIFICANT_DIGITS - quotient_weight * GROUP_DIGITS as i32)
        .max(dividend.fraction.len() as i32)
        .max(divisor.fraction.len() as i32)
        .clamp(0, MAX_DISPLAY_SCALE)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digits(unscaled: i128, scale: i8) -> NumericDigits {
        NumericDigits::new(i256::from_i128(unscaled), scale)
    }

    #[test]
    fn text_keeps_the_scale_and_expands_negative_scales() {
        assert_eq!(digits(15, 1).text(), "1.5");
        assert_eq!(digits(-5, 2).text(), "-0.05");
        assert_eq!(digits(0, 2).text(), "0.00");
        assert_eq!(digits(0, 0).text(), "0");
        assert_eq!(digits(1, -5).text(), "100000");
        assert_eq!(digits(-120, 0).text(), "-120");
        assert_eq!(
            digits(i128::MAX, 38).text(),
            "1.70141183460469231731687303715884105727"
        );
    }

    #[test]
    fn groups_are_base_10000_around_the_point() {
        let groups = |u, s| digits(u, s).groups();
        assert_eq!(
            groups(1234567, 2),
            NumericGroups {
                groups: vec![1, 2345, 6700],
                weight: 1
            }
        );
        assert_eq!(
            groups(5, 1),
            NumericGroups {
                groups: vec![5000],
                weight: -1
            }
        );
        assert_eq!(
            groups(1, 5),
            NumericGroups {
                groups: vec![1000],
                weight: -2
            }
        );
        assert_eq!(
            groups(100000000, 0),
            NumericGroups {
                groups: vec![1],
                weight: 2
            }
        );
        assert_eq!(
            groups(0, 3),
            NumericGroups {
                groups: vec![],
                weight: 0
            }
        );
    }

    #[test]
    fn division_scale_is_postgresqls() {
        // As PostgreSQL 15 answers scale(x / y).
        assert_eq!(division_scale(&digits(1, 0), &digits(3, 0)), 20);
        assert_eq!(division_scale(&digits(10, 0), &digits(3, 0)), 16);
        assert_eq!(division_scale(&digits(100000, 0), &digits(3, 0)), 12);
        assert_eq!(division_scale(&digits(1, 0), &digits(30000, 0)), 24);
        assert_eq!(division_scale(&digits(1, 30), &digits(3, 0)), 48);
        assert_eq!(division_scale(&digits(1, 0), &digits(3, 30)), 30);
    }
}
