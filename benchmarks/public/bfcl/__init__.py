"""The Berkeley Function Calling Leaderboard (BFCL v4) through the cascade's framework adapters.

``data`` reads questions, function docs and possible answers from the ``bfcl-eval`` wheel,
``tools`` turns BFCL's function docs into JSON-schema tools, ``scoring`` runs BFCL's own AST
checker on the tool calls, ``run`` sends every question through ``ChatCascade.bind_tools(...).invoke``
(and a subset through ``CascadeLLM``), ``report`` writes the per-category table.
"""
