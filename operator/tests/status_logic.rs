//! The status the operator derives for each object, one scenario per branch: what the
//! compiler said (`Accepted`), which data planes serve which table (`Ready`,
//! `dataplanes`), what they report of the upstream (`Healthy`, `health`), an alias's
//! targets, and when `lastTransitionTime` moves.
//!
//! Every scenario starts from real compiler output (`compile::compile` on resources built
//! here), a `fleet::Convergence` fed with the tables "produced", a map of pods with what
//! they serve, and health merged with `fleet::merge_health`, as the controller does.

use std::collections::{BTreeMap, HashMap};

use modelgate_crds::{
    Condition, ConditionStatus, ModelDeployment, ModelDeploymentStatus, ModelGroupAlias,
    ModelGroupAliasStatus, RouterSettings,
};
use modelgate_dataplane_api::{DeploymentHealth, HealthReport, RoutingTable};
use modelgate_operator::compile::{self, Diagnostics, Inputs, SecretStore};
use modelgate_operator::fleet::{self, Convergence, MergedHealth, PodKey, PodState};
use modelgate_operator::status::{self, ACCEPTED, HEALTHY, Observed, READY};

const NS: &str = "team";
const NOW: &str = "2026-03-01T12:00:00Z";
const LATER: &str = "2026-03-01T12:05:00Z";

// ---------------------------------------------------------------------------------------
// Builders
// ---------------------------------------------------------------------------------------

/// A `ModelDeployment` `team/<name>` at `generation`, its spec given as YAML.
fn deployment(name: &str, generation: i64, spec: &str) -> ModelDeployment {
    let spec = serde_yaml::from_str(spec).expect("the deployment spec is valid YAML");
    let mut d = ModelDeployment::new(name, spec);
    d.metadata.namespace = Some(NS.to_owned());
    d.metadata.generation = Some(generation);
    d
}

/// A mock-provider deployment of `model`.
fn mock(name: &str, model: &str) -> ModelDeployment {
    deployment(
        name,
        1,
        &format!("{{model: {model}, upstream: {{provider: mock}}}}"),
    )
}

/// A `ModelGroupAlias` `team/<name>` at generation 1, its spec given as YAML.
fn alias(name: &str, spec: &str) -> ModelGroupAlias {
    let spec = serde_yaml::from_str(spec).expect("the alias spec is valid YAML");
    let mut a = ModelGroupAlias::new(name, spec);
    a.metadata.namespace = Some(NS.to_owned());
    a.metadata.generation = Some(1);
    a
}

/// Everything status is derived from, owned.
struct World {
    table: RoutingTable,
    diagnostics: Diagnostics,
    convergence: Convergence,
    pods: BTreeMap<PodKey, PodState>,
    health: HashMap<String, MergedHealth>,
}

impl World {
    /// Compiles the objects into the table of `revision` and records it as produced.
    fn compile(
        deployments: &[ModelDeployment],
        aliases: &[ModelGroupAlias],
        revision: u64,
    ) -> Self {
        let mut world = World {
            table: RoutingTable::default(),
            diagnostics: Diagnostics::default(),
            convergence: Convergence::default(),
            pods: BTreeMap::new(),
            health: HashMap::new(),
        };
        world.recompile(deployments, aliases, revision);
        world
    }

    /// Compiles a newer table (as after an edit) and records it as produced.
    fn recompile(
        &mut self,
        deployments: &[ModelDeployment],
        aliases: &[ModelGroupAlias],
        revision: u64,
    ) {
        let compiled = compile::compile(
            &Inputs {
                deployments,
                aliases,
                secrets: &SecretStore::new(),
                settings: &RouterSettings::default(),
                settings_namespace: "modelgate-system",
            },
            revision,
        );
        self.convergence.record(&compiled.table);
        self.table = compiled.table;
        self.diagnostics = compiled.diagnostics;
    }

