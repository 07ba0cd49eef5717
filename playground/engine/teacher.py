"""Teacher-forced scoring: the log-probability of a given answer right after a prompt.

Schedule: exactly a generation's. The prompt goes through ``Engine.evaluate_prompt`` (the
canonical chunks, or nothing at all when it is the engine's last prompt), the answer's first
token is scored on the prompt's kept last row, then ONE answer token per ``decode_one``, each next
token scored on that decode's row. The rows are therefore bit-identical to the rows a stream
samples from when the model produces that answer, and the log-probabilities, computed by the
same ``StatsComputer``, are equal (==) to the ``logprob`` the stream reports.

Several answers (the choices of a multiple-choice case) are scored one after another on the same
prompt: ``evaluate_prompt`` of an unchanged prompt only removes the previous answer's cells from
the KV cache (``llama_memory_seq_rm``) and evaluates nothing. Batching the choices as separate
sequences would need a context with several sequences; the gain is small for 2-5 short choices.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from playground.engine.generator import Engine
from playground.engine.token_stats import StatsComputer
from playground.errors import InvalidParameterError, PromptTooLongError


@dataclass(frozen=True)
class AnswerScore:
    """How likely the model finds one answer after the prompt (raw distribution, T = 1)."""

    tokens: tuple[int, ...]
    """The answer's token ids as scored."""
    token_logprobs: tuple[float, ...]
    """log p(token i | prompt, tokens before i), one per token."""

    @property
    def logprob(self) -> float:
        """log p(answer | prompt): the sum of the token log-probabilities."""
        return math.fsum(self.token_logprobs)

    @property
    def mean_logprob(self) -> float:
        """Per-token mean (comparable across answers of different lengths)."""
        return self.logprob / len(self.token_logprobs)


@dataclass(frozen=True)
class ChoiceScores:
    """Every choice's score and its probability normalised over the choices."""

    scores: tuple[AnswerScore, ...]
    probs: tuple[float, ...]
    """exp(logprob_i) / sum_j exp(logprob_j): sums to 1 over the choices."""
    predicted: int
    """Index of the most likely choice (the first of tied ones)."""


def answer_tokens(engine: Engine, answer: str) -> list[int]:
    """The answer's tokens as the model would generate them: no BOS, special-token text kept as text."""
    tokens = engine.model.tokenize(answer, add_special=False, parse_special=False)
    if not tokens:
        raise InvalidParameterError("the expected answer is empty: nothing to score")
    return tokens


def score_answer(engine: Engine, prompt_tokens: Sequence[int], tokens: Sequence[int],
                 stats: StatsComputer | None = None) -> AnswerScore:
    """Teacher-force ``tokens`` after ``prompt_tokens`` (see the module docstring).

    Leaves the engine's KV cache holding the prompt and all but the last answer token; the next
    ``evaluate_prompt`` trims or reuses it as usual.
    """
    if not tokens:
        raise InvalidParameterError("the answer has no tokens: nothing to score")
    model = engine.model
    if len(prompt_tokens) + len(tokens) > model.n_ctx:
        raise PromptTooLongError(
            f"the prompt ({len(prompt_tokens)} tokens) and the answer ({len(tokens)}) do not fit the "
            f"context ({model.n_ctx}); raise -c/--ctx-size")
    stats = stats or StatsComputer(model.n_vocab)
    engine.evaluate_prompt(list(prompt_tokens))
    logits = engine.prompt_logits
    logprobs: list[float] = []
    last = len(tokens) - 1
    for i, token in enumerate(tokens):
        logprobs.append(stats(logits, token, 0, with_entropy=False).logprob)
        if i < last:  # the last token's own row is not needed
            engine.decode_one(token)
            logits = engine.logits_view()
    return AnswerScore(tuple(int(t) for t in tokens), tuple(logprobs))


def normalise(logprobs: Sequence[float]) -> tuple[float, ...]:
    """Softmax over answers' total log-probabilities (log-sum-exp, so tiny values do not underflow)."""
    top = max(logprobs)
    weights = [math.exp(lp - top) for lp in logprobs]
    total = math.fsum(weights)
    return tuple(w / total for w in weights)


def score_choices(engine: Engine, prompt_tokens: Sequence[int], choices: Sequence[Sequence[int]]) -> ChoiceScores:
    """Score each choice's tokens after the same prompt, re-using its KV cache between choices."""
    if len(choices) < 2:
        raise InvalidParameterError("multiple-choice scoring needs at least two choices")
    stats = StatsComputer(engine.model.n_vocab)
    scores = tuple(score_answer(engine, prompt_tokens, tokens, stats) for tokens in choices)
    totals = [s.logprob for s in scores]
    return ChoiceScores(scores, normalise(totals), max(range(len(totals)), key=lambda i: (totals[i], -i)))
