//! The policy file (TOML): parsing and validation with errors that name the line and the field.
//!
//! ```toml
//! [[domain]]
//! name = "api"
//!
//! [[domain.descriptor]]          # each distinct user gets 100 per 5 minutes
//! key = "user"
//! requests = 100
//! window = "5m"
//! algorithm = "sliding_window"   # token_bucket (alias gcra) | sliding_log | sliding_window | fixed_window
//!
//! [[domain.descriptor]]
//! key = "user"
//! value = "vip"                  # exact value; "bot-*" is a prefix; none or "*" is any value
//! unlimited = true
//!
//! [[domain.descriptor]]
//! key = "tenant"
//! requests = 10
//! window = "1s"
//! algorithm = "token_bucket"
//! burst = 50
//! shadow = true                  # count and report, never reject
//!
//!   [[domain.descriptor.descriptor]]   # nested: tenant + path
//!   key = "path"
//!   requests = 5
//!   window = "minute"
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;

use serde::Deserialize;
use toml::Spanned;

use super::model::{DescriptorRule, Domain, PolicySet, Rule, ValueMatch};
use super::window::parse_window;
use crate::algorithm::{Algorithm, Limit};

/// A rejected policy: where, which field, and why. The previous policy stays in force.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyError {
    /// File name (or `admin` for text set through the API).
    pub origin: String,
    /// 1-based line of the offending value.
    pub line: usize,
    /// Dotted path of the field, e.g. `domain[0].descriptor[2].requests`; empty for syntax errors.
    pub field: String,
    /// What is wrong and how to fix it.
    pub message: String,
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "policy {} line {}", self.origin, self.line)?;
        if !self.field.is_empty() {
            write!(f, ", field `{}`", self.field)?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for PolicyError {}

/// The file as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    /// `[[domain]]` tables.
    #[serde(default)]
    domain: Vec<RawDomain>,
}

/// A `[[domain]]` table.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDomain {
    /// The domain name.
    name: Spanned<String>,
    /// Its first-level descriptors.
    #[serde(default)]
    descriptor: Vec<RawDescriptor>,
}

/// A `[[...descriptor]]` table.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDescriptor {
    /// Entry key matched.
    key: Spanned<String>,
    /// Entry value matched (exact, `prefix*`, or absent for any).
    value: Option<Spanned<String>>,
    /// Requests per window.
    requests: Option<Spanned<i64>>,
    /// Window length.
    window: Option<Spanned<String>>,
    /// Algorithm name.
    algorithm: Option<Spanned<String>>,
    /// Token-bucket capacity.
    burst: Option<Spanned<i64>>,
    /// Never limit.
    unlimited: Option<Spanned<bool>>,
    /// Count but never reject.
    #[serde(default)]
    shadow: bool,
    /// Nested descriptors.
    #[serde(default)]
    descriptor: Vec<RawDescriptor>,
}

/// The default algorithm: accurate for any traffic shape with 16 bytes of state.
pub const DEFAULT_ALGORITHM: Algorithm = Algorithm::SlidingWindow;

/// Parses and validates policy text; `origin` names it in errors.
///
/// # Errors
/// A [`PolicyError`] naming the line and field of the first problem.
pub fn parse_policy(text: &str, origin: &str) -> Result<PolicySet, PolicyError> {
    let ctx = Ctx { text, origin };
    let raw: RawFile = toml::from_str(text).map_err(|e| {
        let line = e.span().map_or(1, |s| ctx.line_of(&s));
        ctx.error(line, String::new(), e.message().trim().to_owned())
    })?;
    let mut domains = BTreeMap::new();
    for (i, d) in raw.domain.into_iter().enumerate() {
        let field = format!("domain[{i}]");
        let name = d.name.get_ref().trim().to_owned();
        if name.is_empty() {
            return Err(ctx.at(
                &d.name.span(),
                format!("{field}.name"),
                "the domain name is empty",
            ));
        }
        if domains.contains_key(&name) {
            return Err(ctx.at(
                &d.name.span(),
                format!("{field}.name"),
                format!("domain `{name}` is defined twice; merge the two tables"),
            ));
        }
        let descriptors = convert_level(&ctx, d.descriptor, &format!("{field}.descriptor"))?;
        domains.insert(name.clone(), Domain { name, descriptors });
    }
    Ok(PolicySet {
        domains,
        source_text: text.to_owned(),
        origin: origin.to_owned(),
    })
}

