"""The Terraform agrees with the function: one request per instance, bounded scale, timeouts that
match the settings and fit the event path, no public access by default, only the environment
variables the code reads."""

from __future__ import annotations

import itertools
import re

import pytest

from function.config import HEALTH_ROUTE, Settings
from tests.deploy import iac

SERVICES = {"http": "synthesize", "event": "synthesize_event"}


def run_service() -> dict:
    services = iac.resources("google_cloud_run_v2_service")
    assert list(services) == ["this"], "both services must come from one definition"
    return services["this"]


def test_both_services_come_from_one_for_each_over_the_services_map() -> None:
    assert iac.expr(run_service()["for_each"]) == "local.services"
    assert set(iac.locals_()["services"]) == set(SERVICES)


def test_every_instance_serves_exactly_one_request() -> None:
    template = run_service()["template"][0]
    assert template["max_instance_request_concurrency"] == 1


@pytest.mark.parametrize("service", SERVICES)
def test_max_instances_is_set_and_bounded_by_validation(service: str) -> None:
    spec = iac.locals_()["services"][service]
    (scaling,) = run_service()["template"][0]["scaling"]
    assert iac.expr(scaling["max_instance_count"]) == "each.value.max_instances"
    assert iac.expr(scaling["min_instance_count"]) == "each.value.min_instances"
    max_var = iac.variable_of(spec["max_instances"])
    min_var = iac.variable_of(spec["min_instances"])
    (condition,) = iac.validation_conditions(max_var)
    upper = re.search(rf"var\.{max_var} <= (\d+)", condition)
    assert upper and 1 <= int(upper[1]) <= 100, condition
    assert 1 <= iac.variables()[max_var]["default"] <= int(upper[1])
    # min <= max is enforced, so a typo cannot pin more warm instances than the ceiling.
    assert any(f"var.{min_var} <= var.{max_var}" in c for c in iac.validation_conditions(min_var))


@pytest.mark.parametrize(("service", "target"), SERVICES.items())
def test_each_service_serves_its_functions_framework_target(service: str, target: str) -> None:
    assert iac.resolve(iac.service_env(service)["FUNCTION_TARGET"]) == target
    assert target in iac.main_functions()


@pytest.mark.parametrize(
    ("service", "setting"), [("http", "request_timeout_s"), ("event", "event_timeout_s")]
)
def test_service_timeout_is_the_functions_timeout_and_gunicorns(service: str, setting: str) -> None:
    template = run_service()["template"][0]
    assert iac.unquote(template["timeout"]) == "${each.value.timeout_s}s"
    timeout_var = iac.variable_of(iac.locals_()["services"][service]["timeout_s"])
    env = iac.service_env(service)
    setting_env = f"TTS_{setting.upper()}"
    # The same variable drives the platform timeout, the function's planning and gunicorn.
    assert iac.variable_of(env[setting_env]) == timeout_var
    assert iac.variable_of(env["CLOUD_RUN_TIMEOUT_SECONDS"]) == timeout_var
    assert iac.variables()[timeout_var]["default"] == iac.settings_default(setting)
    # Both services know both timeouts, set from the same variables.
    for other_service in SERVICES:
        assert iac.variable_of(iac.service_env(other_service)[setting_env]) == timeout_var


def test_event_timeout_fits_inside_the_pubsub_ack_deadline() -> None:
    subscription = iac.resources("google_pubsub_subscription")["push"]
    ack_deadline = subscription["ack_deadline_seconds"]
    event_var = iac.variable_of(iac.locals_()["services"]["event"]["timeout_s"])
    (condition,) = iac.validation_conditions(event_var)
    upper = int(re.search(rf"var\.{event_var} <= (\d+)", condition)[1])
    # Any event timeout the variable accepts is within the ack deadline, which is within Pub/Sub's 600 s.
    assert iac.variables()[event_var]["default"] <= upper <= ack_deadline <= 600
    assert iac.settings_bound("event_timeout_s", "le") <= ack_deadline


