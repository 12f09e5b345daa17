"""packaging/helm/millstream: lints, renders, validates against the Kubernetes API schemas, and is
built the way docs/kubernetes.md says.

No cluster runs in CI. `helm lint` and `helm template` (default values and ci/scaled-values.yaml)
run the chart; kubeconform validates every rendered object, strictly, against the JSON schemas
vendored in packaging/helm/schemas/ (nothing is downloaded at run time); the assertions below read
the rendered objects. helm and kubeconform are built by `scripts/services install` at the
versions packaging/helm/tools.txt pins; without them these tests fail, they never skip.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
import yaml
from paho.mqtt.enums import CallbackAPIVersion
from typer.testing import CliRunner

from hub.cli import app as hub_app
from hub.config import load_config
from tests.harness._server import free_port

ROOT = Path(__file__).resolve().parents[2]
HELM_DIR = ROOT / "packaging/helm"
CHART = HELM_DIR / "millstream"
SCALED = CHART / "ci/scaled-values.yaml"
SCHEMAS = next((HELM_DIR / "schemas").glob("v*-standalone-strict"))
# The Kubernetes version the vendored schemas describe (the folder's name), told to helm too.
KUBE_VERSION = SCHEMAS.name.removeprefix("v").removesuffix("-standalone-strict")
RELEASE = "plant"
HUB_STS = f"{RELEASE}-millstream-hub"
DYNSEC_PLUGIN = "/usr/lib/x86_64-linux-gnu/mosquitto_dynamic_security.so"  # Debian's package

Doc = dict[str, Any]


def _tool(name: str) -> str:
    """The pinned tool in the cache `scripts/services install` fills (or $MILLSTREAM_NAME)."""
    pins = {}
    for line in (HELM_DIR / "tools.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            tool, _pkg, version = line.split()
            pins[tool] = version
    if env := os.environ.get(f"MILLSTREAM_{name.upper()}"):
        return env
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    path = cache / "millstream" / "tools" / f"{name}-{pins[name]}" / name
    if not os.access(path, os.X_OK):
        pytest.fail(
            f"{name} {pins[name]} not found at {path}: run scripts/services install "
            "(builds it with go install)",
            pytrace=False,
        )
    return str(path)


def _run(argv: list[str], stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv, input=stdin, capture_output=True, text=True, check=False, timeout=120, cwd=ROOT
    )


def _template(*values: Path) -> str:
    argv = [_tool("helm"), "template", RELEASE, str(CHART), "--kube-version", KUBE_VERSION]
    for file in values:
        argv += ["--values", str(file)]
    done = _run(argv)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture(scope="module", params=["default", "scaled"])
def variant(request: pytest.FixtureRequest) -> tuple[str, str]:
    """(name, rendered manifests) for the default values and for ci/scaled-values.yaml."""
    name: str = request.param
    return name, _template(*([SCALED] if name == "scaled" else []))


@pytest.fixture(scope="module")
def default() -> list[Doc]:
    return [d for d in yaml.safe_load_all(_template()) if d]


@pytest.fixture(scope="module")
def scaled() -> list[Doc]:
    return [d for d in yaml.safe_load_all(_template(SCALED)) if d]


def _one(docs: list[Doc], kind: str, name: str) -> Doc:
    found = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind} {name}: {len(found)} rendered"
    return found[0]


def _container(workload: Doc, name: str) -> Doc:
    spec = workload["spec"]["template"]["spec"]
    return next(c for c in spec.get("initContainers", []) + spec["containers"] if c["name"] == name)


def _env(container: Doc) -> dict[str, Doc]:
    return {e["name"]: e for e in container.get("env", [])}


# -- the tools' verdicts ---------------------------------------------------------------------------


@pytest.mark.parametrize("values", [[], [SCALED]], ids=["default", "scaled"])
def test_helm_lint(values: list[Path]) -> None:
    argv = [_tool("helm"), "lint", "--strict", str(CHART), "--kube-version", KUBE_VERSION]
    for file in values:
        argv += ["--values", str(file)]
    done = _run(argv)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 chart(s) failed" in done.stdout


def test_rendered_manifests_match_the_kubernetes_schemas(variant: tuple[str, str]) -> None:
    name, rendered = variant
    location = str(SCHEMAS / "{{ .ResourceKind }}{{ .KindSuffix }}.json")
    # No -ignore-missing-schemas: a kind without a vendored schema is an error, never a skip.
    argv = [_tool("kubeconform"), "-strict", "-summary", "-schema-location", location, "-"]
    done = _run(argv, stdin=rendered)
    assert done.returncode == 0, f"{name}: {done.stdout}{done.stderr}"
    found = re.search(
        r"(\d+) resources found.*Valid: (\d+), Invalid: 0, Errors: 0, Skipped: 0", done.stdout
    )
    assert found, done.stdout
    assert found[1] == found[2], done.stdout
    assert int(found[1]) >= 10, done.stdout


def test_a_misspelt_field_fails_validation(default: list[Doc]) -> None:
    # The schemas are strict: an unknown key is an error, as the API server's strict decoding is.
    sts = json.loads(json.dumps(_one(default, "StatefulSet", HUB_STS)))
    sts["spec"]["replica"] = 3
    location = str(SCHEMAS / "{{ .ResourceKind }}{{ .KindSuffix }}.json")
    done = _run(
        [_tool("kubeconform"), "-strict", "-schema-location", location, "-"], yaml.dump(sts)
    )
    assert done.returncode != 0
    assert "replica" in done.stdout


def test_every_rendered_kind_has_a_vendored_schema(default: list[Doc], scaled: list[Doc]) -> None:
    import importlib.util  # noqa: PLC0415

    spec = importlib.util.spec_from_file_location("generate", HELM_DIR / "schemas/generate.py")
    assert spec is not None
    assert spec.loader is not None
    generate = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(generate)
    rendered = {(d["apiVersion"], d["kind"]) for d in default + scaled}
    assert rendered <= set(generate.KINDS)
    files = {p.name for p in SCHEMAS.glob("*.json")}
    assert files == {generate.file_name(*k) for k in generate.KINDS}


# -- the hub: a StatefulSet, one MQTT session per ordinal ------------------------------------------


@pytest.mark.parametrize(("fixture", "replicas"), [("default", 2), ("scaled", 4)])
def test_hub_pods_each_resume_their_own_mqtt_session(
    fixture: str, replicas: int, request: pytest.FixtureRequest
) -> None:
    docs: list[Doc] = request.getfixturevalue(fixture)
    sts = _one(docs, "StatefulSet", HUB_STS)
    assert sts["spec"]["replicas"] == replicas
    headless = _one(docs, "Service", sts["spec"]["serviceName"])
    assert headless["spec"]["clusterIP"] == "None"
    # Rolling updates replace one pod at a time; the pod comes back under the same name.
    assert sts["spec"]["updateStrategy"]["type"] == "RollingUpdate"
    hub = _container(sts, "hub")
    client_id = _env(hub)["MILLSTREAM_MQTT__CLIENT_ID"]
    assert client_id["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}

    # What each ordinal's hub process loads: hub.yaml from the ConfigMap, the pod's environment.
    config_map = _one(docs, "ConfigMap", HUB_STS)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "hub.yaml"
        path.write_text(config_map["data"]["hub.yaml"])
        ids = []
        for ordinal in range(replicas):
            env = {"MILLSTREAM_MQTT__CLIENT_ID": f"{sts['metadata']['name']}-{ordinal}"}
            cfg = load_config(path, env)
            ids.append(cfg.mqtt.client_id)
            assert cfg.mqtt.session_expiry_s > 0
            assert cfg.http.port == hub["ports"][0]["containerPort"] == 8000
            assert cfg.storage.startswith("postgresql://")
            assert cfg.kafka is not None
            assert cfg.kafka.relay_in_process is False
    assert ids == [f"{HUB_STS}-{i}" for i in range(replicas)]


def test_hub_probes_use_the_health_endpoints(default: list[Doc]) -> None:
    hub = _container(_one(default, "StatefulSet", HUB_STS), "hub")
    assert hub["livenessProbe"]["httpGet"] == {"path": "/health/live", "port": "http"}
    assert hub["readinessProbe"]["httpGet"] == {"path": "/health/ready", "port": "http"}
    assert hub["startupProbe"]["httpGet"]["path"] == "/health/live"
    source = (ROOT / "hub/api/app.py").read_text()
    assert '@app.get("/health/live")' in source
    assert '@app.get("/health/ready")' in source
    assert hub["command"] == ["millstream-hub", "serve"]


def test_hub_pods_are_spread_and_budgeted(default: list[Doc], scaled: list[Doc]) -> None:
    pdb = _one(default, "PodDisruptionBudget", HUB_STS)
    sts = _one(default, "StatefulSet", HUB_STS)
    assert pdb["spec"]["maxUnavailable"] == 1
    assert (
        pdb["spec"]["selector"]["matchLabels"].items()
        <= sts["spec"]["template"]["metadata"]["labels"].items()
    )
    soft = sts["spec"]["template"]["spec"]["affinity"]["podAntiAffinity"]
    assert "preferredDuringSchedulingIgnoredDuringExecution" in soft
    hard = _one(scaled, "StatefulSet", HUB_STS)["spec"]["template"]["spec"]["affinity"]
    terms = hard["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert terms[0]["topologyKey"] == "kubernetes.io/hostname"
    assert terms[0]["labelSelector"]["matchLabels"]["app.kubernetes.io/component"] == "hub"
    for container in sts["spec"]["template"]["spec"]["containers"]:
        assert container["resources"]["requests"]
        assert container["resources"]["limits"]


# -- migrations: a hook Job before the pods change -------------------------------------------------


def test_migrate_runs_as_a_pre_upgrade_hook(default: list[Doc]) -> None:
    job = _one(default, "Job", f"{RELEASE}-millstream-migrate")
    notes = job["metadata"]["annotations"]
    assert set(notes["helm.sh/hook"].split(",")) == {"pre-install", "pre-upgrade"}
    assert "before-hook-creation" in notes["helm.sh/hook-delete-policy"]
    migrate = _container(job, "migrate")
    assert migrate["command"] == ["millstream-hub", "migrate"]
    assert CliRunner().invoke(hub_app, ["migrate", "--help"]).exit_code == 0
    # A pre-install hook runs before the release's ConfigMap exists: storage comes from the env,
    # and it is the storage the hub pods use.
    assert not any("configMap" in v for v in job["spec"]["template"]["spec"].get("volumes", []))
    hub_yaml = yaml.safe_load(_one(default, "ConfigMap", HUB_STS)["data"]["hub.yaml"])
    assert _env(migrate)["MILLSTREAM_STORAGE"]["value"] == hub_yaml["storage"]
    cfg = load_config(None, {"MILLSTREAM_STORAGE": hub_yaml["storage"]})
    assert cfg.storage == hub_yaml["storage"]


# -- secrets: only references --------------------------------------------------------------------


SECRETISH = re.compile(r"password|secret|token|jwt", re.IGNORECASE)


def _secretish_values(node: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(node, dict):
        for key, value in node.items():
            where = f"{path}.{key}" if path else str(key)
            if SECRETISH.search(str(key)) and not isinstance(value, dict):
                yield where, value
            yield from _secretish_values(value, where)


def test_values_files_name_secrets_and_hold_none() -> None:
    # Every secret-looking setting is a reference to a Secret: a name and a key, never the value.
    for file in (CHART / "values.yaml", SCALED):
        for where, value in _secretish_values(yaml.safe_load(file.read_text())):
            assert where.lower().endswith(("secretname", "key", "imagepullsecrets")), (
                file,
                where,
                value,
            )
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert set(values["postgresql"]["password"]) == {"secretName", "key"}
    assert set(values["mqtt"]["hubPassword"]) == {"secretName", "key"}


@pytest.mark.parametrize(
    "setting",
    ["postgresql.password=hunter2", "mqtt.hubPassword.value=hunter2", "hub.config.jwt_secret=x"],
)
def test_a_secret_given_as_a_value_is_refused(setting: str) -> None:
    # values.schema.json: a password is a Secret's name and key, never the password.
    argv = [_tool("helm"), "template", RELEASE, str(CHART), "--kube-version", KUBE_VERSION]
    done = _run([*argv, "--set", setting])
    assert done.returncode != 0, done.stdout
    assert "hunter2" not in done.stdout


def test_a_misspelt_value_is_refused() -> None:
    argv = [_tool("helm"), "template", RELEASE, str(CHART), "--kube-version", KUBE_VERSION]
    done = _run([*argv, "--set", "hub.replica=3"])
    assert done.returncode != 0
    assert "additional properties 'replica' not allowed" in done.stderr


@pytest.mark.parametrize("fixture", ["default", "scaled"])
def test_no_secret_is_rendered(fixture: str, request: pytest.FixtureRequest) -> None:
    docs: list[Doc] = request.getfixturevalue(fixture)
    assert not [d for d in docs if d["kind"] == "Secret"]
    for doc in docs:
        spec = doc.get("spec", {}).get("template", {}).get("spec", {})
        for container in spec.get("initContainers", []) + spec.get("containers", []):
            for name, var in _env(container).items():
                if SECRETISH.search(name) and "value" in var:
                    # Only the Redis URL, which refers to the secret variable, not its value.
                    assert "$(REDIS_PASSWORD)" in var["value"], (doc["metadata"]["name"], name)
                elif SECRETISH.search(name):
                    assert "secretKeyRef" in var["valueFrom"], (doc["metadata"]["name"], name)
    for doc in docs:
        if doc["kind"] == "ConfigMap" and "hub.yaml" in doc["data"]:
            hub_yaml = yaml.safe_load(doc["data"]["hub.yaml"])
            assert "jwt_secret" not in hub_yaml
            assert "password" not in hub_yaml["mqtt"]
            assert hub_yaml["mqtt"]["password_env"] == "MQTT_PASSWORD"


# -- network policies and the broker ---------------------------------------------------------------


def test_network_policies_confine_the_brokers_plain_port(
    default: list[Doc], scaled: list[Doc]
) -> None:
    for docs in (default, scaled):
        policies = {d["metadata"]["name"]: d for d in docs if d["kind"] == "NetworkPolicy"}
        assert {HUB_STS, f"{RELEASE}-millstream-mosquitto"} <= set(policies)
        broker = policies[f"{RELEASE}-millstream-mosquitto"]["spec"]["ingress"]
        plain = next(
            rule for rule in broker if {"port": "mqtt", "protocol": "TCP"} in rule["ports"]
        )
        assert plain["from"] == [
            {
                "podSelector": {
                    "matchLabels": _one(docs, "StatefulSet", HUB_STS)["spec"]["selector"][
                        "matchLabels"
                    ]
                }
            }
        ]
    external = _one(default, "Service", f"{RELEASE}-millstream-mosquitto-tls")
    assert sorted(p["port"] for p in external["spec"]["ports"]) == [8883, 8884]


def test_relay_is_its_own_deployment(default: list[Doc], scaled: list[Doc]) -> None:
    relay = _one(default, "Deployment", f"{RELEASE}-millstream-relay")
    assert _container(relay, "relay")["command"] == ["millstream-hub", "kafka-relay"]
    assert _container(relay, "kafka-init")["command"] == ["millstream-hub", "kafka", "init"]
    spec = _one(scaled, "Deployment", f"{RELEASE}-millstream-relay")["spec"]
    assert spec["replicas"] == 2
    assert "initContainers" not in spec["template"]["spec"]
    for words in (["kafka-relay"], ["kafka", "init"]):
        assert CliRunner().invoke(hub_app, [*words, "--help"]).exit_code == 0


def test_upgrading_the_hub_leaves_the_broker_alone() -> None:
    # A new hub image must not roll the broker: every agent would reconnect for nothing.
    def broker(tag: str) -> Doc:
        argv = [_tool("helm"), "template", RELEASE, str(CHART), "--kube-version", KUBE_VERSION]
        done = _run([*argv, "--set", f"image.tag={tag}"])
        assert done.returncode == 0, done.stderr
        docs = [d for d in yaml.safe_load_all(done.stdout) if d]
        return _one(docs, "StatefulSet", f"{RELEASE}-millstream-mosquitto")["spec"]["template"]

    assert broker("0.1.0") == broker("0.2.0")


def _directives(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in text.splitlines():
        if line.strip() and not line.startswith("#"):
            key, _, value = line.partition(" ")
            out.setdefault(key, value)
    return out


def test_broker_config_shares_persistence_and_queue_limits() -> None:
    production = _directives((ROOT / "packaging/mosquitto/mosquitto.conf").read_text())
    chart = _directives((CHART / "files/mosquitto.conf").read_text())
    for key in (
        "persistence",
        "autosave_interval",
        "max_queued_messages",
        "max_queued_bytes",
        "queue_qos0_messages",
        "upgrade_outgoing_qos",
        "max_inflight_messages",
        "max_packet_size",
        "allow_anonymous",
        "per_listener_settings",
        "tls_version",
    ):
        assert chart.get(key) == production.get(key), key


def test_broker_seed_is_the_hubs_own_roles() -> None:
    def lines(path: Path) -> set[str]:
        return {x for x in path.read_text().splitlines() if x and not x.startswith("#")}

    chart = lines(CHART / "files/dynsec-seed.txt")
    compose = lines(ROOT / "packaging/mosquitto/dynsec-seed.txt")
    wanted = {x for x in compose if re.search(r"\b(millstream-hub|healthcheck)\b", x)}
    assert chart == wanted


def _connack(port: int, user: str, password: str, subscribe: str | None = None) -> bool:
    """True when the broker accepts the login (and, if asked, grants the subscription)."""
    done: dict[str, Any] = {}
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"t-{user}", protocol=mqtt.MQTTv5)
    client.username_pw_set(user, password)
    client.on_connect = lambda _c, _u, _f, rc, _p: done.setdefault("rc", rc)
    client.on_subscribe = lambda _c, _u, _m, rcs, _p: done.setdefault("sub", rcs)
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        for _ in range(100):
            if "rc" in done:
                break
            time.sleep(0.05)
        if done.get("rc") is None or done["rc"].is_failure:
            return False
        if subscribe is None:
            return True
        client.subscribe(subscribe, qos=1)
        for _ in range(100):
            if "sub" in done:
                break
            time.sleep(0.05)
        return bool(done.get("sub")) and not done["sub"][0].is_failure
    finally:
        client.loop_stop()
        client.disconnect()


def _listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True


def test_broker_init_and_config_run_on_a_real_mosquitto(default: list[Doc]) -> None:
    """The init container's script and the broker's config, on Debian's Mosquitto (paths moved)."""
    files = dict(_one(default, "ConfigMap", f"{RELEASE}-millstream-mosquitto")["data"].items())
    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    # Not pytest's tmp_path: the seeding broker drops root for user mosquitto, who must reach it.
    work = Path(tempfile.mkdtemp(prefix="millstream-helm-broker-"))
    work.chmod(0o755)
    tls, data, run, config = work / "tls", work / "data", work / "run", work / "config"
    for folder in (tls, data, run, config):
        folder.mkdir()
    for name, text in files.items():
        (config / name).write_text(text)
    certs = work / "certs"
    subprocess.run(
        ["bash", str(ROOT / "packaging/mosquitto/make-certs.sh"), "--out", str(certs)],
        capture_output=True, check=True, timeout=120,
    )  # fmt: skip
    # What a kubernetes.io/tls Secret from cert-manager holds.
    for src, dst in (("server.crt", "tls.crt"), ("server.key", "tls.key"), ("ca.crt", "ca.crt")):
        shutil.copy(certs / src, tls / dst)
    hub_pw = "helm-hub-" + os.urandom(8).hex()
    env = {
        **os.environ,
        "INIT_DATA": str(data), "INIT_RUN": str(run), "INIT_SEED": str(config / "dynsec-seed.txt"),
        "INIT_PLUGIN": DYNSEC_PLUGIN, "INIT_PORT": str(free_port()), "MQTT_HUB_PASSWORD": hub_pw,
    }  # fmt: skip
    for _ in range(2):  # the second start (a pod restart) keeps what the first made
        init = subprocess.run(
            ["sh", str(config / "mosquitto-init.sh")],
            capture_output=True, text=True, env=env, check=False, timeout=60,
        )  # fmt: skip
        assert init.returncode == 0, init.stdout + init.stderr
    plain, tls_port, cert_port = free_port(), free_port(), free_port()
    conf = files["mosquitto.conf"]
    conf = conf.replace("/mosquitto/tls", str(tls)).replace("/mosquitto/data/", f"{data}/")
    conf = conf.replace("/usr/lib/mosquitto_dynamic_security.so", DYNSEC_PLUGIN)
    conf = conf.replace("listener 8883", f"listener {tls_port} 127.0.0.1")
    conf = conf.replace("listener 8884", f"listener {cert_port} 127.0.0.1")
    conf = conf.replace("listener 1883", f"listener {plain} 127.0.0.1")
    # In the pod the broker runs as its own user from the start; here it would drop root.
    (work / "mosquitto.conf").write_text(conf + "\nuser root\n")
    log = work / "mosquitto.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [binary, "-c", str(work / "mosquitto.conf")], stdout=out, stderr=out
        )
    try:
        for _ in range(300):
            if proc.poll() is not None or all(map(_listening, (plain, tls_port, cert_port))):
                break
            time.sleep(0.1)
        assert proc.poll() is None, log.read_text()
        health = (run / "healthcheck.pw").read_text().strip()
        # The readiness probe's round trip, and the hub's shared subscription.
        assert _connack(plain, "healthcheck", health, "$SYS/broker/uptime"), log.read_text()
        assert _connack(plain, "hub", hub_pw, "$share/hub/ms/v1/+/+/+/telemetry"), log.read_text()
        assert not _connack(plain, "hub", "wrong")
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        shutil.rmtree(work, ignore_errors=True)
