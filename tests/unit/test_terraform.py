"""Static checks of infra/terraform: it parses, and the wiring the pipeline relies on holds.

The google provider cannot be downloaded in CI sandboxes, so `terraform validate` is not
available; these tests read the HCL with python-hcl2 and check the contracts that matter:
one identity per function, entry points that exist, push subscriptions with OIDC and dead
lettering, environment variables that match ``shared.config.Settings``, no secret values.
"""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import hcl2  # requirements-dev.txt: a missing parser is an error, not a skip
import pytest

ROOT = Path(__file__).resolve().parents[2]
TF_DIR = ROOT / "infra" / "terraform"
TF_FILES = sorted(TF_DIR.glob("*.tf"))

REQUIRED_FILES = {
    "versions.tf",
    "variables.tf",
    "outputs.tf",
    "apis.tf",
    "storage.tf",
    "pubsub.tf",
    "tasks.tf",
    "database.tf",
    "secrets.tf",
    "iam.tf",
    "functions.tf",
    "scheduler.tf",
}

Block = dict[str, Any]


def unquote(value: Any) -> Any:
    """Strip the quotes python-hcl2 keeps around string literals and keys."""
    if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1]
    return value


@cache
def parsed(name: str) -> Block:
    """Parse one .tf file of the stack."""
    with (TF_DIR / name).open() as handle:
        return hcl2.load(handle)


@cache
def all_blocks() -> dict[str, list[Block]]:
    """Every top-level block of the stack, by block type, over all files."""
    merged: dict[str, list[Block]] = {}
    for path in TF_FILES:
        for kind, blocks in parsed(path.name).items():
            merged.setdefault(kind, []).extend(blocks)
    return merged


def resources(rtype: str) -> dict[str, Block]:
    """All resources of one type, by name."""
    found: dict[str, Block] = {}
    for block in all_blocks().get("resource", []):
        for kind, named in block.items():
            if unquote(kind) == rtype:
                for name, body in named.items():
                    found[unquote(name)] = body
    return found


def resource(rtype: str, name: str) -> Block:
    """One resource body; fails the test when it is missing."""
    found = resources(rtype)
    assert name in found, f"{rtype}.{name} is missing"
    return found[name]


def local(name: str) -> Any:
    """The value of one local, wherever it is defined."""
    for block in all_blocks().get("locals", []):
        if name in block:
            return block[name]
    raise AssertionError(f"local.{name} is not defined")


def variable_default(name: str) -> Any:
    """The default value of a variable."""
    for block in all_blocks().get("variable", []):
        for key, body in block.items():
            if unquote(key) == name:
                return body.get("default")
    raise AssertionError(f"var.{name} is not declared")


def unquote_all(value: Any) -> Any:
    """unquote, applied to a value and to the items of a list value."""
    if isinstance(value, list):
        return [unquote(item) for item in value]
    return unquote(value)


def functions() -> dict[str, Block]:
    """local.functions with its string values unquoted."""
    return {
        key: {field: unquote_all(value) for field, value in spec.items()}
        for key, spec in local("functions").items()
    }


# ---------------------------------------------------------------------------------------------
# Shape
# ---------------------------------------------------------------------------------------------


def test_stack_has_one_file_per_concern() -> None:
    assert {path.name for path in TF_FILES} >= REQUIRED_FILES


@pytest.mark.parametrize("path", TF_FILES, ids=lambda p: p.name)
def test_every_tf_file_parses(path: Path) -> None:
    assert isinstance(parsed(path.name), dict)


def test_versions_pin_terraform_and_providers() -> None:
    terraform = all_blocks()["terraform"][0]
    assert unquote(terraform["required_version"]) == ">= 1.5"
    providers = terraform["required_providers"][0]
    for name in ("google", "google-beta", "archive"):
        assert unquote(providers[name]["version"]).startswith("~>"), name


def test_variables_and_outputs_are_described() -> None:
    for kind in ("variable", "output"):
        for block in all_blocks()[kind]:
            for name, body in block.items():
                assert unquote(body.get("description", "")), f"{kind} {name} has no description"
    for block in all_blocks()["variable"]:
        for name, body in block.items():
            assert "type" in body, f"variable {name} has no type"


# ---------------------------------------------------------------------------------------------
# Functions and identities
# ---------------------------------------------------------------------------------------------


