//! `ringkit.ratelimit.v1.RateLimitAdmin`: runtime overrides, policy view, key inspect and reset.

use tonic::{Request, Response, Status};

use super::convert::{
    from_pb_descriptor, from_pb_entries, from_pb_rule, to_pb_decision, to_pb_entries, to_pb_rule,
};
use super::pb::ringkit::ratelimit::v1 as pb;
use crate::check::Descriptor;
use crate::error::Error;
use crate::limiter::RateLimiter;

/// The admin gRPC service. Serve it on the same port as the checks, or keep it off a public
/// listener: it can lift any limit.
#[derive(Debug, Clone)]
pub struct AdminService {
    /// The node's limiter.
    limiter: RateLimiter,
}

impl AdminService {
    /// Serves `limiter`.
    pub fn new(limiter: RateLimiter) -> Self {
        AdminService { limiter }
    }

    /// Wraps it for tonic's router.
    pub fn into_server(self) -> pb::rate_limit_admin_server::RateLimitAdminServer<Self> {
        pb::rate_limit_admin_server::RateLimitAdminServer::new(self)
    }
}

/// The descriptor of a key request, required and non-empty.
fn key_descriptor(req: &pb::KeyRequest) -> Result<Descriptor, Error> {
    let d = req.descriptor.as_ref().ok_or(Error::NoDescriptors)?;
    Ok(from_pb_descriptor(d))
}

#[tonic::async_trait]
impl pb::rate_limit_admin_server::RateLimitAdmin for AdminService {
    async fn set_policy(
        &self,
        request: Request<pb::SetPolicyRequest>,
    ) -> Result<Response<pb::SetPolicyResponse>, Status> {
        let req = request.into_inner();
        if req.domain.is_empty() {
            return Err(Error::EmptyDomain.into());
        }
        let entries = from_pb_entries(&req.entries);
        if entries.is_empty() {
            return Err(Error::EmptyDescriptor { index: 0 }.into());
        }
        if let Some(entry) = entries.iter().position(|(k, _)| k.is_empty()) {
            return Err(Error::EmptyKey { index: 0, entry }.into());
        }
        let matched = req.rule.as_ref().map(from_pb_rule).transpose()?;
        tracing::info!(domain = %req.domain, ?entries, ?matched, "policy override set");
        let replaced = self
            .limiter
            .policies()
            .set_override(&req.domain, entries, matched);
        Ok(Response::new(pb::SetPolicyResponse { replaced }))
    }

    async fn get_policy(
        &self,
        request: Request<pb::GetPolicyRequest>,
    ) -> Result<Response<pb::GetPolicyResponse>, Status> {
        let domain = request.into_inner().domain;
        let filter = (!domain.is_empty()).then_some(domain.as_str());
        let set = self.limiter.policies().current();
        let overrides = self
            .limiter
            .policies()
            .overrides(filter)
            .iter()
            .map(|o| pb::PolicyOverride {
                domain: o.domain.clone(),
                entries: to_pb_entries(&o.entries),
                rule: Some(to_pb_rule(&o.matched)),
            })
            .collect();
        Ok(Response::new(pb::GetPolicyResponse {
            policy_text: set.source_text.clone(),
            origin: set.origin.clone(),
            overrides,
            domains: set.domains.keys().cloned().collect(),
        }))
    }

    async fn inspect_key(
        &self,
        request: Request<pb::KeyRequest>,
    ) -> Result<Response<pb::InspectKeyResponse>, Status> {
        let req = request.into_inner();
        let inspection = self
            .limiter
            .inspect(&req.domain, key_descriptor(&req)?)
            .await?;
        let o = inspection.outcome;
        Ok(Response::new(pb::InspectKeyResponse {
            matched: inspection.matched,
            decision: o.decision.as_ref().map(to_pb_decision),
            policy: o.limit.map(|l| l.to_string()).unwrap_or_else(|| {
                if o.unlimited {
                    "unlimited".into()
                } else {
                    String::new()
                }
            }),
            shadow: o.shadow,
        }))
    }

    async fn reset_key(
        &self,
        request: Request<pb::KeyRequest>,
    ) -> Result<Response<pb::ResetKeyResponse>, Status> {
        let req = request.into_inner();
        let existed = self
            .limiter
            .reset(&req.domain, key_descriptor(&req)?)
            .await?;
        tracing::info!(domain = %req.domain, existed, "key reset");
        Ok(Response::new(pb::ResetKeyResponse { existed }))
    }
}
