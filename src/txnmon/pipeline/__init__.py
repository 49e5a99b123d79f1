"""The write side of a processed batch, shared by the processor and the window replay.

    ports      Sink, Source, Publisher, StateStore, and the Outbound of a batch's Kafka side
    sinks      the MongoDB sinks (transactions, rejected, alerts, outbox, touched hours, watermarks)
    case_sink  a batch's alerts into their users' cases
    orders     the sinks' order, live and replay, declared once as data
    runner     `write_batch`: the sinks in order, outcomes applied, outages retried
    retry      `with_retry`: only outages, never given up on
    publisher  the Kafka transaction (messages, state, offsets) and the changelog reader
"""
