"""Evaluation: a suite of test cases run on prompt variants, scored by assertions on the
generated text and by the model's exact probability of the expected answer (teacher-forced).

``suite`` reads and checks the TOML suite format (and JSONL case files), ``assertions`` and
``json_schema`` judge one output, ``run`` runs the cells (case x variant) on the run job and the
teacher-forced scorer, ``scoring`` sums them up.
"""
