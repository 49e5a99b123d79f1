"""Every Kafka call txnmon makes, as named operations on confluent-kafka (librdkafka), one module per job.

Nothing else in the project imports the Kafka client library: clients are built here from
`Settings` (`clients`) and client errors are translated into txnmon's own here (`client_errors`).
The jobs: `admin` (topics, groups), `offsets`, `consume`, `produce`, `sender` (confirmed sends for
concurrent callers), `window` (a group-less time-range reader), `member` (the processor's group
member) and `transactions` (exactly-once commits). This module re-exports their public names: callers use `kafka.X`.
"""

from txnmon.adapters.kafka.admin import (
    GroupInfo,
    GroupMemberInfo,
    TopicInfo,
    delete_topics,
    describe_group,
    describe_topics,
    ensure_topics,
    require_topics,
)
from txnmon.adapters.kafka.client_errors import KafkaError
from txnmon.adapters.kafka.clients import check_reachable, client_config, make_admin, make_consumer, make_producer
from txnmon.adapters.kafka.consume import lag_of, poll_records, read_partition, read_range
from txnmon.adapters.kafka.member import GroupMember, TopicPartitionKey
from txnmon.adapters.kafka.offsets import LAG_PROBE_MAX, committed_offsets, consumer_lag, end_offsets, offsets_for_time
from txnmon.adapters.kafka.produce import produce_nowait, produce_to, send_all, send_confirmed
from txnmon.adapters.kafka.sender import ConfirmedSender
from txnmon.adapters.kafka.transactions import (
    TransactionalProducer,
    abort_transaction,
    begin_transaction,
    close_producer,
    commit_member_transaction,
    make_transactional_producer,
)
from txnmon.adapters.kafka.window import Window, open_window, poll_window, window_done
from txnmon.core.records import Message, SourceRecord

__all__ = [
    "LAG_PROBE_MAX",
    "ConfirmedSender",
    "GroupInfo",
    "GroupMember",
    "GroupMemberInfo",
    "KafkaError",
    "Message",
    "SourceRecord",
    "TopicInfo",
    "TopicPartitionKey",
    "TransactionalProducer",
    "Window",
    "abort_transaction",
    "begin_transaction",
    "check_reachable",
    "client_config",
    "close_producer",
    "commit_member_transaction",
    "committed_offsets",
    "consumer_lag",
    "delete_topics",
    "describe_group",
    "describe_topics",
    "end_offsets",
    "ensure_topics",
    "lag_of",
    "make_admin",
    "make_consumer",
    "make_producer",
    "make_transactional_producer",
    "offsets_for_time",
    "open_window",
    "poll_records",
    "poll_window",
    "produce_nowait",
    "produce_to",
    "read_partition",
    "read_range",
    "require_topics",
    "send_all",
    "send_confirmed",
    "window_done",
]
