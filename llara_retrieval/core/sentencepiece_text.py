"""Text ids as the released LLaRA checkpoints saw them: the sentencepiece LLaMA tokenizer of transformers 4.

BAAI's LLaRA checkpoints were trained (``use_fast=False``) and documented with transformers 4, whose
``LlamaTokenizer`` in legacy mode (and the fast tokenizer it converted to: the same ids) splits a text
at the tokenizer's added tokens (``<s>``, ``<unk>``, ``<s1>`` ...) and runs sentencepiece on each piece
in between. transformers 5 rebuilds a BPE tokenizer from the same ``tokenizer.model`` that splits runs
of spaces differently (about 1 text in 10 of the shared probe texts), which moves the vectors. So a
tokenizer loaded from a dir with a sentencepiece ``tokenizer.model`` and a slow, legacy
``LlamaTokenizer`` config (the released layout) gets its text ids from the ``sentencepiece`` package.
"""
from __future__ import annotations

import json
import re
import shutil
from functools import lru_cache
from pathlib import Path
from typing import Mapping, Sequence

MODEL_FILE = "tokenizer.model"
SLOW_CLASSES = ("LlamaTokenizer",)  # transformers 4 wrote this name for its slow and its fast LLaMA tokenizer


def model_file(tokenizer) -> Path | None:
    """The sentencepiece model of a tokenizer loaded from a slow, legacy ``LlamaTokenizer`` dir, else None.

    ``legacy`` missing meant legacy in transformers 4; ``legacy: false`` tokenised differently and is
    left to the loaded tokenizer.
    """
    name = getattr(tokenizer, "vocab_file", None) or getattr(tokenizer, "init_kwargs", {}).get("vocab_file")
    if not isinstance(name, (str, Path)) or Path(name).name != MODEL_FILE or not Path(name).is_file():
        return None
    try:
        config = json.loads((Path(name).parent / "tokenizer_config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(config, dict) or config.get("tokenizer_class") not in SLOW_CLASSES:
        return None
    return Path(name) if config.get("legacy") is not False else None


class SentencePieceText:
    """``texts -> ids`` as transformers 4's ``LlamaTokenizer(legacy=True)`` with ``add_special_tokens=False``.

    Args:
        path: the sentencepiece model (``tokenizer.model``).
        added: the tokenizer's added tokens, ``{id: AddedToken}`` (``tokenizer.added_tokens_decoder``).
            Each is matched in the text (longest first) and kept whole; its ``lstrip``/``rstrip``
            remove the whitespace beside it, as transformers 4 did.
    """

    def __init__(self, path: str | Path, added: Mapping[int, object]):
        self.path = Path(path)
        self.processor = _processor(str(path))
        self.added = {str(tok): (int(i), bool(getattr(tok, "lstrip", False)), bool(getattr(tok, "rstrip", False)))
                      for i, tok in added.items()}
        names = sorted(self.added, key=len, reverse=True)
        self.pattern = re.compile("|".join(map(re.escape, names))) if names else None

    def __call__(self, texts: Sequence[str]) -> list[list[int]]:
        """Token ids of each text (no BOS/EOS)."""
        parts = [self._split(text) for text in texts]
        plain = iter(self.processor.encode([piece for p in parts for piece in p[0::2]]))
        out = []
        for p in parts:
            ids: list[int] = []
            for j, piece in enumerate(p):
                ids.extend(next(plain) if j % 2 == 0 else [self.added[piece][0]])
            out.append(ids)
        return out

    def _split(self, text: str) -> list[str]:
        """``[plain, added, plain, ..., plain]``, with the added tokens' stripping applied."""
        parts, start = [], 0
        for match in (self.pattern.finditer(text) if self.pattern else ()):
            parts += [text[start:match.start()], match.group()]
            start = match.end()
        parts.append(text[start:])
        for j in range(1, len(parts), 2):
            _, lstrip, rstrip = self.added[parts[j]]
            if lstrip:
                parts[j - 1] = parts[j - 1].rstrip()
            if rstrip:
                parts[j + 1] = parts[j + 1].lstrip()
        return parts


@lru_cache(maxsize=8)
def _processor(path: str):
    import sentencepiece

    return sentencepiece.SentencePieceProcessor(model_file=path)


def for_tokenizer(tokenizer) -> SentencePieceText | None:
    """The sentencepiece text tokenizer to use instead of ``tokenizer``'s own, or None (use its own)."""
    path = model_file(tokenizer)
    return SentencePieceText(path, tokenizer.added_tokens_decoder) if path else None


def save_tokenizer(tokenizer, folder: str | Path) -> None:
    """Save ``tokenizer`` so the saved dir tokenises as it does: transformers' files, plus the
    sentencepiece model when its text ids come from there (transformers 5 does not write it)."""
    tokenizer.save_pretrained(folder)
    path = model_file(tokenizer)
    target = Path(folder) / MODEL_FILE
    if path and not (target.exists() and target.resolve() == path.resolve()):
        shutil.copyfile(path, target)
