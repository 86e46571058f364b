"""Every deployed function's environment, as Terraform renders it, loads into the Settings.

The environment of each function is evaluated from infra/terraform (``merge(local.common_env,
each.value.env, {...})``) by tests/support/terraform.py, for the variables' defaults, for
terraform.tfvars.example, and with every optional setting given; then
``shared.config.Settings`` and ``ParseLimits`` are loaded from exactly that environment.
"""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from shared.config import ParseLimits, Settings
from tests.support.terraform import (
    CASES,
    PROJECT,
    STACK,
    Evaluator,
    UnsupportedHclError,
    load_settings,
    parse_file,
    rendered_environments,
)


@pytest.mark.parametrize("case", sorted(CASES))
def test_every_function_environment_loads_into_the_settings(
    case: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    environments = rendered_environments(CASES[case])
    assert set(environments) >= {"upload", "manage", "answer", "embed", "parse", "sweep"}
    settings_env = {f"RAGLINE_{name.upper()}" for name in Settings.model_fields}
    limits_env = {f"RAGLINE_PARSE_{name.upper()}" for name in ParseLimits.model_fields}
    for key, env in environments.items():
        unread = {
            name
            for name in env
            if name.startswith("RAGLINE_") and name not in settings_env | limits_env
        }
        assert not unread, f"{case}/{key}: no setting reads {sorted(unread)}"
        try:
            settings, _ = load_settings(monkeypatch, env)
        except ValidationError as error:
            pytest.fail(f"{case}: the {key} function cannot read its settings: {error}")
        assert settings.project == CASES[case]["project_id"]
        assert settings.max_attempts == CASES[case].get("max_delivery_attempts", 5)


def test_answer_min_similarity_reaches_the_answer_function_only_when_set(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    unset = rendered_environments(CASES["defaults"])["answer"]
    assert "RAGLINE_ANSWER_MIN_SIMILARITY" not in unset
    assert load_settings(monkeypatch, unset)[0].answer_min_similarity is None
    given = rendered_environments(CASES["optional values set"])["answer"]
    assert given["RAGLINE_ANSWER_MIN_SIMILARITY"] == "0.35"
    assert load_settings(monkeypatch, given)[0].answer_min_similarity == 0.35
    assert given["OPENAI_BASE_URL"] == "https://llm.example.com/v1"


def test_list_settings_are_json_the_settings_read(monkeypatch: pytest.MonkeyPatch) -> None:
    env = rendered_environments(CASES["optional values set"])["manage"]
    settings, _ = load_settings(monkeypatch, env)
    assert settings.auth_bootstrap_owners == ["owner@example.com"]
    assert settings.cors_origins == ["https://app.example.com"]
    # Upload origins may call the API too (distinct(concat(...)) in main.tf).
    example = rendered_environments(CASES["tfvars.example"])["manage"]
    assert load_settings(monkeypatch, example)[0].cors_origins == ["https://app.example.com"]


def test_function_env_extras_reach_every_function(monkeypatch: pytest.MonkeyPatch) -> None:
    example = CASES["tfvars.example"]
    for key, env in rendered_environments(example).items():
        settings, _ = load_settings(monkeypatch, env)
        assert settings.chunk_tokens == int(example["function_env"]["RAGLINE_CHUNK_TOKENS"]), key


def test_an_empty_optional_number_counts_as_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    # What older Terraform (and hand-written deploy scripts) set for "no threshold".
    settings, _ = load_settings(monkeypatch, {"RAGLINE_ANSWER_MIN_SIMILARITY": ""})
    assert settings.answer_min_similarity is None
    with pytest.raises(ValidationError):
        load_settings(monkeypatch, {"RAGLINE_ANSWER_MIN_SIMILARITY": "high"})


# ---------------------------------------------------------------------------------------------
# The evaluator itself: it must fail loudly on what it does not understand
# ---------------------------------------------------------------------------------------------


def _expression(source: str, tmp_path: Any) -> Any:
    path = tmp_path / "probe.tf"
    path.write_text(f"locals {{\n  probe = {source}\n}}\n")
    return parse_file(path).blocks[0].attributes["probe"]


@pytest.mark.parametrize(
    "source",
    [
        "upper(var.region)",  # a function it does not know
        '"%{if var.region != ""}x%{endif}"',  # template directives
        "module.other.value",  # references outside var/local/each/resources
        "var.lb_domains[*]",  # splat expressions
        'google_sql_database_instance.main.name == "x" ? 1 : 2',  # unknown condition
    ],
)
def test_the_evaluator_rejects_what_it_does_not_understand(source: str, tmp_path: Any) -> None:
    evaluator = Evaluator(STACK, PROJECT)
    with pytest.raises(UnsupportedHclError):
        evaluator.evaluate(_expression(source, tmp_path))


def test_the_evaluator_computes_what_terraform_would(tmp_path: Any) -> None:
    evaluator = Evaluator(STACK, {**PROJECT, "answer_min_similarity": 0.5})
    optional = "var.answer_min_similarity == null ? {} : {B = tostring(var.answer_min_similarity)}"
    cases = {
        f'merge({{A = "1"}}, {optional})': {"A": "1", "B": "0.5"},
        '"${var.name_prefix}-${replace("a_b", "_", "-")}"': "ragline-a-b",
        "jsonencode(var.cors_origins)": "[]",
        "min(700, 600) + 1": 601,
        "{ for k, v in { a = 1, b = 2 } : k => v * 2 if v > 1 }": {"b": 4},
        'coalesce(var.auth_issuer, "x")': "x",
        "!(1 < 2) || 3 >= 3": True,
    }
    for source, expected in cases.items():
        assert evaluator.evaluate(_expression(source, tmp_path)) == expected, source
