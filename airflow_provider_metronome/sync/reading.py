"""Pass 1 of the sync: read the rows, validate them, resolve who and how, stage the good ones.

Rows stream in chunks; each is validated (:func:`~..models.row.parse_row`), its ingest
alias resolved (cached, looked up in parallel) and its delivery method resolved against
``listConfiguredBillingProviders``. Good rows go to the on-disk staging file
(:class:`~.staging.Staging`) so memory stays flat; bad rows are rejected with their
row number, field and reason. A partitioned sync keeps only the rows of its share of
the customers (:class:`Share`).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from itertools import islice
from typing import TYPE_CHECKING, Any

from airflow_provider_metronome.models.row import BillingConfigRow, RowProblem, parse_row
from airflow_provider_metronome.models.rules import BILLING_PROVIDERS
from airflow_provider_metronome.sync.progress import Progress
from airflow_provider_metronome.sync.resolve import AliasResolver, DeliveryMethods
from airflow_provider_metronome.sync.sources import bucket, customer_key, placed_by_sql
from airflow_provider_metronome.sync.staging import StagedRow, Staging

if TYPE_CHECKING:
    import logging
    from concurrent.futures import ThreadPoolExecutor

    from airflow_provider_metronome.client.api import MetronomeApi
    from airflow_provider_metronome.sync.outcomes import Outcomes

_KEY_VALUE_LIMIT = 60


def row_key(raw: Any) -> str:
    """A short, printable identity of a raw row: who and which provider."""
    if not isinstance(raw, Mapping):
        return "unreadable row"
    parts = []
    for name in ("customer_id", "ingest_alias", "billing_provider"):
        value = raw.get(name)
        if value is None or (isinstance(value, str) and not value.strip()):
            continue
        text = str(value)
        if len(text) > _KEY_VALUE_LIMIT:
            text = f"{text[:_KEY_VALUE_LIMIT]}…"
        parts.append(f"{name}={text}")
    return ", ".join(parts) or "no customer_id, ingest_alias or billing_provider"


def chunks(rows: Iterable[Any], size: int) -> Iterator[list[Any]]:
    """Lists of up to ``size`` items, in order."""
    iterator = iter(rows)
    while chunk := list(islice(iterator, size)):
        yield chunk


@dataclass(frozen=True)
class Share:
    """Which rows a partitioned sync owns: those of the customers that hash to its share.

    Rows that give a ``customer_id`` are decided at once (by the source's SQL when
    ``prefiltered``); rows keyed by ingest alias once the alias is resolved, so every
    row of one customer lands in one share. A row that resolves to no customer is
    owned by the share its alias text hashes to, so exactly one share reports it.

    :param partition: this sync's share (0-based), ``None`` when not partitioned.
    :param partitions: how many shares.
    :param prefiltered: the source already kept only this share's rows that give a
        ``customer_id`` (:func:`~.sources.partition_sql`).
    """

    partition: int | None
    partitions: int
    prefiltered: bool

    @property
    def everything(self) -> bool:
        return self.partition is None or self.partitions <= 1

    def owns_raw(self, raw: Any) -> bool | None:
        """Whether a source row is this share's, or ``None`` when only its resolved customer can tell."""
        if self.everything:
            return True
        key = customer_key(raw) if isinstance(raw, Mapping) else ""
        if not placed_by_sql(key):
            return None
        return True if self.prefiltered else bucket(key, self.partitions) == self.partition

    def owns_resolved(self, alias: str, customer_id: str | None) -> bool:
        """Whether a row whose customer is ``customer_id`` (resolved, or ``None``) is this share's.

        :param alias: what the row names its customer by when it resolved to none: its
            alias (or raw text), so that exactly one share reports it.
        """
        if self.everything:
            return True
        return bucket(customer_id or alias, self.partitions) == self.partition


# (row number, key, parsed row, whether this share owns it: None = once resolved)
_Parsed = tuple[int, str, BillingConfigRow, "bool | None"]


