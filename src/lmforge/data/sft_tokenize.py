"""Render chat examples through the model's own chat template and mark the tokens that carry loss.

Loss goes on every assistant turn (content and its end-of-turn token), nothing else. The assistant turns are
found as *character spans* of the rendered text, then mapped to tokens with the fast tokenizer's offsets; a
token carries loss when it overlaps a span. Spans come from, in order of preference:

1. ``{% generation %}`` blocks in the template (what ``return_assistant_tokens_mask`` uses in transformers);
2. rendering prefixes of the conversation: assistant turn *i* spans from the end of
   ``render(messages[:i], add_generation_prompt=True)`` to the end of ``render(messages[:i+1])``, when both are
   prefixes of the full rendering (true for ChatML, Llama, Zephyr... templates);
3. otherwise, the assistant content searched for in order in the rendering (templates that rewrite earlier
   turns).

Each span is then ended just after the turn's end-of-turn token (EOS, ``<|im_end|>``, ...; whitespace after it
is not trained since generation stops there); when the template emits none, the EOS string is inserted so EOS
is still learned. Labels come from these spans, never from ``input_ids != pad``, so models whose pad equals EOS
still learn to stop.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from ..errors import InputError
from .chat import Example

GENERATION_TAG = re.compile(r"\{%-?\s*generation\s*-?%\}")
END_OF_TURN = ("<|end|>", "<|im_end|>", "<|eot_id|>", "<end_of_turn>", "<|endoftext|>", "</s>")
CHATML = ("{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' }}"
          "{% if message['role'] == 'assistant' %}{% generation %}{{ message['content'] + '<|im_end|>' }}"
          "{% endgeneration %}{{ '\n' }}{% else %}{{ message['content'] + '<|im_end|>\n' }}{% endif %}"
          "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}")


@dataclass
class Tokenized:
    """Token ids and the loss mask (True: the token is a training target) of one example."""
    input_ids: list[int]
    mask: list[bool]
    where: str
    truncated: bool = False

    def __len__(self) -> int:
        return len(self.input_ids)


# ---------------------------------------------------------------------------- templates

def set_chat_template(tokenizer, template: str | None) -> None:
    """Use ``template``: ``None`` keeps the tokenizer's own, ``lmforge`` / ``chatml`` are built in, anything
    else is a file holding a Jinja template. A tokenizer with no template at all is a clear error."""
    if template == "lmforge":
        from .tokenizer import CHAT_TEMPLATE

        tokenizer.chat_template = CHAT_TEMPLATE
    elif template == "chatml":
        tokenizer.chat_template = CHATML
    elif template:
        path = Path(template).expanduser()
        if not path.is_file():
            raise InputError("chat template file not found (or use 'lmforge' / 'chatml')", file=path)
        tokenizer.chat_template = path.read_text(encoding="utf-8")
    if not getattr(tokenizer, "chat_template", None):
        raise InputError(f"the tokenizer of {getattr(tokenizer, 'name_or_path', '?')!r} has no chat template; "
                         "set data.chat_template to 'chatml', 'lmforge' or a Jinja file", field="data.chat_template")
    if not getattr(tokenizer, "is_fast", False):
        raise InputError("SFT needs a fast tokenizer (for character offsets)", field="model.path")


def end_of_turn_strings(tokenizer) -> list[str]:
    """Strings that end an assistant turn for this tokenizer: EOS first, then known chat end tokens."""
    vocab = tokenizer.get_vocab()
    out = [tokenizer.eos_token] if tokenizer.eos_token else []
    out += [t for t in END_OF_TURN if t in vocab and t not in out]
    return out


def _render(tokenizer, messages, **kw) -> str:
    return tokenizer.apply_chat_template(messages, tokenize=False, **kw)


def generation_spans(tokenizer, messages) -> tuple[str, list[tuple[int, int]]]:
    """(rendered text, character spans of the ``{% generation %}`` blocks)."""
    from transformers.utils.chat_template_utils import render_jinja_template

    texts, indices = render_jinja_template(conversations=[messages], chat_template=tokenizer.chat_template,
                                           return_assistant_tokens_mask=True, **tokenizer.special_tokens_map)
    return texts[0], [tuple(s) for s in indices[0]]


def prefix_spans(tokenizer, messages) -> tuple[str, list[tuple[int, int]]]:
    """(rendered text, assistant spans) from prefix renderings, falling back to content search."""
    full = _render(tokenizer, messages)
    spans, cursor = [], 0
    for i, m in enumerate(messages):
        if m["role"] != "assistant":
            pos = full.find(m["content"], cursor) if m["content"] else -1
            cursor = pos + len(m["content"]) if pos >= 0 else cursor
            continue
        start = end = -1
        if i > 0:
            before = _render(tokenizer, messages[:i], add_generation_prompt=True)
            upto = _render(tokenizer, messages[:i + 1])
            if full.startswith(before) and full.startswith(upto) and len(upto) > len(before) >= cursor:
                start, end = len(before), len(upto)
        if start < 0:  # a template that is not prefix-stable: find the content itself
            start = full.find(m["content"], cursor)
            if start < 0:
                raise ValueError(f"assistant turn {i + 1} not found in the rendered template")
            end = start + len(m["content"])
        spans.append((start, end))
        cursor = end
    return full, spans


def close_spans(text: str, spans: list[tuple[int, int]], ends: list[str], eos: str
                ) -> tuple[str, list[tuple[int, int]], int]:
    """End each span just after its end-of-turn token, inserting ``eos`` where the template has none.

    A span already ending (before trailing whitespace) with an end token is cut there; one whose end token
    follows just outside it (after optional whitespace) is extended to it; otherwise ``eos`` is inserted
    after the content. Returns (text, spans, number of EOS strings inserted).
    """
    out, inserted, shift = [], 0, 0
    for start, end in spans:
        start, end = start + shift, end + shift
        stop = start + len(text[start:end].rstrip())
        if any(text[start:stop].endswith(e) for e in ends):
            out.append((start, stop))
            continue
        after = text[stop:]
        gap = len(after) - len(after.lstrip())
        tail = next((e for e in ends if after[gap:].startswith(e)), None)
        if tail is not None:
            out.append((start, stop + gap + len(tail)))
            continue
        text = text[:stop] + eos + text[stop:]
        shift += len(eos)
        inserted += 1
        out.append((start, stop + len(eos)))
    return text, out, inserted


def assistant_spans(tokenizer, messages, method: str = "auto") -> tuple[str, list[tuple[int, int]], int]:
    """(text, closed assistant spans, EOS insertions) for one conversation."""
    if method == "auto":
        method = "generation" if GENERATION_TAG.search(tokenizer.chat_template or "") else "prefix"
    text, spans = generation_spans(tokenizer, messages) if method == "generation" else \
        prefix_spans(tokenizer, messages)
    ends = end_of_turn_strings(tokenizer)
    return close_spans(text, spans, ends, tokenizer.eos_token or ends[0])


# ---------------------------------------------------------------------------- tokens

def mask_from_offsets(offsets: list[tuple[int, int]], spans: list[tuple[int, int]]) -> list[bool]:
    """A token carries loss when its characters overlap an assistant span.

    A token that straddles the start of a span (e.g. " 2" after a template ending in "assistant: ") is
    included, as transformers' ``return_assistant_tokens_mask`` does (``char_to_token`` of the span start),
    so no answer character goes untrained; such spans are counted as ``boundary_mismatch``.
    """
    mask, j = [], 0
    spans = sorted(spans)
    for start, end in offsets:
        while j < len(spans) and spans[j][1] <= start:
            j += 1
        mask.append(end > start and j < len(spans) and spans[j][0] < end)
    return mask


@dataclass
class TokenizeStats:
    examples: int = 0
    kept: int = 0
    truncated: int = 0
    dropped_too_long: int = 0
    dropped_no_target: int = 0
    replay_windows: int = 0
    eos_inserted: int = 0
    boundary_mismatch: int = 0  # assistant spans that do not start on a token boundary
    target_tokens: int = 0
    tokens: int = 0

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


def _fit(ids: list[int], mask: list[bool], max_length: int, truncation: str) -> tuple[list[int], list[bool]] | None:
    if len(ids) <= max_length:
        return ids, mask
    if truncation == "drop":
        return None
    return ids[:max_length], mask[:max_length]


def tokenize_examples(tokenizer, examples: list[Example], max_length: int, truncation: str = "drop",
                      method: str = "auto", batch: int = 256) -> tuple[list[Tokenized], TokenizeStats]:
    """Tokenise chat examples (and plain-text replay documents) with their loss masks.

    Over-long chats are dropped (``truncation: drop``) or cut to their first ``max_length`` tokens
    (``truncate``; dropped if no target token is left); plain documents are split into ``max_length``
    windows. Everything dropped or cut is counted in the returned stats.
    """
    stats = TokenizeStats(examples=len(examples))
    bos = [tokenizer.bos_token_id] if tokenizer.bos_token_id is not None else []
    out: list[Tokenized] = []
    for lo in range(0, len(examples), batch):
        chunk = examples[lo:lo + batch]
        texts, all_spans = [], []
        for ex in chunk:
            if ex.messages is None:
                texts.append(ex.text or "")
                all_spans.append(None)
                continue
            try:
                text, spans, inserted = assistant_spans(tokenizer, ex.messages, method)
            except InputError:
                raise
            except Exception as e:  # noqa: BLE001 (jinja errors such as "roles must alternate")
                raise ex.error(f"chat template cannot render this example ({type(e).__name__}: {e})") from None
            stats.eos_inserted += inserted
            texts.append(text)
            all_spans.append(spans)
        enc = tokenizer(texts, add_special_tokens=False, return_offsets_mapping=True)
        for ex, ids, offsets, spans in zip(chunk, enc["input_ids"], enc["offset_mapping"], all_spans):
            if spans is None:  # replay document: BOS + text, every token a target, in windows
                full = bos + list(ids)
                for s in range(0, max(1, len(full) - 1), max_length):
                    piece = full[s:s + max_length]
                    if len(piece) > 1:
                        out.append(Tokenized(piece, [True] * len(piece), ex.where))
                        stats.replay_windows += 1
                continue
            starts = {a for a, _ in offsets}
            stats.boundary_mismatch += sum(1 for a, _ in spans if a not in starts)
            mask = mask_from_offsets(offsets, spans)
            fitted = _fit(list(ids), mask, max_length, truncation)
            if fitted is None:
                stats.dropped_too_long += 1
                continue
            if not any(fitted[1][1:]):
                stats.dropped_no_target += 1
                continue
            stats.truncated += len(fitted[0]) < len(ids)
            stats.kept += 1
            out.append(Tokenized(fitted[0], fitted[1], ex.where, len(fitted[0]) < len(ids)))
    stats.tokens = sum(len(t) for t in out)
    stats.target_tokens = sum(sum(t.mask[1:]) for t in out)
    return out, stats
