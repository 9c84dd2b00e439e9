"""Publishing is atomic: readers in other processes never fail, never see a mix or an empty table."""

from __future__ import annotations

import hashlib
import multiprocessing as mp
import time
from datetime import datetime

import duckdb
import pandas as pd
import pytest

from recmill import warehouse
from recmill.errors import PublishFailed
from recmill.schema import WAREHOUSE_TABLES

N_USERS, K = 300, 20


def run_frames(run_id: str) -> dict[str, pd.DataFrame]:
    recs = pd.DataFrame(
        {
            "user_id": [f"u{u}" for u in range(N_USERS) for _ in range(K)],
            "item_id": [f"i{(u + r) % 97}" for u in range(N_USERS) for r in range(K)],
            "rank": [r + 1 for _ in range(N_USERS) for r in range(K)],
            "score": 1.0,
            "model": "als",
            "model_version": "v",
            "reason": "because",
            "run_id": run_id,
            "generated_at": datetime(2026, 1, 1),
        }
    )
    runs = pd.DataFrame([{"run_id": run_id, "started_at": datetime(2026, 1, 1), "finished_at": datetime(2026, 1, 1),
                          "status": "success", "data_fingerprint": "f", "params_json": "{}"}])
    metrics = pd.DataFrame([{"run_id": run_id, "model": "als", "model_version": "v", "split": "test", "metric": "ndcg", "k": 10, "value": 0.1, "slice": "all"}])
    return {"recommendations": recs, "runs": runs, "model_metrics": metrics}


def read_loop(path: str, seconds: float, out: mp.Queue) -> None:
    """Query like a downstream reader; report failures and what each query saw."""
    failures, mixed, empty, reads, longest = 0, 0, 0, 0, 0.0
    deadline = time.time() + seconds
    while time.time() < deadline:
        started = time.perf_counter()
        try:
            con = duckdb.connect(path, read_only=True)
            rows = con.execute("SELECT count(*), count(DISTINCT run_id), min(run_id) FROM recommendations").fetchone()
            in_runs = con.execute("SELECT count(*) FROM runs WHERE run_id = ?", [rows[2]]).fetchone()[0]
            con.close()
        except Exception:
            failures += 1
            continue
        longest = max(longest, time.perf_counter() - started)
        reads += 1
        if rows[0] == 0:
            empty += 1
        elif rows[1] != 1 or rows[0] != N_USERS * K or in_runs != 1:
            mixed += 1
    out.put({"failures": failures, "mixed": mixed, "empty": empty, "reads": reads, "longest": longest})


def test_publish_round_trip_keeps_history(tmp_path):
    path = tmp_path / "w.duckdb"
    warehouse.publish(path, run_frames("r1"))
    counts = warehouse.publish(path, run_frames("r2"))
    # every table exists; those no run wrote are empty
    assert counts == {table: 0 for table in WAREHOUSE_TABLES} | {"recommendations": N_USERS * K, "model_metrics": 2, "runs": 2}
    assert warehouse.query(path, "SELECT DISTINCT run_id FROM recommendations")["run_id"].tolist() == ["r2"]
    assert warehouse.query(path, "SELECT run_id FROM runs ORDER BY run_id")["run_id"].tolist() == ["r1", "r2"]
    types = warehouse.query(path, "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = 'recommendations'")
    assert dict(zip(types.column_name, types.data_type))["rank"] == "INTEGER"
    assert {p.name for p in tmp_path.iterdir()} == {"w.duckdb", ".w.duckdb.lock"}  # no leftovers


def test_history_written_before_a_column_existed_is_kept(tmp_path):
    path = tmp_path / "w.duckdb"
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE model_metrics (run_id VARCHAR, model VARCHAR, model_version VARCHAR, split VARCHAR, metric VARCHAR, k INTEGER, value DOUBLE)")
    con.execute("INSERT INTO model_metrics VALUES ('r0', 'als', 'v', 'test', 'ndcg', 10, 0.2)")
    con.close()
    warehouse.publish(path, run_frames("r1"))
    rows = warehouse.query(path, "SELECT run_id, slice FROM model_metrics ORDER BY run_id")
    assert rows["run_id"].tolist() == ["r0", "r1"]
    assert rows["slice"].isna().tolist() == [True, False]


