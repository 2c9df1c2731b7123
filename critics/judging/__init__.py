"""The judging floor: a critic meets a record (DESIGN.md, "Layout").

``tasks`` (one row per task), ``templates``, ``verdicts`` (the one parser), ``checks`` (RLAC),
``generation`` (the one local generation engine and the loaded-model object), ``chat`` (the one
chat-model class tree), ``budget`` (prompts measured in tokens), ``spec`` (the critic spec a
checkpoint carries), ``judge`` (records -> critiques), ``votes`` (k sampled critiques -> one),
``meta`` (the meta RM that ranks them), ``polar`` (scalar reference layouts) and ``records``
(loading built datasets). Import from the modules; this file only wires.
"""
