"""AI feedback (RLAIF): a judge model ranks, and optionally scores, the responses of a labeling batch.

- :mod:`.rubric` the five-criteria rubric, or a user's principles (a constitution) from YAML or text
- :mod:`.prompts` the judge's prompts and reading a written verdict
- :mod:`.core` both-order pairwise comparisons, their combination, the ranking, storing labels as ``ai:<name>``
- :mod:`.local` a Hugging Face causal LM scored by verdict log-probabilities
- :mod:`.endpoint` any OpenAI-compatible chat-completions endpoint
- :mod:`.compare` agreement between the judge and the other labelers
"""
from .compare import judge_agreement
from .core import COMBINATION_RULE, Backend, combine, decide, item_queries, judge_batch, rank
from .prompts import Query, parse_verdict
from .rubric import Rubric, default_rubric, load_rubric

__all__ = ["COMBINATION_RULE", "Backend", "Query", "Rubric", "combine", "decide", "default_rubric",
           "item_queries", "judge_agreement", "judge_batch", "load_rubric", "parse_verdict", "rank"]
