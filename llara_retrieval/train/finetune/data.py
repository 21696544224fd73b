"""Fine-tuning data: ``{"query", "pos", "neg"}`` JSONL records, per-epoch groups, and the collator.

Every record is checked when the file is read, so a bad line stops the run before the first step
(``file:line: ...``) instead of crashing it mid-epoch.
"""
from __future__ import annotations

import json
import random
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import torch
from torch.utils.data import Dataset

from llara_retrieval._utils.errors import LlaraError, LlaraWarning, at
from llara_retrieval._utils.text import read_lines
from llara_retrieval.core.prompts import PromptTokenizer, format_passage


@dataclass(frozen=True)
class TrainRecord:
    query: str
    pos: tuple[str, ...]
    neg: tuple[str, ...]


def parse_record(data: object, where: str, title_separator: str | None = " ") -> TrainRecord:
    if not isinstance(data, dict):
        raise LlaraError(f"{where}: a training record must be a JSON object")
    query = data.get("query")
    if not isinstance(query, str) or not query.strip():
        raise LlaraError(f"{where}: 'query' must be a non-empty string")
    pos, neg = data.get("pos"), data.get("neg", [])
    if not isinstance(pos, list) or not pos:
        raise LlaraError(f"{where}: 'pos' must be a non-empty list of passages"
                         + (" (the record has none)" if pos is None else ""))
    if not isinstance(neg, list):
        raise LlaraError(f"{where}: 'neg' must be a list of passages")
    return TrainRecord(query, tuple(format_passage(p, title_separator, where) for p in pos),
                       tuple(format_passage(p, title_separator, where) for p in neg))


def read_train_data(path: str | Path, group_size: int, title_separator: str | None = " ") -> list[TrainRecord]:
    """All records of a JSONL file, checked against ``group_size`` (1 positive + ``group_size - 1`` negatives).

    A record with fewer negatives than needed draws them with replacement; one with none at all when
    negatives are needed is an error (mine some, or pass ``--train_group_size 1``).
    """
    if group_size < 1:
        raise LlaraError(f"train_group_size must be at least 1, not {group_size}")
    records = []
    for lineno, line in read_lines(path):
        if not line.strip():
            continue
        where = at(path, lineno)
        try:
            data = json.loads(line)
        except json.JSONDecodeError as exc:
            raise LlaraError(f"{where}: invalid JSON ({exc.msg})") from None
        record = parse_record(data, where, title_separator)
        if group_size > 1 and not record.neg:
            raise LlaraError(f"{where}: 'neg' is empty but --train_group_size {group_size} needs "
                             f"{group_size - 1} negatives per query (mine negatives, or use --train_group_size 1)")
        records.append(record)
    if not records:
        raise LlaraError(f"{path}: no training records")
    return records


class GroupDataset(Dataset):
    """One item per query: the query and its group (1 positive, then ``group_size - 1`` negatives).

    Choices are seeded and depend on the epoch (call :meth:`set_epoch`): positives rotate and each
    query walks through its shuffled negatives, so reruns and resumed runs see the same groups.
    """

    def __init__(self, records: Sequence[TrainRecord], group_size: int, seed: int = 42):
        self.records = list(records)
        self.group_size = group_size
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> dict:
        record = self.records[index]
        item_seed = self.seed * 1_000_003 + index
        positive = record.pos[(item_seed + self.epoch) % len(record.pos)]
        need = self.group_size - 1
        if need == 0:
            negatives: list[str] = []
        elif len(record.neg) < need:
            negatives = random.Random(item_seed * 7919 + self.epoch).choices(record.neg, k=need)
        else:
            order = list(record.neg)
            random.Random(item_seed).shuffle(order)
            start = self.epoch * need % len(order)
            negatives = (order + order)[start:start + need]
        return {"query": record.query, "passages": [positive, *negatives]}


class GroupCollator:
    """Wraps texts in the LLaRA prompts (texts truncated, prompts never) and right-pads them.

    Right padding needs no attention mask under causal attention, as in :class:`LlaraEncoder`.
    """

    def __init__(self, prompt_tokenizer: PromptTokenizer, pad_id: int, query_max_len: int = 64,
                 passage_max_len: int = 160):
        self.prompt_tokenizer = prompt_tokenizer
        self.pad_id = pad_id
        self.query_max_len = query_max_len
        self.passage_max_len = passage_max_len
        for side, budget in (("query", query_max_len), ("passage", passage_max_len)):
            prompt_tokenizer.wrap([], side, budget)  # raises now if the prompt alone exceeds the budget

    def __call__(self, items: Sequence[dict]) -> dict[str, torch.Tensor]:
        queries = self.prompt_tokenizer.build([it["query"] for it in items], "query", self.query_max_len)
        passages = self.prompt_tokenizer.build([p for it in items for p in it["passages"]], "passage",
                                               self.passage_max_len)
        return {"query_ids": self.pad(queries), "passage_ids": self.pad(passages)}

    def pad(self, rows: Sequence[Sequence[int]]) -> torch.Tensor:
        out = torch.full((len(rows), max(len(r) for r in rows)), self.pad_id, dtype=torch.long)
        for i, row in enumerate(rows):
            out[i, :len(row)] = torch.as_tensor(row, dtype=torch.long)
        return out


def report_truncation(records: Sequence[TrainRecord], prompt_tokenizer: PromptTokenizer, query_max_len: int) -> int:
    """Say how many queries exceed their token budget (they are truncated, like passages)."""
    budget = query_max_len - prompt_tokenizer.prompt_length("query")
    lengths = [len(ids) for ids in prompt_tokenizer.text_ids([r.query for r in records])]
    over = sum(n > budget for n in lengths)
    if over:
        warnings.warn(f"{over} of {len(records)} queries exceed the {budget}-token text budget of --query_max_len "
                      f"{query_max_len} and are truncated (longest: {max(lengths)} tokens)", LlaraWarning, stacklevel=2)
    return over
