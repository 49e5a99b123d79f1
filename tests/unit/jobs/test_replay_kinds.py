"""`txnmon replay --kind`: each kind's file checked by its contract before anything is sent, bad rows
listed with their line, reason and field, as for transactions."""

from __future__ import annotations

import pytest

from txnmon.cli.data import EVENT_KIND_NAMES
from txnmon.core.event_contracts import EVENT_KINDS
from txnmon.errors import InvalidInputFile, UsageError
from txnmon.jobs.replay import check_file, run_replay
from txnmon.settings import load_settings

FILES = {
    "carts": "event_id,event_type,user_id,cart_id,product_id,quantity,price,timestamp,label\n"
             "C1,cart_created,U1,K1,,,,2025-10-01T10:00:00Z,\n"
             "C2,item_added,U1,K1,Laptop,2,42000.50,2025-10-01T10:01:00Z,\n"
             "C3,checkout_started,U1,K1,,,,2025-10-01T10:03:00Z,purchased\n",
    "stock": "event_id,product_id,location,quantity_on_hand,delta,timestamp,source\n"
             "S1,Laptop,Mumbai,40,,2025-10-01T00:00:00Z,opening\n"
             "S2,Laptop,Mumbai,,25,2025-10-01T12:00:00Z,restock\n",
    "reviews": "review_id,user_id,product_id,rating,text,timestamp\n"
               "R1,U1,Laptop,5,\"Fast, and it works\",2025-10-04T10:00:00Z\n",
}
BAD = {"carts": ("C2,item_added,U1,K1,Laptop,0,42000.50,2025-10-01T10:01:00Z,", "bad_field: quantity"),
       "stock": ("S3,Laptop,Mumbai,5,5,2025-10-01T00:00:00Z,wms", "bad_field: quantity_on_hand and delta"),
       "reviews": ("R2,U1,Laptop,9,meh,2025-10-04T10:00:00Z", "bad_field: rating")}


@pytest.fixture
def settings(tmp_path):
    return load_settings(data_dir=tmp_path)


@pytest.mark.parametrize("kind", FILES)
def test_a_good_file_of_each_kind_is_checked_row_by_row_with_numbers_typed(kind, tmp_path, settings):
    path = tmp_path / f"{kind}.csv"
    path.write_text(FILES[kind])
    rows = check_file(path, settings, kind=kind)
    assert len(rows) == FILES[kind].count("\n") - 1
    first = rows[0][0]
    numbers = {"carts": ("quantity", 2, 1), "stock": ("quantity_on_hand", 40, 0), "reviews": ("rating", 5, 0)}
    name, value, at = numbers[kind]
    assert rows[at][0][name] == value and isinstance(rows[at][0][name], int)
    assert "" not in first.values()  # empty cells are dropped, as for transactions


@pytest.mark.parametrize("kind", FILES)
def test_a_bad_row_refuses_the_whole_file_naming_line_reason_and_field(kind, tmp_path, settings):
    path = tmp_path / f"{kind}.csv"
    line, says = BAD[kind]
    path.write_text(FILES[kind] + line + "\n")
    with pytest.raises(InvalidInputFile, match="1 invalid row") as caught:
        check_file(path, settings, kind=kind)
    assert f"line {FILES[kind].count(chr(10)) + 1}: {says}" in str(caught.value)


def test_a_file_of_another_kind_is_refused_by_its_columns(tmp_path, settings):
    path = tmp_path / "reviews.csv"
    path.write_text(FILES["reviews"])
    with pytest.raises(InvalidInputFile, match=r"missing column.*carts file: event_id, event_type"):
        check_file(path, settings, kind="carts")
    with pytest.raises(InvalidInputFile, match="transactions file: transaction_id"):
        check_file(path, settings)  # the default kind is transactions


def test_the_cli_and_the_dag_offer_every_kind_and_refuse_others(settings):
    assert tuple(EVENT_KINDS) == EVENT_KIND_NAMES
    with pytest.raises(UsageError, match="unknown event kind 'clicks'"):
        run_replay(settings, {"file": "x.csv", "kind": "clicks", "speedup": 0, "limit": None})


def test_every_kind_has_a_topic_setting(settings):
    topics = {kind: getattr(settings, k.topic_setting) for kind, k in EVENT_KINDS.items()}
    assert topics == {"transactions": "transactions.raw", "carts": "carts.raw", "stock": "inventory.raw",
                      "reviews": "reviews.raw"}
    assert set(settings.event_topics) | set(settings.pipeline_topics) == set(settings.init_topics)


def test_event_topics_come_from_the_environment_and_must_differ(monkeypatch):
    from txnmon.errors import ConfigError

    monkeypatch.setenv("TOPIC_CARTS", "shop.carts")
    assert load_settings().topic_carts == "shop.carts"
    with pytest.raises(ConfigError, match="TOPIC_CARTS, TOPIC_INVENTORY and TOPIC_REVIEWS must differ"):
        load_settings(topic_reviews="transactions.raw")
    with pytest.raises(ConfigError, match="TOPIC_INVENTORY"):
        load_settings(topic_inventory="bad topic!")
