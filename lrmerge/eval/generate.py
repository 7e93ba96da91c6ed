"""Batched greedy generation with stop strings, and batched log-likelihood scoring of options (the lm-eval way).

Both sort their inputs by length so that a batch holds similar lengths (little padding), run under torch.no_grad()
with model.eval(), and return results in the input order. Greedy generation is our own loop over the KV cache:
left-padded prompts, position ids counted over real tokens only, finished rows dropped from the batch (and the
cache) as soon as they hit EOS or a stop string, so a batch costs what its longest *answer* costs, not more.
"""

from __future__ import annotations

import copy
import hashlib
import inspect
import itertools
from collections import OrderedDict
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


_ENCODED: OrderedDict = OrderedDict()  # (tokenizer fingerprint, add_special_tokens, texts) -> ids, newest last
_ENCODED_ENTRIES = 32  # a study evaluates many models with one tokenizer on the same few task prompt lists
_UNSHARED = itertools.count()  # fingerprints of tokenizers that cannot be described (never reused, unlike id())


def tokenizer_fingerprint(tokenizer) -> str:
    """What decides how ``tokenizer`` splits text: its class, init settings and (fast tokenizers) the full backend
    definition. Equal fingerprints tokenize alike, so encodings are shared between the many model folders of a study
    that each carry a copy of the same tokenizer. Kept on the object until its vocabulary size changes (added
    tokens); a tokenizer without a backend definition gets a fingerprint of its own."""
    size = len(tokenizer)
    cached = getattr(tokenizer, "_lrmerge_fingerprint", None)
    if cached is None or cached[0] != size:
        backend = getattr(tokenizer, "backend_tokenizer", None)
        if backend is None:
            digest = f"object-{next(_UNSHARED)}"
        else:
            settings = getattr(tokenizer, "init_kwargs", {})
            parts = [type(tokenizer).__qualname__, repr(sorted((str(k), repr(v)) for k, v in settings.items())),
                     backend.to_str()]
            digest = hashlib.sha256("\0".join(parts).encode("utf-8")).hexdigest()
        cached = (size, digest)
        tokenizer._lrmerge_fingerprint = cached
    return cached[1]


def encode(tokenizer, texts: Sequence[str], add_special_tokens: bool = True) -> list[list[int]]:
    """Token ids of each text (no padding); repeated calls with an equal tokenizer and texts reuse the encoding."""
    key = (tokenizer_fingerprint(tokenizer), add_special_tokens, tuple(texts))
    ids = _ENCODED.get(key)
    if ids is None:
        ids = tuple(tuple(row) for row in tokenizer(list(texts), add_special_tokens=add_special_tokens)["input_ids"])
        _ENCODED[key] = ids
        while len(_ENCODED) > _ENCODED_ENTRIES:
            _ENCODED.popitem(last=False)
    else:
        _ENCODED.move_to_end(key)
    return [list(row) for row in ids]


@dataclass
class Generation:
    text: str  # decoded answer, cut before the first stop string
    token_ids: list[int] = field(default_factory=list)  # generated ids up to the stopping token, EOS excluded
    finish: str = "length"  # "stop" | "eos" | "length"
    continuation_logprobs: list[float] | None = None  # log p(continuation | prompt) of each asked continuation


def _cut_at_stop(text: str, stop: Sequence[str]) -> tuple[str, bool]:
    cut = min((i for i in (text.find(s) for s in stop) if i >= 0), default=-1)
    return (text[:cut], True) if cut >= 0 else (text, False)


