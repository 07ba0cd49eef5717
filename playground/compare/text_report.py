"""The readable (non-JSON) layout of ``playground compare``: lane blocks, divergence, vote."""

from __future__ import annotations

from typing import TextIO

from playground.compare.events import BatchDone, Divergence, TokenChoice, Vote
from playground.compare.lane_spec import format_lane_spec
from playground.compare.lessons import confidence_gaps, gap_line, lane_summary, strongest_gap
from playground.compare.run import LaneTranscript
from playground.events import DoneEvent, FailedEvent
from playground.params import SamplerParams

_BAR = 30


def _prob(choice: TokenChoice | None) -> str:
    if choice is None:
        return "(ended)"
    p = "not available" if choice.prob is None else f"p={choice.prob:.3f}"
    return f"{choice.text!r} ({p})"


def _end_line(lane: LaneTranscript) -> str:
    end = lane.end
    if isinstance(end, FailedEvent):
        return f"failed after {end.n_tokens} tokens: {end.title}: {end.message}"
    if isinstance(end, DoneEvent):
        rate = f", {end.decode_tok_s:.1f} tok/s" if end.decode_tok_s else ""
        stop = f" at {end.stop_string!r}" if end.stop_string else ""
        return f"{end.n_tokens} tokens, {end.finish_reason}{stop}{rate}"
    return "no result"


def write_lane(out: TextIO, index: int, lane: LaneTranscript, variant: str | None = None) -> None:
    """One finished lane: a header with its settings (and variant), its text, and how it ended."""
    params = lane.start.params if lane.start else {}
    label = format_lane_spec(SamplerParams.from_dict(params)) if params else "?"
    where = ""
    if lane.start is not None and lane.start.backend != "llama.cpp":
        where = f" · {lane.start.model.get('endpoint') or lane.start.backend}"
    named = f" · {variant}" if variant else ""
    out.write(f"── lane {index}{named} · {label} · seed {params.get('seed')}{where} ──\n")
    out.write(lane.text.rstrip("\n") + "\n")
    out.write(f"   [{_end_line(lane)}]\n")
    out.write(f"   {lane_summary(lane.tokens, lane.end).line()}\n\n")


def write_sample(out: TextIO, index: int, lane: LaneTranscript, answer: str | None) -> None:
    seed = lane.start.params.get("seed") if lane.start else None
    first = " ".join(lane.text.split())
    first = first if len(first) <= 60 else first[:59] + "…"
    shown = "(no answer)" if answer is None else repr(answer)
    out.write(f"#{index:<2} seed {seed}: {shown:<16} {_end_line(lane)} | {first}\n")


def write_divergence(out: TextIO, div: Divergence, lanes: list[LaneTranscript] | None = None) -> None:
    """Where the lane leaves the reference, and (given the transcripts) how differently sure the
    model was of the tokens they share."""
    how = " (compared by token text: ids not comparable)" if div.by == "text" else ""
    if div.index is None:
        out.write(f"lane {div.lane} = lane {div.reference}: identical completions{how}\n")
    else:
        out.write(
            f"lane {div.lane} leaves lane {div.reference} at token {div.index}: "
            f"{_prob(div.token)} vs {_prob(div.reference_token)}{how}\n"
        )
    if lanes is not None and max(div.lane, div.reference) < len(lanes):
        gaps = confidence_gaps(lanes[div.lane].tokens, lanes[div.reference].tokens, by_text=div.by == "text")
        gap = strongest_gap(gaps)
        if gap is not None:
            mean = sum(g.delta for g in gaps) / len(gaps)
            out.write(f"   on the {len(gaps)} shared tokens: lane {div.lane} is {gap_line(gap)}; "
                      f"mean logprob difference {mean:+.3f}\n")


def write_batch(out: TextIO, batch: BatchDone) -> None:
    rate = f"{batch.decode_tok_s:.1f} tok/s aggregate" if batch.decode_tok_s else "no decode rate"
    which = f"[lanes {', '.join(map(str, batch.lanes))}] " if batch.lanes else ""
    out.write(
        f"{which}{batch.n_lanes} lanes: prompt {batch.prompt_tokens} tokens ({batch.prompt_tokens_evaluated} evaluated, "
        + (f"{batch.n_prompts} prompts, {batch.prompt_tokens_shared} positions shared" if batch.n_prompts > 1 else "once for all lanes")
        + f") in {batch.prompt_s:.2f} s; {batch.n_tokens} tokens in {batch.n_steps} batched "
        f"steps, {rate}; {batch.wall_s:.2f} s in all\n"
    )


def write_vote(out: TextIO, vote: Vote, extractor_name: str) -> None:
    out.write(f"\nanswers ({extractor_name}), {vote.n_samples} samples:\n")
    top = max(vote.answers.values(), default=1)
    for answer, count in vote.answers.items():
        bar = "█" * max(1, round(_BAR * count / top))
        out.write(f"  {answer!r:<20} {count:>3}  {bar}\n")
    if vote.no_answer:
        out.write(f"  {'(no answer)':<20} {vote.no_answer:>3}\n")
    majority = "none" if vote.majority is None else repr(vote.majority)
    tie = f" (tied with {', '.join(repr(t) for t in vote.tied[1:])})" if vote.tied else ""
    out.write(f"majority: {majority}{tie}; agreement {vote.agreement:.0%}\n")