def test_every_function_has_its_own_service_account() -> None:
    identities = local("identities")
    sa = resource("google_service_account", "function")
    assert sa["for_each"] == "${local.identities}"
    for key, spec in functions().items():
        assert spec["identity"] in identities, f"function {key} has no service account"
    # Every identity runs at least one function (no orphan accounts).
    assert set(identities) == {spec["identity"] for spec in functions().values()}


def test_functions_are_deployed_from_the_catalogue() -> None:
    fn = resource("google_cloudfunctions2_function", "function")
    assert fn["for_each"] == "${local.functions}"
    service = fn["service_config"][0]
    assert "local.identities" not in service["service_account_email"]
    assert "each.value.identity" in service["service_account_email"]
    build = fn["build_config"][0]
    assert unquote(build["runtime"]) == "python311"
    assert build["entry_point"] == "${each.value.entry_point}"


def test_catalogue_covers_every_target_with_a_valid_trigger() -> None:
    specs = functions()
    targets = {spec["entry_point"] for spec in specs.values()}
    assert targets == {
        "upload",
        "manage",
        "answer",
        "embed",
        "ingest",
        "parse",
        "chunk",
        "index",
        "dead_letter",
        "sweep",
        "webhooks",
        "deliver_webhook",
        "mcp",
        "sync",
    }
    for key, spec in specs.items():
        assert spec["trigger"] in {"http", "tasks", "pubsub", "gcs", "scheduler"}, key
        assert spec["public"] == (spec["trigger"] == "http"), key
        if spec["trigger"] == "pubsub":
            assert spec["topic"] in local("topics"), key
            assert spec["timeout"] <= 600, f"{key}: push ack deadlines cap at 600 s"
        if spec["trigger"] == "gcs":
            assert spec["timeout"] <= 540, f"{key}: event-driven functions cap at 540 s"


def test_ingest_handles_finalized_and_deleted_objects_with_retries() -> None:
    events = {spec["event_type"] for spec in functions().values() if spec["trigger"] == "gcs"}
    assert events == {
        "google.cloud.storage.object.v1.finalized",
        "google.cloud.storage.object.v1.deleted",
    }
    assert {spec["entry_point"] for spec in functions().values() if spec["trigger"] == "gcs"} == {
        "ingest"
    }
    fn = resource("google_cloudfunctions2_function", "function")
    dynamic = {unquote(name): body for block in fn["dynamic"] for name, body in block.items()}
    content = dynamic["event_trigger"]["content"][0]
    assert unquote(content["retry_policy"]) == "RETRY_POLICY_RETRY"
    assert "google_storage_bucket.uploads.name" in content["event_filters"][0]["value"]


def _main_py_table() -> tuple[set[str], dict[str, str]]:
    """Names main.py exposes, and its TARGETS table (target -> module) if it has one.

    main.py may resolve targets lazily with a module ``__getattr__`` over ``TARGETS``; that is
    what functions-framework's ``hasattr(module, target)`` sees at startup.
    """
    names: set[str] = set()
    table: dict[str, str] = {}
    for node in ast.parse((ROOT / "main.py").read_text()).body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            names.add(node.name)
        elif isinstance(node, ast.ImportFrom):
            names.update(alias.asname or alias.name for alias in node.names)
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                if isinstance(target, ast.Name):
                    names.add(target.id)
                    if target.id == "TARGETS" and node.value is not None:
                        table = ast.literal_eval(node.value)
    return names | set(table), table


def test_entry_points_exist_in_main_py() -> None:
    names, table = _main_py_table()
    missing = {spec["entry_point"] for spec in functions().values()} - names
    assert not missing, f"entry points missing from main.py: {missing}"
    # Lazy targets must be real: each TARGETS module defines its function.
    for target, module in table.items():
        path = ROOT / Path(*module.split(".")).with_suffix(".py")
        assert path.exists(), f"{target}: {path} is missing"
        defined = {
            n.name for n in ast.parse(path.read_text()).body if isinstance(n, ast.FunctionDef)
        }
        assert target in defined, f"{module} does not define {target}()"


# ---------------------------------------------------------------------------------------------
# Pub/Sub push + dead lettering
# ---------------------------------------------------------------------------------------------


def test_topics_default_to_the_documented_names() -> None:
    topics = {key: value for key, value in local("topics").items()}
    assert set(topics) == {"parse", "chunk", "index", "lifecycle", "dead_letter"}
    for key, ref in topics.items():
        assert ref == f"${{var.topic_{key}}}"
        assert unquote(variable_default(f"topic_{key}")) == f"ragline-{key.replace('_', '-')}"


