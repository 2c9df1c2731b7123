"""Training recipes, one module each: ``sft``, ``critic_rl``, ``policy_grpo``."""
