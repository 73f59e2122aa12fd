"""The admin API (``/_emulator/*``) is safe to leave running on a developer's machine.

Each test here fails on an emulator whose admin API takes no token, accepts any
content type and any ``Host``, shows password digests, writes its state file 0644 or
answers bad admin input with a 500.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import stat
import subprocess
import sys
import time
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from airflow_provider_metronome.emulator.app import (
    ADMIN_TOKEN_ENV,
    ADMIN_TOKEN_HEADER,
    HostGuard,
    allowed_host_names,
)
from airflow_provider_metronome.emulator.testing import RunningEmulator, running_emulator
from tests import seeds
from tests.conftest import TOKEN

if TYPE_CHECKING:
    from pathlib import Path

PASSWORD = "Av-s3cret-P@ss-7f1e"
ANROK_TOKEN = "sak-anrok-5d2c9e"
UNKNOWN = "0c8b5a52-7c1e-4f0e-9a3b-0c1d2e3f4aff"

ADMIN_CALLS = [
    ("GET", "state", None),
    ("GET", "requests", None),
    ("DELETE", "requests", None),
    ("GET", "stats", None),
    ("POST", "reset", {}),
    ("POST", "seed", {}),
    ("GET", "faults", None),
    ("POST", "faults", {"p_500": 1}),
    ("GET", "settings", None),
    ("POST", "settings", {"providers_page_size": 1}),
    ("POST", "save", {}),
    (
        "POST",
        "check-secret",
        {"kind": "avalara_password", "delivery_method_id": seeds.STRIPE_DM, "value": "x"},
    ),
]


def admin(
    emu: RunningEmulator,
    method: str,
    path: str,
    body: Any = None,
    *,
    token: str | None = "",
    content: bytes | None = None,
    **headers: str,
) -> httpx.Response:
    """Call the admin API; ``token=""`` sends the right token, ``None`` none at all."""
    hdrs = {k.replace("_", "-"): v for k, v in headers.items()}
    if token is not None:
        hdrs[ADMIN_TOKEN_HEADER] = token or emu.admin_token
    if content is None and body is not None:
        content = json.dumps(body).encode()
        hdrs.setdefault("Content-Type", "application/json")
    return httpx.request(method, f"{emu.url}/_emulator/{path}", content=content, headers=hdrs, timeout=10)


def _customer_ids(emu: RunningEmulator) -> list[str]:
    return [c["id"] for c in emu.admin("state")["customers"]]


# -- the admin token ------------------------------------------------------------------------


@pytest.mark.parametrize(("method", "path", "body"), ADMIN_CALLS)
def test_admin_call_without_the_token_is_401(
    emulator: RunningEmulator, method: str, path: str, body: Any
) -> None:
    resp = admin(emulator, method, path, body, token=None)
    assert resp.status_code == 401
    assert ADMIN_TOKEN_HEADER in resp.json()["message"]


@pytest.mark.parametrize(("method", "path", "body"), ADMIN_CALLS)
def test_admin_call_with_a_wrong_token_is_403(
    emulator: RunningEmulator, method: str, path: str, body: Any
) -> None:
    resp = admin(emulator, method, path, body, token=emulator.admin_token + "x")
    assert resp.status_code == 403
    assert resp.json() == {"message": f"wrong {ADMIN_TOKEN_HEADER}"}


def test_a_refused_reset_changes_nothing(emulator: RunningEmulator) -> None:
    before = _customer_ids(emulator)
    assert admin(emulator, "POST", "reset", {}, token=None).status_code == 401
    assert admin(emulator, "POST", "faults", {"p_500": 1}, token="guess").status_code == 403
    assert _customer_ids(emulator) == before
    assert emulator.admin("faults")["p_500"] == 0


def test_health_needs_no_token(emulator: RunningEmulator) -> None:
    resp = admin(emulator, "GET", "health", token=None)
    assert resp.status_code == 200
    assert resp.json() == {"ok": True}


def test_the_api_token_is_not_the_admin_token(emulator: RunningEmulator) -> None:
    assert admin(emulator, "GET", "state", token=TOKEN).status_code == 403


def test_a_generated_admin_token_is_printed_at_start_and_works(tmp_path: Path) -> None:
    port_file = tmp_path / "port"
    env = {k: v for k, v in os.environ.items() if k != ADMIN_TOKEN_ENV}
    cmd = [sys.executable, "-m", "airflow_provider_metronome.emulator", "--port", "0", "--token", TOKEN,
           "--port-file", str(port_file)]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True)
    try:
        assert proc.stdout is not None
        lines = [proc.stdout.readline() for _ in range(3)]
        printed = [line for line in lines if "admin token" in line]
        assert printed, lines
        token = printed[0].rsplit(" ", 1)[1].strip()
        assert len(token) >= 32
        url = f"http://127.0.0.1:{int(port_file.read_text())}/_emulator/state"
        assert httpx.get(url, headers={ADMIN_TOKEN_HEADER: token}).status_code == 200
        assert httpx.get(url).status_code == 401
    finally:
        proc.terminate()
        proc.communicate(timeout=10)


def test_a_given_admin_token_is_not_printed(tmp_path: Path) -> None:
    port_file = tmp_path / "port"
    env = {**os.environ, ADMIN_TOKEN_ENV: "given-admin-token-123456"}
    cmd = [sys.executable, "-m", "airflow_provider_metronome.emulator", "--port", "0", "--token", TOKEN,
           "--port-file", str(port_file)]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True)
    try:
        deadline = time.monotonic() + 30
        while not port_file.exists():
            assert proc.poll() is None
            assert time.monotonic() < deadline
            time.sleep(0.05)
        url = f"http://127.0.0.1:{int(port_file.read_text())}/_emulator/state"
        assert httpx.get(url, headers={ADMIN_TOKEN_HEADER: "given-admin-token-123456"}).status_code == 200
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=10)
    assert "given-admin-token-123456" not in out


# -- content type -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "content_type",
    ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", None],
)
@pytest.mark.parametrize("path", ["reset", "seed", "faults", "settings", "save", "check-secret"])
def test_admin_post_that_is_not_json_is_415(
    emulator: RunningEmulator, path: str, content_type: str | None
) -> None:
    before = _customer_ids(emulator)
    headers = {} if content_type is None else {"Content-Type": content_type}
    resp = admin(emulator, "POST", path, content=b"{}", **headers)
    assert resp.status_code == 415
    assert "application/json" in resp.json()["message"]
    assert _customer_ids(emulator) == before


def test_json_with_a_charset_is_json(emulator: RunningEmulator) -> None:
    resp = admin(
        emulator,
        "POST",
        "faults",
        content=b'{"latency_ms": 0}',
        Content_Type="application/json; charset=utf-8",
    )
    assert resp.status_code == 200


def test_a_cross_site_form_post_cannot_reset(emulator: RunningEmulator) -> None:
    """What a web page can send without a CORS preflight: a text/plain form, no custom header."""
    before = _customer_ids(emulator)
    resp = httpx.post(
        f"{emulator.url}/_emulator/reset",
        content=b'{"customers": []}',
        headers={"Content-Type": "text/plain", "Origin": "https://evil.example"},
    )
    assert resp.status_code in (401, 415)
    assert "access-control-allow-origin" not in resp.headers
    assert _customer_ids(emulator) == before


# -- Host header ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "host",
    ["evil.example", "evil.example:8080", "127.0.0.1.evil.example", "localhost.evil.example:80",
     "10.0.0.7", "[::2]:80", "127.0.0.1:abc", "[::1", "[::1]x", "[evil]:80", "a b"],
)  # fmt: skip
@pytest.mark.parametrize("path", ["/_emulator/health", "/_emulator/state", "/v1/customers", "/nowhere"])
def test_a_foreign_host_is_refused(emulator: RunningEmulator, host: str, path: str) -> None:
    resp = httpx.get(
        f"{emulator.url}{path}",
        headers={"Host": host, "Authorization": f"Bearer {TOKEN}", ADMIN_TOKEN_HEADER: emulator.admin_token},
    )
    assert resp.status_code == 400
    message = resp.json()["message"]
    assert "Host header" in message
    assert repr(host) in message
    assert "--allowed-host" in message


def test_a_foreign_host_cannot_reset(emulator: RunningEmulator) -> None:
    before = _customer_ids(emulator)
    resp = admin(emulator, "POST", "reset", {}, Host="rebound.example")
    assert resp.status_code == 400
    assert _customer_ids(emulator) == before


@pytest.mark.parametrize("name", ["127.0.0.1", "localhost", "LOCALHOST", "[::1]", "[0:0:0:0:0:0:0:1]"])
def test_loopback_names_with_any_port_are_accepted(emulator: RunningEmulator, name: str) -> None:
    for host in (name, f"{name}:{emulator.port}", f"{name}:1"):
        resp = admin(emulator, "GET", "state", Host=host)
        assert resp.status_code == 200, (host, resp.text)
        api = httpx.get(
            f"{emulator.url}/v1/customers/{seeds.ACME}",
            headers={"Host": host, "Authorization": f"Bearer {TOKEN}"},
        )
        assert api.status_code == 200, (host, api.text)


def test_a_request_without_host_is_refused(emulator: RunningEmulator) -> None:
    with socket.create_connection(("127.0.0.1", emulator.port), timeout=10) as sock:
        sock.sendall(b"GET /_emulator/health HTTP/1.0\r\n\r\n")
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    assert answer.split(b"\r\n", 1)[0].split()[1] == b"400", answer[:200]
    assert b"missing Host header" in answer


def test_allowed_host_option_accepts_that_name_only() -> None:
    with running_emulator(
        seed=seeds.small_seed(), token=TOKEN, args=["--allowed-host", "Emu.Internal", "--allowed-host", "::1"]
    ) as emu:
        assert admin(emu, "GET", "state", Host="emu.internal:8080").status_code == 200
        assert admin(emu, "GET", "state", Host="emu.internal").status_code == 200
        assert admin(emu, "GET", "state", Host="other.internal").status_code == 400


def test_a_bad_allowed_host_stops_the_cli() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "airflow_provider_metronome.emulator", "--port", "0", "--token", TOKEN,
         "--allowed-host", "bad host/name:x"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert out.returncode == 2
    assert "--allowed-host" in out.stderr


@pytest.mark.parametrize(
    ("bind", "extra", "included", "excluded"),
    [
        ("127.0.0.1", [], {"127.0.0.1", "localhost", "[::1]"}, {"0.0.0.0"}),
        ("0.0.0.0", [], set(), {"0.0.0.0"}),
        ("::", [], set(), {"[::]"}),
        ("10.1.2.3", [], {"10.1.2.3"}, set()),
        ("fd00::7", [], {"[fd00::7]"}, set()),
        (
            "127.0.0.1",
            ["emu.internal:9000", "fd00::8", "[fd00::9]"],
            {"emu.internal", "[fd00::8]", "[fd00::9]"},
            set(),
        ),
    ],
)
def test_allowed_host_names(bind: str, extra: list[str], included: set[str], excluded: set[str]) -> None:
    names = allowed_host_names(bind, extra)
    assert {"127.0.0.1", "localhost", "[::1]"} <= names
    assert included <= names
    assert not excluded & names


def test_host_guard_problem() -> None:
    guard = HostGuard(app=None, allowed=allowed_host_names("10.1.2.3", ["emu.internal"]))  # type: ignore[arg-type]
    assert guard.problem("10.1.2.3:8080") is None
    assert guard.problem("EMU.internal") is None
    assert guard.problem(None) == "missing Host header"
    assert guard.problem("10.1.2.4") is not None


# -- secrets ------------------------------------------------------------------------------------


def _set_secrets(emu: RunningEmulator) -> None:
    hdrs = {"Authorization": f"Bearer {emu.token}"}
    avalara = {
        "delivery_method_ids": [seeds.STRIPE_DM],
        "avalara_environment": "SANDBOX",
        "avalara_username": "tax@example.com",
        "avalara_password": PASSWORD,
        "commit_transactions": True,
    }
    assert httpx.post(f"{emu.url}/v1/upsertAvalaraCredentials", json=avalara, headers=hdrs).status_code == 200
    anrok = {"delivery_method_ids": [seeds.STRIPE_DM], "anrok_api_token": ANROK_TOKEN}
    assert httpx.post(f"{emu.url}/v1/upsertAnrokApiToken", json=anrok, headers=hdrs).status_code == 200


def _traces(secret: str) -> list[str]:
    """The secret and the unsalted digests someone could look up or brute-force offline."""
    raw = secret.encode()
    return [secret, *(hashlib.new(name, raw).hexdigest() for name in ("md5", "sha1", "sha256", "sha512"))]


def test_state_shows_no_password_nor_digest(emulator: RunningEmulator) -> None:
    _set_secrets(emulator)
    state = emulator.admin("state")
    dumped = json.dumps(state) + json.dumps(emulator.admin("requests"))
    for secret in (PASSWORD, ANROK_TOKEN):
        for trace in _traces(secret):
            assert trace not in dumped
    avalara = state["avalara_credentials"][seeds.STRIPE_DM]
    assert avalara["avalara_password"] == "<set>"
    assert avalara["avalara_username"] == "tax@example.com"
    assert not [k for k in avalara if "sha" in k or "hash" in k or "digest" in k]
    assert state["anrok_api_tokens"][seeds.STRIPE_DM]["anrok_api_token"] == "<set>"


def test_check_secret_tells_whether_a_value_is_the_one_set(emulator: RunningEmulator) -> None:
    def check(kind: str, value: str, dm: str = seeds.STRIPE_DM) -> Any:
        return emulator.admin("check-secret", {"kind": kind, "delivery_method_id": dm, "value": value})

    assert check("avalara_password", PASSWORD) == {"set": False, "match": None}
    _set_secrets(emulator)
    assert check("avalara_password", PASSWORD) == {"set": True, "match": True}
    assert check("avalara_password", PASSWORD + "x") == {"set": True, "match": False}
    assert check("anrok_api_token", ANROK_TOKEN) == {"set": True, "match": True}
    assert check("avalara_password", PASSWORD, seeds.AWS_DM) == {"set": False, "match": None}


def test_a_seeded_password_is_kept_only_as_a_salted_digest(emulator: RunningEmulator) -> None:
    seed = {**seeds.small_seed(), "avalara_credentials": {seeds.AWS_DM: {
        "avalara_environment": "PRODUCTION", "avalara_username": "u", "avalara_password": PASSWORD}}}  # fmt: skip
    emulator.admin("reset", seed)
    state = json.dumps(emulator.admin("state"))
    assert not [t for t in _traces(PASSWORD) if t in state]
    match = emulator.admin(
        "check-secret", {"kind": "avalara_password", "delivery_method_id": seeds.AWS_DM, "value": PASSWORD}
    )
    assert match == {"set": True, "match": True}


def test_state_file_is_0600_and_holds_no_secret(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    path.write_text(json.dumps(seeds.small_seed()))
    path.chmod(0o644)  # a file left by an older version: replaced, not reused
    old_umask = os.umask(0)  # the widest umask: the mode must not depend on it
    try:
        with running_emulator(seed=seeds.small_seed(), token=TOKEN, state_file=str(path)) as emu:
            _set_secrets(emu)
            assert emu.admin("save", {})["saved"] == str(path)
            assert stat.S_IMODE(path.stat().st_mode) == 0o600
            text = path.read_text()
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"], "no temporary file left"
    for secret in (PASSWORD, ANROK_TOKEN):
        assert not [t for t in _traces(secret) if t in text]
    assert json.loads(text)["avalara_credentials"][seeds.STRIPE_DM]["avalara_password"] == "<set>"


def test_a_state_file_from_a_restart_says_set_but_cannot_match(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    with running_emulator(seed=seeds.small_seed(), token=TOKEN, state_file=str(path)) as emu:
        _set_secrets(emu)
    with running_emulator(seed={}, token=TOKEN, state_file=str(path)) as emu:
        creds = emu.admin("state")["avalara_credentials"]
        assert creds[seeds.STRIPE_DM]["avalara_password"] == "<set>"
        check = {"kind": "avalara_password", "delivery_method_id": seeds.STRIPE_DM, "value": PASSWORD}
        assert emu.admin("check-secret", check) == {"set": True, "match": None}


def test_an_older_state_file_loses_its_unsalted_digest(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    old = {**seeds.small_seed(), "avalara_credentials": {seeds.STRIPE_DM: {
        "avalara_environment": "SANDBOX", "avalara_username": "u",
        "avalara_password_sha256": hashlib.sha256(PASSWORD.encode()).hexdigest()}}}  # fmt: skip
    path.write_text(json.dumps(old))
    with running_emulator(seed={}, token=TOKEN, state_file=str(path)) as emu:
        assert "avalara_password_sha256" not in json.dumps(emu.admin("state"))
    # Rewritten at exit, so the unsalted digest is gone from the disk too.
    assert hashlib.sha256(PASSWORD.encode()).hexdigest() not in path.read_text()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


# -- bad admin input is a 4xx naming the field, never a 500 ------------------------------------------


BAD_INPUT: list[tuple[str, str, bytes, int, str]] = [
    # (what, path, raw JSON body, status, field)
    ("reset: not JSON", "reset", b"{", 400, "body"),
    ("faults: NaN", "faults", b'{"latency_ms": NaN}', 400, "body"),
    ("reset: an array", "reset", b"[]", 422, "body"),
    ("reset: a string", "reset", b'"x"', 422, "body"),
    ("reset: null", "reset", b"null", 422, "body"),
    ("reset: customers not a list", "reset", b'{"customers": "x"}', 422, "customers"),
    ("reset: customer not an object", "reset", b'{"customers": [1]}', 422, "customers[0]"),
    ("reset: customer id a number", "reset", b'{"customers": [{"id": 5}]}', 422, "customers[0].id"),
    ("reset: customer id not a UUID", "reset", b'{"customers": [{"id": "c-1"}]}', 422, "customers[0].id"),
    ("reset: customer without id", "reset", b'{"customers": [{"name": "x"}]}', 422, "customers[0]"),
    ("reset: name a number", "reset", json.dumps({"customers": [{"id": seeds.ACME, "name": 3}]}).encode(), 422, "customers[0].name"),
    ("reset: aliases a string", "reset", json.dumps({"customers": [{"id": seeds.ACME, "ingest_aliases": "a"}]}).encode(), 422, "customers[0].ingest_aliases"),
    ("reset: duplicate customer", "reset", json.dumps({"customers": [{"id": seeds.ACME}, {"id": seeds.ACME}]}).encode(), 422, "customers[1].id"),
    ("reset: alias of two customers", "reset", json.dumps({"customers": [{"id": seeds.ACME, "ingest_aliases": ["a"]}, {"id": seeds.GLOBEX, "ingest_aliases": ["a"]}]}).encode(), 422, "customers[1].ingest_aliases"),
    ("reset: misspelt section", "reset", b'{"customer": []}', 422, "body"),
    ("reset: unknown provider", "reset", b'{"delivery_methods": [{"billing_provider": "paypal"}]}', 422, "delivery_methods[0].billing_provider"),
    ("reset: configuration of nobody", "reset", json.dumps({"billing_provider_configurations": [{"customer_id": UNKNOWN, "billing_provider": "stripe"}]}).encode(), 422, "billing_provider_configurations[0].customer_id"),
    ("reset: credentials not an object", "reset", json.dumps({"avalara_credentials": {seeds.STRIPE_DM: "pw"}}).encode(), 422, f"avalara_credentials.{seeds.STRIPE_DM}"),
    ("seed: customer that exists", "seed", json.dumps({"customers": [{"id": seeds.ACME}]}).encode(), 422, "customers[0].id"),
    ("seed: delivery method that exists", "seed", json.dumps({"delivery_methods": [{"billing_provider": "stripe", "delivery_method_id": seeds.STRIPE_DM}]}).encode(), 422, "delivery_methods[0].delivery_method_id"),
    ("faults: an array", "faults", b"[1]", 422, "body"),
    ("faults: text", "faults", b'{"latency_ms": "x"}', 422, "latency_ms"),
    ("faults: huge integer", "faults", b'{"latency_ms": 1' + b"0" * 400 + b"}", 422, "latency_ms"),
    ("faults: out of range", "faults", b'{"p_503": -1}', 422, "p_503"),
    ("settings: text", "settings", b'{"providers_page_size": "x"}', 422, "providers_page_size"),
    ("settings: zero", "settings", b'{"providers_page_size": 0}', 422, "providers_page_size"),
    ("settings: boolean", "settings", b'{"providers_page_size": true}', 422, "providers_page_size"),
    ("settings: a float", "settings", b'{"providers_page_size": 1.5}', 422, "providers_page_size"),
    ("settings: unknown", "settings", b'{"page_size": 5}', 422, "page_size"),
    ("settings: an array", "settings", b"[]", 422, "body"),
    ("check-secret: bad kind", "check-secret", b'{"kind": "x", "delivery_method_id": "d", "value": "v"}', 422, "kind"),
    ("check-secret: value missing", "check-secret", b'{"kind": "anrok_api_token", "delivery_method_id": "d"}', 422, "value"),
    ("deeply nested", "reset", b"[" * 100_000 + b"]" * 100_000, 400, "body"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("what", "path", "content", "status", "field"), BAD_INPUT, ids=[b[0] for b in BAD_INPUT]
)
def test_bad_admin_input_is_a_4xx_naming_the_field(
    emulator: RunningEmulator, what: str, path: str, content: bytes, status: int, field: str
) -> None:
    before = emulator.admin("state")
    faults = emulator.admin("faults")
    resp = admin(emulator, "POST", path, content=content, Content_Type="application/json")
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert body["field"] == field
    assert body["message"].startswith(f"{field}: ")
    assert emulator.admin("state") == before, "a refused change changes nothing"
    assert emulator.admin("faults") == faults


def test_bad_since_is_a_422(emulator: RunningEmulator) -> None:
    resp = admin(emulator, "GET", "requests?since=abc")
    assert resp.status_code == 422
    assert resp.json()["field"] == "since"


def test_a_partly_bad_fault_update_applies_nothing(emulator: RunningEmulator) -> None:
    resp = admin(emulator, "POST", "faults", {"latency_ms": 50, "p_500": 7})
    assert resp.status_code == 422
    assert emulator.admin("faults")["latency_ms"] == 0


def test_a_bad_seed_file_stops_the_cli_naming_the_field(tmp_path: Path) -> None:
    seed = tmp_path / "seed.json"
    seed.write_text(json.dumps({"customers": [{"id": seeds.ACME, "name": 7}]}))
    out = subprocess.run(
        [sys.executable, "-m", "airflow_provider_metronome.emulator", "--port", "0", "--token", TOKEN,
         "--seed", str(seed)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert out.returncode == 2
    assert "customers[0].name" in out.stderr
    assert "Traceback" not in out.stderr
