"""The sample tree: its pure construction, and the tree of batched lanes against independent runs."""

from __future__ import annotations

import json
import subprocess
from collections import Counter

import pytest

from conftest import playground_cmd, subprocess_env
from helpers import CHAT, collect
from playground.commands.tree import text_lines
from playground.compare.job import EnginePool
from playground.compare.sample_tree import build_tree, depth_totals, paths
from playground.compare.tree_job import batches, draw_samples, finish_reason, tree_requests
from playground.engine_options import EngineChoice
from playground.errors import InvalidParameterError
from playground.events import Alternative, TokenEvent
from playground.params import GenerationRequest, SamplerParams


def tok(i: int, token: int, best: int, logprob: float = -1.0, text: str | None = None) -> TokenEvent:
    return TokenEvent(i, token, text if text is not None else f"t{token}", logprob, None,
                      (Alternative(best, f"t{best}", -0.5),), 0.0)


def walk(node, depth=0):
    yield node, depth
    for child in node.children:
        yield from walk(child, depth + 1)


def test_counts_follow_the_prefixes():
    # best token at the root is 1, after (1,) it is 3, after (1, 3) it is 9 (taken by nobody)
    samples = [
        [tok(0, 1, 1), tok(1, 2, 3)],
        [tok(0, 1, 1), tok(1, 3, 3), tok(2, 4, 9)],
        [tok(0, 1, 1), tok(1, 3, 3), tok(2, 5, 9)],
        [tok(0, 1, 1), tok(1, 3, 3)],
        [tok(0, 7, 1)],
    ]
    ends = ["stop", "length", "length", "stop", None]
    root = build_tree(samples, ends)
    assert root.count == 5
    # every prefix's count, computed independently
    prefixes = Counter(tuple(e.id for e in s[:k]) for s in samples for k in range(1, len(s) + 1))
    for node, _depth in walk(root):
        if node.children:
            assert node.count == sum(c.count for c in node.children)
    assert sum(leaf.count for _, leaf in paths(root)) == 5
    assert sum(1 for node, _ in walk(root) if node.end is None and node is not root) == len(prefixes)
    for key, count in prefixes.items():
        node = root
        for token in key:
            node = next(c for c in node.children if c.id == token)
        assert node.count == count
    assert depth_totals(root) == [5, 5, 5]
    # most common first, ties by logprob
    assert [c.id for c in root.children] == [1, 7]
    assert [c.id for c in root.children[0].children] == [3, 2]
    # greedy: 1 -> 3, then 9 was taken by no sample
    assert [(n.id, n.greedy) for n, _ in walk(root) if n.greedy] == [(1, True), (3, True)]
    # a sample without an end shows as "error"; a stop right after a token is a leaf under it
    assert {leaf.end for _, leaf in paths(root)} == {"stop", "length", "error"}
    data = root.to_dict()
    assert set(data) >= {"id", "text", "count", "logprob", "children"} and data["count"] == 5


def test_text_output_is_inert_and_collapses_chains():
    samples = [[tok(0, 1, 1, text="a\x1b]0;x\x07"), tok(1, 2, 2, text="b")]] * 2
    lines = text_lines(build_tree(samples, ["length", "length"]), 2)
    assert lines[0].startswith('"a\\x1b]0;x\\x07b" 2/2')
    assert "\x1b" not in "".join(lines)
    assert lines[1].strip() == "[length] 2/2"


def test_seeds_and_batches():
    base = GenerationRequest("x", SamplerParams(seed=2**32 - 2))
    seed, reqs = tree_requests(base, 4)
    assert seed == 2**32 - 2 and [r.sampler.seed for r in reqs] == [2**32 - 2, 2**32 - 1, 0, 1]
    assert [len(b) for b in batches(reqs * 16)] == [32, 32]
    with pytest.raises(InvalidParameterError):
        tree_requests(base, 65)


PROMPT = CHAT.format("Give me one word that describes the sea.")
N = 40  # two batches: 32 lanes, then 8


@pytest.fixture(scope="module")
def pool():
    p = EnginePool(EngineChoice(n_ctx=2048, n_threads=1))
    yield p
    p.close()


def test_the_tree_equals_independent_single_runs(pool, engine):
    base = GenerationRequest(PROMPT, SamplerParams(temperature=1.0, seed=100), max_tokens=6, top_n=3)
    seed, requests = tree_requests(base, N)
    samples = draw_samples(pool, requests)
    tree = build_tree([s.tokens for s in samples], [finish_reason(s) for s in samples])
    singles = [collect(engine.stream(r)) for r in requests]
    reference = build_tree([tokens for _, tokens, _ in singles], [end.finish_reason for _, _, end in singles])
    assert [[e.id for e in s.tokens] for s in samples] == [[e.id for e in t] for _, t, _ in singles]
    assert tree.to_dict() == reference.to_dict()
    assert all(total == N for total in depth_totals(tree))
    assert len(tree.children) > 1  # the samples do differ: the tree has branches to count
    assert [s.start.params["seed"] for s in samples] == [seed + k for k in range(N)]


def test_cli_tree_json(tmp_path):
    out = subprocess.run([*playground_cmd(), "tree", "Once upon a time", "-N", "5", "-s", "3", "-n", "4", "--json", "-t", "1"],
                         capture_output=True, text=True, env=subprocess_env(tmp_path), timeout=120)
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["event"] == "tree" and data["n_samples"] == 5 and data["base_seed"] == 3
    assert data["seeds"] == [3, 4, 5, 6, 7]
    root = data["root"]
    assert root["count"] == 5

    def check(node):
        if node["children"]:
            assert node["count"] == sum(c["count"] for c in node["children"])
            counts = [c["count"] for c in node["children"]]
            assert counts == sorted(counts, reverse=True)
        for child in node["children"]:
            assert {"id", "text", "count", "logprob", "children"} <= set(child)
            check(child)

    check(root)
