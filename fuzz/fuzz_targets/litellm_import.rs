//! The LiteLLM config importer (`modelgate-operator import litellm`): arbitrary text as a
//! LiteLLM proxy config. Never a panic; what it imports writes as YAML, reads back as
//! manifests, and compiles into a routing table that validates (what local mode and the
//! operator would do with the import's output).

#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use modelgate_operator::import::litellm::{Options, convert};
use modelgate_operator::manifests::Manifests;

fuzz_target!(|data: &[u8]| {
    let Ok(yaml) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(imported) = convert(yaml, &Options::new("team-a")) else {
        return;
    };
    for d in &imported.deployments {
        assert!(d.spec.validate().is_empty(), "{:?}", d.spec.validate());
    }
    for a in &imported.aliases {
        assert!(a.spec.validate().is_empty(), "{:?}", a.spec.validate());
    }
    let stream = imported.to_yaml_stream().expect("an import writes as YAML");
    let mut manifests = Manifests::default();
    manifests
        .add_str(Path::new("imported.yaml"), &stream)
        .expect("the import's YAML reads back as manifests");
    let settings = manifests.settings(None).expect("one settings document");
    let compiled = manifests.compile(&settings, "team-a", 1);
    if let Err(errors) = compiled.table.validate() {
        panic!("the imported config compiles to an invalid table: {errors:?}");
    }
});
