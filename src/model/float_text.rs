//! PostgreSQL's text output of floating-point values (`float4out`, `float8out` with the
//! default `extra_float_digits`): the shortest digits that read back as the same value, in
//! exponent form outside a fixed range, and `Infinity`, `-Infinity`, `NaN`.

/// A `real` as PostgreSQL writes it.
pub fn float4_text(value: f32) -> String {
    float_text(value as f64, format!("{value:e}"), 6)
}

/// A `double precision` as PostgreSQL writes it.
pub fn float8_text(value: f64) -> String {
    float_text(value, format!("{value:e}"), 15)
}

/// `scientific` is Rust's shortest `{:e}` form; PostgreSQL switches to exponent notation when
/// the decimal exponent is below -4 or at least `precision` (6 for float4, 15 for float8).
fn float_text(value: f64, scientific: String, precision: i32) -> String {
    if value.is_nan() {
        return "NaN".into();
    }
    if value.is_infinite() {
        return if value > 0.0 { "Infinity" } else { "-Infinity" }.into();
    }
    if value == 0.0 {
        return if value.is_sign_negative() { "-0" } else { "0" }.into();
    }
    let (mantissa, exponent) = scientific.split_once('e').expect("{:e} has an exponent");
    let exponent: i32 = exponent.parse().expect("{:e} exponent is an integer");
    let negative = mantissa.starts_with('-');
    let digits: String = mantissa.chars().filter(|c| c.is_ascii_digit()).collect();
    let sign = if negative { "-" } else { "" };
    if exponent < -4 || exponent >= precision {
        let (first, rest) = digits.split_at(1);
        let fraction = if rest.is_empty() {
            String::new()
        } else {
            format!(".{rest}")
        };
        let exp_sign = if exponent < 0 { '-' } else { '+' };
        return format!("{sign}{first}{fraction}e{exp_sign}{:02}", exponent.abs());
    }
    if exponent < 0 {
        let zeros = "0".repeat((-exponent - 1) as usize);
        return format!("{sign}0.{zeros}{digits}");
    }
    let point = exponent as usize + 1;
    if digits.len() <= point {
        format!("{sign}{digits}{}", "0".repeat(point - digits.len()))
    } else {
        format!("{sign}{}.{}", &digits[..point], &digits[point..])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_print_as_postgres_prints_them() {
        assert_eq!(float8_text(3.0), "3");
        assert_eq!(float8_text(1.5), "1.5");
        assert_eq!(float8_text(-0.25), "-0.25");
        assert_eq!(float8_text(0.1), "0.1");
        assert_eq!(float8_text(1e15), "1e+15");
        assert_eq!(float8_text(123456789012345.0), "123456789012345");
        assert_eq!(float8_text(0.0001), "0.0001");
        assert_eq!(float8_text(0.00001), "1e-05");
        assert_eq!(float8_text(1.5e300), "1.5e+300");
        assert_eq!(float8_text(f64::INFINITY), "Infinity");
        assert_eq!(float8_text(f64::NAN), "NaN");
        assert_eq!(float4_text(1_000_000.0), "1e+06");
        assert_eq!(float4_text(0.1), "0.1");
        assert_eq!(float4_text(123456.0), "123456");
    }
}
