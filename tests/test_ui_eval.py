"""Eval results in the TUI: a real ``playground eval --out`` file opened, cells rated by keys, the
ratings saved in the file (still a results file) and counted in the summary beside the automatic scores."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from textual.widgets import DataTable, Input, Static

from playground.evaluate.errors import SuiteError
from playground.evaluate.ratings import Rating, human_summary, kept_ratings, ratings_of, save_ratings, with_ratings
from playground.evaluate.results import load_results
from playground.ui.screens.eval_results import EvalResultsApp, EvalResultsScreen, NoteEditor

from conftest import ROOT, playground_cmd, subprocess_env
from ui_harness import until

SUITE = """
[suite]
name = "tiny"
template = "chat"
instruction = "Answer with the name of the city only."

[[case]]
input = "What is the capital of France?"
expected = "Paris"
assert = [{ type = "contains" }]

[[case]]
input = "What is the capital of Japan?"
expected = "Tokyo"
choices = ["Tokyo", "Kyoto"]
assert = [{ type = "contains" }]
"""
VARIANTS = """
[[variant]]
name = "chat"

[[variant]]
name = "plain"
template = "plain"

[[variant]]
name = "terse plain"
template = "plain"
instruction = "One word."

[[variant]]
name = "terse chat"
instruction = "One word."
"""


@pytest.fixture(scope="module")
def results_file(tmp_path_factory) -> Path:
    """A results file from a real run of the embedded model: 2 cases x 4 variants (wider than 80 columns)."""
    tmp = tmp_path_factory.mktemp("eval")
    (tmp / "s.toml").write_text(SUITE, encoding="utf-8")
    (tmp / "v.toml").write_text(VARIANTS, encoding="utf-8")
    out = tmp / "results.json"
    run = subprocess.run([*playground_cmd(), "eval", str(tmp / "s.toml"), "--variants", str(tmp / "v.toml"),
                          "--out", str(out), "-n", "4"], cwd=ROOT, env=subprocess_env(tmp), capture_output=True,
                         text=True, timeout=300)
    assert run.returncode in (0, 1), run.stderr  # 1: a cell failed its assertion, which is fine here
    return out


@pytest.fixture
def results(results_file, tmp_path) -> Path:
    path = tmp_path / "results.json"
    path.write_bytes(results_file.read_bytes())
    return path


def cell_text(app, case: int, variant: str) -> str:
    return str(app.screen.query_one(DataTable).get_cell(str(case), variant))


def summary_text(app) -> str:
    return str(app.screen.query_one("#eval-summary", Static).render())


def detail_text(app) -> str:
    return str(app.screen.query_one("#eval-cell", Static).render())


def on_disk(path: Path) -> dict:
    return ratings_of(load_results(path))


# --- the core: ratings in a results document --------------------------------------------------
def test_ratings_round_trip_and_summary_against_an_independent_count(results):
    document = load_results(results)
    cells = document["cells"]
    assert "ratings" not in document and ratings_of(document) == {}
    keys = [(c["variant"], c["case"]) for c in cells]
    given = {keys[0]: Rating("pass", 4, "good"), keys[1]: Rating("fail"), keys[2]: Rating("fail", 2),
             keys[3]: Rating("fail"), keys[4]: Rating(score=2), keys[5]: Rating()}
    written = save_ratings(results, given)
    again = load_results(results)
    assert again["cells"] == cells  # the cells are untouched
    assert ratings_of(again) == {k: r for k, r in given.items() if not r.empty}
    assert again["ratings"][f"{keys[0][0]}#{keys[0][1]}"] == {"verdict": "pass", "score": 4, "note": "good"}
    assert again == written
    for variant, row in again["summary"].items():
        mine = [(c, given.get((c["variant"], c["case"]))) for c in cells if c["variant"] == variant]
        rated = [(c, r) for c, r in mine if r is not None and not r.empty]
        verdicts = [(c, r) for c, r in rated if r.verdict]
        human = row["human"]
        assert human["n_rated"] == len(rated)
        assert human["n_pass"] == sum(r.verdict == "pass" for _, r in verdicts)
        assert human["n_verdict"] == len(verdicts)
        scores = [r.score for _, r in rated if r.score]
        assert human["mean_score"] == (sum(scores) / len(scores) if scores else None)
        checked = [(c, r) for c, r in verdicts if c["pass"] is not None]
        assert human["n_agree_checked"] == len(checked)
        assert human["n_agree"] == sum(c["pass"] == (r.verdict == "pass") for c, r in checked)
        assert row["pass_rate"] == load_results(results)["summary"][variant]["pass_rate"]  # automatic kept


def test_bad_ratings_are_refused_with_the_file_named():
    with pytest.raises(ValueError):
        Rating("maybe")
    with pytest.raises(ValueError):
        Rating(score=6)
    with pytest.raises(SuiteError, match="r.json: rating 'x#1'"):
        ratings_of({"ratings": {"x#1": {"verdict": "yes"}}}, "r.json")
    with pytest.raises(SuiteError, match="not 'VARIANT#CASE'"):
        ratings_of({"ratings": {"x": {}}}, "r.json")


def test_a_rerun_keeps_the_ratings_of_unchanged_outputs_only(results):
    document = with_ratings(load_results(results), {("chat", 0): Rating("pass"), ("chat", 1): Rating("fail")})
    cells = [dict(c) for c in document["cells"]]
    cells[1]["output"] = "something else"  # chat, case 1 gave another answer this time
    assert (cells[1]["variant"], cells[1]["case"]) == ("chat", 1)
    assert kept_ratings(document, cells) == {("chat", 0): Rating("pass")}
    assert human_summary(cells, {})["chat"]["n_rated"] == 0


# --- the screen --------------------------------------------------------------------------------
async def test_rating_cells_by_keys_saves_them_and_counts_them(results):
    document = load_results(results)
    auto = {(c["variant"], c["case"]): c["pass"] for c in document["cells"]}
    app = EvalResultsApp(results)
    async with app.run_test(size=(160, 48)) as pilot:
        await until(pilot, lambda: isinstance(app.screen, EvalResultsScreen), "the results screen")
        assert "FAIL" in cell_text(app, 0, "chat") or "PASS" in cell_text(app, 0, "chat")
        assert "What is the capital of France?" in detail_text(app)
        assert "human: none rated" in summary_text(app)
        # chat/case 0: fail, score 4; chat/case 1: fail; plain/case 0: score 2, then cleared; plain/case 1: pass
        await pilot.press("f", "4", "down", "f", "right", "up", "2")
        await until(pilot, lambda: len(on_disk(results)) == 3, "three ratings on disk")
        assert "H✗4" in cell_text(app, 0, "chat") and "H✗" in cell_text(app, 1, "chat")
        await pilot.press("backspace")
        await until(pilot, lambda: len(on_disk(results)) == 2, "the cleared rating gone from disk")
        assert "H" not in cell_text(app, 0, "plain")
        await pilot.press("down", "p")
        expected = {("chat", 0): Rating("fail", 4), ("chat", 1): Rating("fail"), ("plain", 1): Rating("pass")}
        await until(pilot, lambda: on_disk(results) == expected, "the ratings on disk")
        agree_chat = (auto[("chat", 0)] is False) + (auto[("chat", 1)] is False)
        agree_plain = int(auto[("plain", 1)] is True)
        assert f"human 2 rated · pass 0/2 · score 4.0 · agree {agree_chat}/2" in summary_text(app)
        assert f"human 1 rated · pass 1/1 · score n/a · agree {agree_plain}/1" in summary_text(app)
        assert "human: none rated" in summary_text(app)  # the terse variants
        rows = load_results(results)["summary"]
        assert (rows["chat"]["human"]["n_rated"], rows["chat"]["human"]["n_pass"], rows["chat"]["human"]["mean_score"],
                rows["chat"]["human"]["n_agree"]) == (2, 0, 4.0, agree_chat)
        assert (rows["plain"]["human"]["n_pass"], rows["plain"]["human"]["n_agree"]) == (1, agree_plain)
        await pilot.press("q")
        await until(pilot, lambda: app.return_code == 0, "the app to close")
    assert load_results(results)["cells"] == document["cells"]


async def test_a_note_is_written_in_a_modal_and_kept(results):
    app = EvalResultsApp(results)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: isinstance(app.screen, EvalResultsScreen), "the results screen")
        await pilot.press("right", "down", "n")
        await until(pilot, lambda: isinstance(app.screen, NoteEditor), "the note editor")
        app.screen.query_one(Input).value = "names \x1b[2Ja city"
        await pilot.press("enter")
        await until(pilot, lambda: on_disk(results).get(("plain", 1)) is not None, "the note on disk")
        assert on_disk(results) == {("plain", 1): Rating(note="names \x1b[2Ja city")}
        assert "✎" in cell_text(app, 1, "plain")
        shown = detail_text(app)
        assert "names \\x1b[2Ja city" in shown and "\x1b" not in shown  # inert on screen, exact on disk
        await pilot.press("n")
        await until(pilot, lambda: isinstance(app.screen, NoteEditor), "the note editor again")
        await pilot.press("escape")  # cancelled: the note stays
        await until(pilot, lambda: isinstance(app.screen, EvalResultsScreen), "back on the results")
        assert on_disk(results) == {("plain", 1): Rating(note="names \x1b[2Ja city")}


async def test_every_cell_is_reachable_at_80x24(results):
    app = EvalResultsApp(results)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: isinstance(app.screen, EvalResultsScreen), "the results screen")
        screen = app.screen
        for name in ("#eval-grid", "#eval-detail", "#eval-summary"):
            region = screen.query_one(name).region
            assert region.height > 0 and region.right <= 80 and region.bottom <= 24, name
        grid = screen.query_one(DataTable)
        assert grid.virtual_size.width > grid.size.width  # four variants do not fit: the columns scroll
        await pilot.press("right", "right", "right", "down")
        await pilot.pause(0.1)
        assert screen.selected == ("terse chat", 1) and grid.scroll_x > 0
        shown = detail_text(app)
        assert "terse chat · case 1" in shown and "Tokyo" in shown  # expected answer and choice probabilities
        await pilot.press("f")
        await until(pilot, lambda: on_disk(results) == {("terse chat", 1): Rating("fail")}, "the rating on disk")
        assert "H✗" in cell_text(app, 1, "terse chat")


async def test_a_file_that_is_no_results_file_is_reported(tmp_path):
    from textual.app import App

    from playground.ui.screens.eval_results import open_results

    class Reporting(App):
        reported: list = []

        def report(self, error) -> None:
            self.reported.append(error)

    bad = tmp_path / "r.json"
    bad.write_text(json.dumps({"cells": []}), encoding="utf-8")
    app = Reporting()
    async with app.run_test() as pilot:
        assert open_results(app, bad) is None
        await pilot.pause()
        assert [type(e) for e in app.reported] == [SuiteError] and "r.json" in app.reported[0].message
        assert len(app.screen_stack) == 1


JUDGED = '''
[suite]
name = "judged"
template = "chat"
instruction = "Answer with the name of the city only."

[judge]
template = "plain"
max_tokens = 4
prompt = """Question: What is 1 + 1?
Answer: 2
Verdict: PASS

