"""A synthetic, English-like text corpus, generated offline from a seed.

The tiny-model tokenizer is trained on it, so it only has to cover what tests and the CPU demo feed
a tokenizer: plain sentences, names, numbers, arithmetic and question/answer turns.
"""

import random

_NOUNS = (
    "cat dog bird fish horse river mountain city village garden house window door table book "
    "letter story song music teacher student doctor farmer child friend mother father king queen "
    "ship train car road bridge forest tree flower apple bread water coffee tea morning evening "
    "night day week year answer question problem number idea plan world sun moon star rain snow"
).split()
_VERBS = (
    "sees finds likes builds writes reads opens closes carries follows helps answers asks paints "
    "watches visits remembers forgets counts cooks cleans brings sends keeps moves"
).split()
_ADJECTIVES = (
    "small large old young quiet loud bright dark happy sad quick slow warm cold green blue red "
    "yellow gentle brave clever strange simple heavy light"
).split()
_ADVERBS = ("slowly quickly quietly happily carefully often never always today yesterday again early late").split()
_PLACES = "near the river|in the garden|at the station|under the tree|by the window".split("|")
_SYLLABLES = "ka lo ri ta ne mi so ra ve lu da po ki sen mar tel bor ien".split()
_OPERATIONS = (
    ("plus", "+", lambda a, b: a + b),
    ("minus", "-", lambda a, b: a - b),
    ("times", "*", lambda a, b: a * b),
)


def generate_corpus(seed: int, num_lines: int = 6000) -> list[str]:
    """Return `num_lines` lines of text; the same lines, in the same order, for the same seed."""
    rng = random.Random(seed)
    makers = (_sentence, _arithmetic, _question_answer, _number_list)
    return [rng.choice(makers)(rng) for _ in range(num_lines)]


def _name(rng: random.Random) -> str:
    return "".join(rng.choice(_SYLLABLES) for _ in range(rng.randint(2, 3))).capitalize()


def _noun_phrase(rng: random.Random) -> str:
    if rng.random() < 0.3:
        return _name(rng)
    return f"the {rng.choice(_ADJECTIVES)} {rng.choice(_NOUNS)}"


def _sentence(rng: random.Random) -> str:
    words = f"{_noun_phrase(rng)} {rng.choice(_VERBS)} {_noun_phrase(rng)}"
    if rng.random() < 0.5:
        words += f" {rng.choice(_PLACES)}"
    if rng.random() < 0.5:
        words += f" {rng.choice(_ADVERBS)}"
    return words[0].upper() + words[1:] + rng.choice(".!?")


def _arithmetic(rng: random.Random) -> str:
    a, b = rng.randint(0, 999), rng.randint(0, 99)
    _, symbol, apply = rng.choice(_OPERATIONS)
    return f"{a} {symbol} {b} = {apply(a, b)}"


def _question_answer(rng: random.Random) -> str:
    a, b = rng.randint(0, 99), rng.randint(0, 99)
    word, _, apply = rng.choice(_OPERATIONS)
    return f"What is {a} {word} {b}? The answer is {apply(a, b)}."


def _number_list(rng: random.Random) -> str:
    return ", ".join(str(rng.randint(0, 9999)) for _ in range(rng.randint(3, 8)))
