"""Pretraining data: reference JSONL records -> one combined sequence per example, left-padded.

Each example becomes ``BOS " text ", summarize…<s1..s8> ", predict…<s9..s16>`` (the prompt pieces come
from ``PromptTokenizer``, so the EBAE branch is exactly the passage-side input and the EBAR branch
exactly the query-side input). Rows are padded on the left, so the 16 special tokens sit in the same
columns of every row and the LM head can be applied to those columns only.

``segments`` marks each column: -1 pad, 0 shared prefix + text, 1 EBAE suffix, 2 EBAR suffix; the
model side turns it (with the position ids) into the 4-D attention mask.

As the reference code (FlagEmbedding ``research/LLARA/pretrain``): ``max_length`` covers the whole
combined sequence (``length_budget="branch"``: each branch alone, as the encoder's inputs), target
texts keep their first ``max_length - 1`` tokens (the reference counts the BOS), and the stop-word
filter works on the target text before it is tokenised.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import torch
from tqdm.auto import tqdm

from llara_retrieval._utils.errors import LlaraError, at
from llara_retrieval._utils.jsonl import read_jsonl
from llara_retrieval._utils.recurring import Recurring
from llara_retrieval._utils.text import read_text
from llara_retrieval.core.prompts import PromptTokenizer

FIELDS = ("input", "output_summarize", "output_predict")
PAD, SHARED, EBAE, EBAR = -1, 0, 1, 2
LENGTH_BUDGETS = ("combined", "branch")
# NLTK's English stop-word list, as the reference filters with (``nltk.corpus.stopwords.words("english")``),
# without its entries holding an apostrophe: the filter splits words at every non-word character first,
# so those never match.
ENGLISH_STOPWORDS = (
    "i me my myself we our ours ourselves you your yours yourself yourselves he him his himself she her hers "
    "herself it its itself they them their theirs themselves what which who whom this that these those am is "
    "are was were be been being have has had having do does did doing a an the and but if or because as until "
    "while of at by for with about against between into through during before after above below to from up "
    "down in out on off over under again further then once here there when where why how all any both each "
    "few more most other some such no nor not only own same so than too very s t can will just don should now "
    "d ll m o re ve y ain aren couldn didn doesn hadn hasn haven isn ma mightn mustn needn shan shouldn wasn "
    "weren won wouldn").split()


def data_files(path: str | Path) -> list[Path]:
    """A JSONL file, or every ``*.jsonl`` in a folder (sorted, so the data order is reproducible)."""
    path = Path(path)
    files = sorted(path.glob("*.jsonl")) if path.is_dir() else [path]
    if not files or not files[0].is_file():
        raise LlaraError(f"{path}: no such file (or no *.jsonl in the folder)")
    return files


def read_pretrain_records(path: str | Path) -> list[tuple[str, str, str]]:
    """``(input, output_summarize, output_predict)`` triples; ``output_summarize`` defaults to ``input``.

    A record without ``output_predict`` has no EBAR target (it trains EBAE and the LM only): read as empty,
    with one :class:`LlaraWarning` naming the first such line and the count. ``prepare`` always writes the
    field (empty for a document's last chunk), so the warning points at data from elsewhere.
    """
    records = []
    unpredicted = Recurring("such record(s)")
    for file in data_files(path):
        for lineno, rec in read_jsonl(file):
            text = rec.get("input")
            if not isinstance(text, str) or not text.strip():
                raise LlaraError(f"{at(file, lineno)}: field 'input' must be a non-empty string "
                                 f"(expected {{{', '.join(repr(f) for f in FIELDS)}}})")
            if "output_predict" not in rec:
                unpredicted.add(at(file, lineno), "no 'output_predict' field: this record has no EBAR target "
                                                  "and trains EBAE and the LM only")
            summ, pred = rec.get("output_summarize", text), rec.get("output_predict", "")
            for name, value in (("output_summarize", summ), ("output_predict", pred)):
                if not isinstance(value, str):
                    raise LlaraError(f"{at(file, lineno)}: field {name!r} must be a string")
            records.append((text, summ, pred))
    if not records:
        raise LlaraError(f"{path}: no training records")
    unpredicted.warn()
    return records


def excluded_target_ids(tokenizer, prompt_tokenizer: PromptTokenizer) -> set[int]:
    """Ids never used as bag-of-words targets: special/pad/BOS/EOS and the LLaRA tokens."""
    ids = set(tokenizer.all_special_ids) | set(prompt_tokenizer.special_ids["passage"])
    ids |= set(prompt_tokenizer.special_ids["query"])
    ids |= {i for i in (tokenizer.pad_token_id, tokenizer.bos_token_id, tokenizer.eos_token_id) if i is not None}
    return ids


def stopword_filter(stopwords: str | None) -> Callable[[str], str] | None:
    """The reference's stop-word filter for target texts, or None for ``stopwords=None``.

    Runs of non-word characters (punctuation, underscores) become one space, then every word whose
    lower-case form is in the list is dropped. ``stopwords`` is ``"english"`` (NLTK's list, as the
    reference recipe's ``--remove_stop_words True``) or a file with one word a line.
    """
    if not stopwords:
        return None
    words = ENGLISH_STOPWORDS if stopwords == "english" else read_text(stopwords).split()
    drop = {w.lower() for w in words}

    def apply(text: str) -> str:
        return " ".join(w for w in re.sub(r"[\W_]+", " ", text).split() if w.lower() not in drop)

    return apply


@dataclass
class PretrainExample:
    text: list[int]
    summarize: list[int]  # distinct target ids, sorted
    predict: list[int]


class PretrainDataset(torch.utils.data.Dataset):
    """Tokenised examples: the text cut to fit ``max_length`` (see ``length_budget``), distinct target ids."""

    def __init__(self, path: str | Path | Sequence[tuple[str, str, str]], prompt_tokenizer: PromptTokenizer,
                 max_length: int, max_target_length: int | None = None, excluded: set[int] = frozenset(),
                 batch: int = 1000, length_budget: str = "combined",
                 target_filter: Callable[[str], str] | None = None):
        """
        Args:
            path: a data file or folder, or the records :func:`read_pretrain_records` read from one.
            max_length: tokens of the combined sequence ``prefix text ebae_suffix ebar_suffix``
                (``length_budget="combined"``, as the reference) or of each branch (``"branch"``).
            max_target_length: target tokens kept (default ``max_length``, less one for a BOS).
            excluded: ids never used as targets (:func:`excluded_target_ids`).
            target_filter: applied to target texts before tokenising (:func:`stopword_filter`).
        """
        if length_budget not in LENGTH_BUDGETS:
            raise LlaraError(f"--length_budget must be one of {', '.join(LENGTH_BUDGETS)}, not {length_budget!r}")
        self.layout = SequenceLayout(prompt_tokenizer)
        suffixes = sum(self.layout.suffix_lens) if length_budget == "combined" else max(self.layout.suffix_lens)
        budget = max_length - self.layout.prefix_len - suffixes
        if budget < 1:
            raise LlaraError(f"--max_length {max_length} leaves no room for text: the prompts alone take "
                             f"{max_length - budget} tokens")
        bos = int(prompt_tokenizer.prompts.add_bos and prompt_tokenizer.tokenizer.bos_token_id is not None)
        keep = max_target_length or max_length - bos
        records = read_pretrain_records(path) if isinstance(path, (str, Path)) else list(path)
        if target_filter is not None:
            records = [(text, target_filter(summ), target_filter(pred)) for text, summ, pred in records]
        self.examples: list[PretrainExample] = []
        for start in tqdm(range(0, len(records), batch), desc="tokenize", unit="batch",
                          disable=len(records) < 10 * batch):
            chunk = records[start:start + batch]
            ids = prompt_tokenizer.text_ids([t for rec in chunk for t in rec])
            for i in range(len(chunk)):
                text, summ, pred = ids[3 * i:3 * i + 3]
                self.examples.append(PretrainExample(
                    text[:budget], _targets(summ[:keep], excluded), _targets(pred[:keep], excluded)))

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, index: int) -> PretrainExample:
        return self.examples[index]


def _targets(ids: Sequence[int], excluded: set[int]) -> list[int]:
    return sorted(set(ids) - excluded)


class SequenceLayout:
    """The fixed prompt pieces of the combined sequence ``prefix text ebae_suffix ebar_suffix``."""

    def __init__(self, prompt_tokenizer: PromptTokenizer):
        prefix, self.ebae_suffix = prompt_tokenizer.pieces("passage")
        query_prefix, self.ebar_suffix = prompt_tokenizer.pieces("query")
        if prefix != query_prefix:
            raise LlaraError("one-forward pretraining needs the same passage and query prefix; "
                             f"got {prefix} and {query_prefix}")
        self.prefix = prefix
        self.prefix_len = len(prefix)
        self.suffix_lens = (len(self.ebae_suffix), len(self.ebar_suffix))
        self.n_special = (len(prompt_tokenizer.special_ids["passage"]), len(prompt_tokenizer.special_ids["query"]))


class PretrainCollator:
    """Left-pads combined sequences; returns ids, position ids, segments, the columns of the EBAE and
    EBAR special tokens (and of the LM predictions with their labels) and padded target-id sets."""

    def __init__(self, prompt_tokenizer: PromptTokenizer, pad_id: int, with_lm: bool = True):
        self.layout = SequenceLayout(prompt_tokenizer)
        self.pad_id = pad_id
        self.with_lm = with_lm

    def __call__(self, examples: Sequence[PretrainExample]) -> dict[str, torch.Tensor]:
        lay = self.layout
        a_len, b_len = lay.suffix_lens
        max_text = max(len(ex.text) for ex in examples)
        width = lay.prefix_len + max_text + a_len + b_len
        n = len(examples)
        input_ids = torch.full((n, width), self.pad_id, dtype=torch.long)
        positions = torch.zeros((n, width), dtype=torch.long)
        segments = torch.full((n, width), PAD, dtype=torch.long)
        for row, ex in enumerate(examples):
            shared = lay.prefix + ex.text
            ids = shared + lay.ebae_suffix + lay.ebar_suffix
            off = width - len(ids)
            input_ids[row, off:] = torch.tensor(ids)
            start_b = len(shared) + a_len
            positions[row, off:off + start_b] = torch.arange(start_b)
            positions[row, off + start_b:] = torch.arange(len(shared), len(shared) + b_len)
            segments[row, off:off + len(shared)] = SHARED
            segments[row, off + len(shared):off + start_b] = EBAE
            segments[row, off + start_b:] = EBAR
        text_end = width - a_len - b_len  # first column after the text, the same in every row
        batch = {"input_ids": input_ids, "position_ids": positions, "segments": segments,
                 "ebae_columns": torch.arange(text_end + a_len - lay.n_special[0], text_end + a_len),
                 "ebar_columns": torch.arange(width - lay.n_special[1], width),
                 "summarize_targets": _pad_targets([ex.summarize for ex in examples]),
                 "predict_targets": _pad_targets([ex.predict for ex in examples])}
        if self.with_lm:
            # Columns P-1 .. text_end-2 predict the text tokens; rows with shorter text ignore the excess.
            lm_columns = torch.arange(lay.prefix_len - 1, text_end - 1)
            labels = input_ids[:, lm_columns + 1].clone()
            for row, ex in enumerate(examples):
                labels[row, :max_text - len(ex.text)] = -100
            batch.update(lm_columns=lm_columns, lm_labels=labels)
        return batch


def _pad_targets(sets: Sequence[Sequence[int]]) -> torch.Tensor:
    """``[n, max_len]`` target ids padded with -1 (at least one column)."""
    out = torch.full((len(sets), max(1, max(len(s) for s in sets))), -1, dtype=torch.long)
    for row, ids in enumerate(sets):
        out[row, :len(ids)] = torch.tensor(ids, dtype=torch.long)
    return out
