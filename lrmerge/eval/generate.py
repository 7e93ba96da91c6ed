"""Batched greedy generation with stop strings, and batched log-likelihood scoring of options (the lm-eval way).

Both sort their inputs by length so that a batch holds similar lengths (little padding), run under torch.no_grad()
with model.eval(), and return results in the input order. Greedy generation is our own loop over the KV cache:
left-padded prompts, position ids counted over real tokens only, finished rows dropped from the batch (and the
cache) as soon as they hit EOS or a stop string, so a batch costs what its longest *answer* costs, not more.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Sequence

import torch
from tqdm.auto import tqdm


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    if device is None or str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def _cache_kwarg(model) -> str:
    """Name of the KV-cache argument: ``cache`` in recent transformers 5.x, ``past_key_values`` before."""
    return "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"


def _pad_id(tokenizer) -> int:
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    if pad is None:
        raise ValueError("tokenizer has neither a pad token nor an EOS token to pad with")
    return int(pad)


def encode(tokenizer, texts: Sequence[str], add_special_tokens: bool = True) -> list[list[int]]:
    return [list(ids) for ids in tokenizer(list(texts), add_special_tokens=add_special_tokens)["input_ids"]]


@dataclass
class Generation:
    text: str  # decoded answer, cut before the first stop string
    token_ids: list[int] = field(default_factory=list)  # generated ids up to the stopping token, EOS excluded
    finish: str = "length"  # "stop" | "eos" | "length"
    first_logprobs: list[float] | None = None  # log p(token | prompt) at the first step, for the asked token ids


def _cut_at_stop(text: str, stop: Sequence[str]) -> tuple[str, bool]:
    cut = min((i for i in (text.find(s) for s in stop) if i >= 0), default=-1)
    return (text[:cut], True) if cut >= 0 else (text, False)


@torch.no_grad()
def greedy_generate(model, tokenizer, prompts: Sequence[str], max_new_tokens: int, stop: Sequence[str] = (),
                    batch_size: int = 16, device: str | torch.device | None = None,
                    add_special_tokens: bool = True, progress: bool = True, desc: str = "generate",
                    score_first: Sequence[Sequence[int]] | None = None) -> list[Generation]:
    """Greedy decoding of every prompt; identical (up to float rounding) to one-by-one ``model.generate``.

    ``score_first``: per prompt, token ids whose log-probabilities at the first generated position are returned in
    ``Generation.first_logprobs`` — the log-likelihood of single-token continuations (option letters) from the very
    forward pass that starts the generation, so scoring both protocols costs one prefill.
    """
    if max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
    device = resolve_device(device) if device is not None else next(model.parameters()).device
    model.eval()
    pad_id = _pad_id(tokenizer)
    eos_ids = {int(i) for i in ([tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else [])}
    eos_cfg = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    eos_ids |= {int(i) for i in (eos_cfg if isinstance(eos_cfg, (list, tuple)) else [eos_cfg]) if i is not None}
    encoded = encode(tokenizer, prompts, add_special_tokens)
    order = sorted(range(len(prompts)), key=lambda i: -len(encoded[i]))  # longest first: memory peaks at once
    results: list[Generation | None] = [None] * len(prompts)
    bar = tqdm(total=len(prompts), desc=desc, disable=not progress, leave=False)
    for start in range(0, len(order), batch_size):
        rows = order[start:start + batch_size]
        first = [score_first[i] for i in rows] if score_first is not None else None
        for index, generation in zip(rows, _generate_batch(model, tokenizer, [encoded[i] for i in rows], max_new_tokens,
                                                            tuple(stop), pad_id, eos_ids, device, first)):
            results[index] = generation
        bar.update(len(rows))
    bar.close()
    return results  # type: ignore[return-value]


def _generate_batch(model, tokenizer, batch: list[list[int]], max_new_tokens: int, stop: tuple[str, ...],
                    pad_id: int, eos_ids: set[int], device: torch.device,
                    score_first: list[Sequence[int]] | None = None) -> list[Generation]:
    width = max(len(ids) for ids in batch)
    input_ids = torch.full((len(batch), width), pad_id, dtype=torch.long)  # (B, L), left-padded
    attention_mask = torch.zeros((len(batch), width), dtype=torch.long)
    for row, ids in enumerate(batch):
        input_ids[row, width - len(ids):] = torch.tensor(ids)
        attention_mask[row, width - len(ids):] = 1
    input_ids, attention_mask = input_ids.to(device), attention_mask.to(device)
    position_ids = (attention_mask.cumsum(-1) - 1).clamp(min=0)  # (B, L): real tokens count from 0
    out = model(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids, use_cache=True)
    cache_arg = _cache_kwarg(model)
    cache, logits = getattr(out, cache_arg), out.logits[:, -1]  # (B, V)
    first_scores = None
    if score_first is not None:
        logprobs = torch.log_softmax(logits.float(), dim=-1)  # (B, V)
        first_scores = [logprobs[row, list(ids)].tolist() for row, ids in enumerate(score_first)]
    next_pos = position_ids[:, -1:] + 1  # (B, 1)
    alive = list(range(len(batch)))  # batch rows still generating, in cache order
    generated: list[list[int]] = [[] for _ in batch]
    results: list[Generation | None] = [None] * len(batch)
    for step in range(max_new_tokens):
        next_tokens = logits.argmax(-1).tolist()  # (b,)
        keep = []
        for slot, (row, token) in enumerate(zip(alive, next_tokens)):
            if token in eos_ids:
                results[row] = Generation(tokenizer.decode(generated[row], skip_special_tokens=True), generated[row], "eos")
                continue
            generated[row].append(token)
            text = tokenizer.decode(generated[row], skip_special_tokens=True)
            text, stopped = _cut_at_stop(text, stop) if stop else (text, False)
            if stopped:
                results[row] = Generation(text, generated[row], "stop")
            elif step == max_new_tokens - 1:
                results[row] = Generation(text, generated[row], "length")
            else:
                keep.append(slot)
        if not keep:
            break
        if len(keep) < len(alive):  # drop finished rows from the batch and from the KV cache
            index = torch.tensor(keep, device=device)
            cache.batch_select_indices(index)
            attention_mask, next_pos = attention_mask[index], next_pos[index]
            alive = [alive[slot] for slot in keep]
        step_ids = torch.tensor([[generated[row][-1]] for row in alive], device=device)  # (b, 1)
        attention_mask = torch.cat([attention_mask, attention_mask.new_ones((len(alive), 1))], dim=1)
        out = model(input_ids=step_ids, attention_mask=attention_mask, position_ids=next_pos,
                    use_cache=True, **{cache_arg: cache})
        cache, logits = getattr(out, cache_arg), out.logits[:, -1]
        next_pos = next_pos + 1
    if first_scores is not None:
        for row, result in enumerate(results):
            result.first_logprobs = first_scores[row]
    return results  # type: ignore[return-value]


# ----------------------------------------------------------------------------------------------- log-likelihood


def split_context_continuation(tokenizer, context: str, continuation: str,
                               add_special_tokens: bool = True) -> tuple[list[int], list[int]]:
    """Token ids of context and continuation, lm-eval style: trailing spaces of the context move to the continuation,
    the pair is encoded as one string and split after the context's own token count."""
    stripped = context.rstrip(" ")
    continuation = context[len(stripped):] + continuation
    whole = encode(tokenizer, [stripped + continuation], add_special_tokens)[0]
    n_context = len(encode(tokenizer, [stripped], add_special_tokens)[0])
    if n_context >= len(whole):
        raise ValueError(f"continuation {continuation!r} adds no token after context ending {stripped[-30:]!r}")
    return whole[:n_context], whole[n_context:]


