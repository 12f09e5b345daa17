"""`millstream-hub serve` for the API benchmarks: migrated, one viewer logged in, stopped by PID.

hub = start_hub(tmp, broker_url, pg_dsn)   # config, migrate, user, serve, ready, login
...                                        # hub.base (http://…), hub.token (access token)
stop_hub(hub.proc)
"""

from __future__ import annotations

import secrets
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.harness import free_port

__all__ = ["BenchHub", "start_hub", "stop_hub"]

HUB = str(Path(sys.executable).with_name("millstream-hub"))
SECRET = "bench-" + secrets.token_hex(24)  # the hub refuses made-up secrets
USER, PASSWORD = "bench", "bench-password"


@dataclass(frozen=True)
class BenchHub:
    proc: subprocess.Popen[bytes]
    base: str  # http://127.0.0.1:PORT
    token: str  # the viewer's access token
    log: Path


def start_hub(
    tmp: Path,
    broker_url: str,
    pg_dsn: str,
    extra_config: str = "",
    ready_path: str = "/health/ready",
) -> BenchHub:
    """Write a config (plus `extra_config` YAML lines), migrate, add the viewer, serve, log in."""
    port = free_port()
    config = tmp / "hub.yaml"
    config.write_text(
        f"mqtt: {{url: '{broker_url}'}}\nstorage: '{pg_dsn}'\n"
        f"http: {{host: 127.0.0.1, port: {port}}}\njwt_secret: '{SECRET}'\n{extra_config}"
    )
    subprocess.run([HUB, "migrate", "-c", config], check=True)
    subprocess.run(
        [HUB, "users", "add", USER, "--role", "viewer", "--password-stdin", "-c", config],
        input=PASSWORD.encode(),
        check=True,
    )
    log = tmp / "hub.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([HUB, "serve", "--config", str(config)], stderr=out)
    base = f"http://127.0.0.1:{port}"
    with httpx.Client(base_url=base, timeout=30) as client:
        for _ in range(300):
            try:
                if client.get(ready_path).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        token = client.post(
            "/api/v1/auth/login", json={"username": USER, "password": PASSWORD}
        ).json()["access_token"]
    return BenchHub(proc, base, token, log)


def stop_hub(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL if the hub has not exited within 20 s."""
    proc.terminate()
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()