class RowReader:
    """Reads, validates, resolves and stages rows (pass 1).

    :param api: the Metronome API (alias lookups).
    :param methods: the account's delivery methods.
    :param share: which rows this sync owns.
    :param outcomes: where rejections are booked.
    :param log: where progress goes.
    :param chunk_size: rows handled per step.
    :param progress_interval: seconds between progress lines.
    """

    def __init__(
        self,
        api: MetronomeApi,
        methods: DeliveryMethods,
        share: Share,
        outcomes: Outcomes,
        log: logging.Logger,
        *,
        chunk_size: int,
        progress_interval: float,
    ) -> None:
        self.api = api
        self.methods = methods
        self.share = share
        self.outcomes = outcomes
        self.report = outcomes.report
        self.log = log
        self.chunk_size = chunk_size
        self.progress_interval = progress_interval

    def stage(self, rows: Iterable[Mapping[str, Any]], staging: Staging, pool: ThreadPoolExecutor) -> None:
        """Read every row; stage the good ones of this share, reject the bad ones."""
        aliases = AliasResolver(lambda alias: pool.submit(self.api.find_customer_by_ingest_alias, alias))
        progress = Progress(self.log, "Rows read", interval=self.progress_interval)
        number = 0
        for chunk in chunks(rows, self.chunk_size):
            parsed = self._parse(chunk, number)
            number += len(chunk)
            wanted = [r.ingest_alias for _, _, r, _ in parsed if r.ingest_alias is not None]
            resolved = aliases.resolve_many(wanted) if wanted else {}
            staged = [s for s in (self._resolve(p, resolved) for p in parsed) if s is not None]
            staging.add(staged)
            self.report.record_staged(len(staged))
            progress.update(number)
        self.log.info(
            "Read %d rows: %d valid, %d rejected, %d alias lookups",
            self.report.rows_read, self.report.valid, self.report.rejected, aliases.lookups,
        )  # fmt: skip

    def _parse(self, chunk: list[Any], before: int) -> list[_Parsed]:
        """Validate a chunk: reject the bad rows this share owns, return the good ones it may own."""
        parsed: list[_Parsed] = []
        for number, raw in enumerate(chunk, start=before + 1):
            owned = self.share.owns_raw(raw)
            if owned is False:
                continue
            result = parse_row(raw)
            if isinstance(result, list):
                if owned is None and not self.share.owns_resolved(_raw_key_text(raw), None):
                    continue
                self.report.record_read()
                key = row_key(raw)
                provider = raw.get("billing_provider") if isinstance(raw, Mapping) else None
                for problem in _one_problem(result):
                    self.outcomes.reject(
                        number, key, problem.field, problem.reason, _known_provider(provider)
                    )
                continue
            if owned is None and result.customer_id is not None:
                # An id in an unusual shape: placed by its parsed (canonical) form.
                owned = self.share.owns_resolved("", result.customer_id)
                if not owned:
                    continue
            if owned:
                self.report.record_read()
            parsed.append((number, row_key(raw), result, owned))
        return parsed

    def _resolve(self, parsed: _Parsed, aliases: dict[str, str | None]) -> StagedRow | None:
        """The staged row, once its customer and delivery method are known; ``None`` if not this sync's."""
        number, key, r, owned = parsed
        customer_id = r.customer_id
        if customer_id is None:
            customer_id = aliases.get(r.ingest_alias or "")
            if owned is None:
                if not self.share.owns_resolved(r.ingest_alias or "", customer_id):
                    return None
                self.report.record_read()
            if customer_id is None:
                reason = f"no active Metronome customer has ingest alias {r.ingest_alias!r}"
                self.outcomes.reject(number, key, "ingest_alias", reason, r.billing_provider)
                return None
        dm, field, reason = self.methods.resolve(r.billing_provider, r.delivery_method, r.delivery_method_id)
        if dm is None:
            self.outcomes.reject(number, key, field, reason, r.billing_provider)
            return None
        return StagedRow(
            row=number,
            key=key,
            customer_id=customer_id,
            billing_provider=r.billing_provider,
            delivery_method_id=dm["delivery_method_id"],
            delivery_method=dm["delivery_method"],
            configuration=r.configuration,
            tax_provider=r.tax_provider,
            given_delivery="delivery_method" if r.delivery_method else "delivery_method_id",
        )


def _raw_key_text(raw: Any) -> str:
    """What an unparseable row names its customer by, the same in every partition."""
    if not isinstance(raw, Mapping):
        return ""
    return customer_key(raw) or ("" if raw.get("ingest_alias") is None else str(raw.get("ingest_alias")))


def _one_problem(problems: list[RowProblem]) -> list[RowProblem]:
    """One rejection per row: all of its problems in one reason, the first field named."""
    if len(problems) <= 1:
        return problems
    fields = ", ".join(dict.fromkeys(p.field for p in problems))
    return [RowProblem(fields, "; ".join(f"{p.field}: {p.reason}" for p in problems))]


def _known_provider(provider: Any) -> str | None:
    """The provider, for per-provider counts, only when it is one Metronome knows."""
    return provider if isinstance(provider, str) and provider in BILLING_PROVIDERS else None
