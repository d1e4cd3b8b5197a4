"""``lmforge loop``: rounds of generate, feedback, reward model, RL, eval and red team (docs/loop.md)."""
