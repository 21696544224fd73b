"""Encoder specs: the small JSON that makes an encoder dir (or a named encoder) self-describing.

A spec names the base model, an optional PEFT adapter, the prompts and special tokens, the pooling,
the default max lengths and what they cover (``length_budget``: the whole sequence, as fine-tuning
cut it, or the text alone, as the released models' card), how titles join the text and the dtype
(null: the device's fast one): everything needed to reproduce the vectors. Relative paths in a spec
file are resolved against the file's folder.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from llara_retrieval._utils.errors import LlaraError
from llara_retrieval.core.prompts import BUDGETS, LlaraPrompts

SPEC_FORMAT = "llara-encoder/1"
SPEC_FILE = "llara_config.json"
POOLING = "mean_special_tokens_l2"


@dataclass(frozen=True)
class EncoderSpec:
    base_model: str = "default"
    gguf_file: str | None = None
    adapter: str | None = None
    prompts: LlaraPrompts = field(default_factory=LlaraPrompts)
    pooling: str = POOLING
    query_max_length: int = 64
    passage_max_length: int = 512
    length_budget: str = "sequence"
    title_separator: str | None = " "
    dtype: str | None = None
    description: str = ""
    provenance: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        data = {"format": SPEC_FORMAT, **asdict(self)}
        data["prompts"] = self.prompts.to_dict()
        return data

    @classmethod
    def from_dict(cls, data: dict, source: str = "spec") -> "EncoderSpec":
        data = dict(data)
        fmt = data.pop("format", None)
        if fmt != SPEC_FORMAT:
            raise LlaraError(f"{source}: not a LLaRA encoder spec (format {fmt!r}, expected {SPEC_FORMAT!r})")
        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown:
            raise LlaraError(f"{source}: unknown spec fields {sorted(unknown)}")
        if "prompts" in data:
            data["prompts"] = LlaraPrompts.from_dict(data["prompts"])
        spec = cls(**data)
        if spec.pooling != POOLING:
            raise LlaraError(f"{source}: unsupported pooling {spec.pooling!r} (only {POOLING!r})")
        if spec.length_budget not in BUDGETS:
            raise LlaraError(f"{source}: length_budget must be one of {', '.join(map(repr, BUDGETS))}, "
                             f"not {spec.length_budget!r}")
        return spec

    @classmethod
    def load(cls, path: str | Path) -> "EncoderSpec":
        """Read a spec file; relative ``base_model``/``adapter`` paths become absolute."""
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError) as exc:
            raise LlaraError(f"{path}: cannot read encoder spec ({exc})") from None
        except json.JSONDecodeError as exc:
            raise LlaraError(f"{path}:{exc.lineno}: invalid JSON in encoder spec ({exc.msg})") from None
        if not isinstance(data, dict):
            raise LlaraError(f"{path}:1: an encoder spec must be a JSON object")
        spec = cls.from_dict(data, source=str(path))
        return replace(spec, base_model=_resolve(spec.base_model, path.parent),
                       adapter=_resolve(spec.adapter, path.parent) if spec.adapter else None)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")


def _resolve(name: str, folder: Path) -> str:
    """A relative path that exists next to the spec is made absolute; hub ids and "default" stay."""
    if name in ("default", None) or Path(name).is_absolute():
        return name
    candidate = folder / name
    return str(candidate.resolve()) if (candidate.exists() or name.startswith(".")) else name


def is_spec_file(path: Path) -> bool:
    return path.is_file() and path.suffix == ".json"
