"""The limits of a session file, in one place: the writer keeps to them, the reader enforces them.

Whatever the writer produces, the reader accepts: ``store.save`` repairs or trims a session to fit
these limits *before* writing (``fit.py``), and ``validate.py`` rejects a file beyond them with the
path of the offending value. The numbers are far above any real run (6 lanes x 4096 tokens x 100
alternatives is a few MiB) and low enough that a hostile file cannot stall or overflow a replay.
"""

from __future__ import annotations

from playground.params import MAX_TOP_N

#: A session file larger than this is refused by the reader; the writer trims to stay below it.
MAX_SESSION_BYTES = 64 * 1024 * 1024

#: Characters in any one string (a token's text, the prompt, an error message...).
MAX_TEXT_CHARS = 4 * 1024 * 1024

#: Token ids are int32 in llama.cpp; -1 is "not given" (a remote backend that does not say).
MIN_TOKEN_ID = -1
MAX_TOKEN_ID = 2**31 - 1

#: Counts and sizes that llama.cpp or numpy hold in a C int (n_ctx, top_k, n_candidates...).
MAX_INT32 = 2**31 - 1

#: Byte sizes (the model file's).
MAX_INT64 = 2**63 - 1

#: Alternatives kept per token (what ``--top-n`` allows).
MAX_ALTERNATIVES = MAX_TOP_N

#: Entries of the raw distribution head kept per token.
MAX_DIST_HEAD = 65536

#: Any time in a session (a token's ``t``, a lane's offset or duration): one week, in seconds.
MAX_SECONDS = 7 * 24 * 3600.0

#: The lowest log-probability stored: ``events.round_logprob`` writes -inf (probability 0) as this.
MIN_LOGPROB = -1e30

#: A raw log-probability from float32 logits can round to a hair above 0 for a certain token.
LOGPROB_SLACK = 1e-3

#: The log normaliser of raw logits (``log_z``); float32 logits keep it far inside this.
MAX_ABS_LOG_Z = 1e6