@torch.no_grad()
def greedy_generate(model, tokenizer, prompts: Sequence[str], max_new_tokens: int, stop: Sequence[str] = (),
                    batch_size: int = 16, device: str | torch.device | None = None,
                    add_special_tokens: bool = True, progress: bool = True, desc: str = "generate",
                    score_continuations: Sequence[Sequence[Sequence[int]]] | None = None) -> list[Generation]:
    """Greedy decoding of every prompt; identical (up to float rounding) to one-by-one ``model.generate``.

    ``score_continuations``: per prompt, the token ids of continuations (the options' answers) that follow the
    prompt's own tokens; their summed log-probabilities come back in ``Generation.continuation_logprobs``, scored
    off the KV cache of the very prefill that starts the generation, so both protocols cost one prefill.
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
        conts = [score_continuations[i] for i in rows] if score_continuations is not None else None
        for index, generation in zip(rows, _generate_batch(model, tokenizer, [encoded[i] for i in rows], max_new_tokens,
                                                            tuple(stop), pad_id, eos_ids, device, conts)):
            results[index] = generation
        bar.update(len(rows))
    bar.close()
    return results  # type: ignore[return-value]


def _generate_batch(model, tokenizer, batch: list[list[int]], max_new_tokens: int, stop: tuple[str, ...],
                    pad_id: int, eos_ids: set[int], device: torch.device,
                    score_continuations: list[Sequence[Sequence[int]]] | None = None) -> list[Generation]:
    width = max(len(ids) for ids in batch)
    input_ids = torch.full((len(batch), width), pad_id, dtype=torch.long)  # (B, L), left-padded
    attention_mask = torch.zeros((len(batch), width), dtype=torch.long)
    for row, ids in enumerate(batch):
        input_ids[row, width - len(ids):] = torch.tensor(ids)
        attention_mask[row, width - len(ids):] = 1
    input_ids, attention_mask = input_ids.to(device), attention_mask.to(device)
    position_ids = (attention_mask.cumsum(-1) - 1).clamp(min=0)  # (B, L): real tokens count from 0
    out = model(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids, use_cache=True,
                logits_to_keep=1)
    cache_arg = _cache_kwarg(model)
    cache, logits = getattr(out, cache_arg), out.logits[:, -1]  # (B, V)
    option_scores = None
    if score_continuations is not None:  # each continuation is the tail after the whole prompt
        tails = [[(list(ids), len(ids)) for ids in conts] for conts in score_continuations]
        option_scores = score_tails(model, copy.deepcopy(cache), torch.log_softmax(logits.float(), dim=-1),
                                    attention_mask, tails, pad_id)
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
    if option_scores is not None:
        for row, result in enumerate(results):
            result.continuation_logprobs = option_scores[row]
    return results  # type: ignore[return-value]


# ----------------------------------------------------------------------------------------------- log-likelihood


def split_context_continuation(tokenizer, context: str, continuation: str,
                               add_special_tokens: bool = True) -> tuple[list[int], list[int]]:
    """Token ids of context and continuation, lm-eval style: trailing spaces of the context move to the continuation,
    the pair is encoded as one string and split after the context's own token count."""
    return split_requests(tokenizer, [(context, [continuation])], add_special_tokens)[0][0]


def split_requests(tokenizer, requests: Sequence[tuple[str, Sequence[str]]], add_special_tokens: bool = True
                   ) -> list[list[tuple[list[int], list[int]]]]:
    """`split_context_continuation` for every (context, continuations) request, in one call to the tokenizer."""
    texts, spans = [], []
    for context, continuations in requests:
        stripped = context.rstrip(" ")
        spans.append((len(texts), len(continuations)))
        texts.append(stripped)
        texts.extend(stripped + context[len(stripped):] + c for c in continuations)
    ids = encode(tokenizer, texts, add_special_tokens) if texts else []
    out = []
    for (start, n), (context, continuations) in zip(spans, requests):
        n_context = len(ids[start])
        pairs = []
        for whole, continuation in zip(ids[start + 1:start + 1 + n], continuations):
            if n_context >= len(whole):
                raise ValueError(f"continuation {continuation!r} adds no token after context ending "
                                 f"{context.rstrip(' ')[-30:]!r}")
            pairs.append((whole[:n_context], whole[n_context:]))
        out.append(pairs)
    return out


