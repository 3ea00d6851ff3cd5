"""Who may reach what: the worker private, its callers, the queue, the buckets, what the build may do."""

from __future__ import annotations

from typing import Any

from terraform.checks.code import enqueuers
from terraform.checks.settings import infrastructure_settings
from terraform.checks.tree import Problems, Tree, functions_table, single

WORKER = "execute_action"
PUBLIC_MEMBERS = ("allUsers", "allAuthenticatedUsers")


def _members(body: dict[str, Any]) -> list[str]:
    found = body.get("members", body.get("member", []))
    return [found] if isinstance(found, str) else list(found)


def check_worker(tree: Tree) -> Problems:
    """The worker is invoked by the tasks service account only; who enqueues may act as it."""
    return [*_invokers(tree), *_worker_settings(tree), *_enqueuers(tree), *_queue(tree), *_sweep(tree)]


def _invokers(tree: Tree) -> Problems:
    problems: Problems = []
    table = functions_table(tree)
    invokers = table.get(WORKER, {}).get("invokers")
    if invokers != ["serviceAccount:${module.platform.tasks_service_account_email}"]:
        problems.append(f"{WORKER} must be invoked by the tasks service account only, not {invokers}")
    problems += [
        f"{entry} is user-facing (Firebase ID tokens): its invoker is allUsers"
        for entry, spec in table.items()
        if entry != WORKER and spec.get("invokers") != ["allUsers"]
    ]
    binding = ("google_cloud_run_v2_service_iam_binding", "invoker")
    invoker = tree.function.resources().get(binding, {})
    if invoker.get("role") != "roles/run.invoker" or invoker.get("members") != "${var.invokers}":
        problems.append("modules/function: the invokers must be one authoritative roles/run.invoker binding")
    if invoker.get("name") != "${google_cloudfunctions2_function.this.service_config[0].service}":
        problems.append("modules/function: the invoker binding must be on the function's own service")
    problems += [
        f"{where}: {rtype}.{name} grants {body.get('role')} outside the functions' own binding"
        for where, config in tree.configs().items()
        for (rtype, name), body in config.resources().items()
        if "invoker" in str(body.get("role", "")) and (rtype, name) != binding
    ]
    return problems


def _worker_settings(tree: Tree) -> Problems:
    problems: Problems = []
    settings = infrastructure_settings(tree)
    if settings.get("CSCX_WORKER_URL") != "${local.urls.execute_action}":
        problems.append("CSCX_WORKER_URL must be the worker's URL (the OIDC audience)")
    if settings.get("CSCX_TASKS_SERVICE_ACCOUNT") != "${module.platform.tasks_service_account_email}":
        problems.append("CSCX_TASKS_SERVICE_ACCOUNT must be the tasks service account")
    return problems


def _enqueuers(tree: Tree) -> Problems:
    problems: Problems = []
    # Exactly the functions whose code enqueues (approving, proposing in the chat, the sweep).
    granted, needed = set(tree.cscx.locals.get("task_enqueuers", [])), enqueuers()
    if granted != needed:
        problems.append(f"task_enqueuers must be {sorted(needed)} (their code enqueues), not {sorted(granted)}")
    grants = {
        ("google_cloud_tasks_queue_iam_member", "enqueuer"): "roles/cloudtasks.enqueuer",
        ("google_service_account_iam_member", "enqueuer_acts_as_tasks"): "roles/iam.serviceAccountUser",
    }
    resources = tree.cscx.resources()
    for key, role in grants.items():
        grant = resources.get(key, {})
        if grant.get("role") != role or grant.get("for_each") != "${toset(local.task_enqueuers)}":
            problems.append(f"modules/cscx: {'.'.join(key)} must grant {role} to each of local.task_enqueuers")
    acts_as = resources.get(("google_service_account_iam_member", "enqueuer_acts_as_tasks"), {})
    if acts_as and acts_as.get("service_account_id") != "${module.platform.tasks_service_account_id}":
        problems.append("modules/cscx: the enqueuers may act as the tasks service account only")
    return problems


