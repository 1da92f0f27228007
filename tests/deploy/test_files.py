"""The deployment files in ``deploy/`` are well-formed and agree with the relay they deploy.

Docker and a Kubernetes cluster are not available to the tests, so every file is checked as far as
this machine allows: YAML parsed; each ``HOTLINE_*`` variable names a RelaySettings field; probe
paths are routes of the app; commands are real ``hotline`` commands; the compose services, the
nginx upstreams and the Kubernetes objects refer to each other consistently; and where the tools
are installed, ``kubectl kustomize``, ``nginx -t`` and ``systemd-analyze verify``/``security`` run
on the real files. A tool that is missing skips only its own check, with the reason.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from hotline.relay.identity import ADMIN_TOKEN_FILE, RELAY_KEY_FILE
from tests.deploy.support import (
    DEPLOY,
    REPO,
    SETTINGS,
    load_yaml_documents,
    nginx_binary,
    nginx_config_for_test,
    parse_unit,
    served_paths,
    setting_of,
)
from tests.relay.support import HOTLINE, free_port

RELAY_IMAGE = "hotline-relay"


def assert_settings(env: dict[str, Any] | list[str], where: str) -> None:
    names = list(env) if isinstance(env, dict) else [e.split("=", 1)[0] for e in env]
    unknown = [n for n in names if n.startswith("HOTLINE_") and setting_of(n) is None]
    assert not unknown, f"{where}: {unknown} are not RelaySettings fields"


def test_the_app_serves_the_paths_the_deployments_probe():
    assert served_paths(["/healthz", "/readyz", "/metrics", "/no-such-path"]) == {
        "/healthz",
        "/readyz",
        "/metrics",
    }


@pytest.mark.parametrize(
    "command", [["serve"], ["db", "upgrade"], ["identity", "init"]], ids=lambda c: " ".join(c)
)
def test_the_commands_the_deployments_run_exist(command):
    r = subprocess.run([HOTLINE, *command, "--help"], capture_output=True, timeout=60, cwd=REPO)
    assert r.returncode == 0, r.stderr.decode()


# --- Dockerfile -----------------------------------------------------------------------------------------


def test_the_dockerfile_copies_what_exists_and_runs_the_relay_unprivileged():
    lines = [ln.strip() for ln in (DEPLOY / "Dockerfile").read_text().splitlines()]
    copies = [ln.split()[1:-1] for ln in lines if ln.startswith("COPY ")]
    ignore = (DEPLOY / "Dockerfile.dockerignore").read_text().splitlines()
    for sources in copies:
        for source in sources:
            assert (REPO / source).exists(), f"COPY {source}: no such file in the repository"
            assert f"!{source.rstrip('/')}" in {i.rstrip("/") for i in ignore}, f"{source} is ignored"
    assert any(ln.startswith("USER ") and ln.split()[1] not in {"root", "0"} for ln in lines)
    assert lines[-1] == 'CMD ["hotline", "serve"]'
    env = " ".join(ln for ln in lines if ln.startswith("ENV ") or ln.startswith("HOTLINE_"))
    assert_settings(re.findall(r"(HOTLINE_[A-Z_]+)=", env), "Dockerfile")


# --- compose --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return dict(yaml.safe_load((DEPLOY / "compose.yaml").read_text()))


def _relays(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        name: s
        for name, s in compose["services"].items()
        if s.get("image", "").startswith(RELAY_IMAGE) and s.get("command") == ["hotline", "serve"]
    }


def test_compose_runs_postgres_two_relays_and_a_tls_proxy(compose):
    services = compose["services"]
    assert {"postgres", "identity", "migrate", "proxy"} <= set(services)
    relays = _relays(compose)
    assert len(relays) == 2
    for name, service in services.items():
        image = service.get("image", "")
        if image.startswith(RELAY_IMAGE):
            assert service["command"][0] == "hotline"
            assert service["build"] == {"context": "..", "dockerfile": "deploy/Dockerfile"}
            assert service.get("read_only") is True and service.get("cap_drop") == ["ALL"], name
            assert_settings(service.get("environment", {}), f"compose service {name}")
    assert services["identity"]["command"] == ["hotline", "identity", "init"]
    assert services["migrate"]["command"] == ["hotline", "db", "upgrade"]
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    pg = services["postgres"]["environment"]
    for name, relay in relays.items():
        env = relay["environment"]
        assert env["HOTLINE_HOST"] == "0.0.0.0" and env["HOTLINE_AUTO_MIGRATE"] == "false"
        assert env["HOTLINE_LOG_FORMAT"] == "json" and "HOTLINE_METRICS_TOKEN" in env
        db = re.fullmatch(r"postgresql://([^:]+):\$\{[^}]+\}@postgres:5432/(\w+)", env["HOTLINE_DB_URL"])
        assert db and db.groups() == (pg["POSTGRES_USER"], pg["POSTGRES_DB"]), env["HOTLINE_DB_URL"]
        for step in ("identity", "migrate"):
            assert relay["depends_on"][step]["condition"] == "service_completed_successfully"
        assert f"http://127.0.0.1:{env['HOTLINE_PORT']}/readyz" in " ".join(relay["healthcheck"]["test"])
        data_dir = env["HOTLINE_DATA_DIR"]
        assert any(v.endswith(f":{data_dir}") for v in relay["volumes"]), name
        assert services["migrate"]["environment"]["HOTLINE_DB_URL"] == env["HOTLINE_DB_URL"]
        assert services["identity"]["environment"]["HOTLINE_DATA_DIR"] == data_dir


def test_compose_volumes_files_and_variables_exist(compose):
    declared = set(compose["volumes"])
    for name, service in compose["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                if source != "./tls":  # the operator's certificate, never in the repository
                    assert (DEPLOY / source).exists(), f"{name}: {source} does not exist"
            else:
                assert source in declared, f"{name}: volume {source} is not declared"
    text = (DEPLOY / "compose.yaml").read_text()
    used = set(re.findall(r"\$\{(\w+)", text))
    example = {ln.split("=", 1)[0] for ln in (DEPLOY / "env.example").read_text().splitlines() if "=" in ln}
    assert used <= example, f"{used - example} are used by compose.yaml but not in env.example"


def test_the_proxy_forwards_to_the_relays_compose_runs(compose):
    conf = (DEPLOY / "nginx" / "hotline.conf").read_text()
    upstream = set(re.findall(r"^\s*server\s+([\w-]+):(\d+)", conf, flags=re.M))
    relays = _relays(compose)
    assert upstream == {(name, r["environment"]["HOTLINE_PORT"]) for name, r in relays.items()}
    proxy = compose["services"]["proxy"]
    assert "./nginx/hotline.conf:/etc/nginx/conf.d/default.conf:ro" in proxy["volumes"]
    assert "443:443" in proxy["ports"]
    assert "ssl_certificate     /etc/nginx/tls/fullchain.pem;" in conf
    assert re.search(r"location = /metrics \{\s*return 404;", conf), "/metrics must not pass the proxy"
    assert "proxy_set_header Upgrade $http_upgrade;" in conf


# --- Kubernetes -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def k8s() -> dict[tuple[str, str], dict[str, Any]]:
    objects: dict[tuple[str, str], dict[str, Any]] = {}
    for path in sorted((DEPLOY / "kubernetes").glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        for doc in load_yaml_documents(path):
            assert {"apiVersion", "kind", "metadata"} <= set(doc), path.name
            assert doc["metadata"].get("name"), path.name
            key = (doc["kind"], doc["metadata"]["name"])
            assert key not in objects, f"{key} defined twice"
            doc["_file"] = path.name
            objects[key] = doc
    return objects


def _pod_spec(obj: dict[str, Any]) -> dict[str, Any]:
    return dict(obj["spec"]["template"]["spec"])


def test_kustomization_lists_every_object_file_but_the_secret_example(k8s):
    kustomization = yaml.safe_load((DEPLOY / "kubernetes" / "kustomization.yaml").read_text())
    files = {obj["_file"] for obj in k8s.values()}
    assert set(kustomization["resources"]) == files - {"secret.example.yaml"}
    assert kustomization["images"][0]["name"] == RELAY_IMAGE


def test_the_deployment_probes_readyz_and_healthz_and_gets_its_secrets(k8s):
    deployment = k8s[("Deployment", "hotline-relay")]
    spec = deployment["spec"]
    labels = spec["template"]["metadata"]["labels"]
    assert spec["selector"]["matchLabels"].items() <= labels.items()
    assert spec["replicas"] >= 2
    pod = _pod_spec(deployment)
    [relay] = pod["containers"]
    assert relay["image"] == RELAY_IMAGE and relay["command"] == ["hotline", "serve"]
    [port] = relay["ports"]
    for probe, path in (("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")):
        get = relay[probe]["httpGet"]
        assert get["path"] == path and served_paths([path]) == {path}
        assert get["port"] in (port["name"], port["containerPort"])
    config = k8s[("ConfigMap", relay["envFrom"][0]["configMapRef"]["name"])]
    env_secret = k8s[("Secret", relay["envFrom"][1]["secretRef"]["name"])]
    assert int(config["data"]["HOTLINE_PORT"]) == port["containerPort"]
    assert_settings(config["data"], "ConfigMap")
    assert_settings(env_secret["stringData"], "Secret hotline-relay-env")
    assert {"HOTLINE_DB_URL", "HOTLINE_METRICS_TOKEN"} <= set(env_secret["stringData"])
    # The identity secret is copied, mode 0600, into the data dir the relay reads.
    volumes = {v["name"]: v for v in pod["volumes"]}
    [init] = pod["initContainers"]
    identity = next(v for v in volumes.values() if "secret" in v)
    secret = k8s[("Secret", identity["secret"]["secretName"])]
    assert {i["key"] for i in identity["secret"]["items"]} == {RELAY_KEY_FILE, ADMIN_TOKEN_FILE}
    assert set(secret["stringData"]) == {RELAY_KEY_FILE, ADMIN_TOKEN_FILE}
    data_dir = config["data"]["HOTLINE_DATA_DIR"]
    script = " ".join(init["command"])
    assert "install -m 0600" in script and script.rstrip().endswith(data_dir + "/")
    mounts = {m["mountPath"]: m["name"] for m in init["volumeMounts"]}
    assert mounts[data_dir] == next(m["name"] for m in relay["volumeMounts"] if m["mountPath"] == data_dir)
    for container in (relay, init):
        sc = container["securityContext"]
        assert sc["allowPrivilegeEscalation"] is False and sc["readOnlyRootFilesystem"] is True
    assert pod["securityContext"]["runAsNonRoot"] is True


def test_service_ingress_budget_and_migration_job_point_at_the_relays(k8s):
    deployment = k8s[("Deployment", "hotline-relay")]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    [relay] = _pod_spec(deployment)["containers"]
    service = k8s[("Service", "hotline-relay")]
    assert service["spec"]["selector"].items() <= labels.items()
    [port] = service["spec"]["ports"]
    assert port["targetPort"] == relay["ports"][0]["name"]
    backend = k8s[("Ingress", "hotline-relay")]["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    assert backend == {"name": "hotline-relay", "port": {"name": port["name"]}}
    pdb = k8s[("PodDisruptionBudget", "hotline-relay")]
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    job = k8s[("Job", "hotline-migrate")]
    pod = _pod_spec(job)
    [migrate] = pod["containers"]
    assert migrate["command"] == ["hotline", "db", "upgrade"] and migrate["image"] == RELAY_IMAGE
    assert migrate["envFrom"] == relay["envFrom"]
    assert pod["restartPolicy"] in {"Never", "OnFailure"}
    config = k8s[("ConfigMap", "hotline-relay-config")]
    assert config["data"]["HOTLINE_AUTO_MIGRATE"] == "false"  # the Job migrates, once, before a rollout


def test_kubectl_builds_the_kustomization():
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed: the kustomization is checked by the tests above only")
    r = subprocess.run([kubectl, "kustomize", str(DEPLOY / "kubernetes")], capture_output=True, timeout=60)
    assert r.returncode == 0, r.stderr.decode()
    built = list(yaml.safe_load_all(r.stdout))
    assert {d["metadata"].get("namespace") for d in built if d["kind"] != "Namespace"} == {"hotline"}
    deployment = next(d for d in built if d["kind"] == "Deployment")
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == f"{RELAY_IMAGE}:0.1.0"


# --- systemd --------------------------------------------------------------------------------------------

UNIT = DEPLOY / "systemd" / "hotline-relay.service"


def test_the_systemd_unit_is_hardened_and_configures_real_settings():
    unit = parse_unit(UNIT.read_text())
    service = unit["Service"]
    one = {k: v[-1] for k, v in service.items()}
    assert one["ExecStart"].endswith("/hotline serve")
    assert one.get("DynamicUser") == "yes" or one.get("User") not in {None, "root"}
    for key, value in {
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "PrivateDevices": "yes",
        "RestrictSUIDSGID": "yes",
        "CapabilityBoundingSet": "",
        "UMask": "0077",
    }.items():
        assert one.get(key) == value, f"{key}={one.get(key)!r}"
    env = dict(e.split("=", 1) for e in service["Environment"])
    assert_settings(env, "hotline-relay.service")
    assert env["HOTLINE_DATA_DIR"] == f"/var/lib/{one['StateDirectory']}"
    assert env["HOTLINE_HOST"] == "127.0.0.1"  # behind nginx on the same host; /metrics stays loopback
    listed = re.findall(r"^#?(HOTLINE_[A-Z_]+)=", (DEPLOY / "systemd" / "relay.env").read_text(), flags=re.M)
    assert listed and all(setting_of(n) for n in listed), listed
    assert unit["Install"]["WantedBy"] == ["multi-user.target"]


def _unit_for_this_machine(tmp_path: Path) -> Path:
    """The unit with ExecStart pointing at this checkout's ``hotline`` (systemd checks it exists)."""
    text = UNIT.read_text().replace("/opt/hotline/.venv/bin/hotline", HOTLINE)
    path = tmp_path / UNIT.name
    path.write_text(text)
    return path