def score_tails(model, cache, last_logprobs: torch.Tensor, prefix_mask: torch.Tensor,
                tails: Sequence[Sequence[tuple[list[int], int]]], pad_id: int) -> list[list[float]]:
    """Summed log-probabilities of continuations after prefixes already run through the model.

    ``cache``: the prefixes' KV cache (B rows, left-padded; consumed); ``last_logprobs`` (B, V): the log-softmax at
    each prefix's last position; ``prefix_mask`` (B, L); ``tails[b]``: per option, (the option's tokens after
    prefix b, how many of the last ones are scored). Tails that are prefixes of a longer tail (" A" = "▁A" beside
    "▁", "B") share its row, and every row attends to its prefix through the cache, so a prefix is never recomputed.
    """
    device = prefix_mask.device
    rows: list[tuple[int, list[int]]] = []  # (prefix row, input ids after the prefix = tail minus its last token)
    hosts: list[list[int | None]] = []  # per prefix, per option: its row (None: a one-token tail, scored off the prefix)
    for b, options in enumerate(tails):
        own: list[tuple[list[int], int]] = []
        hosts.append([None] * len(options))
        for o in sorted(range(len(options)), key=lambda o: -len(options[o][0])):
            tail, n_scored = options[o]
            if not 1 <= n_scored <= len(tail):
                raise ValueError(f"a scored continuation needs 1..{len(tail)} tokens after the prefix, got {n_scored}")
            ids = tail[:-1]
            if ids:
                host = next((row for row_ids, row in own if row_ids[:len(ids)] == ids), None)
                if host is None:
                    host = len(rows)
                    rows.append((b, ids))
                    own.append((ids, host))
                hosts[b][o] = host
    tail_logprobs = None
    if rows:
        width = max(len(ids) for _, ids in rows)
        index = torch.tensor([b for b, _ in rows], device=device)
        input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)  # (R, W), right-padded
        tail_mask = torch.zeros((len(rows), width), dtype=torch.long)
        for row, (_, ids) in enumerate(rows):
            input_ids[row, :len(ids)] = torch.tensor(ids)
            tail_mask[row, :len(ids)] = 1
        cache.batch_select_indices(index)
        attention_mask = torch.cat([prefix_mask[index], tail_mask.to(device)], dim=1)  # (R, L + W)
        position_ids = prefix_mask[index].sum(-1, keepdim=True) + torch.arange(width, device=device)  # (R, W)
        out = model(input_ids=input_ids.to(device), attention_mask=attention_mask, position_ids=position_ids,
                    use_cache=True, **{_cache_kwarg(model): cache})
        tail_logprobs = torch.log_softmax(out.logits.float(), dim=-1)  # (R, W, V)
    first_rows, first_tokens, first_owner = [], [], []  # scored positions predicted by the prefix's last position
    tail_rows, tail_positions, tail_tokens, tail_owner = [], [], [], []
    owners: list[tuple[int, int]] = []
    for b, options in enumerate(tails):
        for o, (tail, n_scored) in enumerate(options):
            owner = len(owners)
            owners.append((b, o))
            for j in range(len(tail) - n_scored, len(tail)):  # tail[j] is predicted at tail position j - 1
                if j == 0:
                    first_rows.append(b), first_tokens.append(tail[0]), first_owner.append(owner)
                else:
                    tail_rows.append(hosts[b][o]), tail_positions.append(j - 1), tail_tokens.append(tail[j])
                    tail_owner.append(owner)
    totals = torch.zeros(len(owners), dtype=torch.float64)
    if first_rows:
        picked = last_logprobs[torch.tensor(first_rows, device=device), torch.tensor(first_tokens, device=device)]
        totals.index_add_(0, torch.tensor(first_owner), picked.double().cpu())
    if tail_rows:
        picked = tail_logprobs[torch.tensor(tail_rows, device=device), torch.tensor(tail_positions, device=device),
                               torch.tensor(tail_tokens, device=device)]
        totals.index_add_(0, torch.tensor(tail_owner), picked.double().cpu())
    scores = [[0.0] * len(options) for options in tails]
    for (b, o), total in zip(owners, totals.tolist()):
        scores[b][o] = total
    return scores


