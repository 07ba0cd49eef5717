"""An independent reference for token probabilities: llama-cpp-python's high-level ``Llama``.

It follows the engine's decode schedule (the prompt in chunks of ``prefill_chunk`` tokens from
position 0, as the start event reports it, then one token per decode: ``Llama.eval`` feeds
``n_batch`` tokens per decode) and computes log-softmax in float64 from each step's logits. It
shares none of the engine's code.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def reference_logprobs(model_path: Path, prompt_tokens: list[int], tokens: list[int], n_ctx: int = 2048, n_threads: int | None = None, flash_attn: bool = True,
                       prefill_chunk: int | None = None):
    """Per generated position: (log-softmax vector in float64) before each of ``tokens``."""
    import llama_cpp

    kwargs = {"n_threads": n_threads} if n_threads else {}
    # None: the whole prompt in one call (llama.cpp then micro-batches it by 512 from position 0)
    batch = {"n_batch": n_ctx} if prefill_chunk is None else {"n_batch": prefill_chunk, "n_ubatch": prefill_chunk}
    llm = llama_cpp.Llama(
        model_path=str(model_path), n_ctx=n_ctx, logits_all=False, verbose=False, flash_attn=flash_attn, **batch, **kwargs
    )
    try:
        out = []
        llm.eval(prompt_tokens)
        for tok in tokens:
            ptr = llama_cpp.llama_get_logits(llm.ctx)  # the batch's one output: its last token
            logits = np.ctypeslib.as_array(ptr, shape=(llm.n_vocab(),)).astype(np.float64)
            m = logits.max()
            out.append(logits - (m + np.log(np.exp(logits - m).sum())))
            llm.eval([tok])
        return out
    finally:
        llm.close()