def test_every_push_subscription_has_oidc_and_dead_lettering_except_the_dlq() -> None:
    subscriptions = resources("google_pubsub_subscription")
    assert set(subscriptions) == {"step", "dead_letter"}
    for name, sub in subscriptions.items():
        push = sub["push_config"][0]
        assert "service_config[0].uri" in push["push_endpoint"], name
        oidc = push["oidc_token"][0]
        assert 'google_service_account.invoker["push"].email' in oidc["service_account_email"]
        assert "retry_policy" in sub, name
        assert unquote(sub["expiration_policy"][0]["ttl"]) == "", name
    step = subscriptions["step"]
    policy = step["dead_letter_policy"][0]
    assert 'google_pubsub_topic.topic["dead_letter"]' in policy["dead_letter_topic"]
    assert policy["max_delivery_attempts"] == "${var.max_delivery_attempts}"
    assert "min(each.value.timeout, 600)" in step["ack_deadline_seconds"]
    dlq = subscriptions["dead_letter"]
    assert "dead_letter_policy" not in dlq
    assert 'google_pubsub_topic.topic["dead_letter"]' in dlq["topic"]


def test_push_steps_are_every_pubsub_function_but_the_dead_letter_handler() -> None:
    assert resource("google_pubsub_subscription", "step")["for_each"] == "${local.push_steps}"
    condition = local("push_steps")
    assert 'fn.trigger == "pubsub"' in condition
    assert 'fn.topic != "dead_letter"' in condition
    pubsub_fed = {k for k, spec in functions().items() if spec["trigger"] == "pubsub"}
    assert pubsub_fed == {"parse", "chunk", "index", "dead_letter", "webhooks"}
    assert functions()["webhooks"]["topic"] == "lifecycle"
    assert {k for k in pubsub_fed if functions()[k]["topic"] == "dead_letter"} == {"dead_letter"}


def test_pubsub_service_agent_can_dead_letter() -> None:
    publisher = resource("google_pubsub_topic_iam_member", "dead_letter_publisher")
    assert 'topic["dead_letter"]' in publisher["topic"]
    assert unquote(publisher["role"]) == "roles/pubsub.publisher"
    assert "google_project_service_identity.pubsub.email" in publisher["member"]
    subscriber = resource("google_pubsub_subscription_iam_member", "dead_letter_subscriber")
    assert subscriber["for_each"] == "${google_pubsub_subscription.step}"
    assert unquote(subscriber["role"]) == "roles/pubsub.subscriber"
    assert "google_project_service_identity.pubsub.email" in subscriber["member"]


def test_delivery_attempts_default_and_task_retries_share_it() -> None:
    assert variable_default("max_delivery_attempts") == 5
    queue = resource("google_cloud_tasks_queue", "embed")
    assert queue["retry_config"][0]["max_attempts"] == "${var.max_delivery_attempts}"
    assert "rate_limits" in queue


def test_chunk_and_sweep_may_enqueue_and_act_as_the_tasks_invoker() -> None:
    enqueuers = {
        identity
        for identity, grants in local("identities").items()
        if grants["enqueues_embed"] is True
    }
    assert enqueuers == {"chunk", "sweep"}
    assert "grants.enqueues_embed" in local("embed_enqueuers")
    enqueuer = resource("google_cloud_tasks_queue_iam_member", "embed_enqueuer")
    assert enqueuer["for_each"] == "${local.embed_enqueuers}"
    assert unquote(enqueuer["role"]) == "roles/cloudtasks.enqueuer"
    assert "google_cloud_tasks_queue.embed.name" in enqueuer["name"]
    assert "function[each.key]" in enqueuer["member"]
    acts_as = resource("google_service_account_iam_member", "acts_as_tasks_invoker")
    assert acts_as["for_each"] == "${local.embed_enqueuers}"
    assert unquote(acts_as["role"]) == "roles/iam.serviceAccountUser"
    assert 'invoker["tasks"].name' in acts_as["service_account_id"]
    assert "function[each.key]" in acts_as["member"]
    # The former chunk-only resources move into the maps instead of being replaced.
    moves = {(m["from"], m["to"]) for m in all_blocks().get("moved", [])}
    assert (
        "${google_cloud_tasks_queue_iam_member.chunk_enqueuer}",
        '${google_cloud_tasks_queue_iam_member.embed_enqueuer["chunk"]}',
    ) in moves
    assert (
        "${google_service_account_iam_member.chunk_acts_as_tasks_invoker}",
        '${google_service_account_iam_member.acts_as_tasks_invoker["chunk"]}',
    ) in moves


