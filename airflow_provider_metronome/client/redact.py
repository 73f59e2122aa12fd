"""Keep secrets out of every text the client writes: messages, exceptions and logs.

A secret reaches text in more shapes than the one it was given in: the API token as
read from a secret file may end with a newline while the request carries it
stripped; an error body that echoes a request shows the Avalara password
JSON-escaped; the SDK's DEBUG ``Request options`` line shows it as Python's
``repr``; a message cut to length may end in half a token. :class:`Secrets` knows
every such shape of the secrets given to it and replaces them with ``***``:

* every *form* of a secret (as given, stripped, ``Bearer <token>``, JSON-escaped,
  ``repr``-escaped, URL-encoded), wherever it appears;
* any run of :data:`FRAGMENT` or more characters of a form, wherever it appears (a
  server that echoes part of a token, a body the server cut itself);
* at the end of a text the client cuts (:meth:`Secrets.truncate`), a trailing
  start of a form, however short (down to :data:`MIN_LENGTH` characters).

Values shorter than :data:`MIN_LENGTH` are not scrubbed: they would mangle ordinary
text and are no secret worth the name.

Logs need a process-wide view: the ``metronome`` (SDK), ``httpx`` and ``httpcore``
loggers are shared by every client in the process. :func:`protect` registers a
secret with :data:`LOG_SECRETS`, installs :class:`ScrubFilter` on those loggers
(and this package's own), and, inside Airflow, registers the secret with Airflow's
secrets masker, which redacts task logs
(https://airflow.apache.org/docs/apache-airflow/stable/security/secrets/mask-sensitive-values.html).
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import urllib.parse
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterable

MASK = "***"
# Shorter values are never scrubbed (nor starts of a form at a cut end shorter than this).
MIN_LENGTH = 4
# A run of this many characters of a secret is scrubbed wherever it appears.
FRAGMENT = 12
# Any run of FRAGMENT characters of a form holds a whole block of this size that starts
# at a multiple of it, so looking for the blocks (a C-speed substring search each) tells
# cheaply whether a text can hold a fragment at all.
_BLOCK = FRAGMENT // 2

# Loggers that may print what a request carried: the SDK's (its DEBUG "Request
# options" line prints the JSON body), httpx's and httpcore's (headers, URLs), and ours.
LOGGER_PREFIXES = ("metronome", "httpx", "httpcore", "airflow_provider_metronome")
_KNOWN_LOGGERS = (
    "metronome",
    "metronome._base_client",
    "metronome._response",
    "httpx",
    "httpcore",
    "httpcore.connection",
    "httpcore.connection_pool",
    "httpcore.http11",
    "httpcore.http2",
    "httpcore.proxy",
    "httpcore.socks",
    "airflow_provider_metronome",
    "airflow_provider_metronome.client",
)


def forms(secret: str) -> set[str]:
    """Every shape in which ``secret`` may show up in a text.

    :param secret: the secret as given.
    """
    shapes = {secret, secret.strip()}
    for shape in list(shapes):
        shapes.add(json.dumps(shape)[1:-1])  # inside a JSON string (an echoed request body)
        shapes.add(json.dumps(shape, ensure_ascii=False)[1:-1])
        shapes.add(repr(shape)[1:-1])  # inside a Python repr (the SDK's DEBUG lines)
        shapes.add(urllib.parse.quote(shape, safe=""))  # inside a URL or a form body
        shapes.add(urllib.parse.quote_plus(shape, safe=""))
    return {s for s in shapes if len(s) >= MIN_LENGTH}


class Secrets:
    """A set of secrets, and the scrubbing of them from text. Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._known: set[str] = set()
        # Replaced whole on every change, so readers need no lock.
        self._forms: tuple[str, ...] = ()
        self._grams: frozenset[str] = frozenset()
        self._blocks: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self._forms)

    def __contains__(self, secret: object) -> bool:
        return secret in self._known

    def add(self, *secrets: str | None) -> None:
        """Scrub these secrets (in every form) from now on; empty or short values are ignored.

        :param secrets: the secrets as given.
        """
        new = [s for s in secrets if s and len(s.strip()) >= MIN_LENGTH and s not in self._known]
        if not new:
            return
        with self._lock:
            every = set(self._forms)
            for secret in new:
                self._known.add(secret)
                every |= forms(secret)
            # Longest first: "Bearer <token>" goes before "<token>", "<token>\n" before "<token>".
            self._forms = tuple(sorted(every, key=lambda s: (-len(s), s)))
            self._grams = frozenset(
                s[i : i + FRAGMENT] for s in every if len(s) > FRAGMENT for i in range(len(s) - FRAGMENT + 1)
            )
            self._blocks = tuple(
                {
                    s[i : i + _BLOCK]
                    for s in every
                    if len(s) > FRAGMENT
                    for i in range(0, len(s) - _BLOCK + 1, _BLOCK)
                }
            )

    def scrub(self, text: str) -> str:
        """``text`` with every form and every long fragment of a secret replaced by ``***``.

        :param text: any text.
        """
        shapes = self._forms
        if not text or not shapes:
            return text
        for shape in shapes:
            if shape in text:
                text = text.replace(shape, MASK)
        blocks = self._blocks
        if blocks and any(block in text for block in blocks):
            text = self._scrub_fragments(text, self._grams)
        return text

    def truncate(self, text: str, limit: int) -> str:
        """Scrub ``text``, then cut it to ``limit`` characters (and ``...``).

        Scrubbing first means no secret survives in part because the cut split it; a
        start of a secret left at the cut end (the text held only part of it) is
        replaced too.

        :param text: any text.
        :param limit: the length to cut to.
        """
        text = self.scrub(text)
        if len(text) <= limit:
            return text
        cut = text[:limit]
        for shape in self._forms:
            for size in range(min(len(shape) - 1, len(cut)), MIN_LENGTH - 1, -1):
                if cut.endswith(shape[:size]):
                    cut = cut[:-size] + MASK
                    break
        return f"{cut}..."

    @staticmethod
    def _scrub_fragments(text: str, grams: frozenset[str]) -> str:
        spans: list[list[int]] = []
        for i in range(len(text) - FRAGMENT + 1):
            if text[i : i + FRAGMENT] in grams:
                if spans and i <= spans[-1][1]:
                    spans[-1][1] = i + FRAGMENT
                else:
                    spans.append([i, i + FRAGMENT])
        if not spans:
            return text
        parts: list[str] = []
        start = 0
        for begin, end in spans:
            parts.append(text[start:begin])
            parts.append(MASK)
            start = end
        parts.append(text[start:])
        return "".join(parts)


