//! Checks as the service sees them: a request of descriptors is validated and resolved against
//! the policy into store operations ([`Plan`]), the operations run somewhere (locally or on the
//! key's owner), and their results fold back into one [`CheckOutcome`]. Pure: no I/O, no clock.

use crate::algorithm::{Decision, Limit, MAX_COST};
use crate::error::Error;
use crate::policy::{Policies, Rule};

/// Longest store key accepted (domain plus entries, encoded): bounds per-key memory.
pub const MAX_KEY_BYTES: usize = 4096;

/// A check of one domain: one or many descriptors, each naming a budget.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckRequest {
    /// Policy domain.
    pub domain: String,
    /// Descriptors; all must pass.
    pub descriptors: Vec<Descriptor>,
    /// Units each descriptor consumes unless it sets its own; 0 peeks.
    pub cost: u64,
}

/// One descriptor of a request.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Descriptor {
    /// `(key, value)` entries, matched level by level against the domain's tree.
    pub entries: Vec<(String, String)>,
    /// This descriptor's own cost (Envoy's per-descriptor `hits_addend`).
    pub cost: Option<u64>,
    /// A limit sent by the caller (Envoy's `RateLimitOverride`), used instead of the policy.
    pub limit_override: Option<Limit>,
    /// Give the cost back instead of consuming it (Envoy's `is_negative_hits`).
    pub refund: bool,
}

impl Descriptor {
    /// A descriptor of the given entries, with the request's cost.
    pub fn new<K: Into<String>, V: Into<String>>(
        entries: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        Descriptor {
            entries: entries
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
            ..Descriptor::default()
        }
    }
}

/// What to do to one store key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpKind {
    /// Check and consume (cost 0 peeks).
    Check,
    /// Give units back.
    Refund,
    /// Forget the key.
    Reset,
}

/// One operation on one store key, with the limit already resolved, so that whichever node owns
/// the key can run it without consulting its own policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Op {
    /// What to do.
    pub kind: OpKind,
    /// The encoded store key.
    pub key: Vec<u8>,
    /// The limit to apply.
    pub limit: Limit,
    /// Units.
    pub cost: u64,
}

/// The result of an [`Op`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct OpResult {
    /// For checks.
    pub decision: Option<Decision>,
    /// For resets: whether the key was held.
    pub existed: bool,
}

/// How one descriptor resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Item {
    /// No rule matches: not limited.
    NoRule,
    /// The rule says unlimited.
    Unlimited,
    /// Counted against a limit; `op` is the index of its op.
    Counted {
        /// The limit.
        limit: Limit,
        /// Shadow mode.
        shadow: bool,
        /// Index into the ops.
        op: usize,
    },
}

/// A validated, resolved request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Domain, for metrics.
    pub domain: String,
    /// One item per descriptor.
    items: Vec<Item>,
    /// The store operations to run, in order.
    pub ops: Vec<Op>,
}

/// One descriptor's result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DescriptorOutcome {
    /// Whether this descriptor lets the request through (shadow mode always does).
    pub ok: bool,
    /// The algorithm's answer; `None` when no rule matched or the rule is unlimited.
    pub decision: Option<Decision>,
    /// The limit applied.
    pub limit: Option<Limit>,
    /// The rule is in shadow mode.
    pub shadow: bool,
    /// The rule is `unlimited`.
    pub unlimited: bool,
}

/// The result of a whole request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckOutcome {
    /// Whether the request may proceed.
    pub allowed: bool,
    /// One outcome per request descriptor.
    pub descriptors: Vec<DescriptorOutcome>,
}

impl CheckOutcome {
    /// The most restrictive counted descriptor (least remaining), for the `RateLimit` headers:
    /// prefer a rejecting one.
    pub fn tightest(&self) -> Option<(Decision, Limit)> {
        self.descriptors
            .iter()
            .filter_map(|d| Some((d.ok, d.decision?, d.limit?)))
            .min_by_key(|(ok, d, _)| (*ok, d.remaining))
            .map(|(_, d, l)| (d, l))
    }
}

