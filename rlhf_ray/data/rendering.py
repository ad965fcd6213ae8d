"""Turning a prompt, and a response to it, into the token ids a model sees."""

from __future__ import annotations

from transformers import PreTrainedTokenizerBase

from rlhf_ray.data.records import DataError, as_messages, token_ids


def render_prompt(tokenizer: PreTrainedTokenizerBase, content: str | list, key: str, chat: bool) -> str:
    """The text a model is prompted with: chat messages (or a string as a user turn) rendered with the
    tokenizer's chat template and a generation prompt, or a plain string as it is."""
    if chat:
        return tokenizer.apply_chat_template(as_messages(content, key), add_generation_prompt=True, tokenize=False)
    if not isinstance(content, str):
        raise DataError(f"bad messages: chat messages in {key!r} need the chat template (apply_chat_template)")
    return content


def render_exchange(
    tokenizer: PreTrainedTokenizerBase, context: str | list, response: str, key: str, chat: bool
) -> tuple[list[int], list[int]]:
    """(prompt ids, response ids) of ``response`` to ``context``. With the chat template the response
    is everything the template writes for the assistant's turn (its end-of-turn token included);
    without it, the response text followed by the EOS token, so the model learns to stop."""
    prompt = render_prompt(tokenizer, context, key, chat)
    if chat:
        conversation = [*as_messages(context, key), {"role": "assistant", "content": response}]
        full = tokenizer.apply_chat_template(conversation, tokenize=False)
        if not full.startswith(prompt):
            raise DataError("chat template: the rendered conversation does not start with the rendered prompt")
        response_text = full[len(prompt) :]
    else:
        response_text = response + tokenizer.eos_token
    return token_ids(tokenizer, prompt), token_ids(tokenizer, response_text)


_ANSWER = "\ue000"
"""Stands for the policy's answer when the chat template renders the turn after it (a private-use
character no template changes)."""


def render_reply(
    tokenizer: PreTrainedTokenizerBase, messages: list[dict[str, str]], reply: dict[str, str], sampled_end: str
) -> str:
    """The text that follows the policy's answer (the last of ``messages``) in the chat template's
    rendering of the conversation with ``reply``, up to and including the next generation prompt: the
    template's end of the answer's turn (less ``sampled_end``, what the policy sampled of it, e.g. its
    EOS), ``reply``'s turn, and the assistant's header. Only this text is tokenised: the policy's tokens
    are kept as sampled, never re-tokenised from their decoded text."""
    answered = [*messages[:-1], {"role": "assistant", "content": _ANSWER}]
    before = tokenizer.apply_chat_template(answered, tokenize=False)
    after = tokenizer.apply_chat_template([*answered, reply], add_generation_prompt=True, tokenize=False)
    if not after.startswith(before) or _ANSWER not in before:
        raise DataError("chat template: a conversation with one more message does not extend its rendering")
    end_of_answer = before[before.rindex(_ANSWER) + len(_ANSWER) :]
    if sampled_end and end_of_answer.startswith(sampled_end):
        end_of_answer = end_of_answer[len(sampled_end) :]
    return end_of_answer + after[len(before) :]