@pytest.mark.parametrize("function", ["upload", "manage"])
def test_functions_that_sign_urls_can_sign_as_themselves(function: str) -> None:
    # upload signs upload URLs; manage signs download URLs of documents' files.
    grant = resource("google_service_account_iam_member", f"{function}_sign_blob")
    assert unquote(grant["role"]) == "roles/iam.serviceAccountTokenCreator"
    assert f'function["{function}"].name' in grant["service_account_id"]
    assert f'function["{function}"].email' in grant["member"]


# ---------------------------------------------------------------------------------------------
# The sweeper: Cloud Scheduler -> sweep (OIDC)
# ---------------------------------------------------------------------------------------------


def test_sweep_is_a_private_single_instance_function() -> None:
    scheduled = {key for key, spec in functions().items() if spec["trigger"] == "scheduler"}
    assert scheduled == {"sweep"}, "every scheduler-triggered function needs its own job"
    spec = functions()["sweep"]
    assert spec["entry_point"] == "sweep"
    assert spec["identity"] == "sweep"
    assert spec["public"] is False
    assert spec["memory"] == "512Mi"
    assert (spec["timeout"], spec["max_instances"], spec["concurrency"]) == (300, 1, 1)
    assert spec["secrets"] == []
    assert spec["env"] == {
        "RAGLINE_STALL_AFTER_S": "${tostring(var.stall_after_seconds)}",
        "RAGLINE_MAX_SWEEPS": "${tostring(var.max_sweeps)}",
    }
    # Non-public functions are internal-only: same-project Cloud Scheduler is internal traffic.
    service = resource("google_cloudfunctions2_function", "function")["service_config"][0]
    assert '"ALLOW_INTERNAL_ONLY"' in service["ingress_settings"]
    assert "each.value.public" in service["ingress_settings"]
    assert "each.value.env" in service["environment_variables"]


def test_sweep_variables_default_and_are_validated() -> None:
    assert unquote(variable_default("sweep_schedule")) == "*/5 * * * *"
    assert variable_default("stall_after_seconds") == 900
    assert variable_default("max_sweeps") == 3
    for block in all_blocks()["variable"]:
        for name, body in block.items():
            if unquote(name) in {"sweep_schedule", "stall_after_seconds", "max_sweeps"}:
                assert body.get("validation"), f"variable {name} is not validated"


def test_scheduler_job_posts_to_sweep_with_an_oidc_token_of_the_scheduler_invoker() -> None:
    job = resource("google_cloud_scheduler_job", "sweep")
    assert job["schedule"] == "${var.sweep_schedule}"
    assert unquote(job["time_zone"]) == "Etc/UTC"
    assert unquote(job["attempt_deadline"]) == "320s"
    assert int(unquote(job["attempt_deadline"]).rstrip("s")) > functions()["sweep"]["timeout"]
    assert 1 <= job["retry_config"][0]["retry_count"] <= 3
    target = job["http_target"][0]
    assert unquote(target["http_method"]) == "POST"
    sweep_uri = 'google_cloudfunctions2_function.function["sweep"].service_config[0].uri'
    assert sweep_uri in target["uri"]
    oidc = target["oidc_token"][0]
    assert oidc["service_account_email"] == '${google_service_account.invoker["scheduler"].email}'
    assert sweep_uri in oidc["audience"]
    # The first run must find the invoker grant in place.
    assert "${google_cloud_run_v2_service_iam_member.invoker}" in job["depends_on"]


def test_scheduler_invoker_may_invoke_only_sweep() -> None:
    assert "scheduler" in local("invokers")
    triggers = {unquote(k): unquote(v) for k, v in local("invoker_of_trigger").items()}
    assert triggers["scheduler"] == "scheduler"
    invoked_by_scheduler = {
        key
        for key, spec in functions().items()
        if not spec["public"] and triggers[spec["trigger"]] == "scheduler"
    }
    assert invoked_by_scheduler == {"sweep"}
    # The only grants on run services: one run.invoker per function, from local.run_invokers.
    assert set(resources("google_cloud_run_v2_service_iam_member")) == {"invoker"}
    invoker = resource("google_cloud_run_v2_service_iam_member", "invoker")
    assert invoker["for_each"] == "${local.run_invokers}"
    assert unquote(invoker["role"]) == "roles/run.invoker"
    # ... and the scheduler invoker appears in no other grant.
    for rtype in (
        "google_project_iam_member",
        "google_service_account_iam_member",
        "google_pubsub_topic_iam_member",
        "google_storage_bucket_iam_member",
        "google_cloud_tasks_queue_iam_member",
        "google_secret_manager_secret_iam_member",
    ):
        for name, body in resources(rtype).items():
            assert 'invoker["scheduler"]' not in str(body), f"{rtype}.{name}"


