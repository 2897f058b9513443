//! The public request path's parser: `model` and `stream` read from an arbitrary body for
//! every endpoint (`proxy::read_head`), the model looked up in a routing table, and the
//! Responses API's session pinning (`previous_response_id`): never a panic; a refusal is
//! a 400; what is read agrees with a full JSON parse of the same body, and the one-pass
//! read (`read_head`) with serde_json's (`read_head_slow`), errors included.

#![no_main]

use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use modelgate_dataplane::providers::Endpoint;
use modelgate_dataplane::proxy::{read_head, read_head_slow};
use modelgate_dataplane::responses::{decode_id, encode_id, pin};
use modelgate_dataplane::router::{Router, StateRegistry};
use modelgate_dataplane_api::RoutingTable;
use serde_json::Value;

const TABLE: &[u8] = include_bytes!("../../dataplane/api/tests/fixtures/routing-table-v1.json");

fn router() -> &'static Router {
    static ROUTER: OnceLock<Router> = OnceLock::new();
    ROUTER.get_or_init(|| {
        let table = RoutingTable::decode(TABLE).expect("the fixture table decodes");
        Router::build(Arc::new(table), &StateRegistry::default())
    })
}

fuzz_target!(|data: &[u8]| {
    let router = router();
    let parsed = serde_json::from_slice::<Value>(data).ok();
    for endpoint in [
        Endpoint::Chat,
        Endpoint::Completions,
        Endpoint::Embeddings,
        Endpoint::Messages,
        Endpoint::Responses,
    ] {
        let fast = read_head(endpoint, data).map_err(|e| (e.status, e.param, e.message));
        let slow = read_head_slow(endpoint, data).map_err(|e| (e.status, e.param, e.message));
        assert_eq!(fast, slow, "the one-pass read differs from serde_json's");
        match read_head(endpoint, data) {
            Ok(head) => {
                assert!(!(head.stream && endpoint == Endpoint::Embeddings));
                if let Some(value) = &parsed {
                    assert_eq!(
                        value.get("model").and_then(Value::as_str),
                        Some(head.model.as_ref()),
                        "model read differs from the JSON's"
                    );
                    let stream = value.get("stream").and_then(Value::as_bool);
                    assert_eq!(stream.unwrap_or(false), head.stream);
                }
                let _ = router.route(&head.model);
            }
            Err(e) => assert_eq!(e.status.as_u16(), 400, "{}", e.message),
        }
    }
    // A Responses follow-up: pinned to the deployment its id names, when `model` reaches it.
    if let Ok(head) = read_head(Endpoint::Responses, data) {
        match pin(router, &Bytes::copy_from_slice(data), &head.model) {
            Ok(Some(p)) => {
                assert!(p.target < router.targets.len());
                let group = router.groups.iter().find(|g| g.members.contains(&p.target));
                assert!(group.is_some(), "pinned to a deployment in no group");
                serde_json::from_slice::<Value>(&p.body).expect("a pinned body is JSON");
            }
            Ok(None) => {}
            Err(e) => assert!(matches!(e.status.as_u16(), 400 | 404), "{}", e.status),
        }
    }
    if let Ok(id) = std::str::from_utf8(data)
        && let Ok((deployment, upstream)) = decode_id(id)
    {
        let again = decode_id(&encode_id(&deployment, &upstream)).expect("re-encoded id decodes");
        assert_eq!(again, (deployment, upstream));
    }
});
