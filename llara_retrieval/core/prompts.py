"""LLaRA prompts: the only place that turns a text into the token ids the model sees.

Passage side (EBAE):  BOS ``"{text}", summarize the above passage within eight words: <s1>..<s8>``
Query side (EBAR):    BOS ``"{text}", predict the following passage within eight words: <s9>..<s16>``

Prefix, text and suffix are tokenised separately and concatenated, exactly as the released LLaRA
models were trained, so the text can be truncated without ever cutting the prompt tail. The length
budget covers the whole sequence (as fine-tuning cut it) or the text alone (as the model card does).
A tokenizer from a released-layout dir (sentencepiece ``tokenizer.model``, slow ``LlamaTokenizer``
config) gets its text ids from sentencepiece (``sentencepiece_text``), as those models were trained.
Passages given as ``{"title", "text"}`` records become one string in ``format_passage`` only.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Literal, Mapping, Sequence

from llara_retrieval._utils.errors import LlaraError
from llara_retrieval.core.sentencepiece_text import for_tokenizer

Side = Literal["query", "passage"]
Budget = Literal["sequence", "text"]
BUDGETS = ("sequence", "text")

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


def format_passage(passage: object, title_separator: str | None, where: str = "passage") -> str:
    """The one text a passage is encoded as: a string as it is; a ``{"title", "text"}`` record as
    ``title + title_separator + text`` (title stripped; the title is dropped when empty or when the
    separator is None). Encoder, fine-tuning data and negative mining all call this.

    Args:
        passage: a string or a mapping with a string ``text`` and an optional string ``title``.
        title_separator: what joins title and text (None: encode the text alone, as the model card).
        where: the location named in errors (``file:line`` or ``passage 3``).
    """
    if isinstance(passage, str):
        return passage
    if not isinstance(passage, Mapping):
        raise LlaraError(f"{where}: a passage must be a string or a {{\"title\", \"text\"}} object, "
                         f"got {type(passage).__name__}")
    text, title = passage.get("text"), passage.get("title") or ""
    if not isinstance(text, str):
        got = "missing" if text is None else f"a {type(text).__name__}"
        raise LlaraError(f"{where}: field 'text' must be a string, got {got}")
    if not isinstance(title, str):
        raise LlaraError(f"{where}: field 'title' must be a string, got {type(title).__name__}")
    title = title.strip()
    return f"{title}{title_separator}{text}" if title and title_separator is not None else text


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
        self.sentencepiece = for_tokenizer(tok)  # None: the tokenizer's own ids
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
        return self._encode([text])[0]

    def _encode(self, texts: list[str]) -> list[list[int]]:
        if self.sentencepiece is not None:
            return self.sentencepiece(texts)
        return [list(ids) for ids in self.tokenizer(texts, add_special_tokens=False)["input_ids"]]

    def pieces(self, side: Side) -> tuple[list[int], list[int]]:
        """``(prefix ids incl. BOS, suffix ids)`` of a side, for callers that assemble sequences themselves."""
        prefix, suffix = self._pieces[side]
        return list(prefix), list(suffix)

    def prompt_length(self, side: Side) -> int:
        prefix, suffix = self._pieces[side]
        return len(prefix) + len(suffix)

    def text_ids(self, texts: Sequence[str]) -> list[list[int]]:
        """Token ids of bare texts (no prompt, no LLaRA tokens), batched."""
        if not texts:
            return []
        reserved = set(self.special_ids["passage"] + self.special_ids["query"])
        # A literal "<s3>" in a text would become the reserved token and break pooling: drop it.
        return [[i for i in ids if i not in reserved] for ids in self._encode(list(texts))]

    def text_budget(self, side: Side, max_length: int | None, budget: Budget = "sequence") -> int | None:
        """Text tokens kept under ``max_length``: all of it with ``budget="text"`` (the prompt comes on
        top, as the model card), or what the prompt leaves with ``"sequence"`` (as fine-tuning)."""
        if budget not in BUDGETS:
            raise LlaraError(f"length budget must be one of {', '.join(BUDGETS)}, not {budget!r}")
        if max_length is None:
            return None
        keep = max_length if budget == "text" else max_length - self.prompt_length(side)
        if keep < 1:
            raise LlaraError(f"max_length {max_length} leaves no room for text: the {side} prompt alone "
                             f"takes {self.prompt_length(side)} tokens")
        return keep

    def wrap(self, text_ids: Sequence[int], side: Side, max_length: int | None,
             budget: Budget = "sequence") -> list[int]:
        """``prefix + text + suffix``, the text cut to ``text_budget(side, max_length, budget)`` tokens."""
        prefix, suffix = self._pieces[side]
        keep = self.text_budget(side, max_length, budget)
        return prefix + list(text_ids if keep is None else text_ids[:keep]) + suffix

    def build(self, texts: Sequence[str], side: Side, max_length: int | None,
              budget: Budget = "sequence") -> list[list[int]]:
        """Input ids of each text wrapped in the ``side`` prompt."""
        keep = self.text_budget(side, max_length, budget)
        prefix, suffix = self._pieces[side]
        return [prefix + (ids if keep is None else ids[:keep]) + suffix for ids in self.text_ids(texts)]
