//! The policy model: domains and descriptor trees as Envoy's rate-limit service has them, and the
//! matching of a request descriptor against them.

use std::collections::BTreeMap;

use crate::algorithm::Limit;

/// What a matched descriptor does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// Count against this limit.
    Limited(Limit),
    /// Never limit (an exemption inside a limited tree, e.g. one VIP tenant).
    Unlimited,
}

/// How a descriptor rule matches the value of a request entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ValueMatch {
    /// Key only (no `value`, or `"*"`): any value, each distinct value with its own budget.
    Any,
    /// This exact value.
    Exact(String),
    /// Values starting with this prefix (`value = "acme-*"`); each value its own budget.
    Prefix(String),
}

impl ValueMatch {
    /// Parses the policy-file spelling.
    pub fn parse(value: Option<&str>) -> Self {
        match value {
            None | Some("*") => ValueMatch::Any,
            Some(v) => match v.strip_suffix('*') {
                Some(prefix) => ValueMatch::Prefix(prefix.to_owned()),
                None => ValueMatch::Exact(v.to_owned()),
            },
        }
    }

    /// Match strength: exact beats the longest prefix beats key-only; `None` = no match.
    fn score(&self, value: &str) -> Option<usize> {
        match self {
            ValueMatch::Any => Some(0),
            ValueMatch::Prefix(p) => value.starts_with(p.as_str()).then_some(1 + p.len()),
            ValueMatch::Exact(v) => (v == value).then_some(usize::MAX),
        }
    }
}

/// One node of a domain's descriptor tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DescriptorRule {
    /// The entry key this node matches.
    pub key: String,
    /// The entry values this node matches.
    pub value: ValueMatch,
    /// The rule applied when a request's descriptor ends at this node; `None` = no limit here
    /// (the node only groups children).
    pub rule: Option<Rule>,
    /// Shadow mode: count and report, never reject.
    pub shadow: bool,
    /// Nodes matching the next entry of a descriptor.
    pub children: Vec<DescriptorRule>,
}

/// A policy domain (Envoy's `domain`): an independent namespace of descriptor trees.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Domain {
    /// The domain name requests refer to.
    pub name: String,
    /// First-level descriptor rules.
    pub descriptors: Vec<DescriptorRule>,
}

/// The outcome of matching one request descriptor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Matched {
    /// The rule to apply.
    pub rule: Rule,
    /// Whether it is in shadow mode.
    pub shadow: bool,
}

impl Domain {
    /// Matches a descriptor's entries level by level, taking the most specific rule at each level;
    /// every entry must be matched (Envoy's semantics). `None`: no rule, the descriptor is not
    /// limited.
    pub fn resolve<'a, I>(&self, entries: I) -> Option<Matched>
    where
        I: IntoIterator<Item = (&'a str, &'a str)>,
    {
        let mut level = &self.descriptors;
        let mut node: Option<&DescriptorRule> = None;
        for (key, value) in entries {
            let best = level
                .iter()
                .filter(|r| r.key == key)
                .filter_map(|r| r.value.score(value).map(|s| (s, r)))
                .max_by_key(|(s, _)| *s)?;
            node = Some(best.1);
            level = &best.1.children;
        }
        let node = node?;
        node.rule.map(|rule| Matched {
            rule,
            shadow: node.shadow,
        })
    }
}

/// A complete policy: every domain, plus where it came from (shown by the admin API).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PolicySet {
    /// Domains by name.
    pub domains: BTreeMap<String, Domain>,
    /// The text it was parsed from (returned by `GetPolicy`).
    pub source_text: String,
    /// The file it was read from, or `built-in`.
    pub origin: String,
}

impl PolicySet {
    /// The domain names, comma-separated, for error messages.
    pub fn domain_list(&self) -> String {
        if self.domains.is_empty() {
            return "no domains".into();
        }
        let names: Vec<String> = self.domains.keys().map(|d| format!("`{d}`")).collect();
        names.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::algorithm::Algorithm;

    fn limited(n: u64) -> Option<Rule> {
        Some(Rule::Limited(
            Limit::new(Algorithm::FixedWindow, n, Duration::from_secs(60), None).unwrap(),
        ))
    }

    fn node(key: &str, value: Option<&str>, rule: Option<Rule>) -> DescriptorRule {
        DescriptorRule {
            key: key.into(),
            value: ValueMatch::parse(value),
            rule,
            shadow: false,
            children: vec![],
        }
    }

    #[test]
    fn most_specific_value_wins() {
        let mut path = node("tenant", Some("acme"), None);
        path.children.push(node("path", None, limited(7)));
        let domain = Domain {
            name: "api".into(),
            descriptors: vec![
                node("user", None, limited(10)),
                node("user", Some("vip"), Some(Rule::Unlimited)),
                node("user", Some("bot-*"), limited(1)),
                path,
            ],
        };
        let rule =
            |entries: &[(&str, &str)]| domain.resolve(entries.iter().copied()).map(|m| m.rule);
        assert_eq!(rule(&[("user", "alice")]), limited(10));
        assert_eq!(rule(&[("user", "vip")]), Some(Rule::Unlimited));
        assert_eq!(rule(&[("user", "bot-7")]), limited(1));
        assert_eq!(
            rule(&[("tenant", "acme")]),
            None,
            "grouping node has no rule"
        );
        assert_eq!(rule(&[("tenant", "acme"), ("path", "/x")]), limited(7));
        assert_eq!(rule(&[("tenant", "other"), ("path", "/x")]), None);
        assert_eq!(
            rule(&[("user", "alice"), ("extra", "1")]),
            None,
            "all entries must match"
        );
    }
}