def test_push_subscription_targets_the_event_service_with_oidc_retries_and_dead_letters() -> None:
    subscription = iac.resources("google_pubsub_subscription")["push"]
    (push,) = subscription["push_config"]
    assert iac.expr(push["push_endpoint"]) == 'google_cloud_run_v2_service.this["event"].uri'
    (oidc,) = push["oidc_token"]
    assert iac.expr(oidc["service_account_email"]) == 'google_service_account.this["push"].email'
    assert iac.expr(oidc["audience"]) == 'google_cloud_run_v2_service.this["event"].uri'
    assert subscription["retry_policy"]
    (dead_letter,) = subscription["dead_letter_policy"]
    assert iac.expr(dead_letter["dead_letter_topic"]) == 'google_pubsub_topic.this["dead_letter"].id'
    # The dead-letter topic has a subscription, or dead letters would be dropped.
    keeper = iac.resources("google_pubsub_subscription")["dead_letters"]
    assert iac.expr(keeper["topic"]) == 'google_pubsub_topic.this["dead_letter"].id'


def test_job_parts_are_pushed_to_the_event_service_like_requests() -> None:
    # One push subscription per topic, the same settings for both (checked above for all of them).
    subscriptions = iac.resources("google_pubsub_subscription")
    push = subscriptions["push"]
    assert iac.expr(push["for_each"]) == "local.push_subscriptions"
    assert iac.expr(push["topic"]) == "google_pubsub_topic.this[each.key].id"
    assert set(iac.locals_()["push_subscriptions"]) == {"requests", "job_parts"}
    results = subscriptions["job_results"]
    assert iac.expr(results["topic"]) == 'google_pubsub_topic.this["job_results"].id'
    # The Pub/Sub agent may take messages off each push subscription to dead-letter them.
    dead_letters = iac.resources("google_pubsub_subscription_iam_member")["dead_letter_subscriber"]
    assert iac.expr(dead_letters["for_each"]) == "google_pubsub_subscription.push"
    assert iac.expr(dead_letters["subscription"]) == "each.value.id"
    publishes = iac.resources("google_pubsub_topic_iam_member")["runtime_publishes_jobs"]
    assert iac.unquote(publishes["role"]) == "roles/pubsub.publisher"
    assert iac.expr(publishes["member"]) == 'google_service_account.this["runtime"].member'


def test_the_jobs_environment_names_settings_the_code_reads() -> None:
    env = iac.locals_()["jobs_env"]
    assert set(env) <= iac.settings_env_names(), set(env) - iac.settings_env_names()
    assert iac.expr(env["TTS_JOBS_PARTS_TOPIC"]) == 'google_pubsub_topic.this["job_parts"].id'
    assert iac.expr(env["TTS_JOBS_RESULTS_TOPIC"]) == 'google_pubsub_topic.this["job_results"].id'
    # Both services get it: without it, no job publishes (long texts are refused as before).
    for service in ("http", "event"):
        assert {k: v for k, v in iac.service_env(service).items() if k in env} == env, service


def test_the_pubsub_service_agent_can_dead_letter() -> None:
    publisher = iac.resources("google_pubsub_topic_iam_member")["dead_letter_publisher"]
    subscriber = iac.resources("google_pubsub_subscription_iam_member")["dead_letter_subscriber"]
    assert iac.unquote(publisher["role"]) == "roles/pubsub.publisher"
    assert iac.unquote(subscriber["role"]) == "roles/pubsub.subscriber"
    assert iac.expr(publisher["member"]) == iac.expr(subscriber["member"]) == "local.pubsub_agent"
    assert "gcp-sa-pubsub" in iac.locals_()["pubsub_agent"]


def test_file_drop_trigger_delivers_finalized_objects_of_the_input_bucket_to_the_event_service() -> None:
    trigger = iac.resources("google_eventarc_trigger")["file_drop"]
    criteria = {iac.unquote(c["attribute"]): c["value"] for c in trigger["matching_criteria"]}
    assert iac.unquote(criteria["type"]) == "google.cloud.storage.object.v1.finalized"
    assert iac.expr(criteria["bucket"]) == 'google_storage_bucket.this["input"].name'
    (destination,) = trigger["destination"]
    (run,) = destination["cloud_run_service"]
    assert iac.expr(run["service"]) == 'google_cloud_run_v2_service.this["event"].name'
    # The trigger's identity may invoke the event service and receive events.
    invokers = iac.resources("google_cloud_run_v2_service_iam_member")["event_invokers"]
    assert "trigger" in iac.expr(invokers["for_each"])
    receiver = iac.resources("google_project_iam_member")["trigger_receives_events"]
    assert iac.unquote(receiver["role"]) == "roles/eventarc.eventReceiver"