def test_sweep_identity_is_least_privilege() -> None:
    grants = local("identities")["sweep"]
    assert grants["buckets"] == {}
    assert set(unquote_all(grants["publishes"])) == {"parse", "chunk", "index", "lifecycle"}
    assert unquote_all(grants["secrets"]) == []
    assert grants["enqueues_embed"] is True


def test_cloud_scheduler_api_is_enabled() -> None:
    assert "cloudscheduler.googleapis.com" in str(local("apis"))


# ---------------------------------------------------------------------------------------------
# Configuration contract with shared/config.py
# ---------------------------------------------------------------------------------------------


def _function_env_keys() -> set[str]:
    common = local("common_env")
    match = re.search(r"merge\(\{(.*)\}, var\.function_env", common, re.S)
    assert match, "common_env must merge a literal map with var.function_env"
    keys = set(re.findall(r"\b([A-Z][A-Z0-9_]+)\s*=", match.group(1)))
    fn = resource("google_cloudfunctions2_function", "function")
    keys.update(
        re.findall(r"\b([A-Z][A-Z0-9_]+)\s*=", fn["service_config"][0]["environment_variables"])
    )
    for spec in functions().values():
        keys.update(spec["env"])
    return keys


def test_function_env_matches_settings_fields() -> None:
    from shared import config

    fields = {f"RAGLINE_{name.upper()}" for name in config.Settings.model_fields}
    ragline = {key for key in _function_env_keys() if key.startswith("RAGLINE_")}
    unknown = ragline - fields
    assert not unknown, f"env vars no Settings field reads: {sorted(unknown)}"
    required = {
        "RAGLINE_PROJECT",
        "RAGLINE_REGION",
        "RAGLINE_CLOUDSQL_INSTANCE",
        "RAGLINE_DB_USER",
        "RAGLINE_DB_NAME",
        "RAGLINE_UPLOAD_BUCKET",
        "RAGLINE_WORK_BUCKET",
        "RAGLINE_TOPIC_PARSE",
        "RAGLINE_TOPIC_CHUNK",
        "RAGLINE_TOPIC_INDEX",
        "RAGLINE_TOPIC_LIFECYCLE",
        "RAGLINE_TOPIC_DEAD_LETTER",
        "RAGLINE_TASKS_LOCATION",
        "RAGLINE_TASKS_QUEUE",
        "RAGLINE_EMBED_URL",
        "RAGLINE_TASKS_SERVICE_ACCOUNT",
        "RAGLINE_MAX_ATTEMPTS",
    }
    assert required <= ragline
    # IAM database users: the account email without its domain suffix.
    env = resource("google_cloudfunctions2_function", "function")["service_config"][0]
    sa_email = "google_service_account.function[each.value.identity].email"
    assert f'trimsuffix({sa_email}, ".gserviceaccount.com")' in env["environment_variables"]


def test_openai_key_reaches_only_the_functions_that_call_openai() -> None:
    users = {key for key, spec in functions().items() if "openai" in spec["secrets"]}
    assert users == {"embed", "answer", "mcp"}
    readers = {
        identity
        for identity, grants in local("identities").items()
        if "openai" in unquote_all(grants["secrets"])
    }
    assert readers == {"embed", "answer", "mcp"}
    assert unquote(local("secrets")["openai"]["env"]) == "OPENAI_API_KEY"


def test_iam_database_users_for_every_identity() -> None:
    user = resource("google_sql_user", "function")
    assert user["for_each"] == "${google_service_account.function}"
    assert unquote(user["type"]) == "CLOUD_IAM_SERVICE_ACCOUNT"
    assert "trimsuffix" in user["name"]
    instance = resource("google_sql_database_instance", "main")
    flags = {
        unquote(flag["name"]): unquote(flag["value"])
        for flag in instance["settings"][0]["database_flags"]
    }
    assert flags["cloudsql.iam_authentication"] == "on"
    ip = instance["settings"][0]["ip_configuration"][0]
    assert "authorized_networks" not in ip