/// Where errors point.
struct Ctx<'a> {
    /// The whole text, to turn byte offsets into lines.
    text: &'a str,
    /// File name for messages.
    origin: &'a str,
}

impl Ctx<'_> {
    /// 1-based line of a byte span.
    fn line_of(&self, span: &Range<usize>) -> usize {
        let end = span.start.min(self.text.len());
        self.text.as_bytes()[..end]
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
            + 1
    }

    /// An error at a line.
    fn error(&self, line: usize, field: String, message: String) -> PolicyError {
        PolicyError {
            origin: self.origin.to_owned(),
            line,
            field,
            message,
        }
    }

    /// An error at a span.
    fn at(&self, span: &Range<usize>, field: String, message: impl Into<String>) -> PolicyError {
        self.error(self.line_of(span), field, message.into())
    }
}

/// Converts one level of descriptors (and, recursively, their children).
fn convert_level(
    ctx: &Ctx<'_>,
    raw: Vec<RawDescriptor>,
    prefix: &str,
) -> Result<Vec<DescriptorRule>, PolicyError> {
    let mut out: Vec<DescriptorRule> = Vec::with_capacity(raw.len());
    for (i, d) in raw.into_iter().enumerate() {
        let field = format!("{prefix}[{i}]");
        let key = d.key.get_ref().trim().to_owned();
        if key.is_empty() {
            return Err(ctx.at(&d.key.span(), format!("{field}.key"), "the key is empty"));
        }
        let value = ValueMatch::parse(d.value.as_ref().map(|v| v.get_ref().as_str()));
        if out.iter().any(|o| o.key == key && o.value == value) {
            let span = d.value.as_ref().map_or(d.key.span(), |v| v.span());
            return Err(ctx.at(
                &span,
                format!("{field}.value"),
                format!("a sibling descriptor already matches key `{key}` with this value"),
            ));
        }
        let rule = convert_rule(ctx, &d, &field)?;
        let children = convert_level(ctx, d.descriptor, &format!("{field}.descriptor"))?;
        out.push(DescriptorRule {
            key,
            value,
            rule,
            shadow: d.shadow,
            children,
        });
    }
    Ok(out)
}

