"""SFT demonstrations: a prompt and the response to imitate, tokenised and checked when loaded.

A row holds ``prompt`` + ``response`` (the prompt a string or chat messages), or a chat conversation
under ``messages`` whose last message is the assistant's response. The loss is on response tokens only.
"""

from __future__ import annotations

from dataclasses import dataclass

from transformers import PreTrainedTokenizerBase

from rlhf_ray.config.schema import SFTDataConfig
from rlhf_ray.data.batch import SequenceBatch, pack_sequences
from rlhf_ray.data.records import DataError, LoadedRows, load_rows, read_records, require_text
from rlhf_ray.data.rendering import render_exchange


@dataclass(frozen=True)
class Demonstration:
    prompt_ids: list[int]
    response_ids: list[int]


def load_demonstrations(
    path: str, data: SFTDataConfig, tokenizer: PreTrainedTokenizerBase, strict_field: str
) -> LoadedRows[Demonstration]:
    return load_rows(
        read_records(path), lambda row: _demonstration(row, data, tokenizer), data.strict, path, strict_field
    )


def _demonstration(row: dict, data: SFTDataConfig, tokenizer: PreTrainedTokenizerBase) -> Demonstration:
    if data.messages_key in row:
        messages = require_text(row, data.messages_key)
        if not isinstance(messages, list) or not isinstance(messages[-1], dict) or len(messages) < 2:
            raise DataError(f"bad messages: {data.messages_key!r} needs a prompt turn and an assistant turn")
        if messages[-1].get("role") != "assistant" or not str(messages[-1].get("content", "")).strip():
            raise DataError(
                f"bad messages: the last message of {data.messages_key!r} is not a non-empty assistant turn"
            )
        context, response, key = messages[:-1], messages[-1]["content"], data.messages_key
    else:
        context, key = require_text(row, data.prompt_key), data.prompt_key
        response = require_text(row, data.response_key)
        if not isinstance(response, str):
            raise DataError(f"not text: {data.response_key!r} must be a string")
    prompt_ids, response_ids = render_exchange(tokenizer, context, response, key, data.apply_chat_template)
    length = len(prompt_ids) + len(response_ids)
    if length > data.max_length:
        raise DataError(f"too long: {length} tokens, max_length is {data.max_length}")
    return Demonstration(prompt_ids, response_ids)


def demonstration_batch(demonstrations: list[Demonstration], pad_token_id: int) -> SequenceBatch:
    return pack_sequences(
        [d.prompt_ids for d in demonstrations], [d.response_ids for d in demonstrations], pad_token_id
    )