    /// The current table's revision and version, as a pod serving it reports them.
    fn current(&self) -> (u64, String) {
        (self.table.revision, self.table.version.clone())
    }

    /// Adds a pod serving `served` (`None`: nothing learned yet).
    fn pod(&mut self, name: &str, served: Option<(u64, String)>) {
        self.pods.insert(
            format!("gateways/{name}"),
            PodState {
                served,
                ..PodState::default()
            },
        );
    }

    /// Gives pod `name` a health report and merges health across pods.
    fn report(&mut self, name: &str, deployments: Vec<DeploymentHealth>) {
        let (revision, version) = self.current();
        let pod = self
            .pods
            .get_mut(&format!("gateways/{name}"))
            .expect("the pod was added first");
        pod.report = Some(HealthReport {
            deployments,
            revision: Some(revision),
            version: Some(version),
        });
        self.health = fleet::merge_health(self.pods.values().filter_map(|p| p.report.as_ref()));
    }

    fn seen<'a>(&'a self, now: &'a str) -> Observed<'a> {
        Observed {
            table: &self.table,
            diagnostics: &self.diagnostics,
            convergence: &self.convergence,
            pods: &self.pods,
            health: &self.health,
            now,
        }
    }
}

/// One deployment's health as a pod reports it.
fn checked(id: &str, healthy: bool, latency_ms: u64, reason: Option<&str>) -> DeploymentHealth {
    DeploymentHealth {
        id: id.to_owned(),
        healthy: Some(healthy),
        latency_ms: Some(latency_ms),
        last_check_ms: Some(1_772_366_400_400), // 2026-03-01T12:00:00.400Z
        reason: reason.map(str::to_owned),
        consecutive_failures: u32::from(!healthy),
        ..DeploymentHealth::default()
    }
}

fn find<'a>(conditions: &'a [Condition], type_: &str) -> &'a Condition {
    conditions
        .iter()
        .find(|c| c.r#type == type_)
        .unwrap_or_else(|| panic!("no {type_} condition in {conditions:#?}"))
}

/// `(status, reason)` of a condition.
fn state(conditions: &[Condition], type_: &str) -> (ConditionStatus, String) {
    let c = find(conditions, type_);
    (c.status, c.reason.clone())
}

fn is(status: ConditionStatus, reason: &str) -> (ConditionStatus, String) {
    (status, reason.to_owned())
}

fn deployment_status(world: &World, d: &ModelDeployment) -> ModelDeploymentStatus {
    status::deployment_status(d, &world.seen(NOW))
}

fn alias_status(world: &World, a: &ModelGroupAlias) -> ModelGroupAliasStatus {
    status::alias_status(a, &world.seen(NOW))
}

// ---------------------------------------------------------------------------------------
// Accepted
// ---------------------------------------------------------------------------------------

#[test]
fn a_rejected_deployment_says_why_and_is_neither_ready_nor_judged_healthy() {
    let bad = deployment(
        "bad",
        1,
        "{model: m, upstream: {provider: openai, credentials: {secretKeyRef: {name: gone, key: apiKey}}}}",
    );
    let mut world = World::compile(std::slice::from_ref(&bad), &[], 1);
    let current = world.current();
    world.pod("gw-0", Some(current));
    world.report("gw-0", vec![checked("team/bad", true, 3, None)]);

    let s = deployment_status(&world, &bad);

    let compiler = world
        .diagnostics
        .first_error(&compile::ObjectKey::new(
            compile::Kind::ModelDeployment,
            NS,
            "bad",
        ))
        .expect("the compiler rejects a deployment whose Secret is missing");
    let accepted = find(&s.conditions, ACCEPTED);
    assert_eq!(accepted.status, ConditionStatus::False);
    assert_eq!(accepted.reason, "MissingSecret");
    assert_eq!(accepted.reason, compiler.reason.as_str());
    assert_eq!(accepted.message, compiler.message);
    assert_eq!(
        state(&s.conditions, READY),
        is(ConditionStatus::False, "NotAccepted")
    );
    assert_eq!(
        state(&s.conditions, HEALTHY),
        is(ConditionStatus::Unknown, "NotAccepted")
    );
    assert_eq!(s.health, None, "no health figures for what is not served");
    assert_eq!(s.table_version, None);
    assert_eq!(s.observed_generation, Some(1));
    let counts = s.dataplanes.expect("counts are always written");
    assert_eq!((counts.ready, counts.total), (0, 1));
    for c in &s.conditions {
        assert_eq!(c.observed_generation, Some(1));
        assert_eq!(c.last_transition_time, NOW);
    }
}

