"""UI benchmarks (a script, not a test): ``python -m playground.ui.bench_ui [--seconds 5] [--rate 2000]``.

1. start to interactive: a child process runs the real app and reports when its first screen is
   ready for input (the model still loading in its worker);
2. streaming: a synthetic stream of ``--rate`` tokens/s (each with a 512-entry distribution head)
   is pushed through the main screen's run driver; the backlog found at each frame must not grow;
3. slider -> distribution: reshape + redraw time of the distribution view per slider step.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import threading
import time

import numpy as np

from playground.events import DoneEvent, RawDistribution, StartEvent, TokenEvent
from playground.params import SamplerParams


def synthetic_events(n: int, rate: float, pump, vocab: int = 49152, head: int = 512) -> None:
    """Put a start event, ``n`` tokens at ``rate``/s, and a done event into ``pump`` (a thread)."""
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(64, vocab)).astype(np.float32) * 3
    dists = []
    for row in logits:
        ids = np.argsort(-row)[:head]
        log_z = float(np.log(np.exp(row - row.max()).sum()) + row.max())
        dists.append(RawDistribution(ids.astype(np.int32), row[ids].astype(np.float64) - log_z, vocab, log_z))
    words = [" 안녕", " the", " quick", "\n", " brown", " 狐狸", " fox", ",", " jumps"]
    pump.put(StartEvent(model={}, prompt="bench", prompt_tokens=(1, 2, 3), params=SamplerParams(seed=1).to_dict()))
    t0 = time.perf_counter()
    for i in range(n):
        due = t0 + i / rate
        while (now := time.perf_counter()) < due:
            time.sleep(min(0.001, due - now))
        d = dists[i % len(dists)]
        pump.put(TokenEvent(i=i, id=int(d.ids[0]), text=words[i % len(words)], logprob=float(d.logprobs[0]),
                            p_sampled=0.5, top=(), t=now - t0, n_candidates=40, entropy=2.0, dist=d))
    pump.put(DoneEvent("length", n, 0.01, 1000.0, rate, 3, seed=1))


def _no_model_app():
    from playground.ui.app import PlaygroundApp
    from playground.ui.settings import AppSettings

    class NoModel(PlaygroundApp):
        def _load_engine(self) -> None:  # the benchmarks feed synthetic events
            pass

    return NoModel(AppSettings())


async def bench_stream(seconds: float, rate: float) -> dict[str, float]:
    from playground.ui.widgets.completion import CompletionView

    app = _no_model_app()  # the stream is synthetic
    async with app.run_test(size=(160, 48)) as pilot:
        screen = app.screen
        driver = screen.driver
        backlogs: list[int] = []
        durations: list[float] = []
        drain = driver.drain

        def timed_drain() -> None:
            backlogs.append(len(driver.pump))
            t = time.perf_counter()
            drain()
            durations.append(time.perf_counter() - t)

        driver.drain = timed_drain  # the frame timer calls it through the attribute
        driver._timer.stop()
        driver._timer = driver.set_interval(1 / 30, timed_drain, pause=True)
        n = int(seconds * rate)
        produced = threading.Event()

        class Put:  # the pump's put, seen as a pump by synthetic_events
            def __init__(self, put) -> None:
                self.put = put

        async def produce(put) -> None:
            await asyncio.to_thread(synthetic_events, n, rate, Put(put))
            produced.set()

        t0 = time.perf_counter()
        driver.start_async(produce, kind="bench")
        while not produced.is_set():
            await pilot.pause(0.05)
        t_produced = time.perf_counter()
        while screen.running:
            await pilot.pause(0.005)
        lag = time.perf_counter() - t_produced
        elapsed = time.perf_counter() - t0
        view = screen.query_one(CompletionView)
        assert view.token_count == n, (view.token_count, n)
        half = len(backlogs) // 2
        return {
            "tokens": n,
            "tokens_per_s_offered": rate,
            "elapsed_s": elapsed,
            "frames": len(durations),
            "drain_ms_mean": 1000 * statistics.mean(durations),
            "drain_ms_p95": 1000 * sorted(durations)[int(0.95 * (len(durations) - 1))],
            # events waiting at each frame: flat from the first half to the second = no growing backlog
            "backlog_first_half_mean": statistics.mean(backlogs[:half] or [0]),
            "backlog_second_half_mean": statistics.mean(backlogs[half:] or [0]),
            "backlog_max": max(backlogs or [0]),
            "lag_after_last_token_s": lag,
        }


async def bench_slider(steps: int = 60) -> dict[str, float]:
    from playground.ui.widgets.distribution import DistributionView
    from playground.ui.widgets.slider import Slider

    app = _no_model_app()
    async with app.run_test(size=(160, 48)) as pilot:
        screen = app.screen
        rng = np.random.default_rng(1)
        row = rng.normal(size=49152).astype(np.float32) * 3
        ids = np.argsort(-row)[:512]
        log_z = float(np.log(np.exp(row - row.max()).sum()) + row.max())
        dist = screen.query_one(DistributionView)
        dist.show(RawDistribution(ids.astype(np.int32), row[ids].astype(np.float64) - log_z, 49152, log_z),
                  history=list(ids[:20]), chosen=int(ids[0]), position=0)
        await pilot.pause()
        slider = screen.query_one("#s-temperature", Slider)
        times = []
        for i in range(steps):
            slider.action_step(1 if i % 20 < 10 else -1)  # Changed -> screen -> set_params -> reshape
            await pilot.pause()  # the message is handled and the view repainted
            times.append(dist.last_redraw_s + dist.last_reshape_s)
        return {"steps": steps, "reshape_plus_render_ms_mean": 1000 * statistics.mean(times),
                "reshape_plus_render_ms_max": 1000 * max(times)}


def bench_startup(runs: int = 3) -> dict[str, float]:
    code = (
        "import time, sys; t0 = float(sys.argv[1])\n"
        "from playground.ui.app import PlaygroundApp, make_app\n"
        "from playground.ui.settings import AppSettings\n"
        "class Timed(PlaygroundApp):\n"
        "    def on_ready(self):\n"
        "        self.ready_at = time.time()\n"
        "        self.exit(0)\n"
        "app = Timed(AppSettings())\n"
        "app.run(headless=True)\n"
        "print(app.ready_at - t0)\n"
    )
    values = []
    for _ in range(runs):
        out = subprocess.run([sys.executable, "-c", code, repr(time.time())], capture_output=True, text=True, timeout=60)
        values.append(float(out.stdout.strip().splitlines()[-1]))
    return {"runs": runs, "start_to_interactive_s_min": min(values), "start_to_interactive_s_max": max(values)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rate", type=float, default=2000.0)
    args = parser.parse_args(argv)
    print("startup:", bench_startup())
    print("stream: ", asyncio.run(bench_stream(args.seconds, args.rate)))
    print("slider: ", asyncio.run(bench_slider()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
