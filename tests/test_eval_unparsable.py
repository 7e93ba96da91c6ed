import pytest

from lrmerge.eval.testing import tiny_tokenizer
from lrmerge.eval.unparsable import generated_bytes, is_invalid_utf8, token_bytes

MONGOLIAN_A = bytes([0xE1, 0xA0, 0xA0])  # U+1820, traditional Mongolian letter a


def test_valid_sequences():
    assert MONGOLIAN_A.decode() == "\u1820"
    for data in (b"", b"abc", MONGOLIAN_A, MONGOLIAN_A * 3 + b" 12", "ཀ".encode(), "ئ".encode(), "😀".encode()):
        assert not is_invalid_utf8(data)


@pytest.mark.parametrize("data", [
    MONGOLIAN_A[:2],  # truncated at the end of the generation (documented: counts as invalid)
    MONGOLIAN_A[:1] + b"x",  # lead byte followed by ASCII
    b"\xa0",  # stray continuation byte
    b"ab\xa0\xa0",  # continuation bytes without a lead byte
    MONGOLIAN_A + b"\xa0",  # one continuation byte too many
    b"\xc0\x80",  # overlong NUL
    b"\xe0\x80\xaf",  # overlong "/"
    b"\xed\xa0\x80",  # UTF-16 surrogate
    b"\xf4\x90\x80\x80",  # above U+10FFFF
    b"\xff",
])
def test_invalid_sequences(data):
    assert is_invalid_utf8(data)


def test_token_bytes_byte_fallback_and_text():
    assert token_bytes("<0xE1>") == b"\xe1" and token_bytes("<0x0A>") == b"\n"
    assert token_bytes("\u2581Answer") == b" Answer"
    assert token_bytes("<0xZZ>") == b"<0xZZ>"


@pytest.fixture(scope="module")
def llama_tokenizer():
    return tiny_tokenizer()


def test_generated_bytes_of_byte_fallback_tokens(llama_tokenizer):
    text = "Answer: \u1820\u1821 ok"
    ids = llama_tokenizer(text, add_special_tokens=False)["input_ids"]
    tokens = llama_tokenizer.convert_ids_to_tokens(ids)
    assert "<0xE1>" in tokens  # Mongolian is written with byte tokens
    assert generated_bytes(ids, llama_tokenizer).decode() == " " + text  # ▁ of the first word kept as a space


def test_generated_bytes_skip_special_and_detect_broken_bytes(llama_tokenizer):
    byte = {b: llama_tokenizer.convert_tokens_to_ids(f"<0x{b:02X}>") for b in range(256)}
    eos, word = llama_tokenizer.eos_token_id, llama_tokenizer("Answer", add_special_tokens=False)["input_ids"]
    good = [byte[0xE1], byte[0xA0], byte[0xA0], *word, eos]
    assert generated_bytes(good, llama_tokenizer) == MONGOLIAN_A + b" Answer"
    assert not is_invalid_utf8(generated_bytes(good, llama_tokenizer))
    for broken in ([byte[0xE1], byte[0xA0], *word], [byte[0xA0], byte[0xA0]], [*word, byte[0xE1]]):
        assert is_invalid_utf8(generated_bytes(broken, llama_tokenizer))
    # the tokenizer's own decode hides the problem behind U+FFFD, which is why we look at bytes
    assert "\ufffd" in llama_tokenizer.decode([byte[0xE1], byte[0xA0], *word])


def test_generated_bytes_byte_level_tokenizer():
    tokenizer = tiny_tokenizer(byte_level=True)
    text = "The answer \u1820 is ཀ 7"
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    assert generated_bytes(ids, tokenizer) == text.encode()
    # a ByteLevel token that holds only part of a character (first byte of U+1820) is invalid on its own
    first = tokenizer.convert_tokens_to_ids(tokenizer.convert_ids_to_tokens(ids)[0][0])
    assert generated_bytes([first], tokenizer) == b"T"
    partial = [i for i in ids if generated_bytes([i], tokenizer) == b"\xe1"]
    assert partial and is_invalid_utf8(generated_bytes(partial, tokenizer))