#: Every secret any client of this process was given: what :class:`ScrubFilter` redacts.
LOG_SECRETS = Secrets()


class ScrubFilter(logging.Filter):
    """Redact secrets from log records (message, arguments, traceback, stack).

    Installed on a logger, a filter sees only the records created by that very logger
    (not its children's), hence :func:`install_log_filter` installs it on each.

    :param secrets: what to redact.
    """

    def __init__(self, secrets: Secrets) -> None:
        super().__init__()
        self.secrets = secrets

    def filter(self, record: logging.LogRecord) -> bool:
        secrets = self.secrets
        if not secrets:
            return True
        try:
            message = record.getMessage()
        except Exception:  # a broken format string: let logging report it as usual
            return True
        clean = secrets.scrub(message)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and not record.exc_text:
            # Formatters use exc_text when it is set instead of formatting exc_info again.
            record.exc_text = secrets.scrub(logging.Formatter().formatException(record.exc_info))
        elif record.exc_text:
            record.exc_text = secrets.scrub(record.exc_text)
        if record.stack_info:
            record.stack_info = secrets.scrub(record.stack_info)
        return True


_FILTER = ScrubFilter(LOG_SECRETS)
_install_lock = threading.Lock()
_loggers_seen = -1  # how many loggers existed at the last install (rescan only when it changed)


def install_log_filter(names: Iterable[str] = ()) -> None:
    """Install the redacting filter on the SDK's, httpx's, httpcore's and this package's loggers.

    Idempotent. Loggers created later under those names get it on the next call (the
    client calls this whenever it builds an SDK client or registers a secret).

    :param names: more loggers to protect.
    """
    global _loggers_seen
    names = tuple(names)
    count = len(logging.Logger.manager.loggerDict)
    if count == _loggers_seen and not names:
        return
    with _install_lock:
        existing = [
            name
            for name in list(logging.Logger.manager.loggerDict)
            if any(name == p or name.startswith(f"{p}.") for p in LOGGER_PREFIXES)
        ]
        for name in {*_KNOWN_LOGGERS, *existing, *names}:
            logger = logging.getLogger(name)
            if _FILTER not in logger.filters:
                logger.addFilter(_FILTER)
        _loggers_seen = len(logging.Logger.manager.loggerDict)


def mask_in_airflow(*secrets: str) -> None:
    """Register secrets with Airflow's secrets masker, when Airflow is loaded.

    The client works without Airflow, so it never imports Airflow for this; the hooks
    run inside Airflow and always reach the masker.

    :param secrets: the secrets, in the forms that might be printed.
    """
    if "airflow" not in sys.modules:
        return
    try:
        from airflow.providers.common.compat.sdk import mask_secret
    except ImportError:  # pragma: no cover - every supported Airflow has it
        return
    for secret in dict.fromkeys(s for s in secrets if s and len(s.strip()) >= MIN_LENGTH):
        try:
            mask_secret(secret)
        except Exception:  # pragma: no cover - masking must never fail a request
            logging.getLogger(__name__).debug("Could not register a secret with Airflow's masker")


def protect(*secrets: str | None, scrubbers: Iterable[Secrets] = ()) -> None:
    """Keep secrets out of logs (this process's and Airflow's) and out of ``scrubbers``' texts.

    :param secrets: the secrets as given.
    :param scrubbers: more scrubbers to teach them to (a client's own).
    """
    given = [s for s in secrets if s]
    if not given:
        return
    for scrubber in (LOG_SECRETS, *scrubbers):
        scrubber.add(*given)
    install_log_filter()
    mask_in_airflow(*{form for s in given for form in (s, s.strip())})