/// The rule of one descriptor table.
fn convert_rule(
    ctx: &Ctx<'_>,
    d: &RawDescriptor,
    field: &str,
) -> Result<Option<Rule>, PolicyError> {
    if let Some(u) = &d.unlimited {
        if let Some(r) = &d.requests {
            return Err(ctx.at(
                &r.span(),
                format!("{field}.requests"),
                "`requests` and `unlimited = true` contradict each other; keep one",
            ));
        }
        return Ok(u.get_ref().then_some(Rule::Unlimited));
    }
    let Some(requests) = &d.requests else {
        // A grouping node: only its children limit. Limit fields without `requests` are a typo.
        if let Some(w) = &d.window {
            return Err(ctx.at(
                &w.span(),
                format!("{field}.requests"),
                "`window` is set but `requests` is missing",
            ));
        }
        return Ok(None);
    };
    let n = *requests.get_ref();
    if n <= 0 {
        return Err(ctx.at(
            &requests.span(),
            format!("{field}.requests"),
            format!(
                "the limit must be at least 1, not {n} (use `unlimited = true` to never limit)"
            ),
        ));
    }
    let Some(window_text) = &d.window else {
        return Err(ctx.at(
            &requests.span(),
            format!("{field}.window"),
            "`requests` needs a `window`, e.g. window = \"1m\"",
        ));
    };
    let window = parse_window(window_text.get_ref())
        .map_err(|m| ctx.at(&window_text.span(), format!("{field}.window"), m))?;
    let algorithm = match &d.algorithm {
        None => DEFAULT_ALGORITHM,
        Some(a) => Algorithm::parse(a.get_ref()).ok_or_else(|| {
            ctx.at(
                &a.span(),
                format!("{field}.algorithm"),
                format!(
                    "unknown algorithm `{}`: use token_bucket (or gcra), sliding_log, \
                     sliding_window or fixed_window",
                    a.get_ref()
                ),
            )
        })?,
    };
    let burst = match &d.burst {
        None => None,
        Some(b) if algorithm != Algorithm::TokenBucket => {
            return Err(ctx.at(
                &b.span(),
                format!("{field}.burst"),
                format!("`burst` only applies to token_bucket, not {algorithm}"),
            ));
        }
        Some(b) if *b.get_ref() <= 0 => {
            return Err(ctx.at(
                &b.span(),
                format!("{field}.burst"),
                "the burst must be at least 1",
            ));
        }
        Some(b) => Some(*b.get_ref() as u64),
    };
    Limit::new(algorithm, n as u64, window, burst)
        .map(|l| Some(Rule::Limited(l)))
        .map_err(|e| ctx.at(&requests.span(), format!("{field}.requests"), e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[[domain]]
name = "api"

[[domain.descriptor]]
key = "user"
requests = 100
window = "5m"

[[domain.descriptor]]
key = "user"
value = "vip"
unlimited = true

[[domain.descriptor]]
key = "tenant"
algorithm = "gcra"
requests = 10
window = "1s"
burst = 50
shadow = true

  [[domain.descriptor.descriptor]]
  key = "path"
  requests = 5
  window = "minute"
"#;

    #[test]
    fn parses_a_good_file() {
        let set = parse_policy(GOOD, "good.toml").unwrap();
        let api = &set.domains["api"];
        assert_eq!(api.descriptors.len(), 3);
        let m = api.resolve([("tenant", "t1"), ("path", "/a")]).unwrap();
        assert!(!m.shadow);
        let Rule::Limited(l) = m.rule else { panic!() };
        assert_eq!(l.window(), std::time::Duration::from_secs(60));
        let m = api.resolve([("tenant", "t1")]).unwrap();
        assert!(m.shadow);
        assert_eq!(
            m.rule,
            Rule::Limited(
                Limit::new(
                    Algorithm::TokenBucket,
                    10,
                    std::time::Duration::from_secs(1),
                    Some(50)
                )
                .unwrap()
            )
        );
    }

    #[test]
    fn zero_limit_names_line_and_field() {
        let bad = GOOD.replace("requests = 10\n", "requests = 0\n");
        let e = parse_policy(&bad, "p.toml").unwrap_err();
        assert_eq!(e.line, 18, "{e}");
        assert_eq!(e.field, "domain[0].descriptor[2].requests");
        assert!(
            e.to_string()
                .starts_with("policy p.toml line 18, field `domain[0].descriptor[2].requests`"),
            "{e}"
        );
    }

    #[test]
    fn unknown_field_and_bad_window_are_reported() {
        let e =
            parse_policy(&GOOD.replace("window = \"5m\"", "windw = \"5m\""), "p.toml").unwrap_err();
        assert!(e.message.contains("windw"), "{e}");
        assert_eq!(e.line, 8, "{e}");
        let e = parse_policy(&GOOD.replace("\"minute\"", "\"fortnight\""), "p.toml").unwrap_err();
        assert_eq!(e.field, "domain[0].descriptor[2].descriptor[0].window");
        assert_eq!(e.line, 26);
        let e = parse_policy(&GOOD.replace("\"gcra\"", "\"leaky\""), "p.toml").unwrap_err();
        assert!(e.message.contains("unknown algorithm `leaky`"), "{e}");
    }

    #[test]
    fn burst_on_a_window_algorithm_is_rejected() {
        let text = "[[domain]]\nname='d'\n[[domain.descriptor]]\nkey='k'\nrequests=1\nwindow='1s'\nburst=3\n";
        let e = parse_policy(text, "p").unwrap_err();
        assert_eq!(
            (e.line, e.field.as_str()),
            (7, "domain[0].descriptor[0].burst")
        );
    }
}
