//! What the Anthropic targets share: a deployment from the contract's golden table, and
//! the three translators.

use modelgate_dataplane::providers::anthropic::{ANTHROPIC_TO_OPENAI, NATIVE, OPENAI_TO_ANTHROPIC};
use modelgate_dataplane::providers::Translator;
use modelgate_dataplane_api::{Deployment, RoutingTable};

/// The first deployment of the contract's golden fixture.
#[allow(dead_code, reason = "only the request target builds requests")]
pub fn deployment() -> Deployment {
    let table: RoutingTable = serde_json::from_str(include_str!(
        "../../dataplane/api/tests/fixtures/routing-table-v1.json"
    ))
    .expect("the contract's fixture");
    table.deployments[0].clone()
}

/// OpenAI chat → Anthropic, Anthropic Messages → OpenAI chat, and the native pass-through.
pub fn translators() -> [&'static dyn Translator; 3] {
    [&OPENAI_TO_ANTHROPIC, &ANTHROPIC_TO_OPENAI, &NATIVE]
}