@torch.no_grad()
def loglik_scores(model, tokenizer, requests: Sequence[tuple[str, Sequence[str]]], batch_size: int = 16,
                  device: str | torch.device | None = None, add_special_tokens: bool = True,
                  progress: bool = True, desc: str = "loglik") -> list[list[float]]:
    """For each (context, continuations): sum log p(continuation tokens | context) per continuation.

    Options whose inputs share a prefix share one row (single-token letters " A".." D": one forward pass over the
    context scores them all, as lm-eval's context grouping does); rows go in left-padded batches sorted by length.
    Logits are computed only for the last positions that hold scored tokens (``logits_to_keep``).
    """
    device = resolve_device(device) if device is not None else next(model.parameters()).device
    model.eval()
    pad_id = _pad_id(tokenizer)
    # rows: (input ids, [(request, option, first scored position, target ids)]). An option's input is context +
    # continuation[:-1]; when it is a prefix of another option's input (" A" vs " B" = "▁" "B"), causality makes
    # the longer row's logits serve both, so each request needs as few rows as its options have distinct branches.
    rows: list[tuple[list[int], list[tuple[int, int, int, list[int]]]]] = []
    for r, (context, continuations) in enumerate(requests):
        options = []
        for o, continuation in enumerate(continuations):
            ctx, cont = split_context_continuation(tokenizer, context, continuation, add_special_tokens)
            options.append(((ctx + cont)[:-1], (r, o, len(ctx) - 1, cont)))
        own: list[tuple[list[int], list]] = []
        for ids, target in sorted(options, key=lambda option: -len(option[0])):
            host = next((row for row in own if row[0][:len(ids)] == ids), None)
            if host is None:
                own.append((ids, [target]))
            else:
                host[1].append(target)
        rows.extend(own)
    scores = [[float("nan")] * len(continuations) for _, continuations in requests]
    order = sorted(range(len(rows)), key=lambda i: -len(rows[i][0]))
    bar = tqdm(total=len(order), desc=desc, disable=not progress, leave=False)
    for start in range(0, len(order), batch_size):
        batch = [rows[i] for i in order[start:start + batch_size]]
        width = max(len(ids) for ids, _ in batch)
        input_ids = torch.full((len(batch), width), pad_id, dtype=torch.long)  # (B, L), left-padded
        attention_mask = torch.zeros((len(batch), width), dtype=torch.long)
        for row, (ids, _) in enumerate(batch):
            input_ids[row, width - len(ids):] = torch.tensor(ids)
            attention_mask[row, width - len(ids):] = 1
        position_ids = (attention_mask.cumsum(-1) - 1).clamp(min=0)
        # scored positions lie in the last `keep` positions of every row: only those need logits
        keep = max(len(ids) - first for ids, targets in batch for _, _, first, _ in targets)
        logits = model(input_ids=input_ids.to(device), attention_mask=attention_mask.to(device),
                       position_ids=position_ids.to(device), logits_to_keep=keep).logits  # (B, keep, V)
        logprobs = torch.log_softmax(logits.float(), dim=-1)
        for row, (ids, targets) in enumerate(batch):
            for r, o, first, target in targets:
                span = logprobs[row, keep - (len(ids) - first):keep - (len(ids) - first) + len(target)]  # (T, V)
                scores[r][o] = span.gather(-1, torch.tensor(target, device=span.device)[:, None]).sum().item()
        bar.update(len(batch))
    bar.close()
    return scores
