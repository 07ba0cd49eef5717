"""``playground tree``: N samples of one prompt, shown as a prefix tree of tokens."""

from __future__ import annotations

import argparse
import math

from playground.cli_options import (
    add_chat_option,
    add_model_options,
    add_sampler_options,
    engine_choice_from_args,
    read_prompt,
    request_from_args,
)
from playground.commands.output import Output
from playground.compare.job import EnginePool
from playground.compare.mixed import LaneTarget
from playground.compare.sample_tree import TreeNode, build_tree
from playground.compare.tree_job import MAX_TREE_SAMPLES, draw_samples, finish_reason, tree_requests
from playground.errors import InvalidParameterError
from playground.prompt_builder import chat_request
from playground.terminal_text import inert_line

#: Default new tokens per sample: a tree of 32 long samples is mostly single-sample branches.
DEFAULT_TREE_TOKENS = 16
#: Longest samples a tree takes (its JSON nests one level per token).
MAX_TREE_TOKENS = 512

EPILOG = """\
JSON (--json): one object {"event":"tree","prompt":..,"n_samples":N,"base_seed":S,"seeds":[S,..],
  "params":{..},"root":NODE}, each NODE {"id":..,"text":..,"count":..,"logprob":..,"children":[NODE..]}
  (+ "greedy":true on the greedy path). A sample's end is a leaf {"id":null,"end":"stop"|"length",..}
  under its last token, so every node's count is the sum of its children's. Children: most common first.

examples:
  playground tree "Once upon a time" -N 32 --seed 1 -n 8
  playground tree "The best pizza topping is" -N 64 --temp 1.2 --json
"""


def add_parser(sub: argparse._SubParsersAction) -> None:
    tree = sub.add_parser(
        "tree", help="N samples of one prompt as a prefix tree of tokens (counts, probabilities, greedy path)",
        description="Draw N samples of the prompt (seeds S, S+1, ..., S+N-1; batched as lanes) and print "
        "them as a prefix tree: each edge a token with how many samples took it and its raw probability, "
        f"the most common path first. -n defaults to {DEFAULT_TREE_TOKENS} here.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    tree.add_argument("prompt", nargs="?", help="the prompt; standard input when absent or '-'")
    tree.add_argument("-N", "--samples", type=int, default=32, metavar="N",
                      help=f"samples to draw, 1-{MAX_TREE_SAMPLES} (default 32)")
    add_model_options(tree)
    add_sampler_options(tree)
    add_chat_option(tree)
    tree.add_argument("--json", action="store_true", help="the tree as one JSON object (see below)")


def run(args: argparse.Namespace) -> int:
    prompt = read_prompt(args.prompt)
    if args.max_tokens is None:
        args.max_tokens = DEFAULT_TREE_TOKENS
    if not 1 <= args.max_tokens <= MAX_TREE_TOKENS:
        raise InvalidParameterError(f"-n must be between 1 and {MAX_TREE_TOKENS} for a tree")
    base = request_from_args(args, prompt)
    seed, requests = tree_requests(base, args.samples)
    # Without -c the context grows to hold the prompt plus every lane's tokens (one shared KV cache).
    pool = EnginePool(engine_choice_from_args(args), fit_context=args.ctx_size is None)
    try:
        if args.chat:
            engine = pool.backend(LaneTarget(), requests[: min(len(requests), 32)]).engine
            requests = [chat_request(r, engine) for r in requests]
        samples = draw_samples(pool, requests)
    finally:
        pool.close()
    root = build_tree([s.tokens for s in samples], [finish_reason(s) for s in samples])
    out = Output()
    failed = sum(1 for s in samples if finish_reason(s) is None)
    if args.json:
        out.json({"event": "tree", "prompt": requests[0].prompt, "n_samples": len(samples), "base_seed": seed,
                  "seeds": [r.sampler.seed for r in requests], "params": {**base.sampler.to_dict(), "seed": seed,
                  "max_tokens": base.max_tokens}, "failed": failed, "root": root.to_dict()})
    else:
        out.text(f"{len(samples)} samples, seeds {seed}..{requests[-1].sampler.seed}, up to {base.max_tokens} tokens"
                 " each; count/N, p = raw probability of the segment, * = greedy path\n")
        for line in text_lines(root, len(samples)):
            out.text(line + "\n")
    return out.status or (1 if failed else 0)


def text_lines(root: TreeNode, n: int, indent: str = "  ") -> list[str]:
    """The tree as indented lines; a chain of nodes that no sample leaves is one line (its
    tokens' texts joined, p the product of their probabilities). Texts are made inert."""
    lines: list[str] = []
    stack: list[tuple[TreeNode, int]] = [(child, 0) for child in reversed(root.children)]
    while stack:
        node, depth = stack.pop()
        if node.end is not None:
            lines.append(f"{indent * depth}[{node.end}] {node.count}/{n}")
            continue
        segment, logprob, greedy = [node], node.logprob, node.greedy
        while len(segment[-1].children) == 1 and segment[-1].children[0].end is None:
            nxt = segment[-1].children[0]
            segment.append(nxt)
            logprob = None if logprob is None or nxt.logprob is None else logprob + nxt.logprob
            greedy = greedy and nxt.greedy
        text = "".join(s.text if s.text else f"<{s.id}>" for s in segment)
        p = "p=?" if logprob is None else f"p={math.exp(logprob):.3g}"
        lines.append(f"{indent * depth}\"{inert_line(text)}\" {node.count}/{n} {p}{' *' if greedy else ''}")
        stack.extend((child, depth + 1) for child in reversed(segment[-1].children))
    return lines
