"""What a Metronome client needs to know, and the checks of each value.

:class:`ClientSettings` is filled from arguments (:class:`~.client.MetronomeClient`)
or from an Airflow connection (the hook); either way the values go through the same
checks here: the base URL (:func:`normalize_base_url`), the token and the timeout
(:meth:`ClientSettings.check`). :func:`parse_bool` is the package's one reader of
booleans given as text (connection extras, templated operator arguments).
"""

from __future__ import annotations

import ipaddress
import logging
import math
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from airflow_provider_metronome.client.retry import RetryPolicy
from airflow_provider_metronome.exceptions import MetronomeConfigError

# Every module of the client logs here: the secret-scrubbing filter is installed on
# this logger by name (a filter on a logger sees only that logger's own records).
log = logging.getLogger("airflow_provider_metronome.client")

DEFAULT_BASE_URL = "https://api.metronome.com"
DEFAULT_TIMEOUT = 60.0
DEFAULT_MAX_CONNECTIONS = 64

TRUE_WORDS = frozenset({"true", "1", "yes", "y", "on"})
FALSE_WORDS = frozenset({"false", "0", "no", "n", "off"})
# What a template renders when nothing was given ("{{ params.get('x') }}" gives "None").
EMPTY_WORDS = frozenset({"", "none", "null"})

# Hosts already warned about (process-wide, as the log it protects).
_cleartext_warned: set[str] = set()


def parse_bool(value: Any, *, name: str, source: str = "", empty: bool | None = None) -> bool:
    """Read a boolean given as a bool or as text.

    ``true``/``1``/``yes``/``y``/``on`` and ``false``/``0``/``no``/``n``/``off``, in
    any case, with surrounding spaces.

    :param value: the raw value (a bool, a number, a text, ``None``).
    :param name: the field, for the error message.
    :param source: where the value came from, for the error message.
    :param empty: what ``None``, ``""`` and ``"none"`` mean; ``None`` (the default)
        makes them an error.
    :raises MetronomeConfigError: the value is not a boolean.
    """
    if isinstance(value, bool):
        return value
    text = "" if value is None else str(value).strip().lower()
    if text in TRUE_WORDS:
        return True
    if text in FALSE_WORDS:
        return False
    if text in EMPTY_WORDS and empty is not None:
        return empty
    where = f"{source}: " if source else ""
    raise MetronomeConfigError(f"{where}{name} must be true or false, got {value!r}")


def normalize_base_url(host: str | None) -> str:
    """Turn a connection ``host`` into a base URL.

    A full URL is kept as given; a bare host gets ``https://``; nothing gives the
    production API. A URL with a user name or password (``user:pass@host``) is
    refused: httpx would send those as Basic auth *instead of* the bearer token, and
    every message naming the base URL would print them. A query string or fragment
    is refused too (the SDK appends paths to the base URL; they cannot work).

    :param host: the connection's host field.
    :raises MetronomeConfigError: the value cannot be a base URL.
    """
    value = (host or "").strip().rstrip("/")
    if not value:
        return DEFAULT_BASE_URL
    if "://" not in value:
        value = f"https://{value}"
    scheme = value.split("://", 1)[0].lower()
    if scheme not in ("http", "https"):
        raise MetronomeConfigError(f"Base URL must use http or https, got {scheme!r}")
    parts = urlsplit(value)
    # Never echo the URL itself in these messages: it may hold a password.
    if "@" in parts.netloc:
        raise MetronomeConfigError(
            "Base URL must not hold a user name or password (user:password@host); "
            "put the API token in the connection's password field"
        )
    if parts.query or parts.fragment or value.endswith("?"):
        raise MetronomeConfigError("Base URL must not have a query string or fragment")
    try:
        port = parts.port
    except ValueError:  # not a number, or out of range
        port = -1
    if port is not None and not 0 < port < 65536:
        raise MetronomeConfigError("Base URL has an invalid port")
    if not parts.hostname:
        raise MetronomeConfigError("Base URL has no host")
    return value


def valid_timeout(timeout: object) -> bool:
    """Whether ``timeout`` is usable: a finite number of seconds above 0.

    0 would make every read fail at once ("Operation now in progress"); no timeout at
    all would let a stalled server hold a task forever.
    """
    return isinstance(timeout, (int, float)) and math.isfinite(timeout) and timeout > 0


def _valid_token(token: str) -> bool:
    # The token travels in the Authorization header, "Bearer <token>"
    # (https://docs.metronome.com/api-reference/authentication.md): printable ASCII
    # only, and a Metronome token holds no whitespace.
    return token.isascii() and token.isprintable() and not any(c.isspace() for c in token)


def _is_loopback(host: str) -> bool:
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def warn_if_cleartext(base_url: str) -> None:
    """Warn once per host when the token would cross the network unencrypted.

    :param base_url: the normalized base URL.
    """
    parts = urlsplit(base_url)
    host = parts.hostname or ""
    if parts.scheme.lower() != "http" or _is_loopback(host) or host in _cleartext_warned:
        return
    _cleartext_warned.add(host)
    log.warning(
        "The Metronome base URL uses cleartext http:// to %s: the API token and every request "
        "travel unencrypted; use https:// unless %s is a proxy on a trusted network",
        host,
        host,
    )


@dataclass
class ClientSettings:
    """Everything needed to build a configured SDK client.

    :param base_url: Metronome base URL (see :func:`normalize_base_url`).
    :param token: the API token (kept out of ``repr``).
    :param timeout: seconds each request may take, its whole answer included.
    :param retry: the retry policy.
    :param max_connections: size of the HTTP connection pool.
    :param source: what to name in error messages (e.g. ``Airflow connection 'metronome_default'``).
    :param secrets: more texts to keep out of messages and logs; the token as given
        is added here when it had surrounding whitespace (``token`` is stripped:
        Metronome tokens hold none, but a token read from a file often ends with a
        newline).
    """

    base_url: str
    token: str = field(repr=False)
    timeout: float = DEFAULT_TIMEOUT
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    max_connections: int = DEFAULT_MAX_CONNECTIONS
    source: str = "the Metronome client"
    secrets: tuple[str, ...] = field(default=(), repr=False)

    def __post_init__(self) -> None:
        given = self.token
        self.token = given.strip()
        if given != self.token and given not in self.secrets:
            self.secrets = (*self.secrets, given)

    @property
    def secret_forms(self) -> tuple[str, ...]:
        """The texts to keep out of every message: the token, ``Bearer <token>`` and :attr:`secrets`."""
        # "Bearer <token>" only with a token: "Bearer " alone is no secret.
        bearer = (f"Bearer {self.token}",) if self.token else ()
        return (self.token, *bearer, *self.secrets)

    def check(self) -> None:
        """Refuse settings no request can be made with (before the first request).

        :raises MetronomeConfigError: no token, a token a header cannot carry, or a
            timeout that is not above 0; the message names :attr:`source`, never the token.
        """
        if not self.token:
            raise MetronomeConfigError(f"No API token: set the password of {self.source}")
        if not _valid_token(self.token):
            raise MetronomeConfigError(
                f"The API token in {self.source} has characters an API token cannot hold "
                "(non-ASCII, whitespace or control characters); copy it again from the Metronome app"
            )
        if not valid_timeout(self.timeout):
            raise MetronomeConfigError(f"The timeout of {self.source} must be a number of seconds above 0")
