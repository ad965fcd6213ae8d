import jinja2
import pytest

from rlhf_ray.models import build_tokenizer


@pytest.fixture(scope="module")
def tokenizer():
    return build_tokenizer(vocab_size=1024, seed=0)


def test_same_seed_gives_the_same_vocabulary_and_merges(tokenizer):
    again = build_tokenizer(vocab_size=1024, seed=0)
    assert again.backend_tokenizer.to_str() == tokenizer.backend_tokenizer.to_str()


def test_another_seed_gives_another_tokenizer(tokenizer):
    other = build_tokenizer(vocab_size=1024, seed=1)
    assert other.backend_tokenizer.to_str() != tokenizer.backend_tokenizer.to_str()


@pytest.mark.parametrize("vocab_size", [300, 1024, 2048])
def test_vocabulary_has_the_requested_size(vocab_size):
    assert len(build_tokenizer(vocab_size)) == vocab_size


def test_vocabulary_too_small_for_the_byte_alphabet_is_rejected():
    with pytest.raises(ValueError, match="at least 262"):
        build_tokenizer(vocab_size=200)


def test_special_tokens_take_the_first_ids(tokenizer):
    assert (tokenizer.pad_token, tokenizer.pad_token_id) == ("<pad>", 0)
    assert (tokenizer.bos_token, tokenizer.bos_token_id) == ("<s>", 1)
    assert (tokenizer.eos_token, tokenizer.eos_token_id) == ("</s>", 2)
    roles = ["<|system|>", "<|user|>", "<|assistant|>"]
    assert tokenizer.convert_tokens_to_ids(roles) == [3, 4, 5]


def test_special_tokens_in_text_stay_whole(tokenizer):
    assert tokenizer.encode("<|user|>", add_special_tokens=False) == [4]
    assert tokenizer.encode("a</s>", add_special_tokens=False)[-1] == 2


def test_encoding_adds_no_special_tokens(tokenizer):
    ids = tokenizer("The cat sees the dog.")["input_ids"]
    assert not set(ids) & {0, 1, 2}


@pytest.mark.parametrize(
    "text",
    [
        "The quick brown fox jumps over the lazy dog.",
        "What is 12 plus 30? The answer is 42.",
        "  leading spaces,\ttabs and\nnew lines  ",
        "Ünïcödé, emoji 🙂 and 中文 survive the byte level.",
        "",
    ],
)
def test_decode_inverts_encode(tokenizer, text):
    ids = tokenizer.encode(text, add_special_tokens=False)
    assert tokenizer.decode(ids) == text


def test_corpus_words_become_single_tokens(tokenizer):
    # Trained merges, not bytes: a frequent corpus word is one token.
    assert len(tokenizer.encode(" answer", add_special_tokens=False)) == 1


def test_chat_template_renders_turns_and_generation_prompt(tokenizer):
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "What is 2 plus 2?"},
    ]
    prompt = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert prompt == "<s><|system|>\nBe brief.</s><|user|>\nWhat is 2 plus 2?</s><|assistant|>\n"

    conversation = messages + [{"role": "assistant", "content": "4"}]
    rendered = tokenizer.apply_chat_template(conversation, tokenize=False)
    assert rendered == prompt + "4</s>"


def test_chat_template_tokenizes_role_markers_as_special_ids(tokenizer):
    ids = tokenizer.apply_chat_template([{"role": "user", "content": "Hi"}], tokenize=True, add_generation_prompt=True)[
        "input_ids"
    ]
    assert ids[:2] == [1, 4]
    assert ids[-2] == 5  # <|assistant|>, then the newline


def test_chat_template_rejects_unknown_roles(tokenizer):
    with pytest.raises(jinja2.TemplateError, match="unknown chat role: bot"):
        tokenizer.apply_chat_template([{"role": "bot", "content": "x"}], tokenize=False)
