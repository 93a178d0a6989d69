//! Window lengths as people write them: `"1s"`, `"5m"`, `"5 minutes"`, `"hour"`, `"2d"`.

use std::time::Duration;

/// Parses a window length. Accepted units: `ms`, `s`/`sec`/`second(s)`, `m`/`min`/`minute(s)`,
/// `h`/`hour(s)`, `d`/`day(s)`, `w`/`week(s)`; a unit alone means one of it (`"minute"`).
///
/// # Errors
/// A message naming the accepted spellings.
pub fn parse_window(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let count: u64 = if digits.is_empty() {
        1
    } else {
        digits
            .parse()
            .map_err(|_| format!("`{text}`: the number is too large"))?
    };
    let unit_secs: Option<u64> = match unit.trim() {
        "ms" | "millisecond" | "milliseconds" => None,
        "s" | "sec" | "secs" | "second" | "seconds" => Some(1),
        "m" | "min" | "mins" | "minute" | "minutes" => Some(60),
        "h" | "hour" | "hours" => Some(3600),
        "d" | "day" | "days" => Some(86_400),
        "w" | "week" | "weeks" => Some(7 * 86_400),
        _ => {
            return Err(format!(
                "`{text}` is not a window: write a number and a unit such as \"30s\", \"5m\", \
                 \"1h\", \"1d\" or \"5 minutes\""
            ));
        }
    };
    let d = match unit_secs {
        None => Duration::from_millis(count),
        Some(s) => Duration::from_secs(
            count
                .checked_mul(s)
                .ok_or_else(|| format!("`{text}` is too long"))?,
        ),
    };
    if d.is_zero() {
        return Err(format!("`{text}`: the window must be longer than zero"));
    }
    Ok(d)
}

/// Formats a window with the largest unit that divides it: `5m`, `1h`, `1500ms`.
pub fn format_window(d: Duration) -> String {
    let ms = d.as_millis();
    if !d.subsec_nanos().is_multiple_of(1_000_000) {
        return format!("{}ns", d.as_nanos());
    }
    for (unit, len) in [
        ("w", 604_800_000u128),
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1_000),
    ] {
        if ms >= len && ms.is_multiple_of(len) {
            return format!("{}{unit}", ms / len);
        }
    }
    format!("{ms}ms")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_common_spellings() {
        assert_eq!(parse_window("5m").unwrap(), Duration::from_secs(300));
        assert_eq!(parse_window("5 minutes").unwrap(), Duration::from_secs(300));
        assert_eq!(parse_window("hour").unwrap(), Duration::from_secs(3600));
        assert_eq!(parse_window("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_window("2d").unwrap(), Duration::from_secs(172_800));
        assert!(parse_window("0s").is_err());
        assert!(parse_window("5 fortnights").unwrap_err().contains("5m"));
    }

    #[test]
    fn formats_round_trip() {
        for s in ["5m", "1h", "30s", "1500ms", "2d", "1w"] {
            assert_eq!(format_window(parse_window(s).unwrap()), s);
        }
    }
}
