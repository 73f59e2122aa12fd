"""Pass 1 of the sync: read the rows, validate them, resolve who and how, stage the good ones.

Rows stream in chunks; each is validated (:func:`~..models.row.parse_row`), its ingest
alias resolved (cached, looked up in parallel) and its delivery method resolved against
``listConfiguredBillingProviders``. Good rows go to the on-disk staging file
(:class:`~.staging.Staging`) so memory stays flat; bad rows are rejected with their
row number, field and reason. A partitioned sync keeps only the rows of its share of
the customers (:class:`Share`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from itertools import islice
from typing import TYPE_CHECKING, Any

from airflow_provider_metronome.models.row import BillingConfigRow, RowProblem, parse_row
from airflow_provider_metronome.models.rules import BILLING_PROVIDERS, configuration_problems
from airflow_provider_metronome.sync.ledger import RowFacts, Settled, raw_facts, row_identity
from airflow_provider_metronome.sync.progress import Progress
from airflow_provider_metronome.sync.resolve import AliasBook, DeliveryMethods
from airflow_provider_metronome.sync.sources import bucket, customer_key, placed_by_sql
from airflow_provider_metronome.sync.staging import StagedRow, Staging, new_customer_key

if TYPE_CHECKING:
    import logging
    import sqlite3
    from concurrent.futures import ThreadPoolExecutor

    from airflow_provider_metronome.client.api import MetronomeApi
    from airflow_provider_metronome.sync.ledger import LedgerReader
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


@dataclass(slots=True)
class _Parsed:
    """A valid row of a chunk, on its way to staging."""

    number: int
    key: str
    row: BillingConfigRow
    # whether this share owns it (None: only its resolved customer can tell)
    owned: bool | None
    row_key: str
    row_hash: str
    # the ledger's latest settled outcome for this exact row, if any
    settled: Settled | None = None

    def facts(self, customer_id: str | None, delivery_method_id: str | None) -> RowFacts:
        return RowFacts(
            self.number, self.row_key, self.row_hash, customer_id, self.row.ingest_alias,
            self.row.billing_provider, delivery_method_id,
        )  # fmt: skip


class _Waiting:
    """Valid rows waiting for their aliases to be resolved, in the staging database."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db
        self.count = 0
        db.execute("CREATE TABLE IF NOT EXISTS waiting (seq INTEGER PRIMARY KEY, body TEXT NOT NULL)")

    def add(self, p: _Parsed) -> None:
        settled = (
            None
            if p.settled is None
            else [p.settled.row_hash, p.settled.configuration_id, p.settled.customer_id]
        )
        body = [p.number, p.key, p.row.model_dump(), p.owned, p.row_key, p.row_hash, settled]
        self.db.execute("INSERT INTO waiting (body) VALUES (?)", (json.dumps(body, separators=(",", ":")),))
        self.count += 1

    def chunks(self, size: int) -> Iterator[list[_Parsed]]:
        cursor = self.db.execute("SELECT body FROM waiting ORDER BY seq")
        while batch := cursor.fetchmany(size):
            parsed = []
            for (text,) in batch:
                number, key, row, owned, row_key, row_hash, settled = json.loads(text)
                row["ingest_aliases"] = tuple(row["ingest_aliases"])
                parsed.append(_Parsed(
                    number, key, BillingConfigRow.model_construct(**row), owned, row_key, row_hash,
                    None if settled is None else Settled(*settled),
                ))  # fmt: skip
            yield parsed


