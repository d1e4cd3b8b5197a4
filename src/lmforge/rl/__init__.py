"""RL fine-tuning of chat models (PPO, GRPO, RLOO) on the one training engine; see docs/rl.md."""
