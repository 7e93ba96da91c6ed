"""MT variant of the SFT data (half translated) and the seq2seq translator plumbing on a tiny random M2M100."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest
import torch

from lrmerge.translate import Seq2SeqTranslator, Translator, make_mt_variant
from lrmerge.train.tiny import tiny_sft_records

CODES = {"eng": "eng_Latn", "tam": "tam_Taml", "mvf": "khk_Cyrl"}


class Upper:
    """A fake translator that records its calls."""

    def __init__(self):
        self.calls = []

    def translate(self, texts, src, tgt):
        self.calls.append((list(texts), src, tgt))
        return [f"[{tgt}]" + t.upper() for t in texts]


def test_half_of_the_instances_are_translated_prompt_and_response():
    records = tiny_sft_records(41)
    fake = Upper()
    assert isinstance(fake, Translator)
    out = make_mt_variant(records, fake, "tam", fraction=0.5, seed=3)
    translated = [i for i, r in enumerate(out) if r["translated"]]
    assert len(out) == 41 and len(translated) == round(0.5 * 41)
    assert len(fake.calls) == 1 and fake.calls[0][1:] == ("eng", "tam")  # one batched call
    for i, (orig, new) in enumerate(zip(records, out)):
        if i in translated:
            assert new["prompt"] == "[tam]" + orig["prompt"].upper()
            assert new["response"] == "[tam]" + orig["response"].upper()
            assert new["lang"] == "tam" and new["task"] == orig["task"]
        else:
            assert {k: new[k] for k in orig} == orig
    again = make_mt_variant(records, Upper(), "tam", fraction=0.5, seed=3)
    other = make_mt_variant(records, Upper(), "tam", fraction=0.5, seed=4)
    assert again == out and [r["translated"] for r in other] != [r["translated"] for r in out]
    assert records[0]["lang"] == "eng"  # input untouched


def test_mt_variant_rejects_bad_fraction_and_short_outputs():
    records = tiny_sft_records(4)
    with pytest.raises(ValueError, match="fraction"):
        make_mt_variant(records, Upper(), "tam", fraction=1.5)

    class Lossy:
        def translate(self, texts, src, tgt):
            return texts[:-1]

    with pytest.raises(ValueError, match="returned 3 texts for 4"):
        make_mt_variant(records, Lossy(), "tam", fraction=0.5)


@pytest.fixture(scope="module")
def tiny_mt():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import M2M100Config, M2M100ForConditionalGeneration, PreTrainedTokenizerFast

    texts = [r["prompt"] + r["response"] for r in tiny_sft_records(50)]
    core = Tokenizer(models.BPE(unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    core.train_from_iterator(texts, trainers.BpeTrainer(
        vocab_size=200, special_tokens=["<pad>", "<s>", "</s>", "<unk>", *CODES.values()],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tok = PreTrainedTokenizerFast(tokenizer_object=core, pad_token="<pad>", bos_token="<s>", eos_token="</s>",
                                  unk_token="<unk>", additional_special_tokens=list(CODES.values()))
    torch.manual_seed(0)
    model = M2M100ForConditionalGeneration(M2M100Config(
        vocab_size=len(tok), d_model=32, encoder_layers=1, decoder_layers=1, encoder_attention_heads=2,
        decoder_attention_heads=2, encoder_ffn_dim=64, decoder_ffn_dim=64, max_position_embeddings=128,
        pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
        decoder_start_token_id=tok.eos_token_id, dropout=0.0, init_std=0.5))  # large init: outputs vary by input
    return model, tok


def test_seq2seq_translator_batches_preserve_order_and_force_target(tiny_mt):
    model, tok = tiny_mt
    calls = []
    generate = model.generate

    def spy(**kwargs):
        ids = generate(**kwargs)
        calls.append((kwargs["input_ids"].shape[0], kwargs["forced_bos_token_id"], ids))
        return ids

    translator = Seq2SeqTranslator(model, tok, codes=CODES, batch_size=2, max_new_tokens=6)
    assert isinstance(translator, Translator)
    texts = [r["prompt"] for r in tiny_sft_records(5, seed=2)]
    texts[1] = texts[1] + " and a much longer tail to change the sorting order"
    model.generate = spy
    try:
        batched = translator.translate(texts, "eng", "tam")
        assert [c[0] for c in calls] == [2, 2, 1]  # batched
        tam_id = tok.convert_tokens_to_ids("tam_Taml")
        assert all(c[1] == tam_id and (c[2][:, 1] == tam_id).all() for c in calls)  # target language forced
        single = [translator.translate([t], "eng", "tam")[0] for t in texts]
    finally:
        del model.generate
    assert batched == single  # order preserved through length-sorted batches
    assert len(set(batched)) > 1


def test_post_step_runs_on_every_output_of_its_language(tiny_mt):
    model, tok = tiny_mt
    seen = []

    def transliterate(text):
        seen.append(text)
        return f"<mong>{text}"

    translator = Seq2SeqTranslator(model, tok, codes=CODES, batch_size=4, max_new_tokens=4,
                                   post_steps={"mvf": transliterate})
    texts = [r["prompt"] for r in tiny_sft_records(3)]
    bare = Seq2SeqTranslator(model, tok, codes=CODES, batch_size=4, max_new_tokens=4)
    with pytest.raises(ValueError, match="needs post_steps\\['mvf'\\]"):
        bare.translate(texts, "eng", "mvf")  # Cyrillic output must not pass for traditional script
    plain = Seq2SeqTranslator(model, tok, codes=CODES, batch_size=4, max_new_tokens=4,
                              post_steps={"mvf": lambda t: t}).translate(texts, "eng", "mvf")
    out = translator.translate(texts, "eng", "mvf")
    assert sorted(seen) == sorted(plain) and out == [f"<mong>{t}" for t in plain]
    assert translator.translate(texts, "eng", "tam") == Seq2SeqTranslator(
        model, tok, codes=CODES, max_new_tokens=4).translate(texts, "eng", "tam")  # no post-step for tam
    assert len(seen) == 3
    with pytest.raises(ValueError, match="no MT language code for 'xyz'"):
        translator.translate(texts, "eng", "xyz")
