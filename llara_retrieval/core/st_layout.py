"""The sentence-transformers files of an encoder dir: ``SentenceTransformer(dir)`` then loads it without
``trust_remote_code`` and its ``encode_query`` / ``encode_document`` give LlaraEncoder's vectors.

sentence-transformers 6 imports a module class outside its own package only with ``trust_remote_code``,
so the pipeline is built from its own modules alone (``modules.json``)::

    0_Router      query:    Transformer  (the query tokenizer; a 1-weight placeholder model, never run)
                  document: Transformer  (the passage tokenizer; the same placeholder)
    (the root)    Transformer            (the encoder's own weights: the decoder without its LM head)
    2_WordWeights WordWeights            (weight 1 for the 16 LLaRA tokens, 0 for every other id)
    3_Pooling     Pooling mean           (sum of the weighted states / sum of the weights)
    4_Normalize   Normalize              (L2)

Each route's tokenizer is the encoder's with a post-processor template ``[prefix] $A [suffix]`` that
holds the prompt pieces as fixed ids (BOS included): the text is tokenised alone, as PromptTokenizer
does, and truncation cuts the text, never the suffix. Its input module is a ``Transformer`` because that
is the only built-in module that applies a Hugging Face tokenizer's template; the placeholder model it
needs is read through ``get_input_embeddings`` (no forward), so the LLaRA weights are loaded once, by the
root module. The LLaRA token strings are not added tokens there: a literal ``<s3>`` in a text is removed
by the normaliser, as PromptTokenizer drops it, so every sequence pools exactly its side's 8 states.

Writing needs JSON, ``tokenizers`` and ``transformers`` only, never sentence_transformers itself.
"""
from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

from llara_retrieval._utils.errors import LlaraError, LlaraWarning
from llara_retrieval.core.prompts import PromptTokenizer, Side
from llara_retrieval.core.spec import EncoderSpec

ROUTER_DIR, WEIGHTS_DIR, POOLING_DIR, NORMALIZE_DIR = "0_Router", "2_WordWeights", "3_Pooling", "4_Normalize"
TOP_FILES = ("modules.json", "config_sentence_transformers.json", "sentence_bert_config.json")
ENTRIES = TOP_FILES + (ROUTER_DIR, WEIGHTS_DIR, POOLING_DIR, NORMALIZE_DIR)  # everything this module writes
ROUTES: dict[str, Side] = {"query": "query", "document": "passage"}  # sentence-transformers task -> LLaRA side
ST = "sentence_transformers."
TRANSFORMER = ST + "base.modules.transformer.Transformer"
PLACEHOLDER_OUTPUT = "llara_route_placeholder"  # the feature the routes' placeholder writes (unused)


def write_st_files(folder: str | Path, tokenizer, spec: EncoderSpec, hidden_size: int, required: bool = True) -> bool:
    """Write (or rewrite) the sentence-transformers files into an encoder dir.

    Args:
        folder: the encoder dir; its weights, tokenizer and ``llara_config.json`` stay as they are.
        tokenizer: the encoder's tokenizer (with the LLaRA tokens), a fast one.
        spec: the encoder's spec: prompts, max lengths and their ``length_budget``.
        hidden_size: the model's hidden size (the vector dimension).
        required: without a fast tokenizer, raise (True) or warn and write nothing (False).

    Returns:
        Whether the files were written.
    """
    folder = Path(folder)
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        message = (f"{folder}: the tokenizer {type(tokenizer).__name__} is not a fast one (no tokenizer.json): "
                   "no sentence-transformers files")
        if required:
            raise LlaraError(message)
        warnings.warn(message, LlaraWarning, stacklevel=2)
        return False
    prompt_tokenizer = PromptTokenizer(tokenizer, spec.prompts)
    if getattr(prompt_tokenizer, "sentencepiece", None) is not None:
        warnings.warn(f"{folder}: this encoder takes its text ids from sentencepiece (released LLaRA layout); "
                      "sentence-transformers uses the Hugging Face tokenizer, whose ids differ for some texts "
                      "with runs of spaces", LlaraWarning, stacklevel=2)
    for name in ENTRIES:
        _remove(folder / name)
    base = json.loads(backend.to_str())
    special_ids = sorted(set(prompt_tokenizer.special_ids["query"] + prompt_tokenizer.special_ids["passage"]))
    for task, side in ROUTES.items():
        _write_route(folder / ROUTER_DIR / task, base, tokenizer, prompt_tokenizer, side, spec)
    _write_json(folder / ROUTER_DIR / "router_config.json", {
        "types": {task: TRANSFORMER for task in ROUTES},
        "structure": {task: [task] for task in ROUTES},
        "parameters": {"default_route": "document", "allow_empty_key": True}})
    _write_json(folder / "sentence_bert_config.json", {
        "transformer_task": "feature-extraction", "module_output_name": "token_embeddings",
        "modality_config": {"text": {"method": "forward", "method_output_name": "last_hidden_state"}}})
    vocab_size = max(len(tokenizer), special_ids[-1] + 1)
    _write_json(folder / WEIGHTS_DIR / "config.json", {
        "vocab": [str(i) for i in range(vocab_size)], "word_weights": {str(i): 1.0 for i in special_ids},
        "unknown_word_weight": 0.0})
    _write_json(folder / POOLING_DIR / "config.json",
                {"embedding_dimension": hidden_size, "pooling_mode": "mean", "include_prompt": True})
    _write_json(folder / NORMALIZE_DIR / "config.json",
                {"module_input_name": "sentence_embedding", "module_output_name": "sentence_embedding"})
    _write_json(folder / "config_sentence_transformers.json", {
        "model_type": "SentenceTransformer", "prompts": {}, "default_prompt_name": None,
        "similarity_fn_name": "cosine"})
    modules = [(ROUTER_DIR, "base.modules.router.Router"), ("", "base.modules.transformer.Transformer"),
               (WEIGHTS_DIR, "sentence_transformer.modules.word_weights.WordWeights"),
               (POOLING_DIR, "sentence_transformer.modules.pooling.Pooling"),
               (NORMALIZE_DIR, "base.modules.normalize.Normalize")]
    _write_json(folder / "modules.json", [{"idx": i, "name": str(i), "path": path, "type": ST + cls}
                                          for i, (path, cls) in enumerate(modules)])
    return True


