//! A ShardKV member uses the controller's configurations only if they have
//! the shard count the member was started with: with another count every
//! key would fall in another shard, so the member would serve, pull and
//! delete the wrong data. A configuration with another count is refused
//! where the member receives it (answered to the migration task as an
//! invalid reply, so it is never proposed), logged at error level once per
//! change, and kept for status pages until the counts agree again.

use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;

use crate::api::{ApiError, ServiceClient, ServiceRequest, ServiceResponse, ShardConfig};
use crate::transport::TransportError;
use crate::types::{ConfigNum, GroupId};

/// The controller's configurations have another shard count than this member.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "the controller's configuration {config} has {controller} shards, but this member of group {group} was started \
     with {configured} (`shards` / --shards): it uses no configuration until they agree (the shard count is fixed \
     when a cluster is created)"
)]
pub struct ShardCountMismatch {
    /// The group of the member.
    pub group: GroupId,
    /// The configuration that was refused.
    pub config: ConfigNum,
    /// Its shard count.
    pub controller: usize,
    /// The count the member was started with.
    pub configured: usize,
}

/// Checks configurations against the member's shard count and remembers
/// the last mismatch (cheap to clone; clones share it).
#[derive(Clone, Debug)]
pub struct ShardCountCheck {
    group: GroupId,
    configured: usize,
    mismatch: Arc<Mutex<Option<ShardCountMismatch>>>,
}

impl ShardCountCheck {
    /// A check for a member of `group` started with `configured` shards.
    #[must_use]
    pub fn new(group: GroupId, configured: usize) -> Self {
        Self { group, configured, mismatch: Arc::default() }
    }

    /// The last configuration refused, unless one with the right count came since.
    #[must_use]
    pub fn mismatch(&self) -> Option<ShardCountMismatch> {
        self.mismatch.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Accept `config` if it has the member's shard count. A refusal is
    /// logged at error level when it is the first, or the counts changed;
    /// an accepted configuration after refusals is logged once too.
    pub fn check(&self, config: &ShardConfig) -> Result<(), ShardCountMismatch> {
        let mut last = self.mismatch.lock().unwrap_or_else(PoisonError::into_inner);
        let controller = config.shards.len();
        if controller == self.configured {
            if last.take().is_some() {
                tracing::info!(group = %self.group, shards = controller, "the controller's configurations have this member's shard count again");
            }
            return Ok(());
        }
        let mismatch =
            ShardCountMismatch { group: self.group, config: config.num, controller, configured: self.configured };
        if last.as_ref().map(|m| (m.controller, m.configured)) != Some((controller, self.configured)) {
            tracing::error!(group = %self.group, config = %config.num, controller_shards = controller, configured_shards = self.configured, "{mismatch}");
        }
        *last = Some(mismatch.clone());
        Err(mismatch)
    }
}

/// The member's calls to the controller, with every configuration answered
/// checked by a [`ShardCountCheck`]: one with another count reaches the
/// caller as [`ApiError::Invalid`] naming both counts.
pub(crate) struct CheckedCtrlCalls {
    pub(crate) inner: Arc<dyn ServiceClient>,
    pub(crate) check: ShardCountCheck,
}

#[async_trait]
impl ServiceClient for CheckedCtrlCalls {
    async fn call_service(&self, addr: &str, request: ServiceRequest) -> Result<ServiceResponse, TransportError> {
        let response = self.inner.call_service(addr, request).await?;
        if let ServiceResponse::Ctrl(Ok(Some(config))) = &response {
            if let Err(mismatch) = self.check.check(config) {
                return Ok(ServiceResponse::Ctrl(Err(ApiError::Invalid { reason: mismatch.to_string() })));
            }
        }
        Ok(response)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::client::{ClerkConfig, ClerkError, CtrlClerk};
    use crate::types::ClientId;

    /// A controller answering every query with configuration 1 of `shards` shards.
    struct Controller {
        shards: Mutex<usize>,
    }

    #[async_trait]
    impl ServiceClient for Controller {
        async fn call_service(&self, _: &str, _: ServiceRequest) -> Result<ServiceResponse, TransportError> {
            let n = *self.shards.lock().unwrap();
            Ok(ServiceResponse::Ctrl(Ok(Some(ShardConfig {
                num: ConfigNum(1),
                shards: vec![GroupId(1); n],
                groups: BTreeMap::from([(GroupId(1), vec!["a:1".into()])]),
            }))))
        }
    }

    #[tokio::test]
    async fn a_configuration_with_another_shard_count_is_refused_naming_both_counts() {
        let controller = Arc::new(Controller { shards: Mutex::new(10) });
        let check = ShardCountCheck::new(GroupId(1), 20);
        let calls = Arc::new(CheckedCtrlCalls { inner: controller.clone(), check: check.clone() });
        let cfg = ClerkConfig { retry_pause: std::time::Duration::from_millis(1), deadline: None };
        let mut clerk = CtrlClerk::new(vec!["c:1".into()], calls, ClientId(0), cfg);
        let Err(ClerkError::Invalid(reason)) = clerk.query(None).await else { panic!("the configuration was used") };
        assert_eq!(
            reason,
            "the controller's configuration 1 has 10 shards, but this member of group 1 was started with 20 \
             (`shards` / --shards): it uses no configuration until they agree (the shard count is fixed when a \
             cluster is created)"
        );
        assert_eq!(
            check.mismatch(),
            Some(ShardCountMismatch { group: GroupId(1), config: ConfigNum(1), controller: 10, configured: 20 })
        );
        *controller.shards.lock().unwrap() = 20;
        assert_eq!(clerk.query(None).await.unwrap().shards.len(), 20);
        assert_eq!(check.mismatch(), None, "agreeing again clears it");
    }
}