#[test]
fn a_generation_the_table_does_not_carry_yet_is_not_compiled() {
    let compiled = mock("a", "m");
    let world = World::compile(std::slice::from_ref(&compiled), &[], 1);
    // The object was edited after the table was compiled.
    let mut edited = compiled;
    edited.metadata.generation = Some(2);

    let s = deployment_status(&world, &edited);

    assert_eq!(
        state(&s.conditions, ACCEPTED),
        is(ConditionStatus::False, "NotCompiled")
    );
    assert_eq!(
        state(&s.conditions, READY),
        is(ConditionStatus::False, "NotAccepted")
    );
    assert_eq!(s.observed_generation, Some(2));
}

#[test]
fn compiler_warnings_are_named_in_the_accepted_message() {
    // The same object twice: one definition is used, with a DuplicateObject warning.
    let a = mock("a", "m");
    let world = World::compile(&[a.clone(), a.clone()], &[], 1);

    let s = deployment_status(&world, &a);

    let accepted = find(&s.conditions, ACCEPTED);
    assert_eq!(accepted.status, ConditionStatus::True);
    assert!(
        accepted
            .message
            .starts_with("compiled into the routing table; DuplicateObject: "),
        "{}",
        accepted.message
    );
}

// ---------------------------------------------------------------------------------------
// Ready and dataplanes
// ---------------------------------------------------------------------------------------

#[test]
fn an_accepted_deployment_without_data_planes_is_not_ready() {
    let a = mock("a", "m");
    let world = World::compile(std::slice::from_ref(&a), &[], 1);

    let s = deployment_status(&world, &a);

    let accepted = find(&s.conditions, ACCEPTED);
    assert_eq!(
        (accepted.status, accepted.reason.as_str()),
        (ConditionStatus::True, "Accepted")
    );
    assert_eq!(accepted.message, "compiled into the routing table");
    assert_eq!(
        state(&s.conditions, READY),
        is(ConditionStatus::False, "NoDataPlanes")
    );
    let counts = s.dataplanes.expect("counts");
    assert_eq!((counts.ready, counts.total), (0, 0));
    assert_eq!(
        s.table_version.as_deref(),
        Some(world.table.version.as_str())
    );
}

#[test]
fn a_deployment_served_by_one_of_two_data_planes_is_converging() {
    let a = mock("a", "m");
    let mut world = World::compile(std::slice::from_ref(&a), &[], 1);
    let current = world.current();
    world.pod("gw-0", Some(current));
    world.pod("gw-1", None);

    let s = deployment_status(&world, &a);

    let ready = find(&s.conditions, READY);
    assert_eq!(
        (ready.status, ready.reason.as_str()),
        (ConditionStatus::False, "Converging")
    );
    assert_eq!(ready.message, "generation 1 is served by 1/2 data planes");
    let counts = s.dataplanes.expect("counts");
    assert_eq!((counts.ready, counts.total), (1, 2));
}

