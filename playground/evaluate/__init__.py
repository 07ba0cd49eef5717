"""Evaluation: a suite of test cases run on prompt variants, scored by assertions on the
generated text and by the model's exact probability of the expected answer (teacher-forced).

``suite`` reads and checks the TOML suite format (and JSONL / CSV case files), ``assertions`` and
``json_schema`` check one output, ``judge`` has a model grade it, ``variants`` holds the prompt
variants (and the few-shot ablation), ``run`` runs the cells (case x variant) on the run job and
the teacher-forced scorer, ``scoring`` sums them up, ``results`` writes the resumable results file
and the CSV export.
"""
