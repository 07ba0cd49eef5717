"""What the user is working on, owned by the app and shared by every screen (pure: no Textual).

The main screen edits the prompt, the examples, the sampler and the limits; the compare screen
adds its lanes. Both read and write this one object instead of reading each other's widgets, and
both turn it into requests the same way (``request``).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from playground.compare.lane_spec import LaneSpec
from playground.constraint import Constraint
from playground.errors import PlaygroundError
from playground.params import GenerationRequest, SamplerParams
from playground.prompt_builder import ChatTemplate, PromptSpec, RenderedPrompt, render


def default_lanes(sampler: SamplerParams) -> list[LaneSpec]:
    """The classic comparison: greedy next to the workspace's sampler (seeded, so re-runs repeat)."""
    sampled = sampler.replace(greedy=False, seed=sampler.seed if sampler.seed >= 0 else 1)
    if sampled.temperature <= 0:
        sampled = sampled.replace(temperature=0.8)
    return [LaneSpec(SamplerParams(greedy=True)), LaneSpec(sampled)]


@dataclass
class Workspace:
    """The prompt setup, sampler, limits and compare lanes of this app session."""

    spec: PromptSpec = field(default_factory=PromptSpec)
    """Prompt parts, examples (with their enabled flags and format) and template mode."""
    sampler: SamplerParams = field(default_factory=SamplerParams)
    """The sampler sliders."""
    max_tokens: int = 256
    stop: tuple[str, ...] = ()
    top_n: int = 10
    """Alternatives kept per token."""
    constraint: Constraint | None = None
    """Structured output (JSON schema, grammar, choices) every run of the workspace keeps to."""
    lanes: list[LaneSpec] = field(default_factory=list)
    """The compare screen's lanes (each a sampler and where it runs); empty: ``default_lanes``."""

    def __post_init__(self) -> None:
        if not self.lanes:
            self.lanes = default_lanes(self.sampler)

    def rendered(self, template: ChatTemplate | None) -> RenderedPrompt:
        return render(self.spec, template)

    def request(self, template: ChatTemplate | None, sampler: SamplerParams | None = None,
                *, empty_hint: str = "type a prompt first") -> GenerationRequest:
        """The prompt as rendered by ``template`` with the limits and ``sampler`` (default: the sliders).

        Raises:
            PlaygroundError: an empty prompt or a setting out of range.
        """
        rendered = self.rendered(template)
        if not rendered.text:
            raise PlaygroundError(empty_hint, title="Empty prompt")
        return GenerationRequest(
            prompt=rendered.text, sampler=sampler or self.sampler, max_tokens=self.max_tokens, stop=self.stop,
            top_n=self.top_n, add_special=rendered.add_special, messages=rendered.messages,
            constraint=self.constraint,
        ).validate()

    def lane_requests(self, template: ChatTemplate | None) -> list[GenerationRequest]:
        """One request per compare lane: the shared prompt and limits, each lane's sampler."""
        base = self.request(template, empty_hint="type a prompt on the main screen first (ctrl+l)")
        return [replace(base, sampler=lane.sampler) for lane in self.lanes]