#[test]
fn a_deployment_served_by_every_data_plane_is_ready() {
    let a = mock("a", "m");
    let mut world = World::compile(std::slice::from_ref(&a), &[], 1);
    let current = world.current();
    world.pod("gw-0", Some(current.clone()));
    world.pod("gw-1", Some(current));

    let s = deployment_status(&world, &a);

    let ready = find(&s.conditions, READY);
    assert_eq!(
        (ready.status, ready.reason.as_str()),
        (ConditionStatus::True, "Served")
    );
    assert_eq!(ready.message, "generation 1 is served by 2/2 data planes");
    let counts = s.dataplanes.expect("counts");
    assert_eq!((counts.ready, counts.total), (2, 2));
}

#[test]
fn a_pod_on_a_revision_older_than_the_one_that_introduced_the_generation_does_not_count() {
    let edited_v1 = mock("edited", "m");
    let untouched = mock("untouched", "n");
    let mut world = World::compile(&[edited_v1.clone(), untouched.clone()], &[], 1);
    let revision_1 = world.current();
    // `edited` moves to generation 2 in revision 2; `untouched` keeps generation 1.
    let edited_v2 = deployment(
        "edited",
        2,
        "{model: m, upstream: {provider: mock}, routing: {weight: 5}}",
    );
    world.recompile(&[edited_v2.clone(), untouched.clone()], &[], 2);
    let revision_2 = world.current();
    assert_ne!(revision_1.1, revision_2.1, "the edit changes the table");
    world.pod("gw-old", Some(revision_1.clone()));
    world.pod("gw-new", Some(revision_2.clone()));

    let edited = deployment_status(&world, &edited_v2);
    let counts = edited.dataplanes.expect("counts");
    assert_eq!(
        (counts.ready, counts.total),
        (1, 2),
        "only gw-new serves generation 2"
    );
    assert_eq!(
        state(&edited.conditions, READY),
        is(ConditionStatus::False, "Converging")
    );
    assert_eq!(edited.table_version.as_deref(), Some(revision_2.1.as_str()));

    // Generation 1 of `untouched` came with revision 1, which both pods serve or passed.
    let untouched = deployment_status(&world, &untouched);
    let counts = untouched.dataplanes.expect("counts");
    assert_eq!((counts.ready, counts.total), (2, 2));
    assert_eq!(
        state(&untouched.conditions, READY),
        is(ConditionStatus::True, "Served")
    );
    assert_eq!(
        untouched.table_version.as_deref(),
        Some(revision_1.1.as_str()),
        "tableVersion names the table that introduced the generation"
    );
}

#[test]
fn a_pod_serving_a_table_this_operator_did_not_produce_does_not_count() {
    let a = mock("a", "m");
    let mut world = World::compile(std::slice::from_ref(&a), &[], 1);
    world.pod("gw-0", Some((1, "someone-elses-version".to_owned())));

    let s = deployment_status(&world, &a);

    let counts = s.dataplanes.expect("counts");
    assert_eq!((counts.ready, counts.total), (0, 1));
}

#[test]
fn a_pod_that_skipped_the_deployment_does_not_count() {
    let a = mock("a", "m");
    let mut world = World::compile(std::slice::from_ref(&a), &[], 1);
    let current = world.current();
    world.pod("gw-0", Some(current));
    if let Some(p) = world.pods.get_mut("gateways/gw-0") {
        p.skipped.push("team/a".to_owned());
    }

    let s = deployment_status(&world, &a);

    let counts = s.dataplanes.expect("counts");
    assert_eq!((counts.ready, counts.total), (0, 1));
}

// ---------------------------------------------------------------------------------------
// Healthy and health
// ---------------------------------------------------------------------------------------

