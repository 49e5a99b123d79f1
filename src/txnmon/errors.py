"""One error base for txnmon.

Every failure txnmon expects is a `TxnmonError`: the CLI turns it into a one-line message and
its `exit_code` in one place (src/txnmon/cli/base.py), the DAG task log shows the same message, and the
processor retries exactly the `RetryableError`s (outages), never anything else.

Imports nothing from txnmon or any client library, so every layer may import it.
"""

from __future__ import annotations


class TxnmonError(Exception):
    """An expected failure with a message for people. `exit_code` is what the CLI exits with."""

    exit_code = 1
    hint = ""

    def describe(self) -> str:
        message = str(self) or type(self).__name__
        return f"{message} ({self.hint})" if self.hint else message


class RetryableError(TxnmonError):
    """An outage: the same call may succeed later. `retry_after` is the earliest sensible retry, in seconds."""

    def __init__(self, message: str, *, retry_after: float = 0.5) -> None:
        super().__init__(message)
        self.retry_after = retry_after


# --- input and configuration: the caller must change something -----------------------------


class ConfigError(TxnmonError, ValueError):
    """A configuration value is missing or invalid; the message names the variable."""

    exit_code = 2


class UsageError(TxnmonError, ValueError):
    """A command-line argument is invalid."""

    exit_code = 2


class InvalidInputFile(TxnmonError, ValueError):
    """An input file (CSV, rules YAML) failed validation; the message lists the problems."""


class RulesError(InvalidInputFile):
    """The rules file is missing or invalid; the message names the field."""


class ModelNotFound(TxnmonError):
    """No risk model is registered under that version (or none is promoted)."""

    exit_code = 2


class ModelRefused(TxnmonError):
    """A risk model artifact that must not be used: its bytes do not match the registered checksum,
    or it was trained on another feature version than this code computes. The message says which."""


class ModelArtifactUnreadable(ModelRefused):
    """The promoted model's artifact file is missing or cannot be read (shared storage not mounted yet, a
    copy under way): refused for now, and the processor tries it again after a while."""


class PartitionLayoutError(TxnmonError):
    """The pipeline's topics are partitioned in a way the processor cannot work with (the by-user
    topic and the state changelog must have equal partition counts)."""


# --- services ---------------------------------------------------------------------------------


class ServiceUnavailable(RetryableError):
    """A service (Kafka, MongoDB) does not answer."""

    hint = "is the stack up? try `make up`"


class KafkaUnavailable(ServiceUnavailable):
    """The brokers could not be reached, or did not acknowledge a send."""

    def describe(self) -> str:
        return f"Kafka unavailable: {super().describe()}"


class ProducerLost(KafkaUnavailable):
    """A transactional producer that cannot go on (fenced, its transaction expired, or a call stuck in
    the client): replace it with a new one, which completes or aborts what the old one left."""


class StoreUnavailable(ServiceUnavailable):
    """The MongoDB server could not be reached, or answered "not now" (a write-concern timeout)."""

    def describe(self) -> str:
        return f"MongoDB unavailable: {super().describe()}"


class StoreRefused(TxnmonError):
    """MongoDB refused documents for good (not an outage). `refused` maps batch index to the server's
    message; `duplicate_ids` are the batch's documents that were already stored."""

    def __init__(self, message: str, refused: dict[int, str] | None = None,
                 duplicate_ids: list[object] | None = None) -> None:
        super().__init__(message)
        self.refused = refused or {}
        self.duplicate_ids = duplicate_ids or []


class MessageRefused(TxnmonError):
    """Kafka refused messages for good (too large, invalid): `refused` maps index to why; `failed`
    lists the indexes that failed for a retriable reason at the same time."""

    def __init__(self, message: str, refused: dict[int, str], failed: list[int] | None = None) -> None:
        super().__init__(message)
        self.refused = refused
        self.failed = failed or []


class DeliveryFailed(RetryableError):
    """A notification could not be delivered this time (receiver down, 5xx, 429, timeout): try again later."""


class DeliveryRefused(TxnmonError):
    """The receiver refused a notification for good (a 4xx such as 400, 401, 404): no retry will change it."""


class TopicMissing(TxnmonError):
    """The topic does not exist; `txnmon init` creates the pipeline's topics."""


class CommitRefused(TxnmonError):
    """The group rebalanced while the batch was written: the new owner gets the batch again."""


class StopRequested(TxnmonError):
    """Shutdown was asked for while a write kept failing: the batch stays uncommitted."""


# --- work that ran and found something wrong --------------------------------------------------


class QualityCheckFailed(TxnmonError):
    """A critical expectation failed; the message names them, `suites` the suites they belong to."""

    def __init__(self, message: str, suites: frozenset[str] = frozenset()) -> None:
        super().__init__(message)
        self.suites = suites