def test_lists_carry_the_item_labels_of_the_items_published_with_them(tmp_path):
    path = tmp_path / "w.duckdb"
    items = pd.DataFrame({"item_id": ["i1", "i2"], "name": ["Bananas", "Milk"], "category": ["fruit", None], "brand": None, "price": 1.0})
    frames = run_frames("r1") | {"items": items}
    warehouse.publish(path, frames)
    u1 = "SELECT item_id, item_name, item_category FROM recommendations WHERE user_id = 'u1' AND rank <= 3 ORDER BY rank"
    with warehouse.Reader(path) as reader:
        assert reader.rows(u1) == [("i1", "Bananas", "fruit"), ("i2", "Milk", None), ("i3", None, None)]  # i3: not in items
    # a publish of some users' rows labels them from the items already there
    changed = frames["recommendations"][frames["recommendations"]["user_id"] == "u0"].assign(item_id="i2")
    warehouse.publish(path, {"recommendations": changed}, users=["u0"])
    assert set(warehouse.query(path, "SELECT item_name FROM recommendations WHERE user_id = 'u0'")["item_name"]) == {"Milk"}

    # lists published before the labels existed gain them when copied into a new file
    old = tmp_path / "old.duckdb"
    con = duckdb.connect(str(old))
    con.execute("CREATE TABLE recommendations (user_id VARCHAR, item_id VARCHAR, rank INTEGER, score DOUBLE, model VARCHAR, "
                "model_version VARCHAR, reason VARCHAR, run_id VARCHAR, generated_at TIMESTAMP)")
    con.execute("INSERT INTO recommendations VALUES ('u9', 'i1', 1, 1.0, 'als', 'v', 'because', 'r0', '2026-01-01')")
    con.close()
    warehouse.publish(old, {"items": items})
    assert warehouse.query(old, "SELECT user_id, item_name, item_category FROM recommendations").values.tolist() == [["u9", "Bananas", "fruit"]]


def test_failed_publish_leaves_previous_file_unchanged(tmp_path):
    path = tmp_path / "w.duckdb"
    warehouse.publish(path, run_frames("r1"))
    before = hashlib.sha256(path.read_bytes()).hexdigest()
    broken = run_frames("r2")
    broken["recommendations"] = broken["recommendations"].drop(columns=["reason"])
    with pytest.raises(ValueError, match="lacks columns"):
        warehouse.publish(path, broken)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == before
    assert {p.name for p in tmp_path.iterdir()} == {"w.duckdb", ".w.duckdb.lock"}


def test_readers_during_publish_never_fail_nor_see_a_mix(tmp_path):
    path = tmp_path / "w.duckdb"
    warehouse.publish(path, run_frames("r0"))
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    readers = [ctx.Process(target=read_loop, args=(str(path), 6.0, out)) for _ in range(4)]
    for r in readers:
        r.start()
    time.sleep(1.0)  # let the readers start querying
    publishes = 0
    deadline = time.time() + 4.0
    while time.time() < deadline:
        publishes += 1
        warehouse.publish(path, run_frames(f"r{publishes}"))
    results = [out.get(timeout=30) for _ in readers]
    for r in readers:
        r.join(timeout=30)
    assert publishes >= 3
    assert sum(r["reads"] for r in results) > 20
    assert [r["failures"] for r in results] == [0, 0, 0, 0]
    assert [r["mixed"] for r in results] == [0, 0, 0, 0]
    assert [r["empty"] for r in results] == [0, 0, 0, 0]


def test_a_kept_reader_sees_each_publish_once_it_is_switched_in(tmp_path):
    path = tmp_path / "w.duckdb"
    warehouse.publish(path, run_frames("r1"))
    with warehouse.Reader(path) as reader:
        assert reader.rows("SELECT DISTINCT run_id FROM recommendations") == [("r1",)]
        first = reader._con
        assert reader.rows("SELECT count(*) FROM runs") == [(1,)] and reader._con is first  # kept between queries
        warehouse.publish(path, run_frames("r2"))
        assert reader.rows("SELECT DISTINCT run_id FROM recommendations") == [("r2",)]
        assert reader.query("SELECT run_id FROM runs ORDER BY run_id")["run_id"].tolist() == ["r1", "r2"]


def test_rows_are_written_in_lookup_order(tmp_path):
    path = tmp_path / "w.duckdb"
    frames = run_frames("r1")
    frames["recommendations"] = frames["recommendations"].sample(frac=1, random_state=0)
    warehouse.publish(path, frames)
    stored = warehouse.query(path, "SELECT user_id, rank FROM recommendations")  # storage order: no ORDER BY
    assert list(zip(stored.user_id, stored["rank"])) == sorted(zip(stored.user_id, stored["rank"]))