#[test]
fn a_deployment_every_checking_pod_finds_answering_is_healthy() {
    let a = mock("a", "m");
    let mut world = World::compile(std::slice::from_ref(&a), &[], 1);
    let current = world.current();
    world.pod("gw-0", Some(current.clone()));
    world.pod("gw-1", Some(current.clone()));
    world.pod("gw-2", Some(current));
    world.report("gw-0", vec![checked("team/a", true, 30, None)]);
    world.report("gw-1", vec![checked("team/a", true, 10, None)]);
    world.report("gw-2", vec![checked("team/a", true, 20, None)]);

    let s = deployment_status(&world, &a);

    let healthy = find(&s.conditions, HEALTHY);
    assert_eq!(
        (healthy.status, healthy.reason.as_str()),
        (ConditionStatus::True, "Healthy")
    );
    assert_eq!(
        healthy.message,
        "the upstream answers (checked by 3 data planes)"
    );
    let health = s.health.expect("health figures of a checked deployment");
    assert_eq!(health.latency_ms, Some(20), "the median latency");
    assert_eq!(
        health.last_check_time.as_deref(),
        Some("2026-03-01T12:00:00Z"),
        "RFC 3339, whole seconds"
    );
    assert_eq!(health.last_error, None);
}

#[test]
fn a_deployment_failing_on_every_pod_is_unhealthy_and_says_how_many_see_it() {
    let a = mock("a", "m");
    let mut world = World::compile(std::slice::from_ref(&a), &[], 1);
    let current = world.current();
    world.pod("gw-0", Some(current.clone()));
    world.pod("gw-1", Some(current));
    world.report(
        "gw-0",
        vec![checked("team/a", false, 5, Some("connection refused"))],
    );
    world.report(
        "gw-1",
        vec![checked("team/a", false, 7, Some("connection refused"))],
    );

    let s = deployment_status(&world, &a);

    let healthy = find(&s.conditions, HEALTHY);
    assert_eq!(
        (healthy.status, healthy.reason.as_str()),
        (ConditionStatus::False, "Unhealthy")
    );
    assert!(
        healthy.message.contains("2/2 data planes see it failing"),
        "{}",
        healthy.message
    );
    assert!(
        healthy.message.ends_with(": connection refused"),
        "{}",
        healthy.message
    );
    let health = s.health.expect("health figures");
    assert_eq!(health.last_error.as_deref(), Some("connection refused"));
}

#[test]
fn one_failing_pod_out_of_two_makes_it_unhealthy() {
    let a = mock("a", "m");
    let mut world = World::compile(std::slice::from_ref(&a), &[], 1);
    let current = world.current();
    world.pod("gw-0", Some(current.clone()));
    world.pod("gw-1", Some(current));
    world.report("gw-0", vec![checked("team/a", true, 5, None)]);
    world.report("gw-1", vec![checked("team/a", false, 7, Some("timed out"))]);

    let s = deployment_status(&world, &a);

    let healthy = find(&s.conditions, HEALTHY);
    assert_eq!(healthy.status, ConditionStatus::False);
    assert!(
        healthy
            .message
            .starts_with("1/2 data planes see it failing: timed out"),
        "{}",
        healthy.message
    );
}

#[test]
fn a_deployment_no_pod_has_checked_is_not_checked() {
    let a = mock("a", "m");
    let mut world = World::compile(std::slice::from_ref(&a), &[], 1);
    let current = world.current();
    world.pod("gw-0", Some(current));
    // A report that names the deployment without an opinion yet.
    world.report(
        "gw-0",
        vec![DeploymentHealth {
            id: "team/a".to_owned(),
            ..DeploymentHealth::default()
        }],
    );

    let s = deployment_status(&world, &a);

    assert_eq!(
        state(&s.conditions, HEALTHY),
        is(ConditionStatus::Unknown, "NotChecked")
    );
    assert_eq!(s.health, None);
}

#[test]
fn a_deployment_with_health_checks_disabled_says_so() {
    let a = deployment(
        "a",
        1,
        "{model: m, upstream: {provider: mock}, healthCheck: {enabled: false}}",
    );
    let mut world = World::compile(std::slice::from_ref(&a), &[], 1);
    let current = world.current();
    world.pod("gw-0", Some(current));

    let s = deployment_status(&world, &a);

    assert_eq!(
        state(&s.conditions, HEALTHY),
        is(ConditionStatus::Unknown, "HealthCheckDisabled")
    );
}

