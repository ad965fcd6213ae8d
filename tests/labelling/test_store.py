"""The judgements file and the session over it: every judgement on disk before it is acknowledged, concurrent
writers never interleave, a restarted session continues with no gap and no duplicate, and a second labeller
sees the shared items for the agreement figures."""

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from rlhf_ray.labelling.assignment import Assigner
from rlhf_ray.labelling.session import Judgement, JudgementRejected
from rlhf_ray.labelling.stats import label_stats
from rlhf_ray.labelling.store import JudgementStore, StoreError, read_judgements
from tests.support.labelling import made_up_item, made_up_session

ROOT = Path(__file__).resolve().parents[2]


def judgement(item, labeller="ann", ranking=((0,), (1,), (2,), (3,)), flag=None, digest=None):
    ranking = None if ranking is None else [list(tier) for tier in ranking]
    return Judgement(item.index, digest or item.digest, labeller, ranking, flag, 2.5)


def label(session, labeller, count, ranking=((0,), (1,), (2,), (3,))):
    """``labeller`` judges their next ``count`` items; returns their indices."""
    done = []
    for _ in range(count):
        item = session.next_item(labeller)
        assert session.judge(judgement(item, labeller, ranking))
        done.append(item.index)
    return done


APPENDER = """
import sys
from rlhf_ray.labelling.store import JudgementStore
store = JudgementStore(sys.argv[1])
for number in range(50):
    store.append({"writer": sys.argv[2], "number": number, "text": "x" * 2000})
"""