class RowReader:
    """Reads, validates, resolves and stages rows (pass 1).

    :param api: the Metronome API (alias lookups).
    :param methods: the account's delivery methods.
    :param share: which rows this sync owns.
    :param outcomes: where rejections are booked.
    :param log: where progress goes.
    :param chunk_size: rows handled per step.
    :param progress_interval: seconds between progress lines.
    :param ledger: the results ledger: rows it vouches for are marked settled (and,
        unless ``verify``, keyed-by-alias rows need no lookup).
    :param verify: look every alias up even when the ledger knows it.
    :param create_customers: a row whose ingest alias matches no active customer is
        staged to create one (:mod:`.reconcile` creates it) instead of rejected.
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
        ledger: LedgerReader | None = None,
        verify: bool = False,
        create_customers: bool = False,
    ) -> None:
        self.api = api
        self.methods = methods
        self.share = share
        self.outcomes = outcomes
        self.report = outcomes.report
        self.log = log
        self.chunk_size = chunk_size
        self.progress_interval = progress_interval
        self.ledger = ledger
        self.verify = verify
        self.create_customers = create_customers

    def stage(self, rows: Iterable[Mapping[str, Any]], staging: Staging, pool: ThreadPoolExecutor) -> None:
        """Read every row; stage the good ones of this share, reject the bad ones.

        Rows that need an alias resolved wait in the staging database until the whole
        source is read: the run's aliases are then resolved at once, the cheaper way
        (:class:`~.resolve.AliasBook`), and those rows are staged.
        """
        book = AliasBook(
            staging.db,
            lambda: self.api.iter_customers(),
            lambda alias: pool.submit(self.api.find_customer_by_ingest_alias, alias),
        )
        waiting = _Waiting(staging.db)
        progress = Progress(self.log, "Rows read", interval=self.progress_interval)
        number = 0
        for chunk in chunks(rows, self.chunk_size):
            parsed = self._parse(chunk, number)
            number += len(chunk)
            if self.ledger is not None and parsed:
                self._settle(parsed)
            ready = []
            for p in parsed:
                wanted = [] if p.settled is not None and not self.verify else _aliases_to_resolve(p.row)
                if wanted:
                    book.want(wanted)
                    waiting.add(p)
                else:
                    ready.append(p)
            self._stage(ready, {}, staging)
            progress.update(number)
        if waiting.count:
            stats = book.resolve()
            self.log.info("Aliases resolved: %s", stats.describe())
            for parsed in waiting.chunks(self.chunk_size):
                aliases = book.resolved(a for p in parsed for a in _aliases_to_resolve(p.row))
                self._stage(parsed, aliases, staging)
        self.log.info(
            "Read %d rows: %d valid, %d rejected, %s",
            self.report.rows_read, self.report.valid, self.report.rejected, book.stats.describe(),
        )  # fmt: skip

    def _stage(self, parsed: list[_Parsed], aliases: dict[str, str | None], staging: Staging) -> None:
        staged = [s for s in (self._resolve(p, aliases) for p in parsed) if s is not None]
        staging.add(staged)
        self.report.record_staged(len(staged))

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
                    facts = raw_facts(number, raw)
                    self.outcomes.reject(facts, key, problem.field, problem.reason, _known_provider(provider))
                continue
            if owned is None and result.customer_id is not None:
                # An id in an unusual shape: placed by its parsed (canonical) form.
                owned = self.share.owns_resolved("", result.customer_id)
                if not owned:
                    continue
            if owned:
                self.report.record_read()
            identity = row_identity(
                customer_id=result.customer_id, ingest_alias=result.ingest_alias,
                billing_provider=result.billing_provider, delivery_method=result.delivery_method,
                delivery_method_id=result.delivery_method_id, configuration=result.configuration,
                tax_provider=result.tax_provider, customer=_customer_facts(result),
            )  # fmt: skip
            parsed.append(_Parsed(number, row_key(raw), result, owned, *identity))
        return parsed

    def _settle(self, parsed: list[_Parsed]) -> None:
        """Mark the rows whose latest ledger outcome was created/unchanged with this very content."""
        assert self.ledger is not None
        known = self.ledger.settled(list(dict.fromkeys(p.row_key for p in parsed)))
        for p in parsed:
            found = known.get(p.row_key)
            if found is not None and found.row_hash == p.row_hash:
                p.settled = found

    def _resolve(self, parsed: _Parsed, aliases: dict[str, str | None]) -> StagedRow | None:
        """The staged row, once its customer and delivery method are known; ``None`` if not this sync's."""
        number, key, r, owned = parsed.number, parsed.key, parsed.row, parsed.owned
        customer_id = r.customer_id
        from_ledger = parsed.settled is not None and not self.verify
        if customer_id is None:
            if from_ledger:
                assert parsed.settled is not None
                customer_id = parsed.settled.customer_id  # the ledger resolved it: no lookup
            else:
                customer_id = aliases.get(r.ingest_alias or "")
            if owned is None:
                if not self.share.owns_resolved(r.ingest_alias or "", customer_id):
                    return None
                self.report.record_read()
        problem = None if from_ledger else _alias_problem(r, customer_id, aliases)
        if problem is not None:
            self.outcomes.reject(
                parsed.facts(customer_id, None), key, "ingest_aliases", problem, r.billing_provider
            )
            return None
        if customer_id is None:
            if not self.create_customers:
                reason = (
                    f"no active Metronome customer has ingest alias {r.ingest_alias!r} "
                    "(create_missing_customers creates it)"
                )
                self.outcomes.reject(
                    parsed.facts(None, None), key, "ingest_alias", reason, r.billing_provider
                )
                return None
            if r.customer_name is None:
                reason = (
                    f"no active Metronome customer has ingest alias {r.ingest_alias!r}, and creating "
                    "one needs its customer_name"
                )
                self.outcomes.reject(
                    parsed.facts(None, None), key, "customer_name", reason, r.billing_provider
                )
                return None
            customer_id = new_customer_key(r.ingest_alias or "")
        dm, field, reason = self.methods.resolve(r.billing_provider, r.delivery_method, r.delivery_method_id)
        if dm is None:
            facts = parsed.facts(customer_id, r.delivery_method_id)
            self.outcomes.reject(facts, key, field, reason, r.billing_provider)
            return None
        if r.delivery_method is None:
            # Given by id: the keys its provider requires depend on the delivery method.
            problems = configuration_problems(
                r.billing_provider, r.configuration, dm["delivery_method"], r.tax_provider
            )
            if problems:
                merged = _one_problem([RowProblem(f, why) for f, why in problems])[0]
                facts = parsed.facts(customer_id, dm["delivery_method_id"])
                self.outcomes.reject(facts, key, merged.field, merged.reason, r.billing_provider)
                return None
        settled = parsed.settled
        return StagedRow(
            row=number,
            key=key,
            customer_id=customer_id,
            billing_provider=r.billing_provider,
            delivery_method_id=dm["delivery_method_id"],
            delivery_method=dm["delivery_method"],
            configuration=r.configuration,
            tax_provider=r.tax_provider,
            # Both given (and matching): the id says it exactly.
            given_delivery="delivery_method_id" if r.delivery_method_id else "delivery_method",
            ingest_alias=r.ingest_alias,
            row_key=parsed.row_key,
            row_hash=parsed.row_hash,
            settled_id=None
            if settled is None or settled.customer_id != customer_id
            else settled.configuration_id,
            customer_name=r.customer_name,
            aliases=[a for a in r.ingest_aliases if a != r.ingest_alias],
            custom_fields=r.custom_fields,
            missing_aliases=[]
            if from_ledger
            else [a for a in r.ingest_aliases if a != r.ingest_alias and aliases.get(a) is None],
        )