#[test]
fn failing_traffic_marks_even_an_unchecked_deployment_unhealthy() {
    let a = deployment(
        "a",
        1,
        "{model: m, upstream: {provider: mock}, healthCheck: {enabled: false}}",
    );
    let mut world = World::compile(std::slice::from_ref(&a), &[], 1);
    let current = world.current();
    world.pod("gw-0", Some(current));
    world.report("gw-0", vec![checked("team/a", false, 9, Some("HTTP 503"))]);

    let s = deployment_status(&world, &a);

    assert_eq!(
        state(&s.conditions, HEALTHY),
        is(ConditionStatus::False, "Unhealthy")
    );
}

#[test]
fn health_figures_alone_changing_is_a_freshness_only_difference() {
    let a = mock("a", "m");
    let mut world = World::compile(std::slice::from_ref(&a), &[], 1);
    let current = world.current();
    world.pod("gw-0", Some(current));
    world.report("gw-0", vec![checked("team/a", true, 5, None)]);
    let before = deployment_status(&world, &a);
    let mut fresher = checked("team/a", true, 9, None);
    fresher.last_check_ms = Some(1_772_366_460_000);
    world.report("gw-0", vec![fresher]);
    let after = deployment_status(&world, &a);
    assert_ne!(before, after);
    assert!(status::same_but_freshness(&before, &after));

    world.report("gw-0", vec![checked("team/a", false, 9, Some("HTTP 500"))]);
    let failing = deployment_status(&world, &a);
    assert!(!status::same_but_freshness(&before, &failing));
}

// ---------------------------------------------------------------------------------------
// Transition times
// ---------------------------------------------------------------------------------------

#[test]
fn transition_times_stay_while_a_condition_holds_and_move_when_it_changes() {
    let a = mock("a", "m");
    let mut world = World::compile(std::slice::from_ref(&a), &[], 1);
    let current = world.current();
    world.pod("gw-0", Some(current.clone()));
    world.pod("gw-1", None);
    let first = deployment_status(&world, &a);

    // Later, the second pod serves it too: Ready moves, Accepted and Healthy do not.
    let mut written = a.clone();
    written.status = Some(first.clone());
    world.pod("gw-1", Some(current));
    let second = status::deployment_status(&written, &world.seen(LATER));

    assert_eq!(
        state(&first.conditions, READY),
        is(ConditionStatus::False, "Converging")
    );
    assert_eq!(
        state(&second.conditions, READY),
        is(ConditionStatus::True, "Served")
    );
    assert_eq!(find(&second.conditions, READY).last_transition_time, LATER);
    assert_eq!(find(&second.conditions, ACCEPTED).last_transition_time, NOW);
    assert_eq!(find(&second.conditions, HEALTHY).last_transition_time, NOW);

    // Nothing changes: the status derived again is the one written.
    written.status = Some(second.clone());
    let third = status::deployment_status(&written, &world.seen("2026-03-01T13:00:00Z"));
    assert_eq!(third, second);
}

#[test]
fn a_new_reason_with_the_same_status_keeps_the_transition_time() {
    let a = mock("a", "m");
    let mut world = World::compile(std::slice::from_ref(&a), &[], 1);
    let first = deployment_status(&world, &a); // Ready False NoDataPlanes
    let mut written = a.clone();
    written.status = Some(first);
    world.pod("gw-0", None); // Ready False Converging

    let second = status::deployment_status(&written, &world.seen(LATER));

    let ready = find(&second.conditions, READY);
    assert_eq!(
        (ready.status, ready.reason.as_str()),
        (ConditionStatus::False, "Converging")
    );
    assert_eq!(ready.last_transition_time, NOW, "the status did not move");
}

// ---------------------------------------------------------------------------------------
// Aliases
// ---------------------------------------------------------------------------------------

