//! Leader election on a `coordination.k8s.io/v1` `Lease`, so two operator replicas can run
//! with one active. Every write carries the `resourceVersion` read before it, so two
//! candidates racing for the lease cannot both win (the API server answers 409 to the
//! loser). A lease is taken over when its record has not changed for a whole lease
//! duration of this replica's own clock (no comparison of clocks across machines); the
//! holder renews it every third of the duration and steps down when it cannot renew
//! within one duration. A replica shutting down releases the lease so the other takes over
//! at once.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::api::PostParams;
use tokio::time::Instant;

use crate::error::{Error, Result};

/// How the lease is held.
#[derive(Clone, Debug)]
pub struct LeaseConfig {
    /// Name of the Lease.
    pub name: String,
    /// This replica's identity (its pod name).
    pub identity: String,
    /// How long a lease lasts without renewal.
    pub duration: Duration,
}

impl LeaseConfig {
    fn renew_every(&self) -> Duration {
        self.duration / 3
    }

    /// How long a leader may go without a successful renewal before it steps down:
    /// two thirds of the duration, so it stops before any standby may take over.
    fn renew_deadline(&self) -> Duration {
        self.duration * 2 / 3
    }
}

/// The record fields whose change proves the holder is alive.
#[derive(Clone, Debug, PartialEq)]
struct Observed {
    holder: Option<String>,
    renew: Option<MicroTime>,
    resource_version: Option<String>,
}

impl Observed {
    fn of(lease: &Lease) -> Self {
        let spec = lease.spec.as_ref();
        Self {
            holder: spec
                .and_then(|s| s.holder_identity.clone())
                .filter(|h| !h.is_empty()),
            renew: spec.and_then(|s| s.renew_time.clone()),
            resource_version: lease.metadata.resource_version.clone(),
        }
    }
}

/// Holds the lease while leading.
#[derive(Debug)]
pub struct Leader {
    api: Api<Lease>,
    config: LeaseConfig,
    lease: Lease,
    last_renewed: Instant,
}

/// Waits until this replica holds the lease.
pub async fn acquire(api: Api<Lease>, config: LeaseConfig) -> Leader {
    let mut observed: Option<(Observed, Instant)> = None;
    let mut logged_waiting = false;
    loop {
        match try_acquire(&api, &config, &mut observed).await {
            Ok(Some(lease)) => {
                tracing::info!(lease = %config.name, identity = %config.identity, "acquired the lease; leading");
                return Leader {
                    api,
                    config,
                    lease,
                    last_renewed: Instant::now(),
                };
            }
            Ok(None) => {
                if !logged_waiting {
                    let holder = observed
                        .as_ref()
                        .and_then(|(o, _)| o.holder.clone())
                        .unwrap_or_default();
                    tracing::info!(lease = %config.name, %holder, "another replica leads; standing by");
                    logged_waiting = true;
                }
            }
            Err(e) => tracing::warn!(lease = %config.name, "cannot read or take the lease: {e}"),
        }
        tokio::time::sleep(config.renew_every()).await;
    }
}

fn now() -> MicroTime {
    MicroTime(Timestamp::now())
}