def public_members_in(value: object) -> list[str]:
    if isinstance(value, dict):
        return [m for v in value.values() for m in public_members_in(v)]
    if isinstance(value, list):
        return [m for v in value for m in public_members_in(v)]
    if isinstance(value, str) and ("allUsers" in value or "allAuthenticatedUsers" in value):
        return [value]
    return []


def test_nothing_is_public_unless_the_public_variable_says_so() -> None:
    found = public_members_in(iac.terraform()["resource"])
    assert found, "the opt-in public binding should exist"
    for value in found:
        assert "allAuthenticatedUsers" not in value
        assert re.search(r"var\.allow_unauthenticated \?", iac.expr(value)), value
    assert iac.variables()["allow_unauthenticated"]["default"] is False
    bindings = iac.resources("google_cloud_run_v2_service_iam_member")["http_invokers"]
    assert iac.expr(bindings["name"]) == 'google_cloud_run_v2_service.this["http"].name'


def test_the_event_service_is_internal_and_the_http_service_needs_iam() -> None:
    services = iac.locals_()["services"]
    assert iac.unquote(services["event"]["ingress"]) == "INGRESS_TRAFFIC_INTERNAL_ONLY"
    # Open to the internet (IAM or keys check callers), or only to the load balancer when there is one.
    assert iac.expr(services["http"]["ingress"]) == (
        'local.load_balancer ? "INGRESS_TRAFFIC_INTERNAL_LOAD_BALANCER" : "INGRESS_TRAFFIC_ALL"'
    )


def test_every_variable_has_a_description_a_type_and_a_validation() -> None:
    for name, body in iac.variables().items():
        assert iac.unquote(body.get("description", "")).strip(), name
        assert body.get("type"), name
        assert body.get("validation"), name
        for validation in body["validation"]:
            assert f"var.{name}" in iac.expr(validation["condition"]), name


@pytest.mark.parametrize("service", SERVICES)
def test_environment_is_exactly_variables_the_code_reads(service: str) -> None:
    env = iac.service_env(service)
    readers = iac.settings_env_names() | iac.functions_framework_env_names() | iac.NATIVE_THREAD_VARS
    assert set(env) <= readers, set(env) - readers
    assert set(env) & iac.NATIVE_THREAD_VARS == iac.NATIVE_THREAD_VARS
    # Cloud Run sets PORT itself and refuses it in a revision's environment.
    assert "PORT" not in env


@pytest.mark.parametrize("service", SERVICES)
def test_the_settings_terraform_sets_parse_to_what_it_means(service: str, monkeypatch) -> None:
    env = iac.service_env(service)
    settings_env = {name: value for name, value in env.items() if name in iac.settings_env_names()}
    for name, value in settings_env.items():
        resolved = iac.resolve(value)
        if name == "TTS_OUTPUT_URI":
            # The bucket name is known only at apply time.
            resolved = resolved.replace('${google_storage_bucket.this["output"].name}', "example-bucket")
            resolved = resolved.replace("${var.output_prefix}", iac.example_values()["output_prefix"])
        monkeypatch.setenv(name, str(resolved))
    settings = Settings()
    values = iac.example_values()
    assert settings.request_timeout_s == values["http_timeout_s"]
    assert settings.event_timeout_s == values["event_timeout_s"]
    assert settings.threads == values["cpu"]
    assert settings.input_prefix == values["input_prefix"]
    assert settings.log_level == values["log_level"]
    assert settings.gcp_project == values["project_id"]
    assert settings.output_uri == f"gs://example-bucket/{values['output_prefix']}"
    assert settings.engines == tuple(values["engines"])


def test_the_engines_variable_names_exactly_the_codes_engines_and_sets_tts_engines() -> None:
    (condition,) = iac.validation_conditions("engines")
    listed = re.search(r"contains\(\[([^\]]*)\], e\)", condition)
    assert listed, condition
    assert tuple(iac.unquote(n.strip()) for n in listed[1].split(",")) == iac.engine_names()
    # Non-empty and each engine once (memory is added up per engine).
    assert "length(var.engines) > 0" in condition
    assert "length(distinct(var.engines)) == length(var.engines)" in condition
    for service in SERVICES:
        assert iac.expr(iac.service_env(service)["TTS_ENGINES"]) == 'join(",", var.engines)'