/// Two groups: `small` (deployments s1, s2) and `large` (l1), and alias `chat` 3:1.
fn alias_world() -> (World, ModelGroupAlias) {
    let chat = alias(
        "chat",
        "{alias: chat, targets: [{model: small, weight: 3}, {model: large, weight: 1}]}",
    );
    let world = World::compile(
        &[
            mock("s1", "small"),
            mock("s2", "small"),
            mock("l1", "large"),
        ],
        std::slice::from_ref(&chat),
        1,
    );
    (world, chat)
}

#[test]
fn an_alias_lists_its_targets_with_deployment_and_healthy_counts() {
    let (mut world, chat) = alias_world();
    let current = world.current();
    world.pod("gw-0", Some(current));
    world.report(
        "gw-0",
        vec![
            checked("team/s1", true, 3, None),
            checked("team/s2", false, 3, Some("HTTP 502")),
        ],
    );

    let s = alias_status(&world, &chat);

    assert_eq!(
        state(&s.conditions, ACCEPTED),
        is(ConditionStatus::True, "Accepted")
    );
    assert_eq!(
        state(&s.conditions, READY),
        is(ConditionStatus::True, "Served")
    );
    let targets: Vec<(&str, f64, i32, Option<i32>)> = s
        .targets
        .iter()
        .map(|t| (t.model.as_str(), t.share, t.deployments, t.healthy))
        .collect();
    assert_eq!(
        targets,
        [("large", 0.25, 1, None), ("small", 0.75, 2, Some(1))],
        "large is unchecked; one of small's two is healthy"
    );
    let healthy = find(&s.conditions, HEALTHY);
    assert_eq!(
        (healthy.status, healthy.reason.as_str()),
        (ConditionStatus::True, "Healthy")
    );
    assert_eq!(
        healthy.message,
        "1/3 deployments of its targets are healthy"
    );
    assert_eq!(s.target_summary.as_deref(), Some("small 75%, large 25%"));
    assert_eq!(
        s.table_version.as_deref(),
        Some(world.table.version.as_str())
    );
}

#[test]
fn an_alias_whose_checked_targets_all_fail_has_no_healthy_target() {
    let (mut world, chat) = alias_world();
    let current = world.current();
    world.pod("gw-0", Some(current));
    world.report(
        "gw-0",
        vec![
            checked("team/s1", false, 3, Some("HTTP 502")),
            checked("team/s2", false, 3, Some("HTTP 502")),
            checked("team/l1", false, 3, Some("HTTP 502")),
        ],
    );

    let s = alias_status(&world, &chat);

    assert_eq!(
        state(&s.conditions, HEALTHY),
        is(ConditionStatus::False, "NoHealthyTarget")
    );
    assert!(s.targets.iter().all(|t| t.healthy == Some(0)));
}

#[test]
fn an_alias_none_of_whose_deployments_was_checked_is_not_checked() {
    let (mut world, chat) = alias_world();
    let current = world.current();
    world.pod("gw-0", Some(current));

    let s = alias_status(&world, &chat);

    assert_eq!(
        state(&s.conditions, HEALTHY),
        is(ConditionStatus::Unknown, "NotChecked")
    );
    assert!(s.targets.iter().all(|t| t.healthy.is_none()));
}

#[test]
fn an_alias_with_a_failing_target_and_an_unchecked_one_is_not_checked() {
    let (mut world, chat) = alias_world();
    let current = world.current();
    world.pod("gw-0", Some(current));
    world.report("gw-0", vec![checked("team/l1", false, 3, Some("HTTP 502"))]);

    let s = alias_status(&world, &chat);

    assert_eq!(
        state(&s.conditions, HEALTHY),
        is(ConditionStatus::Unknown, "NotChecked")
    );
}

