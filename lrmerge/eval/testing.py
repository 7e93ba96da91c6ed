"""Tiny models for tests and benchmarks: a byte-fallback BPE tokenizer (Llama-2 style) and a random Llama.

Built in memory in about a second, so evaluation code is tested on the real code paths (tokenizer, KV cache,
padding) without any download.
"""

from __future__ import annotations

CORPUS = (
    "Classify the topic of the text.", "Read the passage and answer the question.", "Solve the problem.",
    "Text: Passage: Question: Options: Answer: A. B. C. D. E. F. G.", "The answer is 42. The answer is 7.",
    "science technology travel politics sports health entertainment geography",
    "the a of to and in is it that was for on are with as his they be at one have this from",
    "0 1 2 3 4 5 6 7 8 9 10 12 100 1,000 3.5 -4",
)
SPECIALS = ("<unk>", "<s>", "</s>", "<pad>")


def tiny_tokenizer(byte_level: bool = False, vocab_size: int = 420):
    """A trained-in-memory BPE tokenizer. Default: Llama-2 style (▁ spaces, ``<0xNN>`` byte fallback), so any
    script outside the corpus (Mongolian, Tibetan) is written with byte tokens. ``byte_level``: GPT-2 style."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    if byte_level:
        tok = Tokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=list(SPECIALS),
                                      initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    else:
        tok = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True))
        tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="first")
        tok.decoder = decoders.Sequence([decoders.Replace("\u2581", " "), decoders.ByteFallback(), decoders.Fuse(),
                                         decoders.Strip(" ", 1, 0)])
        byte_tokens = [f"<0x{b:02X}>" for b in range(256)]
        trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[*SPECIALS, *byte_tokens],
                                      initial_alphabet=[chr(c) for c in range(32, 127)] + ["\n"])
    tok.train_from_iterator(list(CORPUS) * 4, trainer)
    if not byte_level:
        from tokenizers import processors
        tok.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A <s> $B",
                                                           special_tokens=[("<s>", tok.token_to_id("<s>"))])
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>",
                                   unk_token="<unk>")


def tiny_llama(tokenizer, hidden_size: int = 32, num_layers: int = 2, seed: int = 0):
    """A randomly initialised LlamaForCausalLM over ``tokenizer``'s vocabulary, float32, eval mode."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=hidden_size, intermediate_size=2 * hidden_size,
                         num_hidden_layers=num_layers, num_attention_heads=4, num_key_value_heads=2,
                         max_position_embeddings=2048, bos_token_id=tokenizer.bos_token_id,
                         eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    model = LlamaForCausalLM(config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    return model.eval()