def test_a_user_lookup_reads_the_users_rows_through_an_index(tmp_path):
    path = tmp_path / "w.duckdb"
    warehouse.publish(path, run_frames("r1"))
    warehouse.publish(path, run_frames("r2"))  # the indexes are built again in each new file
    indexed = warehouse.query(path, "SELECT table_name, expressions FROM duckdb_indexes() ORDER BY table_name")
    assert dict(zip(indexed.table_name, indexed.expressions)) == {
        "ab_assignments": "[user_id]", "buy_again": "[user_id]", "items": "[item_id]",
        "recommendations": "[user_id]", "recommendations_challenger": "[user_id]",
        "similar_items": "[item_id]", "user_segments": "[user_id]",
    }
    plan = warehouse.query(path, "EXPLAIN ANALYZE SELECT * FROM recommendations WHERE user_id = 'u1'")
    assert "Index Scan" in plan.iloc[0, 1]


def test_a_warehouse_whose_path_holds_quotes_and_sql_keeps_its_history(tmp_path):
    folder = tmp_path / "it's; DROP TABLE runs; --"
    folder.mkdir()
    path = folder / "w'h.duckdb"
    warehouse.publish(path, run_frames("r1"))
    warehouse.publish(path, run_frames("r2"))  # the second publish attaches the first file to keep its history
    assert warehouse.query(path, "SELECT run_id FROM runs ORDER BY run_id")["run_id"].tolist() == ["r1", "r2"]


def test_a_disk_that_fills_up_during_a_publish_leaves_the_previous_tables(tmp_path, monkeypatch):
    from recmill.errors import PublishFailed

    path = tmp_path / "w.duckdb"
    warehouse.publish(path, run_frames("r1"))
    before = path.read_bytes()
    real_connect = duckdb.connect

    class FullDisk:  # the new file's connection: writing its last pages fails as on a full disk
        def __init__(self, con):
            self.con = con

        def execute(self, sql, *args):
            if sql == "CHECKPOINT":
                raise duckdb.IOException("Could not write file: No space left on device")
            return self.con.execute(sql, *args)

        def __getattr__(self, name):
            return getattr(self.con, name)

    monkeypatch.setattr(warehouse.duckdb, "connect", lambda *a, **k: FullDisk(real_connect(*a, **k)))
    with pytest.raises(PublishFailed, match=r"could not be written \(Could not write file: No space left on device\); the previous ones are as they were"):
        warehouse.publish(path, run_frames("r2"))
    monkeypatch.undo()
    assert path.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == [".w.duckdb.lock", "w.duckdb"]
    assert warehouse.query(path, "SELECT run_id FROM runs")["run_id"].tolist() == ["r1"]


def test_a_publish_by_user_replaces_only_those_users_rows(tmp_path):
    path = tmp_path / "wh.duckdb"
    warehouse.publish(path, run_frames("r1"))
    first = warehouse.query(path, "SELECT * FROM recommendations ORDER BY user_id, rank")
    fresh = run_frames("r2")
    changed = ["u7", "u250", "newcomer"]
    recs = fresh["recommendations"][fresh["recommendations"]["user_id"].isin(["u7", "u250"])]
    recs = pd.concat([recs, recs[recs["user_id"] == "u7"].assign(user_id="newcomer")], ignore_index=True).assign(item_id="i0")
    counts = warehouse.publish(path, {"recommendations": recs, "runs": fresh["runs"]}, users=changed)
    after = warehouse.query(path, "SELECT * FROM recommendations ORDER BY user_id, rank")
    assert counts["recommendations"] == (N_USERS + 1) * K and counts["runs"] == 2
    kept = ~after["user_id"].isin(changed)
    pd.testing.assert_frame_equal(after[kept].reset_index(drop=True), first[~first["user_id"].isin(changed)].reset_index(drop=True))
    assert set(after[~kept]["run_id"]) == {"r2"} and set(after[~kept]["item_id"]) == {"i0"}
    assert sorted(after[~kept]["user_id"].unique()) == sorted(changed)
    with pytest.raises(ValueError, match="without a user_id"):
        warehouse.publish(path, {"similar_items": pd.DataFrame()}, users=changed)
    with pytest.raises(PublishFailed, match="nothing published yet"):
        warehouse.publish(tmp_path / "none.duckdb", {"recommendations": recs}, users=changed)