def test_systemd_analyze_verifies_the_unit(tmp_path):
    tool = shutil.which("systemd-analyze")
    if tool is None:
        pytest.skip("systemd-analyze is not installed")
    r = subprocess.run(
        [tool, "verify", str(_unit_for_this_machine(tmp_path))], capture_output=True, timeout=60
    )
    out = (r.stdout + r.stderr).decode()
    assert r.returncode == 0, out
    assert "Unknown" not in out and "ignoring" not in out, out


def test_systemd_rates_the_unit_well_exposed_at_most_2_of_10(tmp_path):
    tool = shutil.which("systemd-analyze")
    if tool is None:
        pytest.skip("systemd-analyze is not installed")
    r = subprocess.run(
        [tool, "security", "--offline=yes", "--no-pager", str(_unit_for_this_machine(tmp_path))],
        capture_output=True,
        timeout=60,
    )
    out = (r.stdout + r.stderr).decode()
    if "--offline" in out and "unrecognized" in out:
        pytest.skip("this systemd-analyze cannot assess a unit file offline")
    level = re.search(r"Overall exposure level for \S+: ([\d.]+)", out)
    assert level, out
    assert float(level.group(1)) <= 2.0, out


# --- nginx ----------------------------------------------------------------------------------------------


def test_nginx_accepts_the_proxy_config(tmp_path):
    nginx = nginx_binary()
    if nginx is None:
        pytest.skip(
            "nginx is not installed (Debian: apt-get install nginx-light); its config is checked above"
        )
    conf, _ = nginx_config_for_test(tmp_path, [free_port(), free_port()], free_port(), free_port())
    r = subprocess.run([nginx, "-t", "-c", str(conf), "-p", str(tmp_path)], capture_output=True, timeout=60)
    out = (r.stdout + r.stderr).decode()
    assert r.returncode == 0 and "syntax is ok" in out, out


def test_every_setting_the_files_name_is_documented_in_operations():
    text = (REPO / "docs" / "OPERATIONS.md").read_text()
    named = set()
    for path in [
        *DEPLOY.rglob("*.yaml"),
        *DEPLOY.rglob("*.service"),
        *DEPLOY.rglob("*.env"),
        DEPLOY / "Dockerfile",
    ]:
        named |= set(re.findall(r"HOTLINE_[A-Z_]+", path.read_text()))
    settings = {n for n in named if setting_of(n)}
    assert settings, "no settings found"
    missing = sorted(n for n in settings if n not in text)
    assert not missing, f"docs/OPERATIONS.md does not mention {missing}"
    assert SETTINGS  # (every name above was checked against RelaySettings by the tests before)
