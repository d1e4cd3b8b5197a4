"""``lmforge sft inspect``: which tokens of a rendered example carry loss.

Each token is printed as its text; tokens that carry loss are shown in bold green (on a terminal) and also
between ``[[`` and ``]]`` so the view survives copying into a plain file; special tokens are shown as is.
"""
from __future__ import annotations

from rich.console import Console
from rich.text import Text

from ..data.chat import load_mixture
from ..data.sft_tokenize import set_chat_template, tokenize_examples
from ..errors import InputError


def render_mask(tokenizer, ids: list[int], mask: list[bool], markers: bool = True) -> Text:
    """A rich ``Text`` of the tokens with loss-bearing runs highlighted (and bracketed with ``markers``)."""
    text = Text()
    inside = False
    for tid, on in zip(ids, mask):
        piece = tokenizer.decode([tid], skip_special_tokens=False, clean_up_tokenization_spaces=False)
        if on and not inside and markers:
            text.append("[[", style="dim")
        if not on and inside and markers:
            text.append("]]", style="dim")
        inside = on
        text.append(piece, style="bold green" if on else "")
    if inside and markers:
        text.append("]]", style="dim")
    return text


def inspect(cfg, n: int = 3, start: int = 0, console: Console | None = None) -> dict:
    """Print ``n`` examples from the mixture with their loss masks; returns the data stats."""
    from ..models.load import load_tokenizer

    if not cfg.model.path and not cfg.model.tokenizer:
        raise InputError("model.path (or model.tokenizer) is required to render the template", field="model.path")
    console = console or Console(highlight=False, soft_wrap=True)
    tokenizer = load_tokenizer(cfg.model.tokenizer or cfg.model.path)
    set_chat_template(tokenizer, cfg.data.chat_template)
    examples, counts = load_mixture(cfg.data.sources, cfg.data.world_seed, cfg.train.seed)
    shown = examples[start:start + n]
    tokens, _ = tokenize_examples(tokenizer, shown, cfg.data.max_length, cfg.data.truncation, cfg.data.loss_spans)
    by_where = {t.where: t for t in tokens}
    for ex in shown:
        t = by_where.get(ex.where)
        console.rule(f"{ex.where}  ({ex.meta.get('source', '')})")
        if t is None:
            console.print(f"dropped: longer than data.max_length={cfg.data.max_length} "
                          f"(data.truncation={cfg.data.truncation})")
            continue
        targets = sum(t.mask[1:])
        console.print(render_mask(tokenizer, t.input_ids, t.mask))
        console.print(f"[dim]{len(t)} tokens, {targets} carry loss{', truncated' if t.truncated else ''}[/dim]")
    _, stats = tokenize_examples(tokenizer, examples, cfg.data.max_length, cfg.data.truncation, cfg.data.loss_spans)
    console.rule("whole mixture")
    for name, c in counts.items():
        console.print(f"{name}: {c['read']} read, {c['used']} used after weighting")
    s = stats.as_dict()
    console.print(", ".join(f"{k} {v}" for k, v in s.items()))
    return s