def _queue(tree: Tree) -> Problems:
    problems: Problems = []
    queue = tree.platform.resources().get(("google_cloud_tasks_queue", "actions"))
    if queue is None:
        return ["modules/platform: the worker's queue (google_cloud_tasks_queue.actions) is missing"]
    retry = single(queue.get("retry_config", [{}]))
    if not retry.get("min_backoff") or not retry.get("max_backoff") or not queue.get("rate_limits"):
        problems.append("the queue needs a backoff and rate limits")
    if retry.get("max_attempts") != "${var.queue_max_attempts}":
        problems.append("the queue's max_attempts must be var.queue_max_attempts")
    variables = tree.cscx.variables
    attempts = variables.get("queue_max_attempts", {}).get("default", 0)
    worker_attempts = variables.get("worker_max_attempts", {}).get("default", 0)
    wired = infrastructure_settings(tree).get("CSCX_TASKS_MAX_ATTEMPTS") == "${tostring(var.worker_max_attempts)}"
    if not attempts > worker_attempts or not wired:
        problems.append("the queue must allow more attempts than the worker's CSCX_TASKS_MAX_ATTEMPTS")
    return problems


def _sweep(tree: Tree) -> Problems:
    """Cloud Scheduler calls the worker's /sweep every 5 minutes, as an account the worker admits."""
    job = tree.cscx.resources().get(("google_cloud_scheduler_job", "sweep"))
    if job is None:
        return ["modules/cscx: nothing calls the worker's /sweep (google_cloud_scheduler_job.sweep)"]
    problems: Problems = []
    target = single(job.get("http_target"))
    oidc = single(target.get("oidc_token"))
    if job.get("schedule") != "*/5 * * * *":
        problems.append(f"the sweep must run every 5 minutes (*/5 * * * *), not {job.get('schedule')}")
    if target.get("uri") != "${local.settings.CSCX_WORKER_URL}/sweep" or target.get("http_method") != "POST":
        problems.append("the sweep must POST the worker's /sweep (CSCX_WORKER_URL)")
    account = str(oidc.get("service_account_email"))
    invokers = functions_table(tree).get(WORKER, {}).get("invokers", [])
    if (
        f"serviceAccount:{account}" not in invokers
        or infrastructure_settings(tree).get("CSCX_TASKS_SERVICE_ACCOUNT") != account
    ):
        problems.append(f"the sweep's OIDC token must be the tasks service account's, not {account}")
    if oidc.get("audience") != "${local.settings.CSCX_WORKER_URL}":
        problems.append("the sweep's OIDC token must be addressed to CSCX_WORKER_URL (the audience the worker checks)")
    return problems


def check_buckets(tree: Tree) -> Problems:
    """No bucket is public; contract files are reached by the functions that need them only."""
    problems: Problems = []
    for where, config in tree.configs().items():
        for (rtype, name), body in config.resources().items():
            if rtype == "google_storage_bucket":
                problems += [f"{where}: bucket {name} {problem}" for problem in _bucket_problems(body)]
            if rtype.startswith("google_storage_bucket_") and any(m in PUBLIC_MEMBERS for m in _members(body)):
                problems.append(f"{where}: {rtype}.{name} makes a bucket public")
            if rtype in {"google_storage_bucket_acl", "google_storage_default_object_acl", "google_storage_object_acl"}:
                problems.append(f"{where}: {rtype}.{name}: access is uniform, by IAM only")
    contracts = tree.platform.resources().get(("google_storage_bucket", "contracts"), {})
    if contracts.get("force_destroy") != "${!var.deletion_protection}":
        problems.append(
            "modules/platform: the contracts bucket's force_destroy must be !var.deletion_protection "
            "(an environment without deletion protection, dev, can be destroyed with its files)"
        )
    access = tree.cscx.locals.get("contract_file_access", {})
    if set(access) != {"contract_parse", "crud"}:
        problems.append(f"contract files are for contract_parse and crud only, not {sorted(access)}")
    grant = tree.cscx.resources().get(("google_storage_bucket_iam_member", "contract_files"), {})
    on_contracts = grant.get("bucket") == "${module.platform.contracts_bucket}"
    if grant.get("for_each") != "${local.contract_file_access}" or not on_contracts:
        problems.append("modules/cscx: contract file access must be granted on the contracts bucket only")
    return problems