# ---------------------------------------------------------------------------------------------
# Public HTTP entry
# ---------------------------------------------------------------------------------------------


def test_load_balancer_path_map_matches_the_api_contract() -> None:
    routes = local("lb_routes")
    by_function: dict[str, set[str]] = {}
    for route in routes:
        patterns = {
            *(unquote(p) for p in route["templates"]),
            *(unquote(p) for p in route["prefixes"]),
            *(unquote(p) for p in route["paths"]),
        }
        by_function.setdefault(unquote(route["function"]), set()).update(patterns)
        if "/v1/knowledge-bases/*/documents" in patterns:
            assert unquote(route["method"]) == "POST"
    assert by_function["upload"] == {
        "/v1/knowledge-bases/*/documents",
        "/v1/knowledge-bases/*/uploads",
        "/v1/knowledge-bases/*/uploads/**",
    }
    assert by_function["answer"] == {
        "/v1/ask",
        "/v1/ask/stream",
        "/v1/retrieve",
        "/v1/sessions",
        "/v1/turns/",
        "/v1/sessions/",
        "/v1/citations/",
        "/v1/evaluations/",
        "/v1/openai/",
        "/v1/knowledge-bases/*/evaluations",
    }
    assert by_function["mcp"] == {"/mcp"}
    assert unquote(local("lb_default_function")) == "manage"
    public = {key for key, spec in functions().items() if spec["public"]}
    assert set(by_function) | {"manage"} <= public


# ---------------------------------------------------------------------------------------------
# Secrets never in code
# ---------------------------------------------------------------------------------------------

SECRET_LOOKING = re.compile(r"sk-[A-Za-z0-9_-]{8,}|-----BEGIN [A-Z ]*PRIVATE KEY-----")


def test_no_secret_values_in_terraform() -> None:
    sources = [*TF_FILES, TF_DIR / "terraform.tfvars.example"]
    for path in sources:
        if path.exists():
            assert not SECRET_LOOKING.search(path.read_text()), (
                f"secret-looking value in {path.name}"
            )
    assert not resources("google_secret_manager_secret_version"), (
        "secret values are set out of band"
    )
    assert not resources("random_password"), "no passwords: Cloud SQL uses IAM authentication"
    for user in resources("google_sql_user").values():
        assert "password" not in user and "password_wo" not in user


# ---------------------------------------------------------------------------------------------
# Packaging and formatting
# ---------------------------------------------------------------------------------------------


def test_source_zip_is_content_addressed_and_excludes_non_runtime_files() -> None:
    obj = resource("google_storage_bucket_object", "source")
    assert "data.archive_file.source.output_md5" in obj["name"]
    archive = next(
        body
        for block in all_blocks()["data"]
        for kind, named in block.items()
        if unquote(kind) == "archive_file"
        for body in named.values()
    )
    excludes = {unquote(e) for e in archive["excludes"]}
    for directory in ("tests", "scripts", "infra", "docs", ".venv"):
        assert f"{directory}/**" in excludes
    ignore = ROOT / ".gcloudignore"
    if ignore.exists():
        lines = {line.strip().rstrip("/") for line in ignore.read_text().splitlines()}
        for directory in ("tests", "scripts", "infra", "docs", ".venv"):
            assert directory in lines or f"{directory}/" in lines or f"/{directory}" in lines