# Cloud Run's memory range per vCPU count, second generation, in MiB:
# https://cloud.google.com/run/docs/configuring/services/cpu ("vCPU and memory table") and
# https://cloud.google.com/run/docs/configuring/services/memory-limits (512 MiB minimum on gen2).
CLOUD_RUN_MEMORY_MIB = {1: (512, 4096), 2: (512, 8192), 4: (2048, 16384), 6: (4096, 24576), 8: (4096, 32768)}
# The highest peak RSS measured for each engine alone (MiB), its model and its largest request:
# hibari 1.8 GB on an 86 000-character event (README, "How long a text fits"); kokoro 698 MiB on
# 2700 English characters after 900 Chinese ones (2 vCPU AMD EPYC, measured with the engine); cosyvoice
# 3095 MiB with the int8 LLM at 600 tokens (README, "Speed and memory on CPU").
MEASURED_PEAK_MIB = {"hibari": 1717, "kokoro": 698, "cosyvoice": 3095}


def derived_memory_mib(engines: tuple[str, ...], cpu: int) -> int:
    """What local.memory_mib evaluates to when memory is unset (the expression is checked below)."""
    per_engine = iac.locals_()["engine_memory_mib"]
    return max(sum(per_engine[e] for e in engines), CLOUD_RUN_MEMORY_MIB[cpu][0])


def engine_selections() -> list[tuple[str, ...]]:
    names = iac.engine_names()
    return [c for n in range(1, len(names) + 1) for c in itertools.permutations(names, n)]


def test_memory_follows_the_engines_unless_set() -> None:
    assert iac.variables()["memory"]["default"] is None
    memory_mib = iac.expr(iac.locals_()["memory_mib"])
    # Unset: the engines' figures added up, raised to the vCPUs' minimum; set: its MiB.
    assert "var.memory == null" in memory_mib
    assert "max(sum([for e in var.engines : local.engine_memory_mib[e]]), " in memory_mib
    assert "local.cpu_memory_mib[tostring(var.cpu)].min)" in memory_mib
    assert 'tonumber(regex("^[0-9]+", var.memory)) * (endswith(var.memory, "Gi") ? 1024 : 1)' in memory_mib
    # The variable admits exactly the two suffixes that expression converts.
    (condition,) = iac.validation_conditions("memory")
    assert "(Mi|Gi)$" in condition
    assert iac.unquote(iac.locals_()["memory"]) == "${local.memory_mib}Mi"
    (container,) = run_service()["template"][0]["containers"]
    (resources,) = container["resources"]
    assert iac.expr(resources["limits"]["memory"]) == "local.memory"
    # The example deployment leaves memory to the engines: hibari + kokoro.
    values = iac.example_values()
    assert values["memory"] is None
    assert derived_memory_mib(tuple(values["engines"]), values["cpu"]) == 3072


def test_each_engines_memory_covers_its_measured_peak() -> None:
    per_engine = iac.locals_()["engine_memory_mib"]
    assert set(per_engine) == set(iac.engine_names())
    for engine, peak in MEASURED_PEAK_MIB.items():
        assert per_engine[engine] >= peak, engine
        assert per_engine[engine] % 1024 == 0, "whole GiB"


def test_the_cpu_memory_table_is_cloud_runs_and_checked_before_apply() -> None:
    table = {int(iac.unquote(k)): (v["min"], v["max"]) for k, v in iac.locals_()["cpu_memory_mib"].items()}
    assert table == CLOUD_RUN_MEMORY_MIB
    (cpu_condition,) = iac.validation_conditions("cpu")
    allowed = re.search(r"contains\(\[([^\]]*)\], var\.cpu\)", cpu_condition)
    assert {int(c) for c in allowed[1].split(",")} == set(table)
    (lifecycle,) = run_service()["lifecycle"]
    (precondition,) = lifecycle["precondition"]
    condition = iac.expr(precondition["condition"])
    assert "local.memory_mib >= local.cpu_memory_mib[tostring(var.cpu)].min" in condition
    assert "local.memory_mib <= local.cpu_memory_mib[tostring(var.cpu)].max" in condition


