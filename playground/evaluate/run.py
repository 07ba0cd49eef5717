"""Run a suite: every case on every variant, generated through the run job and scored.

A cell is one case on one variant. Its prompt is rendered with ``prompt_builder`` (the model's
chat template, or plain), generated as a one-lane ``RunJob`` on the shared ``EnginePool`` (cells
have different prompts, and the batched lanes of one job share one prompt), and then the
expected answer (or each choice) is teacher-forced after the same prompt tokens on the same
engine (``engine.teacher``): right after generation the prompt is still in the KV cache, so the
scores evaluate no prompt token again.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from dataclasses import replace
from typing import Any

from playground.compare.job import EnginePool, LanePlan, RunJob
from playground.compare.mixed import LaneTarget
from playground.engine.teacher import AnswerScore, ChoiceScores, answer_tokens, score_answer, score_choices
from playground.errors import PlaygroundError
from playground.evaluate.assertions import Output, check
from playground.evaluate.cell import CellResult
from playground.evaluate.suite import Case, PromptFields, Suite
from playground.evaluate.variants import Variant
from playground.events import DoneEvent, FailedEvent
from playground.params import GenerationRequest
from playground.prompt_builder import ChatTemplate, Example, PromptSpec, RenderedPrompt, chat_template_of, render

#: How the scores are computed, for the receipt.
SCHEDULE = ("prompt through Engine.evaluate_prompt in chunks of prefill_chunk tokens, then one answer "
            "token per decode (the generation schedule); log-softmax of the raw logits (T = 1)")


def render_case(fields: PromptFields, case: Case, template: ChatTemplate | None) -> RenderedPrompt:
    """The prompt a case becomes under a variant's prompt fields."""
    spec = PromptSpec(
        mode="structured",
        instruction=case.vars.get("instruction", fields.instruction),
        context=case.vars.get("context", fields.context),
        input=case.vars["input"],
        examples=tuple(Example(i, o) for i, o in fields.examples),
        example_format=fields.example_format,
        template="chat" if fields.template == "chat" else "plain",
    )
    return render(spec, template)


class Evaluation:
    """The cells of a suite on its variants, run one after another on one local model.

    Args:
        base: the command line's request (sampler, max tokens, stop strings); each cell replaces
            the prompt and applies its variant's sampler overrides.
        generate: False scores the expected answers only (no generation, no assertions).
    """

    def __init__(self, suite: Suite, variants: Sequence[Variant], pool: EnginePool, base: GenerationRequest,
                 *, generate: bool = True) -> None:
        self.suite = suite
        self.variants = list(variants)
        self.pool = pool
        self.base = base
        self.generate = generate
        self.receipt: dict[str, Any] = {}
        self._cancel = threading.Event()
        self._job: RunJob | None = None

    def cancel(self) -> None:
        """Stop at the next token of the running cell; no further cell starts (safe from any thread)."""
        self._cancel.set()
        if self._job is not None:
            self._job.cancel()

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def cells(self) -> Iterator[CellResult]:
        """Each cell's result as soon as it is done, variant by variant (blocking)."""
        for variant in self.variants:
            base = replace(self.base, sampler=variant.sampler(self.base.sampler))
            for case in self.suite.cases:
                if self.cancelled:
                    return
                yield self.run_cell(variant, case, base)

    def _engine(self, request: GenerationRequest):
        engine = self.pool.backend(LaneTarget(), [request]).engine
        if not self.receipt:
            self.receipt = {**engine.model.describe(), "prefill_chunk": engine.prefill_chunk, "schedule": SCHEDULE}
        return engine

    def run_cell(self, variant: Variant, case: Case, base: GenerationRequest) -> CellResult:
        engine = self._engine(base)
        rendered = render_case(variant.prompt, case, chat_template_of(engine))
        request = replace(base, prompt=rendered.text, add_special=rendered.add_special,
                          messages=rendered.messages).validate()
        try:
            prompt_tokens = tuple(engine.tokenize_prompt(request))
        except PlaygroundError as exc:  # e.g. too long for the context: this cell fails, the rest run
            return CellResult(variant.name, case, (), error=f"{exc.title}: {exc.message}")
        cell = CellResult(variant.name, case, prompt_tokens)
        if self.generate:
            cell = self._generated(cell, request)
        return self._scored(cell, engine, variant.prompt.prefix)

    def _generated(self, cell: CellResult, request: GenerationRequest) -> CellResult:
        job = self._job = RunJob([LanePlan(request)], self.pool)
        if self._cancel.is_set():
            job.cancel()
        events = job.stream()
        try:
            for _ in events:
                pass
        finally:
            events.close()
            self._job = None
        lane = job.transcripts[0]
        end = lane.end
        output = Output(lane.text, len(lane.tokens), None if lane.elapsed_s is None else lane.elapsed_s * 1000.0)
        error = f"{end.title}: {end.message}" if isinstance(end, FailedEvent) else None
        if isinstance(end, DoneEvent) and end.finish_reason == "cancelled":
            error = "cancelled"
        asserts = tuple(check(a, output) for a in cell.case.asserts) if error is None else ()
        return replace(cell, output=output.text, finish_reason=end.finish_reason if isinstance(end, DoneEvent) else None,
                       n_tokens=output.n_tokens, latency_ms=output.latency_ms, asserts=asserts, error=error)

    @staticmethod
    def _scored(cell: CellResult, engine, prefix: str) -> CellResult:
        case = cell.case
        answer: AnswerScore | None = None
        choices: ChoiceScores | None = None
        try:
            if case.choices is not None:
                choices = score_choices(engine, cell.prompt_tokens,
                                        [answer_tokens(engine, prefix + c) for c in case.choices])
                if case.expected is not None:
                    answer = choices.scores[case.choices.index(case.expected)]
            elif case.expected is not None:
                answer = score_answer(engine, cell.prompt_tokens, answer_tokens(engine, prefix + case.expected))
        except PlaygroundError as exc:
            return replace(cell, error=cell.error or f"{exc.title}: {exc.message}")
        return replace(cell, answer=answer, choices=choices)
