"""Run a suite: every case on every variant, generated through the run job and scored.

A cell is one case on one variant. Its prompt is rendered with ``prompt_builder`` (the model's
chat template, or plain), generated as a one-lane ``RunJob`` on the shared ``EnginePool`` (cells
have different prompts, and the batched lanes of one job share one prompt), and then the
expected answer (or each choice) is teacher-forced after the same prompt tokens on the same
engine (``engine.teacher``): right after generation the prompt is still in the KV cache, so the
scores evaluate no prompt token again. Judge assertions (``evaluate.judge``) run after that, each
a one-lane job of its own on the judge's target.

Remote cells (an ``endpoint``): each variant's cases are the lanes of one job on that endpoint,
at most ``concurrency`` requests in flight (the endpoint's ``max_concurrency`` otherwise); the
backend retries HTTP 429 and honours Retry-After. Cells come out as their lanes end. Answer
log-probabilities need the local model's exact distribution, so a remote cell has none (null).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import replace
from typing import Any

from playground.backends.endpoints import Endpoint
from playground.compare.events import LaneEvent
from playground.compare.job import EnginePool, LanePlan, RunJob
from playground.compare.mixed import LaneTarget
from playground.engine.teacher import AnswerScore, ChoiceScores, answer_tokens, score_answer, score_choices
from playground.errors import InvalidParameterError, PlaygroundError
from playground.evaluate.assertions import AssertResult, Assertion, Output, check
from playground.evaluate.cell import CellResult
from playground.evaluate.judge import JudgeSpec, grade, judge_request, judge_text, render_judge
from playground.evaluate.suite import Case, PromptFields, Suite
from playground.evaluate.variants import Variant
from playground.events import DoneEvent, FailedEvent
from playground.params import GenerationRequest
from playground.prompt_builder import ChatTemplate, Example, PromptSpec, RenderedPrompt, chat_template_of, render
from playground.transcript import Transcript

#: What a remote cell's receipt says about the scores it lacks.
REMOTE_SCORES = "not computed: answer log-probabilities are teacher-forced on the local model only"

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
    """The cells of a suite on its variants, run one after another on one local model (or together
    on a remote endpoint).

    Args:
        base: the command line's request (sampler, max tokens, stop strings); each cell replaces
            the prompt and applies its variant's sampler overrides.
        generate: False scores the expected answers only (no generation, no assertions).
        judge: how judge assertions run (the suite's ``[judge]``); ``judge_endpoint`` its remote
            target (None: the local model ``judge.model``, or the pool's default).
        endpoint: run the cells there instead of on the local model; ``concurrency`` bounds its
            requests in flight (None: the endpoint's own ``max_concurrency``).
        skip: (variant, case index) pairs already done (a resumed run): not run again.
    """

    def __init__(self, suite: Suite, variants: Sequence[Variant], pool: EnginePool, base: GenerationRequest,
                 *, generate: bool = True, judge: JudgeSpec | None = None, judge_endpoint: Endpoint | None = None,
                 endpoint: Endpoint | None = None, concurrency: int | None = None,
                 environ: Mapping[str, str] | None = None, skip: frozenset[tuple[str, int]] = frozenset()) -> None:
        if endpoint is not None and not generate:
            raise InvalidParameterError("--score-only needs the local model (answer scores are local only)")
        self.suite = suite
        self.variants = list(variants)
        self.pool = pool
        self.base = base
        self.generate = generate
        self.judge = judge or JudgeSpec()
        self.judge_endpoint = judge_endpoint
        self.endpoint = endpoint if endpoint is None or concurrency is None else replace(endpoint, max_concurrency=concurrency)
        self.environ = environ
        self.skip = skip
        self.receipt: dict[str, Any] = {}
        if endpoint is not None:
            self.receipt = {"backend": endpoint.name, "kind": endpoint.kind, "model": endpoint.model,
                            "max_concurrency": self.endpoint.max_concurrency, "answer_logprob": REMOTE_SCORES}
        self._cancel = threading.Event()
        self._jobs: list[RunJob] = []

    def cancel(self) -> None:
        """Stop at the next token of the running cell; no further cell starts (safe from any thread)."""
        self._cancel.set()
        for job in list(self._jobs):
            job.cancel()

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def cells(self) -> Iterator[CellResult]:
        """Each cell's result as soon as it is done, variant by variant (blocking)."""
        for variant in self.variants:
            base = replace(self.base, sampler=variant.sampler(self.base.sampler))
            cases = [c for c in self.suite.cases if (variant.name, c.index) not in self.skip]
            if self.endpoint is not None:
                yield from self._remote_cells(variant, cases, base)
                continue
            for case in cases:
                if self.cancelled:
                    return
                yield self.run_cell(variant, case, base)

    def _engine(self, request: GenerationRequest):
        engine = self.pool.backend(LaneTarget(), [request]).engine
        if "schedule" not in self.receipt:
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
            cell = self._finished(cell, self._run_one(LanePlan(request)))
        return self._judged(self._scored(cell, engine, variant.prompt.prefix))

    def _run_one(self, plan: LanePlan, template_for: Any = None) -> Transcript:
        """One lane run to its end; ``template_for(job)`` may replace its request once the models
        are loaded (a judge's chat template)."""
        job = RunJob([plan], self.pool, environ=self.environ)
        self._jobs.append(job)
        try:
            if self._cancel.is_set():
                job.cancel()
            if template_for is not None:
                job.prepare()
                job.with_requests([template_for(job)])
            events = job.stream()
            try:
                for _ in events:
                    pass
            finally:
                events.close()
        finally:
            self._jobs.remove(job)
        return job.transcripts[0]

    def _remote_cells(self, variant: Variant, cases: Sequence[Case], base: GenerationRequest) -> Iterator[CellResult]:
        """The cases as the lanes of one job on the endpoint, each cell as soon as its lane ends."""
        if not cases or self.cancelled:
            return
        target = LaneTarget(self.endpoint)
        plans = []
        for case in cases:
            rendered = render_case(variant.prompt, case, None)  # chat endpoints get the messages
            plans.append(LanePlan(replace(base, prompt=rendered.text, add_special=rendered.add_special,
                                          messages=rendered.messages).validate(), target))
        job = RunJob(plans, self.pool, environ=self.environ)
        self._jobs.append(job)
        events = job.stream()
        try:
            for item in events:
                if isinstance(item, LaneEvent) and isinstance(item.event, (DoneEvent, FailedEvent)):
                    lane = job.transcripts[item.lane]
                    ids = tuple(lane.start.prompt_tokens) if lane.start is not None else ()
                    yield self._judged(self._finished(CellResult(variant.name, cases[item.lane], ids), lane))
        finally:
            events.close()
            self._jobs.remove(job)

    @staticmethod
    def _finished(cell: CellResult, lane: Transcript) -> CellResult:
        """The cell with its lane's output and the assertions that need no model (judges come later)."""
        end = lane.end
        output = Output(lane.text, len(lane.tokens), None if lane.elapsed_s is None else lane.elapsed_s * 1000.0)
        error = f"{end.title}: {end.message}" if isinstance(end, FailedEvent) else None
        if isinstance(end, DoneEvent) and end.finish_reason == "cancelled":
            error = "cancelled"
        asserts = tuple(check(a, output) for a in cell.case.asserts if a.type != "judge") if error is None else ()
        return replace(cell, output=output.text, finish_reason=end.finish_reason if isinstance(end, DoneEvent) else None,
                       n_tokens=output.n_tokens, latency_ms=output.latency_ms, asserts=asserts, error=error)

    def _judged(self, cell: CellResult) -> CellResult:
        """The cell with its judge assertions run, in the order the case gives its assertions."""
        judges = [a for a in cell.case.asserts if a.type == "judge"]
        if not judges or cell.output is None or cell.error is not None:
            return cell
        done = iter(cell.asserts)
        results: list[AssertResult] = []
        error = None
        for assertion in cell.case.asserts:
            if assertion.type != "judge":
                results.append(next(done))
                continue
            result, problem = self.run_judge(assertion, cell.case, cell.output)
            results.append(result)
            error = error or problem
        return replace(cell, asserts=tuple(results), error=error)

    def run_judge(self, assertion: Assertion, case: Case, output: str) -> tuple[AssertResult, str | None]:
        """One judge assertion on one output: its result, and why the judge failed to run (or None)."""
        spec = self.judge
        text = judge_text(spec, assertion, case, output)
        target = LaneTarget(self.judge_endpoint, None if self.judge_endpoint else spec.model)

        def rendered_for(job: RunJob) -> GenerationRequest:
            template = None if target.is_remote else chat_template_of(job.local_backend(target).engine)
            return judge_request(spec, render_judge(spec, text, template))

        lane = self._run_one(LanePlan(judge_request(spec, render_judge(spec, text, None)), target), rendered_for)
        where = {"backend": target.endpoint.name if target.endpoint else "local",
                 "model": target.endpoint.model if target.endpoint else (spec.model or "default"), "prompt": text}
        end = lane.end
        if isinstance(end, FailedEvent) or (isinstance(end, DoneEvent) and end.finish_reason == "cancelled"):
            why = "cancelled" if isinstance(end, DoneEvent) else f"{end.title}: {end.message}"
            return AssertResult("judge", False, f"the judge did not run to its end ({why})", {**where, "output": lane.text}), \
                f"judge: {why}"
        return grade(assertion, spec, lane.text, lane.tokens, where), None

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