def test_every_engine_selection_deploys_with_the_default_cpu() -> None:
    cpu = iac.variables()["cpu"]["default"]
    low, high = CLOUD_RUN_MEMORY_MIB[cpu]
    for engines in engine_selections():
        assert low <= derived_memory_mib(engines, cpu) <= high, (engines, cpu)


def test_engine_and_native_threads_follow_the_instance_cpus() -> None:
    env = iac.service_env("http")
    assert iac.variable_of(env["TTS_THREADS"]) == "cpu"
    for name in iac.NATIVE_THREAD_VARS:
        assert iac.variable_of(env[name]) == "cpu"
    (container,) = run_service()["template"][0]["containers"]
    (resources,) = container["resources"]
    assert iac.variable_of(resources["limits"]["cpu"]) == "cpu"
    assert resources["startup_cpu_boost"] is True


def test_startup_probe_hits_the_health_route_on_the_images_port() -> None:
    (container,) = run_service()["template"][0]["containers"]
    (probe,) = container["startup_probe"]
    (http_get,) = probe["http_get"]
    assert iac.expr(http_get["path"]) == "local.health_route"
    # A route the function answers without loading the model.
    assert HEALTH_ROUTE in iac.health_paths()
    assert iac.unquote(iac.locals_()["health_route"]) in iac.health_paths()
    (port,) = container["ports"]
    assert iac.expr(http_get["port"]) == iac.expr(port["container_port"]) == "local.port"
    assert str(iac.locals_()["port"]) == iac.dockerfile().envs["PORT"]
    # A liveness probe would queue behind the single busy worker thread and kill the instance mid-request.
    assert "liveness_probe" not in container


def test_runtime_identity_has_object_create_get_and_list_on_the_output_bucket_only() -> None:
    roles = iac.resources("google_project_iam_custom_role")["objects"]
    custom = iac.locals_()["custom_roles"]
    assert iac.expr(roles["for_each"]) == "local.custom_roles"
    # list: a job's progress is the count of its part manifests. Never delete or update.
    output = {"storage.objects.create", "storage.objects.get", "storage.objects.list"}
    assert {iac.unquote(p) for p in custom["output"]} == output
    assert {iac.unquote(p) for p in custom["input"]} == {"storage.objects.get"}
    binding = iac.resources("google_storage_bucket_iam_member")["runtime"]
    assert iac.expr(binding["bucket"]) == "google_storage_bucket.this[each.key].name"
    signer = iac.resources("google_service_account_iam_member")["runtime_signs_as_itself"]
    assert iac.unquote(signer["role"]) == "roles/iam.serviceAccountTokenCreator"
    assert iac.expr(signer["service_account_id"]) == 'google_service_account.this["runtime"].name'
    assert iac.expr(signer["member"]) == 'google_service_account.this["runtime"].member'
    # Nothing project-wide for the runtime identity.
    for name, member in iac.resources("google_project_iam_member").items():
        assert "runtime" not in member["member"], name


def test_buckets_are_private_uniform_unversioned_and_expire() -> None:
    bucket = iac.resources("google_storage_bucket")["this"]
    assert bucket["uniform_bucket_level_access"] is True
    assert iac.unquote(bucket["public_access_prevention"]) == "enforced"
    assert bucket["versioning"][0]["enabled"] is False
    (rule,) = bucket["lifecycle_rule"]
    assert iac.unquote(rule["action"][0]["type"]) == "Delete"
    assert iac.expr(rule["condition"][0]["age"]) == "each.value.retention_days"
    for spec in iac.locals_()["buckets"].values():
        assert iac.variable_of(spec["retention_days"]).endswith("_retention_days")


def test_provider_and_terraform_versions_are_pinned() -> None:
    (block,) = iac.terraform()["terraform"]
    assert re.fullmatch(r">= \d+\.\d+\.\d+, < \d+\.\d+\.\d+", iac.unquote(block["required_version"]))
    google = block["required_providers"][0]["google"]
    assert iac.unquote(google["source"]) == "hashicorp/google"
    assert re.fullmatch(r"~> \d+\.\d+", iac.unquote(google["version"]))