/// Validates `req` and resolves each descriptor against `policies`.
///
/// # Errors
/// Bad input ([`Error::EmptyDomain`], [`Error::NoDescriptors`], [`Error::EmptyDescriptor`],
/// [`Error::EmptyKey`], [`Error::CostOverflow`], [`Error::DescriptorTooLong`]) or an
/// [`Error::UnknownDomain`].
pub fn plan(policies: &Policies, req: &CheckRequest) -> Result<Plan, Error> {
    if req.domain.is_empty() {
        return Err(Error::EmptyDomain);
    }
    if req.descriptors.is_empty() {
        return Err(Error::NoDescriptors);
    }
    let mut items = Vec::with_capacity(req.descriptors.len());
    let mut ops = Vec::with_capacity(req.descriptors.len());
    for (index, d) in req.descriptors.iter().enumerate() {
        validate_descriptor(index, d)?;
        let cost = d.cost.unwrap_or(req.cost);
        if cost > MAX_COST {
            return Err(Error::CostOverflow {
                cost,
                max: MAX_COST,
            });
        }
        let (rule, shadow) = match d.limit_override {
            Some(limit) => (Rule::Limited(limit), false),
            None => match policies.resolve(&req.domain, &d.entries)? {
                Some(m) => (m.rule, m.shadow),
                None => {
                    items.push(Item::NoRule);
                    continue;
                }
            },
        };
        match rule {
            Rule::Unlimited => items.push(Item::Unlimited),
            Rule::Limited(limit) => {
                let key = encode_key(&req.domain, &d.entries);
                if key.len() > MAX_KEY_BYTES {
                    return Err(Error::DescriptorTooLong {
                        index,
                        len: key.len(),
                        max: MAX_KEY_BYTES,
                    });
                }
                let kind = if d.refund {
                    OpKind::Refund
                } else {
                    OpKind::Check
                };
                items.push(Item::Counted {
                    limit,
                    shadow,
                    op: ops.len(),
                });
                ops.push(Op {
                    kind,
                    key,
                    limit,
                    cost,
                });
            }
        }
    }
    Ok(Plan {
        domain: req.domain.clone(),
        items,
        ops,
    })
}

/// Rejects empty descriptors and keys.
fn validate_descriptor(index: usize, d: &Descriptor) -> Result<(), Error> {
    if d.entries.is_empty() {
        return Err(Error::EmptyDescriptor { index });
    }
    if let Some(entry) = d.entries.iter().position(|(k, _)| k.is_empty()) {
        return Err(Error::EmptyKey { index, entry });
    }
    Ok(())
}

impl Plan {
    /// Folds the op results into the request's outcome.
    pub fn outcome(&self, results: &[OpResult]) -> CheckOutcome {
        let descriptors: Vec<DescriptorOutcome> = self
            .items
            .iter()
            .map(|item| match item {
                Item::NoRule => DescriptorOutcome {
                    ok: true,
                    decision: None,
                    limit: None,
                    shadow: false,
                    unlimited: false,
                },
                Item::Unlimited => DescriptorOutcome {
                    ok: true,
                    decision: None,
                    limit: None,
                    shadow: false,
                    unlimited: true,
                },
                Item::Counted { limit, shadow, op } => {
                    let decision = results.get(*op).and_then(|r| r.decision);
                    DescriptorOutcome {
                        ok: *shadow || decision.is_none_or(|d| d.allowed),
                        decision,
                        limit: Some(*limit),
                        shadow: *shadow,
                        unlimited: false,
                    }
                }
            })
            .collect();
        CheckOutcome {
            allowed: descriptors.iter().all(|d| d.ok),
            descriptors,
        }
    }

    /// When the request as a whole is rejected, the refunds that undo what its admitted
    /// descriptors consumed: a rejected request consumes nothing anywhere.
    pub fn rollback(&self, outcome: &CheckOutcome, results: &[OpResult]) -> Vec<Op> {
        if outcome.allowed {
            return Vec::new();
        }
        self.ops
            .iter()
            .zip(results)
            .filter(|(op, r)| {
                op.kind == OpKind::Check && op.cost > 0 && r.decision.is_some_and(|d| d.allowed)
            })
            .map(|(op, _)| Op {
                kind: OpKind::Refund,
                ..op.clone()
            })
            .collect()
    }
}

