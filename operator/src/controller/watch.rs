//! The watches: one reflector per (kind, namespace scope), each feeding a store the
//! controller reads whole, and a trigger that fires only when something the compiler (or
//! the fleet) reads has changed, so the operator's own status writes never set off a
//! compile.

use std::collections::HashMap;
use std::fmt::Debug;
use std::hash::{DefaultHasher, Hash, Hasher};

use futures_util::StreamExt;
use kube::Api;
use kube::Resource;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use serde::de::DeserializeOwned;
use tokio::sync::mpsc::UnboundedSender;

/// What a change sets off.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trigger {
    /// A compile of the whole table.
    Compile,
    /// A look at the data-plane pods.
    Pods,
}

/// Hashes anything hashable.
pub fn fingerprint(value: &impl Hash) -> u64 {
    let mut h = DefaultHasher::new();
    value.hash(&mut h);
    h.finish()
}

/// Aborts a task when dropped: the controller's watches end with it.
#[derive(Debug)]
pub struct TaskGuard(tokio::task::AbortHandle);

impl TaskGuard {
    /// Guards `task`.
    pub fn new<T>(task: &tokio::task::JoinHandle<T>) -> Self {
        Self(task.abort_handle())
    }
}

impl Drop for TaskGuard {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Starts a reflector over `api` with `config`; sends `trigger` whenever an object's
/// `fingerprint` changes, one appears or goes, or a relist completes. Returns the store
/// and the guard of the watch task.
pub fn spawn<K>(
    what: &'static str,
    api: Api<K>,
    config: watcher::Config,
    trigger: Trigger,
    fingerprint: fn(&K) -> u64,
    tx: UnboundedSender<Trigger>,
) -> (Store<K>, TaskGuard)
where
    K: Resource + Clone + Debug + DeserializeOwned + Send + Sync + 'static,
    K::DynamicType: Default + Eq + Hash + Clone + Send + Sync,
{
    let (reader, writer) = reflector::store();
    let stream = reflector::reflector(writer, watcher(api, config).default_backoff());
    let task = tokio::spawn(async move {
        let mut seen: HashMap<(Option<String>, Option<String>), u64> = HashMap::new();
        let mut relisted: HashMap<(Option<String>, Option<String>), u64> = HashMap::new();
        let mut stream = std::pin::pin!(stream);
        let mut failing = false;
        while let Some(event) = stream.next().await {
            let event = match event {
                Ok(e) => {
                    if failing {
                        tracing::info!(watch = what, "watch recovered");
                        failing = false;
                    }
                    e
                }
                Err(e) => {
                    if !failing {
                        tracing::warn!(watch = what, "watch failed, retrying with backoff: {e}");
                        failing = true;
                    }
                    continue;
                }
            };
            let key = |o: &K| (o.meta().namespace.clone(), o.meta().name.clone());
            let fire = match &event {
                watcher::Event::Apply(o) => {
                    let f = fingerprint(o);
                    seen.insert(key(o), f) != Some(f)
                }
                watcher::Event::Delete(o) => {
                    seen.remove(&key(o));
                    true
                }
                watcher::Event::Init => {
                    relisted.clear();
                    false
                }
                watcher::Event::InitApply(o) => {
                    relisted.insert(key(o), fingerprint(o));
                    false
                }
                watcher::Event::InitDone => {
                    let changed = relisted != seen;
                    seen = std::mem::take(&mut relisted);
                    // The first list always fires: it is what the controller waits for.
                    changed || seen.is_empty()
                }
            };
            if fire && tx.send(trigger).is_err() {
                return;
            }
        }
    });
    (reader, TaskGuard(task.abort_handle()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_tell_values_apart() {
        assert_eq!(fingerprint(&("a", 1)), fingerprint(&("a", 1)));
        assert_ne!(fingerprint(&("a", 1)), fingerprint(&("a", 2)));
    }
}
