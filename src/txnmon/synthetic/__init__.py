"""Synthetic, labelled data for demos, tests and benchmarks: `txnmon generate` and its business events.

Apart from the product core: txnmon.core never imports it.
"""