def test_concurrent_writers_in_threads_and_processes_never_interleave_lines(tmp_path):
    path = tmp_path / "j.jsonl"
    store = JudgementStore(path)
    processes = [
        subprocess.Popen([sys.executable, "-c", APPENDER, str(path), f"process {w}"], cwd=ROOT) for w in range(2)
    ]
    threads = [
        threading.Thread(target=lambda w=w: [store.append({"writer": w, "number": n}) for n in range(50)])
        for w in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [process.wait(timeout=60) for process in processes] == [0, 0]
    rows = read_judgements(path)
    assert len(rows) == 300
    for writer in [0, 1, 2, 3, "process 0", "process 1"]:
        assert [row["number"] for row in rows if row["writer"] == writer] == list(range(50))


def test_a_line_cut_short_by_a_crash_is_removed_on_opening_and_nothing_else(tmp_path, caplog):
    path = tmp_path / "j.jsonl"
    path.write_text('{"item": 0}\n{"item": 1}\n{"item": 2, "respo')
    assert read_judgements(path) == [{"item": 0}, {"item": 1}]  # reading alone changes nothing
    assert path.read_text().endswith('"respo')
    store = JudgementStore(path)
    assert "removed an unfinished last line" in caplog.text
    store.append({"item": 2})
    assert store.rows() == [{"item": 0}, {"item": 1}, {"item": 2}]


def test_a_damaged_complete_line_is_named_not_dropped(tmp_path):
    path = tmp_path / "j.jsonl"
    path.write_text('{"item": 0}\nnot json\n{"item": 2}\n')
    with pytest.raises(StoreError, match=r"j.jsonl:2: not a judgement: invalid JSON"):
        read_judgements(path)


def test_a_row_holds_what_was_shown_and_judged(tmp_path):
    session = made_up_session(tmp_path / "j.jsonl")
    item = session.next_item("ann")
    assert session.judge(judgement(item, ranking=[[2], [0, 3], [1]]))
    [row] = read_judgements(tmp_path / "j.jsonl")
    assert row["item"] == 0 and row["prompt"] == "Prompt 0?" and row["responses"] == item.responses
    assert row["ranking"] == [[2], [0, 3], [1]] and row["flag"] is None
    assert row["labeller"] == "ann" and row["seconds"] == 2.5 and row["seed"] == 100
    assert row["model"] == "made-up-model" and row["time"].endswith("+00:00")
    session.close()


def test_a_restarted_session_continues_with_no_gap_and_no_duplicate(tmp_path):
    path = tmp_path / "j.jsonl"
    first = made_up_session(path, target=5)
    assert label(first, "ann", 2) == [0, 1]
    shown = first.next_item("ann")  # shown, then the app is killed before it is judged
    assert shown.index == 2
    first.close()

    again = made_up_session(path, target=5)
    assert again.progress("ann").done == 2
    assert not again.judge(judgement(made_up_item(1), "ann"))  # the page sends item 1 once more
    assert again.judge(judgement(shown, "ann"))  # the judgement made while the app was down
    assert label(again, "ann", 2) == [3, 4]
    assert again.next_item("ann") is None
    assert [row["item"] for row in read_judgements(path)] == [0, 1, 2, 3, 4]
    again.close()


def test_an_item_is_one_labellers_until_judged_or_its_lease_ends(tmp_path):
    now = [0.0]
    assigner = Assigner(target=3, overlap=0.0, lease_s=60, clock=lambda: now[0])
    assert assigner.next_for("ann") == 0
    assert assigner.next_for("ann") == 0  # a reload shows the same item
    assert assigner.next_for("bob") == 1
    assert assigner.upcoming(5) == [2]
    now[0] = 61.0
    assert assigner.next_for("bob") == 1  # bob's lease renews as he asks
    assert assigner.next_for("cy") == 0  # ann's ran out
    assert assigner.record(0, "ann")  # her late answer is still kept
    assert assigner.judges(0) == ["ann"]


def test_shared_items_go_to_a_second_labeller_first_and_the_stats_compare_them(tmp_path):
    path = tmp_path / "j.jsonl"
    session = made_up_session(path, target=8, overlap=0.25)
    assert [i for i in range(8) if session.assigner.shared(i)] == [3, 7]
    assert label(session, "ann", 4) == [0, 1, 2, 3]
    # bob gets ann's shared item 3 before any new one, with the very responses she saw
    second = session.next_item("bob")
    assert second.index == 3 and second.responses == made_up_item(3).responses
    assert session.judge(judgement(second, "bob", ranking=[[0], [1], [3], [2]]))
    assert session.next_item("bob").index == 4
    session.judge(judgement(session.next_item("ann"), "ann", ranking=None, flag="unsafe"))

    stats = label_stats(read_judgements(path))
    assert stats.judgements == 6 and stats.items == 5
    assert stats.shared_items == 1
    assert (stats.agreeing_pairs, stats.compared_pairs) == (5, 6)
    assert stats.agreement == pytest.approx(5 / 6)
    assert stats.flag_rate == pytest.approx(1 / 6)
    ann = next(s for s in stats.labellers if s.labeller == "ann")
    assert (ann.items, ann.ranked, ann.flagged, ann.skipped) == (5, 4, 1, 0)
    assert ann.median_seconds == 2.5
    assert "agreement: 83.3% of 6 response pairs" in stats.table()
    assert json.loads(json.dumps(stats.as_dict()))["agreement"] == pytest.approx(5 / 6)
    session.close()


@pytest.mark.parametrize(
    ("change", "kind"),
    [
        ({"digest": "0" * 16}, "changed"),
        ({"ranking": [[0], [1], [2]]}, "invalid"),
        ({"index": 99}, "unknown"),
    ],
)
def test_a_judgement_of_something_else_than_what_was_shown_is_refused(tmp_path, change, kind):
    session = made_up_session(tmp_path / "j.jsonl", target=4)
    item = session.next_item("ann")
    sent = judgement(item, digest=change.get("digest"), ranking=change.get("ranking", [[0], [1], [2], [3]]))
    if "index" in change:
        sent = Judgement(change["index"], item.digest, "ann", sent.ranking, None, 1.0)
    with pytest.raises(JudgementRejected) as refused:
        session.judge(sent)
    assert refused.value.kind == kind
    assert read_judgements(tmp_path / "j.jsonl") == []
    session.close()


def test_responses_are_sampled_ahead_in_batches(tmp_path):
    batches = []

    def make(indices):
        batches.append(list(indices))
        return [made_up_item(i) for i in indices]

    def sampled() -> set[int]:
        return {i for batch in list(batches) for i in batch}

    session = made_up_session(tmp_path / "j.jsonl", target=20, make=make)
    label(session, "ann", 3)
    deadline = time.monotonic() + 30  # the items ahead are sampled on the prefetcher's thread
    while not {0, 1, 2, 3, 4, 5, 6} <= sampled() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert batches[0] == [0, 1, 2, 3]  # the first batch: what was asked for, then the next ones
    assert all(len(batch) <= 4 for batch in batches)
    assert {0, 1, 2, 3, 4, 5, 6} <= sampled()
    session.close()
