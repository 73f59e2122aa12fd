"""Start and stop an emulator subprocess: for this project's tests and benchmarks, and for yours.

from airflow_provider_metronome.emulator.testing import running_emulator

with running_emulator(seed={...}) as emu:
    ...  # emu.url, emu.token, emu.admin("state")

The admin API needs the process's admin token: :func:`running_emulator` makes one
(or takes yours) and :meth:`RunningEmulator.admin` sends it.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterator

TOKEN = "bench-token-0123456789"
ADMIN_TOKEN_HEADER = "X-Emulator-Admin-Token"
ADMIN_TOKEN_ENV = "METRONOME_EMULATOR_ADMIN_TOKEN"
SEED_CUSTOMER_ID = "11111111-1111-4111-8111-111111111111"


@dataclass
class RunningEmulator:
    """A started emulator process.

    :param port: the port it listens on.
    :param process: the subprocess.
    :param token: the bearer token it expects.
    :param admin_token: the token its admin API (``/_emulator/``) expects.
    """

    port: int
    process: subprocess.Popen[bytes]
    token: str
    admin_token: str = ""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def admin(self, path: str, body: Any = None, method: str | None = None) -> Any:
        """Call an ``/_emulator/`` endpoint and return its JSON.

        :param path: path below ``/_emulator/``.
        :param body: JSON body (makes the call a POST unless ``method`` says otherwise).
        :param method: HTTP method.
        """
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(
            f"{self.url}/_emulator/{path}",
            data=data,
            method=method or ("POST" if body is not None else "GET"),
            headers={"Content-Type": "application/json", ADMIN_TOKEN_HEADER: self.admin_token},
        )
        with urllib.request.urlopen(req, timeout=30) as resp:
            return json.loads(resp.read() or b"null")


@contextlib.contextmanager
def running_emulator(
    *,
    seed: dict[str, Any] | None = None,
    args: list[str] | None = None,
    token: str = TOKEN,
    state_file: str | None = None,
    admin_token: str | None = None,
) -> Iterator[RunningEmulator]:
    """Start ``metronome-emulator`` on a free loopback port; stop it on exit.

    :param seed: seed data (default: one customer).
    :param args: extra command-line arguments.
    :param token: bearer token.
    :param state_file: ``--state-file`` to pass.
    :param admin_token: the admin API's token (default: a fresh random one). It goes
        through the environment, not the command line other local users can read.
    """
    admin_token = admin_token or secrets.token_urlsafe(24)
    seed = (
        seed
        if seed is not None
        else {"customers": [{"id": SEED_CUSTOMER_ID, "name": "Bench", "ingest_aliases": ["bench"]}]}
    )
    with tempfile.TemporaryDirectory(prefix="metronome-emu-") as tmp:
        seed_path = os.path.join(tmp, "seed.json")
        port_path = os.path.join(tmp, "port")
        with open(seed_path, "w") as fh:
            json.dump(seed, fh)
        cmd = [
            sys.executable, "-m", "airflow_provider_metronome.emulator",
            "--port", "0", "--token", token, "--seed", seed_path, "--port-file", port_path,
            *(["--state-file", state_file] if state_file else []),
            *(args or []),
        ]  # fmt: skip
        env = {**os.environ, ADMIN_TOKEN_ENV: admin_token}
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
        try:
            deadline = time.monotonic() + 30
            while not os.path.exists(port_path):
                if proc.poll() is not None:
                    raise RuntimeError(
                        f"emulator exited: {proc.stderr.read().decode() if proc.stderr else ''}"
                    )
                if time.monotonic() > deadline:
                    raise RuntimeError("emulator did not start within 30 s")
                time.sleep(0.02)
            with open(port_path) as fh:
                port = int(fh.read())
            yield RunningEmulator(port=port, process=proc, token=token, admin_token=admin_token)
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            if proc.stderr is not None:
                proc.stderr.close()