def test_terraform_fmt() -> None:
    terraform = shutil.which("terraform")
    if terraform is None:
        # Truly optional here: the project installs no terraform (Cloud Build runs
        # `terraform fmt -check` in its own terraform image before applying).
        pytest.skip("terraform is not on PATH")
    result = subprocess.run(
        [terraform, "fmt", "-check", "-recursive", "-diff", str(TF_DIR)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout


def test_identity_settings_terraform_sets_are_read_by_the_settings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Every RAGLINE_AUTH_* / RAGLINE_CORS_* variable main.tf sets names a setting, and
    # the values its defaults produce (jsonencode of an empty list, Identity Platform's
    # issuer and keys) parse.
    from shared.config import Settings, read_settings

    main = (TF_DIR / "main.tf").read_text()
    names = set(re.findall(r"\b(RAGLINE_(?:AUTH|CORS)_[A-Z_]+)\s*=", main))
    assert names >= {"RAGLINE_AUTH_ISSUER", "RAGLINE_AUTH_AUDIENCE", "RAGLINE_CORS_ORIGINS"}
    fields = set(Settings.model_fields)
    assert {name.removeprefix("RAGLINE_").lower() for name in names} <= fields
    monkeypatch.setenv("RAGLINE_AUTH_ISSUER", "https://securetoken.google.com/p")
    monkeypatch.setenv("RAGLINE_AUTH_AUDIENCE", "p")
    monkeypatch.setenv("RAGLINE_AUTH_IAP_AUDIENCE", "")
    monkeypatch.setenv("RAGLINE_AUTH_BOOTSTRAP_OWNERS", "[]")
    monkeypatch.setenv("RAGLINE_CORS_ORIGINS", '["https://app.example.com"]')
    settings = read_settings()
    assert settings.cors_origins == ["https://app.example.com"]
    assert settings.auth_bootstrap_owners == [] and settings.auth_audience == "p"


def test_every_upload_origin_may_call_the_api() -> None:
    # A page that PUTs to a signed upload URL got the URL from the API: the bucket's CORS
    # origins are among the API's (Cloud Build sets allowed_origins only).
    bucket_cors = (TF_DIR / "storage.tf").read_text()
    assert re.search(r"origin\s*=\s*var\.allowed_origins\b", bucket_cors)
    main = (TF_DIR / "main.tf").read_text()
    found = re.search(r"RAGLINE_CORS_ORIGINS\s*=\s*(.+)", main)
    assert found is not None
    assert "var.allowed_origins" in found.group(1) and "var.cors_origins" in found.group(1)


def test_webhooks_enqueue_deliveries_on_their_own_queue_for_deliver_webhook() -> None:
    queue = resource("google_cloud_tasks_queue", "webhooks")
    assert queue["retry_config"][0]["max_attempts"] == "${var.max_delivery_attempts}"
    assert "rate_limits" in queue
    enqueuers = {
        identity
        for identity, grants in local("identities").items()
        if grants["enqueues_webhooks"] is True
    }
    assert enqueuers == {"webhooks"}
    enqueuer = resource("google_cloud_tasks_queue_iam_member", "webhook_enqueuer")
    assert enqueuer["for_each"] == "${local.webhook_enqueuers}"
    assert "google_cloud_tasks_queue.webhooks.name" in enqueuer["name"]
    acts_as = resource("google_service_account_iam_member", "webhook_acts_as_tasks_invoker")
    assert 'invoker["tasks"].name' in acts_as["service_account_id"]
    env = functions()["webhooks"]["env"]
    assert "local.deliver_webhook_url" in env["RAGLINE_WEBHOOK_DELIVERY_URL"]
    assert "google_cloud_tasks_queue.webhooks.name" in env["RAGLINE_WEBHOOK_TASKS_QUEUE"]
    assert functions()["deliver_webhook"]["trigger"] == "tasks"
    assert "-deliver-webhook-" in local("deliver_webhook_url")


def test_sources_sync_on_their_own_queue_and_read_only_the_granted_buckets() -> None:
    queue = resource("google_cloud_tasks_queue", "sync")
    assert queue["retry_config"][0]["max_attempts"] == "${var.max_delivery_attempts}"
    assert "rate_limits" in queue
    identities = local("identities")
    enqueuers = {identity for identity, grants in identities.items() if grants["enqueues_sync"]}
    assert enqueuers == {"manage", "sweep", "sync"}
    enqueuer = resource("google_cloud_tasks_queue_iam_member", "sync_enqueuer")
    assert enqueuer["for_each"] == "${local.sync_enqueuers}"
    assert "google_cloud_tasks_queue.sync.name" in enqueuer["name"]
    acts_as = resource("google_service_account_iam_member", "sync_acts_as_tasks_invoker")
    assert 'invoker["tasks"].name' in acts_as["service_account_id"]
    assert functions()["sync"]["trigger"] == "tasks"
    assert "-sync-" in local("sync_url")
    # The source buckets: read-only, for the sync function alone.
    reader = resource("google_storage_bucket_iam_member", "source_reader")
    assert reader["for_each"] == "${toset(var.source_buckets)}"
    assert unquote(reader["role"]) == "roles/storage.objectViewer"
    assert 'function["sync"]' in reader["member"]
    assert identities["sweep"]["buckets"] == {}