def _bucket_problems(body: dict[str, Any]) -> Problems:
    problems: Problems = []
    if body.get("uniform_bucket_level_access") is not True:
        problems.append("must have uniform bucket-level access")
    if body.get("public_access_prevention") != "enforced":
        problems.append("must enforce public access prevention")
    if not any(v.get("enabled") is True for v in body.get("versioning", [])) and not body.get("lifecycle_rule"):
        problems.append("needs versioning or a lifecycle")
    if not body.get("labels"):
        problems.append("has no labels")
    return problems


# What a 2nd gen build needs (Cloud Run's page on build service accounts), besides reading our archives.
BUILD_ROLES = ("roles/logging.logWriter", "roles/artifactregistry.writer")
FUNCTION_SOURCES_BUCKET = "gcf-v2-sources-${data.google_project.this.number}-${var.region}"
# The bucket itself, and its objects (Cloud Storage's resource names in IAM conditions).
FUNCTION_SOURCES_CONDITION = (
    'resource.name == "projects/_/buckets/${local.function_sources_bucket}" || '
    'resource.name.startsWith("projects/_/buckets/${local.function_sources_bucket}/objects/")'
)
IAM_WAIT_SECONDS = 60  # the provider's "Cloudfunctions2 Basic Builder" example waits as long


def check_build(tree: Tree) -> Problems:
    """The build may do what a 2nd gen build does; builds and deploys wait until IAM sees their grants."""
    return [*_build_grants(tree), *_iam_waits(tree)]


def _build_grants(tree: Tree) -> Problems:
    problems: Problems = []
    platform = tree.platform.resources()
    roles = str(platform.get(("google_project_iam_member", "build"), {}).get("for_each"))
    problems += [
        f"modules/platform: the build service account lacks {role}" for role in BUILD_ROLES if role not in roles
    ]
    sources = platform.get(("google_project_iam_member", "build_function_sources"), {})
    condition = single(sources.get("condition"))
    if (
        sources.get("role") != "roles/storage.objectAdmin"
        or sources.get("member") != "serviceAccount:${google_service_account.build.email}"
        or condition.get("expression") != FUNCTION_SOURCES_CONDITION
        or tree.platform.locals.get("function_sources_bucket") != FUNCTION_SOURCES_BUCKET
    ):
        problems.append(
            "modules/platform: the build service account must be Storage Object Admin of Cloud Functions' "
            f"{FUNCTION_SOURCES_BUCKET} bucket (and only of it), where the build reads the sources"
        )
    function = tree.function.resources().get(("google_cloudfunctions2_function", "this"), {})
    if single(function.get("build_config")).get("service_account") != "${var.build_service_account}":
        problems.append("modules/function: the build must run as the build service account")
    if (
        tree.cscx.modules.get("functions", {}).get("build_service_account")
        != "${module.platform.build_service_account}"
    ):
        problems.append("modules/cscx: every function is built by the platform's build service account")
    return problems


def _iam_waits(tree: Tree) -> Problems:
    problems: Problems = []
    build_wait = tree.platform.resources().get(("time_sleep", "build_permissions"), {})
    granted = ("google_project_iam_member.build ", "build_function_sources.id", "build_reads_sources.id")
    if not _waits_long_enough(build_wait) or not all(grant in str(build_wait.get("triggers")) for grant in granted):
        problems.append(f"modules/platform: builds must wait {IAM_WAIT_SECONDS} s after each of the build's grants")
    output = tree.platform.outputs.get("build_service_account", {})
    if "${time_sleep.build_permissions}" not in output.get("depends_on", []):
        problems.append("modules/platform: the build service account is given to the functions only after the wait")
    resources = tree.function.resources()
    runtime_wait = resources.get(("time_sleep", "runtime_permissions"), {})
    if not _waits_long_enough(runtime_wait) or "google_secret_manager_secret_iam_member.runtime" not in str(
        runtime_wait.get("triggers")
    ):
        problems.append(f"modules/function: a function must wait {IAM_WAIT_SECONDS} s after its secret grants")
    function = resources.get(("google_cloudfunctions2_function", "this"), {})
    if "${time_sleep.runtime_permissions}" not in function.get("depends_on", []):
        problems.append("modules/function: the function is deployed only after the wait for its grants")
    return problems


def _waits_long_enough(sleep: dict[str, Any]) -> bool:
    duration = str(sleep.get("create_duration", ""))
    return duration.endswith("s") and duration[:-1].isdigit() and int(duration[:-1]) >= IAM_WAIT_SECONDS