#[test]
fn a_rejected_alias_has_no_targets_and_says_why() {
    let orphan = alias("orphan", "{alias: orphan, targets: [{model: nowhere}]}");
    let world = World::compile(&[mock("s1", "small")], std::slice::from_ref(&orphan), 1);

    let s = alias_status(&world, &orphan);

    assert_eq!(
        state(&s.conditions, ACCEPTED),
        is(ConditionStatus::False, "MissingTarget")
    );
    assert_eq!(
        state(&s.conditions, READY),
        is(ConditionStatus::False, "NotAccepted")
    );
    assert_eq!(
        state(&s.conditions, HEALTHY),
        is(ConditionStatus::Unknown, "NotAccepted")
    );
    assert!(s.targets.is_empty());
    assert_eq!(s.target_summary, None);
    assert_eq!(s.table_version, None);
}

// ---------------------------------------------------------------------------------------
// Limits of the CRD schemas
// ---------------------------------------------------------------------------------------

/// `status.targets` of a `ModelGroupAlias` holds at most this many items (`maxItems`).
const MAX_STATUS_TARGETS: usize = 64;
/// `status.health.lastError` of a `ModelDeployment` holds at most this many characters.
const MAX_LAST_ERROR: usize = 4096;
/// Condition messages are cut to this many bytes.
const MAX_MESSAGE: usize = 4096;

#[test]
fn a_very_long_upstream_error_is_cut_in_the_healthy_message() {
    let a = mock("a", "m");
    let mut world = World::compile(std::slice::from_ref(&a), &[], 1);
    let current = world.current();
    world.pod("gw-0", Some(current));
    let long = "é".repeat(3000); // 6000 bytes
    world.report("gw-0", vec![checked("team/a", false, 3, Some(&long))]);

    let s = deployment_status(&world, &a);

    let healthy = find(&s.conditions, HEALTHY);
    assert!(
        healthy.message.len() <= MAX_MESSAGE,
        "{}",
        healthy.message.len()
    );
    assert!(healthy.message.ends_with('…'));
}

#[test]
fn a_very_long_upstream_error_fits_the_last_error_field() {
    let a = mock("a", "m");
    let mut world = World::compile(std::slice::from_ref(&a), &[], 1);
    let current = world.current();
    world.pod("gw-0", Some(current));
    // An upstream's JSON error message is passed on whole by the data plane.
    let long = "x".repeat(MAX_LAST_ERROR + 1000);
    world.report("gw-0", vec![checked("team/a", false, 3, Some(&long))]);

    let s = deployment_status(&world, &a);

    let last_error = s
        .health
        .and_then(|h| h.last_error)
        .expect("the failure is reported");
    assert!(
        last_error.chars().count() <= MAX_LAST_ERROR,
        "{} characters",
        last_error.chars().count()
    );
}

#[test]
fn an_alias_resolving_to_more_than_64_groups_has_a_status_the_crd_accepts() {
    // Five aliases of 16 groups each (the most targets a spec may have), and one alias
    // of those five: 80 groups.
    let mut deployments = Vec::new();
    let mut aliases = Vec::new();
    let mut parts = Vec::new();
    for a in 0..5 {
        let mut targets = Vec::new();
        for g in 0..16 {
            let model = format!("m{a}x{g}");
            deployments.push(mock(&format!("d{a}x{g}"), &model));
            targets.push(format!("{{model: {model}}}"));
        }
        aliases.push(alias(
            &format!("part{a}"),
            &format!("{{alias: part{a}, targets: [{}]}}", targets.join(", ")),
        ));
        parts.push(format!("{{model: part{a}}}"));
    }
    let big = alias(
        "big",
        &format!("{{alias: big, targets: [{}]}}", parts.join(", ")),
    );
    aliases.push(big.clone());
    let world = World::compile(&deployments, &aliases, 1);

    let s = alias_status(&world, &big);

    assert_eq!(
        state(&s.conditions, ACCEPTED),
        is(ConditionStatus::True, "Accepted")
    );
    assert!(
        s.targets.len() <= MAX_STATUS_TARGETS,
        "{} targets in status",
        s.targets.len()
    );
}
