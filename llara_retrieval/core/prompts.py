"""LLaRA prompts: the only place that turns a text into the token ids the model sees.

Passage side (EBAE):  BOS ``"{text}", summarize the above passage within eight words: <s1>..<s8>``
Query side (EBAR):    BOS ``"{text}", predict the following passage within eight words: <s9>..<s16>``

Prefix, text and suffix are tokenised separately and concatenated, exactly as the released LLaRA
models were trained, so the text can be truncated without ever cutting the prompt tail.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Literal, Sequence

from llara_retrieval._utils.errors import LlaraError

Side = Literal["query", "passage"]

PASSAGE_TOKENS = tuple(f"<s{i}>" for i in range(1, 9))
QUERY_TOKENS = tuple(f"<s{i}>" for i in range(9, 17))


@dataclass(frozen=True)
class LlaraPrompts:
    """Prompt strings and the special tokens whose hidden states form each side's embedding."""

    passage_prefix: str = '"'
    passage_suffix: str = '", summarize the above passage within eight words: ' + "".join(PASSAGE_TOKENS)
    query_prefix: str = '"'
    query_suffix: str = '", predict the following passage within eight words: ' + "".join(QUERY_TOKENS)
    passage_tokens: tuple[str, ...] = PASSAGE_TOKENS
    query_tokens: tuple[str, ...] = QUERY_TOKENS
    add_bos: bool = True

    @property
    def special_tokens(self) -> list[str]:
        return list(dict.fromkeys(self.passage_tokens + self.query_tokens))

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "LlaraPrompts":
        data = dict(data)
        for key in ("passage_tokens", "query_tokens"):
            if key in data:
                data[key] = tuple(data[key])
        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown:
            raise LlaraError(f"unknown prompt settings: {sorted(unknown)}")
        return cls(**data)


@dataclass
class PromptTokenizer:
    """Builds LLaRA input ids for either side with a tokenizer; caches the fixed prompt pieces."""

    tokenizer: object
    prompts: LlaraPrompts = field(default_factory=LlaraPrompts)

    def __post_init__(self) -> None:
        tok = self.tokenizer
        missing = [t for t in self.prompts.special_tokens if tok.convert_tokens_to_ids(t) in (None, tok.unk_token_id)]
        if missing:
            raise LlaraError(f"tokenizer lacks the LLaRA special tokens {missing}: load it with add_llara_tokens()")
        bos = [tok.bos_token_id] if self.prompts.add_bos and tok.bos_token_id is not None else []
        self._pieces = {
            "passage": (bos + self._ids(self.prompts.passage_prefix), self._ids(self.prompts.passage_suffix)),
            "query": (bos + self._ids(self.prompts.query_prefix), self._ids(self.prompts.query_suffix)),
        }
        self.special_ids = {
            "passage": [tok.convert_tokens_to_ids(t) for t in self.prompts.passage_tokens],
            "query": [tok.convert_tokens_to_ids(t) for t in self.prompts.query_tokens],
        }
        for side, (_, suffix) in self._pieces.items():
            if suffix[-len(self.special_ids[side]):] != self.special_ids[side]:
                raise LlaraError(f"the {side} suffix must end with its special tokens {self.special_ids[side]}")

    @property
    def pad_id(self) -> int:
        """Padding id: the tokenizer's pad, else EOS, else 0, never a LLaRA token (pads are never attended)."""
        tok = self.tokenizer
        special = set(self.special_ids["passage"] + self.special_ids["query"])
        return next(i for i in (tok.pad_token_id, tok.eos_token_id, 0) if i is not None and i not in special)

    def _ids(self, text: str) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def pieces(self, side: Side) -> tuple[list[int], list[int]]:
        """``(prefix ids incl. BOS, suffix ids)`` of a side, for callers that assemble sequences themselves."""
        prefix, suffix = self._pieces[side]
        return list(prefix), list(suffix)

    def prompt_length(self, side: Side) -> int:
        prefix, suffix = self._pieces[side]
        return len(prefix) + len(suffix)

    def text_ids(self, texts: Sequence[str]) -> list[list[int]]:
        """Token ids of bare texts (no prompt, no LLaRA tokens), batched through the fast tokenizer."""
        if not texts:
            return []
        reserved = set(self.special_ids["passage"] + self.special_ids["query"])
        # A literal "<s3>" in a text would become the reserved token and break pooling: drop it.
        return [[i for i in ids if i not in reserved]
                for ids in self.tokenizer(list(texts), add_special_tokens=False)["input_ids"]]

    def wrap(self, text_ids: Sequence[int], side: Side, max_length: int | None) -> list[int]:
        """``prefix + text + suffix``, cutting the text so the whole sequence fits ``max_length``."""
        prefix, suffix = self._pieces[side]
        if max_length is not None:
            budget = max_length - len(prefix) - len(suffix)
            if budget < 1:
                raise LlaraError(
                    f"max_length {max_length} leaves no room for text: the {side} prompt alone takes "
                    f"{len(prefix) + len(suffix)} tokens")
            text_ids = text_ids[:budget]
        return prefix + list(text_ids) + suffix

    def build(self, texts: Sequence[str], side: Side, max_length: int | None) -> list[list[int]]:
        """Input ids of each text wrapped in the ``side`` prompt."""
        return [self.wrap(ids, side, max_length) for ids in self.text_ids(texts)]