/// Encodes domain and entries as the store key: each part length-prefixed (LEB128), so no
/// separator character can make two different descriptors collide.
pub fn encode_key(domain: &str, entries: &[(String, String)]) -> Vec<u8> {
    let len = domain.len()
        + entries
            .iter()
            .map(|(k, v)| k.len() + v.len() + 4)
            .sum::<usize>()
        + 2;
    let mut out = Vec::with_capacity(len);
    push_part(&mut out, domain.as_bytes());
    for (k, v) in entries {
        push_part(&mut out, k.as_bytes());
        push_part(&mut out, v.as_bytes());
    }
    out
}

/// Appends a LEB128 length and the bytes.
fn push_part(out: &mut Vec<u8>, part: &[u8]) {
    let mut n = part.len();
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(byte);
            break;
        }
        out.push(byte | 0x80);
    }
    out.extend_from_slice(part);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{DEFAULT_POLICY, parse_policy};

    fn policies() -> Policies {
        Policies::new(parse_policy(DEFAULT_POLICY, "built-in").unwrap())
    }

    fn req(domain: &str, descriptors: Vec<Descriptor>, cost: u64) -> CheckRequest {
        CheckRequest {
            domain: domain.into(),
            descriptors,
            cost,
        }
    }

    #[test]
    fn bad_inputs_are_named() {
        let p = policies();
        let d = || vec![Descriptor::new([("key", "a")])];
        let cases: Vec<(CheckRequest, &str)> = vec![
            (req("", d(), 1), "domain is empty"),
            (
                req("nope", d(), 1),
                "unknown domain `nope`: the policy defines `default`, `envoy`",
            ),
            (req("default", vec![], 1), "no descriptors"),
            (
                req("default", vec![Descriptor::default()], 1),
                "descriptor 0 is empty",
            ),
            (
                req("default", vec![Descriptor::new([("", "x")])], 1),
                "entry 0: the key is empty",
            ),
            (
                req("default", d(), u64::MAX),
                "cost 18446744073709551615 is above the maximum",
            ),
            (
                req(
                    "default",
                    vec![Descriptor::new([("key", "x".repeat(5000))])],
                    1,
                ),
                "descriptor 0 is 5014 bytes long; the maximum is 4096",
            ),
        ];
        for (r, want) in cases {
            let e = plan(&p, &r).unwrap_err().to_string();
            assert!(e.contains(want), "{e:?} lacks {want:?}");
        }
    }

    #[test]
    fn keys_do_not_collide_across_boundaries() {
        let a = encode_key("d", &[("ab".into(), "c".into())]);
        let b = encode_key("d", &[("a".into(), "bc".into())]);
        assert_ne!(a, b);
    }

    #[test]
    fn rejected_request_rolls_back_admitted_descriptors() {
        let p = policies();
        let r = req(
            "default",
            vec![
                Descriptor::new([("key", "a")]),
                Descriptor::new([("key", "b")]),
                Descriptor::new([("other", "x")]),
            ],
            3,
        );
        let plan = plan(&p, &r).unwrap();
        assert_eq!(plan.ops.len(), 2, "no rule for `other`");
        let allowed = Decision {
            allowed: true,
            limit: 10,
            remaining: 7,
            reset_after: Default::default(),
            retry_after: None,
        };
        let denied = Decision {
            allowed: false,
            ..allowed
        };
        let results = [
            OpResult {
                decision: Some(allowed),
                existed: false,
            },
            OpResult {
                decision: Some(denied),
                existed: false,
            },
        ];
        let outcome = plan.outcome(&results);
        assert!(!outcome.allowed);
        assert!(outcome.descriptors[2].ok && outcome.descriptors[2].decision.is_none());
        let undo = plan.rollback(&outcome, &results);
        assert_eq!(undo.len(), 1);
        assert_eq!((undo[0].kind, undo[0].cost), (OpKind::Refund, 3));
        assert_eq!(outcome.tightest().unwrap().0, denied);
    }
}