def has_st_files(folder: str | Path) -> bool:
    """Whether ``folder`` holds the sentence-transformers files (``modules.json`` with our router)."""
    return (Path(folder) / "modules.json").is_file() and (Path(folder) / ROUTER_DIR).is_dir()


def route_max_length(prompt_tokenizer: PromptTokenizer, side: Side, spec: EncoderSpec) -> int:
    """The whole-sequence length a route truncates to: the spec's length, plus the prompt when the
    spec's ``length_budget`` counts the text alone."""
    length = spec.query_max_length if side == "query" else spec.passage_max_length
    if getattr(spec, "length_budget", "sequence") == "text":
        length += prompt_tokenizer.prompt_length(side)
    if length <= prompt_tokenizer.prompt_length(side):
        raise LlaraError(f"the spec's {side} max length {length} leaves no room for text: the prompt alone takes "
                         f"{prompt_tokenizer.prompt_length(side)} tokens")
    return length


def _write_route(folder: Path, base: dict, tokenizer, prompt_tokenizer: PromptTokenizer, side: Side,
                 spec: EncoderSpec) -> None:
    """One route: the side's tokenizer (template + reserved-token normaliser) and the placeholder model."""
    prefix, suffix = prompt_tokenizer.pieces(side)
    tokens = set(spec.prompts.special_tokens)
    data = dict(base, truncation=None, padding=None)
    data["added_tokens"] = [t for t in base.get("added_tokens") or [] if t["content"] not in tokens]
    strip = [{"type": "Replace", "pattern": {"String": t}, "content": ""} for t in spec.prompts.special_tokens]
    data["normalizer"] = {"type": "Sequence", "normalizers": strip + ([base["normalizer"]] if base.get("normalizer")
                                                                       else [])}
    pieces = {"[LLARA_PREFIX]": prefix, "[LLARA_SUFFIX]": suffix}
    single = [{"SpecialToken": {"id": "[LLARA_PREFIX]", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
              {"SpecialToken": {"id": "[LLARA_SUFFIX]", "type_id": 0}}]
    data["post_processor"] = {
        "type": "TemplateProcessing", "single": single, "pair": single + [{"Sequence": {"id": "B", "type_id": 1}}],
        "special_tokens": {name: {"id": name, "ids": ids, "tokens": tokenizer.convert_ids_to_tokens(ids)}
                           for name, ids in pieces.items()}}
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "tokenizer.json").write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    length = route_max_length(prompt_tokenizer, side, spec)
    config = {"tokenizer_class": "TokenizersBackend", "model_max_length": length, "padding_side": "right",
              "truncation_side": "right", "pad_token": tokenizer.convert_ids_to_tokens(prompt_tokenizer.pad_id)}
    for name in ("bos_token", "eos_token", "unk_token"):
        if getattr(tokenizer, name, None) and getattr(tokenizer, name) not in tokens:
            config[name] = str(getattr(tokenizer, name))
    _write_json(folder / "tokenizer_config.json", config)
    _write_json(folder / "sentence_bert_config.json", {
        "transformer_task": "feature-extraction", "module_output_name": PLACEHOLDER_OUTPUT,
        "modality_config": {"text": {"method": "get_input_embeddings", "method_output_name": "weight"}},
        "processor_kwargs": {"model_max_length": length}})
    _write_placeholder(folder)


def _write_placeholder(folder: Path) -> None:
    """A BERT with one hidden unit and no layers: the Transformer module needs a model to hold the
    tokenizer; ``get_input_embeddings`` reads one weight and no forward ever runs."""
    import torch
    from transformers import BertConfig, BertModel

    config = BertConfig(vocab_size=1, hidden_size=1, num_hidden_layers=0, num_attention_heads=1, intermediate_size=1,
                        max_position_embeddings=1, type_vocab_size=1)
    with torch.random.fork_rng(devices=[]):  # leave the caller's random state alone
        model = BertModel(config)
    with torch.no_grad():
        for param in model.parameters():
            param.zero_()
    model.save_pretrained(folder)


def _write_json(path: Path, data) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()
