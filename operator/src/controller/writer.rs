//! Status writes: server-side apply of `{apiVersion, kind, status}` to each object's
//! `/status` under one field manager, rebuilt whole from what was observed, never
//! read-modify-written. The writer always works on the latest desired set (older sets are
//! dropped, not queued), skips what it already wrote, and refreshes health figures alone
//! (check time, latency) at most once per refresh period, so health polling causes no
//! write storm.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use kube::Client;
use kube::api::{Api, ApiResource, DynamicObject, Patch, PatchParams};
use serde_json::{Value, json};
use tokio::sync::watch;

use crate::compile::Kind;
use crate::error::{Error, Result};
use crate::telemetry::Metrics;

use super::FIELD_MANAGER;

/// Status writes in flight at once.
const CONCURRENCY: usize = 8;

/// The status one object should have.
#[derive(Clone, Debug, PartialEq)]
pub struct StatusPatch {
    /// The object's kind.
    pub kind: Kind,
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// The whole status.
    pub status: Value,
    /// True when it differs from what is there only in health freshness.
    pub freshness_only: bool,
}

impl StatusPatch {
    fn key(&self) -> (Kind, String, String) {
        (self.kind, self.namespace.clone(), self.name.clone())
    }
}

/// The server-side-apply body for a status: optional fields the status leaves out are
/// written as `null`, which server-side apply treats as "not set by this manager" and a
/// merge-patching server as "remove", so a cleared field goes on either.
pub fn apply_body(kind: Kind, status: &Value) -> Value {
    let mut status = status.clone();
    if let Some(map) = status.as_object_mut() {
        let optional: &[&str] = match kind {
            Kind::ModelDeployment => &["health", "tableVersion"],
            Kind::ModelGroupAlias => &["targetSummary", "tableVersion"],
            Kind::RouterSettings => &[],
        };
        for field in optional {
            map.entry((*field).to_owned()).or_insert(Value::Null);
        }
        if let Some(health) = map.get_mut("health").and_then(Value::as_object_mut) {
            for field in ["lastCheckTime", "latencyMs", "lastError"] {
                health.entry(field.to_owned()).or_insert(Value::Null);
            }
        }
    }
    json!({
        "apiVersion": modelgate_crds::API_VERSION,
        "kind": kind.as_str(),
        "status": status,
    })
}

fn resource(kind: Kind) -> ApiResource {
    let plural = match kind {
        Kind::ModelDeployment => "modeldeployments",
        Kind::ModelGroupAlias => "modelgroupaliases",
        Kind::RouterSettings => "routersettings",
    };
    ApiResource {
        group: modelgate_crds::GROUP.to_owned(),
        version: modelgate_crds::VERSION.to_owned(),
        api_version: modelgate_crds::API_VERSION.to_owned(),
        kind: kind.as_str().to_owned(),
        plural: plural.to_owned(),
    }
}

/// Writes one status.
pub async fn write(client: &Client, patch: &StatusPatch) -> Result<()> {
    let api: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), &patch.namespace, &resource(patch.kind));
    let params = PatchParams::apply(FIELD_MANAGER).force();
    match api
        .patch_status(
            &patch.name,
            &params,
            &Patch::Apply(apply_body(patch.kind, &patch.status)),
        )
        .await
    {
        Ok(_) => Ok(()),
        Err(e) => Err(Error::kube(
            format!(
                "writing the status of {} {}/{}",
                patch.kind.as_str(),
                patch.namespace,
                patch.name
            ),
            e,
        )),
    }
}

/// Writes the latest desired statuses until `desired` closes.
pub async fn run(
    client: Client,
    metrics: Arc<Metrics>,
    refresh: Duration,
    mut desired: watch::Receiver<Arc<Vec<StatusPatch>>>,
) {
    let mut written: HashMap<(Kind, String, String), (Value, Instant)> = HashMap::new();
    let mut retry = false;
    loop {
        if retry {
            tokio::select! {
                r = desired.changed() => if r.is_err() { return },
                () = tokio::time::sleep(Duration::from_secs(2)) => {}
            }
        } else if desired.changed().await.is_err() {
            return;
        }
        let set = desired.borrow_and_update().clone();
        let due: Vec<StatusPatch> = set
            .iter()
            .filter(|p| match written.get(&p.key()) {
                Some((v, _)) if *v == p.status => false,
                Some((_, at)) if p.freshness_only => at.elapsed() >= refresh,
                _ => true,
            })
            .cloned()
            .collect();
        retry = false;
        let results: Vec<(StatusPatch, Result<()>)> = futures_util::stream::iter(due)
            .map(|p| {
                let client = client.clone();
                async move {
                    let r = write(&client, &p).await;
                    (p, r)
                }
            })
            .buffer_unordered(CONCURRENCY)
            .collect()
            .await;
        for (p, r) in results {
            match r {
                Ok(()) => {
                    metrics.status_written("ok");
                    written.insert(p.key(), (p.status.clone(), Instant::now()));
                }
                Err(Error::Kube {
                    source: kube::Error::Api(s),
                    ..
                }) if s.code == 404 => {
                    // Deleted meanwhile.
                    written.remove(&p.key());
                }
                Err(Error::Kube {
                    source: kube::Error::Api(s),
                    context,
                }) if (400..500).contains(&s.code) && s.code != 409 && s.code != 429 => {
                    // The API server refuses this status for good (invalid, forbidden):
                    // retrying the same one cannot help; a changed status is tried anew.
                    metrics.status_written("refused");
                    tracing::error!("{context}: {}", s.message);
                    written.insert(p.key(), (p.status.clone(), Instant::now()));
                }
                Err(e) => {
                    metrics.status_written(e.metric_label());
                    tracing::warn!("{e}");
                    retry = true;
                }
            }
        }
        // Forget objects that are gone.
        if written.len() > set.len() * 2 + 64 {
            let live: std::collections::HashSet<_> = set.iter().map(StatusPatch::key).collect();
            written.retain(|k, _| live.contains(k));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cleared_fields_are_written_as_null() {
        let body = apply_body(
            Kind::ModelDeployment,
            &json!({"observedGeneration": 2, "health": {"latencyMs": 3}}),
        );
        assert_eq!(body["apiVersion"], "modelgate.dev/v1alpha1");
        assert_eq!(body["kind"], "ModelDeployment");
        assert_eq!(body["status"]["tableVersion"], Value::Null);
        assert_eq!(body["status"]["health"]["lastError"], Value::Null);
        assert_eq!(body["status"]["health"]["latencyMs"], 3);
        assert_eq!(body["status"]["observedGeneration"], 2);
    }
}
