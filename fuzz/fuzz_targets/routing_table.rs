//! Routing tables as the admin API receives them: arbitrary bytes offered to the data
//! plane's table gate (decode, version check, validation), and any document that reads
//! as a table sealed and offered again, as the operator pushes it. Never a panic; a
//! sealed table always decodes to itself; a table the gate accepts builds a router that
//! routes every name it holds.

#![no_main]

use std::sync::Arc;
use std::time::Instant;

use libfuzzer_sys::fuzz_target;
use modelgate_dataplane::router::{Router, StateRegistry};
use modelgate_dataplane::table::TableGate;
use modelgate_dataplane_api::RoutingTable;

fn serve(table: RoutingTable) {
    let names: Vec<String> = table
        .groups
        .iter()
        .map(|g| g.name.clone())
        .chain(table.aliases.iter().map(|a| a.name.clone()))
        .collect();
    let router = Router::build(Arc::new(table), &StateRegistry::default());
    let now = Instant::now();
    for name in &names {
        let _ = router.route(name);
        if let Some(g) = router.group_by_name(name) {
            let _ = router.pick(g, &[], now);
            let _ = router.all_cooling_until(g, now);
        }
    }
}

fuzz_target!(|data: &[u8]| {
    if let Ok((_, table)) = TableGate::new().offer_json(data) {
        serve(table);
    }
    // Past the content-hash check: the same document sealed, as the operator sends it.
    let Ok(table) = serde_json::from_slice::<RoutingTable>(data) else {
        return;
    };
    let sealed = table.seal(7);
    let bytes = sealed.to_canonical_json();
    let decoded = RoutingTable::decode(&bytes).expect("a sealed table decodes");
    assert_eq!(decoded, sealed, "a sealed table decodes to itself");
    let valid = decoded.validate().is_ok();
    let mut gate = TableGate::new();
    assert_eq!(gate.offer_json(&bytes).is_ok(), valid);
    // The same push again is accepted as unchanged.
    if valid {
        let (accepted, _) = gate
            .offer_json(&bytes)
            .expect("a repeated push is accepted");
        assert!(!accepted.changed);
        serve(decoded);
    }
});