def _shared_prefix(sequences: Sequence[Sequence[int]], limit: int) -> int:
    """Length of the longest common prefix of ``sequences``, at most ``limit``."""
    lo, hi = min(sequences), max(sequences)  # every sequence's common prefix is that of the lexicographic extremes
    n = min(limit, len(lo))
    if lo[:n] == hi[:n]:
        return n
    return next(i for i in range(n) if lo[i] != hi[i])


@torch.no_grad()
def loglik_scores(model, tokenizer, requests: Sequence[tuple[str, Sequence[str]]], batch_size: int = 16,
                  device: str | torch.device | None = None, add_special_tokens: bool = True,
                  progress: bool = True, desc: str = "loglik") -> list[list[float]]:
    """For each (context, continuations): sum log p(continuation tokens | context) per continuation.

    The options of a request share their context: it is run through the model once (its longest common prefix
    with every option's tokens, lm-eval's context grouping) and each option's remaining tokens attend to it through
    the KV cache (`score_tails`); prefixes go in left-padded batches of ``batch_size`` requests sorted by length.
    """
    device = resolve_device(device) if device is not None else next(model.parameters()).device
    model.eval()
    pad_id = _pad_id(tokenizer)
    # groups: (prefix ids, [(request, option, tail after the prefix, scored tokens at the tail's end)])
    groups: list[tuple[list[int], list[tuple[int, int, list[int], int]]]] = []
    for r, ((context, continuations), pairs) in enumerate(zip(requests, split_requests(tokenizer, requests,
                                                                                        add_special_tokens))):
        fulls = [ctx + cont for ctx, cont in pairs]
        n_prefix = _shared_prefix(fulls, min(len(ctx) for ctx, _ in pairs))
        if n_prefix:
            groups.append((fulls[0][:n_prefix], [(r, o, full[n_prefix:], len(cont))
                                                 for o, (full, (_, cont)) in enumerate(zip(fulls, pairs))]))
        else:  # nothing shared (no BOS and a context that merges with its continuation): one group per option
            for o, (ctx, cont) in enumerate(pairs):
                if not ctx:
                    raise ValueError(f"request {r}: an empty context leaves nothing to condition option {o} on")
                groups.append((ctx, [(r, o, cont, len(cont))]))
    scores = [[float("nan")] * len(continuations) for _, continuations in requests]
    order = sorted(range(len(groups)), key=lambda i: -len(groups[i][0]))
    bar = tqdm(total=len(order), desc=desc, disable=not progress, leave=False)
    for start in range(0, len(order), batch_size):
        batch = [groups[i] for i in order[start:start + batch_size]]
        width = max(len(prefix) for prefix, _ in batch)
        input_ids = torch.full((len(batch), width), pad_id, dtype=torch.long)  # (B, L), left-padded
        attention_mask = torch.zeros((len(batch), width), dtype=torch.long)
        for row, (prefix, _) in enumerate(batch):
            input_ids[row, width - len(prefix):] = torch.tensor(prefix)
            attention_mask[row, width - len(prefix):] = 1
        input_ids, attention_mask = input_ids.to(device), attention_mask.to(device)
        position_ids = (attention_mask.cumsum(-1) - 1).clamp(min=0)
        out = model(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids, use_cache=True,
                    logits_to_keep=1)
        last = torch.log_softmax(out.logits[:, -1].float(), dim=-1)  # (B, V)
        tails = [[(tail, n_scored) for _, _, tail, n_scored in options] for _, options in batch]
        batch_scores = score_tails(model, getattr(out, _cache_kwarg(model)), last, attention_mask, tails, pad_id)
        for (_, options), option_scores in zip(batch, batch_scores):
            for (r, o, _, _), score in zip(options, option_scores):
                scores[r][o] = score
        bar.update(len(batch))
    bar.close()
    return scores