async fn try_acquire(
    api: &Api<Lease>,
    config: &LeaseConfig,
    observed: &mut Option<(Observed, Instant)>,
) -> Result<Option<Lease>> {
    let seconds = i32::try_from(config.duration.as_secs().max(1)).unwrap_or(i32::MAX);
    let current = api
        .get_opt(&config.name)
        .await
        .map_err(|e| Error::kube(format!("reading Lease {}", config.name), e))?;
    let Some(mut lease) = current else {
        let lease = Lease {
            metadata: ObjectMeta {
                name: Some(config.name.clone()),
                ..ObjectMeta::default()
            },
            spec: Some(LeaseSpec {
                holder_identity: Some(config.identity.clone()),
                lease_duration_seconds: Some(seconds),
                acquire_time: Some(now()),
                renew_time: Some(now()),
                lease_transitions: Some(0),
                ..LeaseSpec::default()
            }),
        };
        return match api.create(&PostParams::default(), &lease).await {
            Ok(l) => Ok(Some(l)),
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(None),
            Err(e) => Err(Error::kube(format!("creating Lease {}", config.name), e)),
        };
    };
    let seen = Observed::of(&lease);
    let mine = seen.holder.as_deref() == Some(config.identity.as_str());
    let free = seen.holder.is_none();
    let expired = match observed {
        Some((prev, since)) if *prev == seen => since.elapsed() >= config.duration,
        _ => {
            *observed = Some((seen.clone(), Instant::now()));
            false
        }
    };
    if !(mine || free || expired) {
        return Ok(None);
    }
    let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
    if !mine {
        spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
        spec.acquire_time = Some(now());
    }
    spec.holder_identity = Some(config.identity.clone());
    spec.lease_duration_seconds = Some(seconds);
    spec.renew_time = Some(now());
    match api
        .replace(&config.name, &PostParams::default(), &lease)
        .await
    {
        Ok(l) => Ok(Some(l)),
        Err(kube::Error::Api(s)) if s.code == 409 => {
            *observed = None;
            Ok(None)
        }
        Err(e) => Err(Error::kube(format!("taking Lease {}", config.name), e)),
    }
}

impl Leader {
    /// Renews the lease until it is lost; returns the error that ended leadership. Each
    /// renewal is bounded by what is left of the renew deadline, counted from the *start*
    /// of the last successful renewal, so a hung API call cannot keep a leader leading
    /// after a standby may have taken over.
    pub async fn hold(&mut self) -> Error {
        let deadline = self.config.renew_deadline();
        loop {
            tokio::time::sleep(self.config.renew_every()).await;
            let started = Instant::now();
            let left = deadline.saturating_sub(self.last_renewed.elapsed());
            let lost = Error::LeaseLost(format!(
                "{} not renewed within {:?}",
                self.config.name, deadline
            ));
            match tokio::time::timeout(left, self.renew()).await {
                Ok(Ok(())) => self.last_renewed = started,
                Ok(Err(Error::LeaseLost(m))) => return Error::LeaseLost(m),
                Ok(Err(e)) => {
                    tracing::warn!(lease = %self.config.name, "cannot renew the lease: {e}");
                    if self.last_renewed.elapsed() >= deadline {
                        return lost;
                    }
                }
                Err(_) => return lost,
            }
        }
    }

    async fn renew(&mut self) -> Result<()> {
        let mut lease = self.lease.clone();
        lease.spec.get_or_insert_with(LeaseSpec::default).renew_time = Some(now());
        match self
            .api
            .replace(&self.config.name, &PostParams::default(), &lease)
            .await
        {
            Ok(l) => {
                self.lease = l;
                Ok(())
            }
            Err(kube::Error::Api(s)) if s.code == 409 || s.code == 404 => {
                // Someone wrote the lease since our last renewal: check who holds it.
                let current = self
                    .api
                    .get_opt(&self.config.name)
                    .await
                    .map_err(|e| Error::kube("reading the lease", e))?;
                match current {
                    Some(l)
                        if Observed::of(&l).holder.as_deref()
                            == Some(self.config.identity.as_str()) =>
                    {
                        self.lease = l;
                        Ok(())
                    }
                    _ => Err(Error::LeaseLost(format!(
                        "{} was taken by another replica",
                        self.config.name
                    ))),
                }
            }
            Err(e) => Err(Error::kube(
                format!("renewing Lease {}", self.config.name),
                e,
            )),
        }
    }

    /// Gives the lease up so another replica can take it at once.
    pub async fn release(mut self) {
        let spec = self.lease.spec.get_or_insert_with(LeaseSpec::default);
        spec.holder_identity = None;
        spec.lease_duration_seconds = Some(1);
        match self
            .api
            .replace(&self.config.name, &PostParams::default(), &self.lease)
            .await
        {
            Ok(_) => tracing::info!(lease = %self.config.name, "released the lease"),
            Err(e) => tracing::warn!(lease = %self.config.name, "cannot release the lease: {e}"),
        }
    }
}
