"""Training recipes, one module each: ``sft``, ``critic_rl``."""
