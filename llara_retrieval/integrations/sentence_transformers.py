"""sentence-transformers: encoder dirs that ``SentenceTransformer(dir)`` loads, without ``trust_remote_code``.

The files themselves are written by ``core/st_layout.py`` (``LlaraEncoder.save_pretrained`` calls it);
this module converts dirs written before, and loads one.
"""
from __future__ import annotations

from pathlib import Path

from llara_retrieval._utils.errors import LlaraError, first_line
from llara_retrieval.core.spec import SPEC_FILE, EncoderSpec
from llara_retrieval.core.st_layout import has_st_files, write_st_files

SAVE_HINT = "write one with LlaraEncoder.from_pretrained(...).save_pretrained(dir)"


def export(folder: str | Path) -> Path:
    """Add (or refresh) the sentence-transformers files of an existing encoder dir, in place.

    The weights, tokenizer and ``llara_config.json`` are left as they are; only the files listed in
    ``core.st_layout.ENTRIES`` are (re)written.

    Args:
        folder: an encoder dir holding its own weights (``llara_config.json`` with ``base_model: "."``).

    Returns:
        ``folder``.
    """
    folder = Path(folder)
    spec_file = folder / SPEC_FILE
    if not spec_file.is_file():
        raise LlaraError(f"{folder}: not an encoder dir (no {SPEC_FILE}); {SAVE_HINT}")
    spec = EncoderSpec.load(spec_file)
    if spec.adapter or spec.gguf_file or Path(spec.base_model).resolve() != folder.resolve():
        raise LlaraError(f"{spec_file}: the weights are not in this dir (base_model {spec.base_model!r}"
                         f"{', adapter ' + repr(spec.adapter) if spec.adapter else ''}); {SAVE_HINT}")
    from transformers import AutoConfig, AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(folder)
        hidden_size = AutoConfig.from_pretrained(folder).get_text_config().hidden_size
    except (OSError, ValueError) as exc:
        raise LlaraError(f"{folder}: cannot read the tokenizer or config.json ({first_line(exc)})") from None
    write_st_files(folder, tokenizer, spec, hidden_size)
    return folder


def load(folder: str | Path, **kwargs):
    """``SentenceTransformer(folder, **kwargs)`` after checking the dir carries the files (see ``export``)."""
    if not has_st_files(folder):
        raise LlaraError(f"{folder}: no sentence-transformers files; convert the dir with "
                         "`python -m llara_retrieval.integrations sentence-transformers DIR`")
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(folder), **kwargs)
