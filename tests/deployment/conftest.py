"""One real Airflow deployment per session (see harness.py), shared by every test here.

Run with ``make test-deployment`` (no xdist: one deployment per pytest process). Needs
``METRONOME_TEST_POSTGRES_URL`` (``.ci/run`` starts a server and sets it) and, for the
browser tests, Debian's ``chromium`` (``APM_CHROMIUM`` overrides its path).
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import pytest

from tests.deployment import harness, scenarios

if TYPE_CHECKING:
    from collections.abc import Generator, Iterator

    from _pytest.reports import TestReport
    from _pytest.terminal import TerminalReporter
    from playwright.sync_api import Browser, Page, Response

# Every customer any scenario uses exists in the seed the deployment starts with.
MAX_CUSTOMERS = 300

_STATE: dict[str, Any] = {"deployment": None, "home": None, "startup_s": None, "failed": False}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Run the secrets checks after every other test of the session."""
    last = [i for i in items if i.path.parent == Path(__file__).parent and i.path.name == "test_secrets.py"]
    if last:
        items[:] = [i for i in items if i not in last] + last


def _unavailable(reason: str) -> NoReturn:
    """Skip locally; fail in CI (CI=true), where the suite must run."""
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"{reason} (CI must run the deployment suite)", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def deployment() -> Iterator[harness.Deployment]:
    """The running deployment (started once; stopped, and its database dropped, at the end)."""
    url = os.environ.get("METRONOME_TEST_POSTGRES_URL")
    if not url:
        _unavailable("METRONOME_TEST_POSTGRES_URL is not set: the deployment's metadata database is PostgreSQL "
                     "(.ci/run starts a server and sets it; make test-deployment runs this suite)")  # fmt: skip
    if os.environ.get("PYTEST_XDIST_WORKER"):
        pytest.skip("the deployment suite runs without xdist (make test-deployment)")
    started = time.monotonic()
    keep = os.environ.get("APM_KEEP_DEPLOYMENT") == "1"
    seed = scenarios.seed(MAX_CUSTOMERS)
    # The files (logs) stay when a test failed or APM_KEEP_DEPLOYMENT=1.
    with harness.running_deployment(url, seed=seed, keep=lambda: keep or _STATE["failed"]) as dep:
        _STATE.update(deployment=dep, home=dep.home, startup_s=time.monotonic() - started)
        yield dep
        _STATE["deployment"] = None


@pytest.fixture
def fresh(deployment: harness.Deployment) -> harness.Deployment:
    """The deployment with no run in flight and the emulator back to the full seed, no faults."""
    deployment.wait_idle()
    deployment.emulator.reset(scenarios.seed(MAX_CUSTOMERS))
    return deployment


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, TestReport, TestReport]:
    """Attach the deployment's log tails to a failed test's report; remember each phase's report."""
    report = yield
    setattr(item, f"rep_{report.when}", report)
    dep = _STATE["deployment"]
    if report.failed and dep is not None and "deployment" in getattr(item, "fixturenames", ()):
        _STATE["failed"] = True
        report.sections.append(("deployment logs", dep.log_tails()))
    return report


def pytest_terminal_summary(terminalreporter: TerminalReporter) -> None:
    if _STATE["home"] is None:
        return
    kept = _STATE["home"].exists()
    terminalreporter.write_line(
        f"deployment: started in {_STATE['startup_s']:.0f}s; files "
        + (f"kept in {_STATE['home']}" if kept else "removed (APM_KEEP_DEPLOYMENT=1 keeps them)")
    )


@pytest.fixture(scope="session")
def synced_run(deployment: harness.Deployment) -> str:
    """A successful full-refresh sync run (with Avalara rows) and a successful Avalara DAG run.

    Their task pages, logs and XCom are what the browser and secrets tests look at.
    """
    deployment.wait_idle()
    rows = scenarios.rows_over_days(60, scenarios.day_range("2024-04-01", 2))
    deployment.write_warehouse(rows)
    deployment.emulator.reset(scenarios.seed(MAX_CUSTOMERS))
    run_id = deployment.trigger(harness.SYNC_DAG, {"full_refresh": True})
    avalara = deployment.trigger(harness.AVALARA_DAG, {"billing_provider": "stripe"})
    states = deployment.wait_for_runs(harness.SYNC_DAG, [run_id]) | deployment.wait_for_runs(
        harness.AVALARA_DAG, [avalara]
    )
    assert set(states.values()) == {"success"}, states
    return run_id


# -- the browser ---------------------------------------------------------------------------------

CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    """Debian's chromium driven by Playwright (no downloaded browser)."""
    executable = os.environ.get("APM_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    if not os.path.exists(executable):
        _unavailable(f"chromium not found ({executable}); .ci/run installs Debian's chromium")
    from playwright.sync_api import expect, sync_playwright

    # The UI renders after several API calls: on a busy 2-core machine that takes seconds.
    expect.set_options(timeout=20_000)
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture(scope="session")
def screenshot_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """docs/screenshots with APM_UPDATE_SCREENSHOTS=1, else a temporary directory."""
    if os.environ.get("APM_UPDATE_SCREENSHOTS") == "1":
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        return SCREENSHOTS
    return tmp_path_factory.mktemp("screenshots")


class Visits:
    """What a test's page showed: the HTML and text of every page, the body of every API response."""

    def __init__(self) -> None:
        self.pages: list[tuple[str, str]] = []
        self.responses: list[Response] = []
        self._found: list[str] = []
        self._checked = 0

    def add_response(self, response: Response) -> None:
        self.responses.append(response)

    def record(self, page: Page) -> None:
        text = page.content() + "\n" + page.inner_text("body")
        self.pages.append((page.url, text))
        self._check(page.url, text)

    def leaks(self) -> list[str]:
        """Where a secret showed: recorded pages, and responses other than static assets."""
        from playwright.sync_api import Error as PlaywrightError

        for response in self.responses[self._checked :]:
            self._checked += 1
            if "/static/" in response.url or "/assets/" in response.url:
                continue
            try:
                self._check(response.url, response.text())
            except PlaywrightError:  # no body: redirects, aborted requests
                continue
        return list(self._found)

    def _check(self, where: str, text: str) -> None:
        for name, secret in (("API token", harness.TOKEN), ("Avalara password", harness.AVALARA_PASSWORD)):
            if secret in text:
                self._found.append(f"{name} in {where}")


@pytest.fixture
def visits() -> Visits:
    return Visits()


@pytest.fixture
def page(
    browser: Browser,
    deployment: harness.Deployment,
    visits: Visits,
    request: pytest.FixtureRequest,
    screenshot_dir: Path,
) -> Iterator[Page]:
    """A fresh browser page on the deployment; at the end, no visited page nor response shows a secret.

    A failed test leaves ``FAILED-<test>.png`` in the screenshot directory.
    """
    context = browser.new_context(base_url=deployment.api_url, viewport={"width": 1400, "height": 1000})
    context.set_default_timeout(20_000)
    tab = context.new_page()
    tab.on("response", visits.add_response)
    try:
        yield tab
        report = getattr(request.node, "rep_call", None)
        if report is not None and report.failed:
            tab.screenshot(path=str(screenshot_dir / f"FAILED-{request.node.name}.png"), full_page=True)
        visits.record(tab)
        leaks = visits.leaks()
        assert not leaks, f"secrets shown by the UI: {leaks}"
    finally:
        context.close()