def _aliases_to_resolve(row: BillingConfigRow) -> list[str]:
    """The aliases a row's reading must look up: its key alias and the others it lists."""
    wanted = [] if row.customer_id is not None or row.ingest_alias is None else [row.ingest_alias]
    wanted.extend(a for a in row.ingest_aliases if a != row.ingest_alias)
    return wanted


def _customer_facts(row: BillingConfigRow) -> list[Any] | None:
    """What a row says of its customer beyond who it is.

    ``None`` when it says nothing, so the hash of such a row stays what it was.
    """
    if row.customer_name is None and not row.ingest_aliases and row.custom_fields is None:
        return None
    return [row.customer_name, list(row.ingest_aliases), row.custom_fields]


def _alias_problem(
    row: BillingConfigRow, customer_id: str | None, aliases: Mapping[str, str | None]
) -> str | None:
    """Why the aliases a row lists cannot be its customer's (another customer holds one), or ``None``.

    :param customer_id: the row's customer (``None``: none holds its key alias yet).
    :param aliases: every looked-up alias → the active customer holding it.
    """
    for alias in row.ingest_aliases:
        if alias == row.ingest_alias:
            continue
        owner = aliases.get(alias)
        if owner is None or owner == customer_id:
            continue
        if customer_id is None:
            return (
                f"ingest alias {alias!r} belongs to customer {owner}, while ingest alias "
                f"{row.ingest_alias!r} belongs to no customer: an alias names one customer "
                f"(name customer {owner} by its id or key alias to add the alias to it)"
            )
        return (
            f"ingest alias {alias!r} belongs to customer {owner}, not to this row's customer "
            f"{customer_id}: an alias names one customer (remove it from one of them)"
        )
    return None


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