Question: {input}
Answer: {output}
Verdict:"""

[[case]]
input = "What is the capital of France?"
expected = "Paris"
assert = [{ type = "judge" }]
'''


async def test_the_detail_shows_the_judge_verdict_and_its_probability(tmp_path):
    (tmp_path / "j.toml").write_text(JUDGED, encoding="utf-8")
    out = tmp_path / "judged.json"
    run = subprocess.run([*playground_cmd(), "eval", str(tmp_path / "j.toml"), "--out", str(out), "-n", "4"],
                         cwd=ROOT, env=subprocess_env(tmp_path), capture_output=True, text=True, timeout=300)
    assert run.returncode in (0, 1), run.stderr
    cell = load_results(out)["cells"][0]
    judge = cell["asserts"][0]["judge"]
    app = EvalResultsApp(out)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: isinstance(app.screen, EvalResultsScreen), "the results screen")
        shown = detail_text(app)
        assert f"judge verdict {judge['verdict'] or 'none'}" in shown
        if judge["verdict_token"] and judge["verdict_token"]["prob"] is not None:
            assert f"p={judge['verdict_token']['prob']:.3f}" in shown
        await pilot.press("p")
        await until(pilot, lambda: on_disk(out) == {(cell["variant"], 0): Rating("pass")}, "the rating on disk")


def test_running_the_suite_again_into_the_file_keeps_its_ratings(results_file, results, tmp_path):
    """The CLI wiring: a greedy re-run into a rated file gives the same outputs, so the ratings stay
    and count in the summary it writes."""
    save_ratings(results, {("chat", 0): Rating("pass", 4)})
    suite_dir = results_file.parent
    run = subprocess.run([*playground_cmd(), "eval", str(suite_dir / "s.toml"), "--variants", str(suite_dir / "v.toml"),
                          "--out", str(results), "-n", "4"], cwd=ROOT, env=subprocess_env(tmp_path),
                         capture_output=True, text=True, timeout=300)
    assert run.returncode in (0, 1), run.stderr
    document = load_results(results)
    assert ratings_of(document) == {("chat", 0): Rating("pass", 4)}
    assert document["summary"]["chat"]["human"]["n_rated"] == 1
    bad = subprocess.run([*playground_cmd(), "eval", str(suite_dir / "s.toml"), "--open"], env=subprocess_env(tmp_path),
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "--open" in bad.stderr and bad.stderr.count("\n") == 1
