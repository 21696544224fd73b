"""sentence-transformers loads our encoder dirs without trust_remote_code and gives LlaraEncoder's vectors."""
import json
import shutil
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest

from llara_retrieval._utils.errors import LlaraError
from llara_retrieval.core.encoder import LlaraEncoder
from llara_retrieval.core.spec import SPEC_FILE, EncoderSpec
from llara_retrieval.core.st_layout import ENTRIES, ROUTER_DIR, write_st_files
from llara_retrieval.integrations import sentence_transformers as st_integration
from tests.support.tiny import build_tiny_model, cranfield_texts

pytest.importorskip("sentence_transformers", minversion="6.0")
from sentence_transformers import SentenceTransformer  # noqa: E402

QUERIES = ["what is the boundary layer", "heat transfer in hypersonic flow " * 30, "x", "  spaced   query  "]


@pytest.fixture(scope="module", params=["llama", "gemma3"])
def encoder_dir(request, tmp_path_factory):
    base = build_tiny_model(tmp_path_factory.mktemp(f"base-{request.param}"), request.param)
    folder = tmp_path_factory.mktemp(f"enc-{request.param}") / "encoder"
    LlaraEncoder.from_pretrained(base, device="cpu", dtype="float32").save_pretrained(folder, dtype="float32")
    return folder


@pytest.fixture(scope="module")
def loaded(encoder_dir):
    return (SentenceTransformer(str(encoder_dir), device="cpu"),
            LlaraEncoder.from_pretrained(encoder_dir, device="cpu", dtype="float32"))


def test_only_sentence_transformers_module_classes(encoder_dir):
    """Without trust_remote_code, sentence-transformers 6 imports nothing outside its own package."""
    types = [m["type"] for m in json.loads((encoder_dir / "modules.json").read_text())]
    router = json.loads((encoder_dir / ROUTER_DIR / "router_config.json").read_text())
    assert all(t.startswith("sentence_transformers.") for t in types + list(router["types"].values()))


def test_vectors_equal_llara_encoder(loaded):
    model, encoder = loaded
    passages = cranfield_texts(16) + ["boundary layer " * 300, "a", "quote \"inside\", then: more."]
    np.testing.assert_allclose(model.encode_query(QUERIES), encoder.encode_queries(QUERIES), atol=1e-5, rtol=0)
    np.testing.assert_allclose(model.encode_document(passages), encoder.encode_passages(passages), atol=1e-5, rtol=0)
    np.testing.assert_allclose(model.encode(passages[:5]), encoder.encode_passages(passages[:5]), atol=1e-5, rtol=0)
    assert not np.allclose(model.encode_query(QUERIES[:1]), model.encode_document(QUERIES[:1]), atol=1e-3)


def test_input_ids_are_prompt_tokenizer_ids(loaded):
    """The routes' templates give the exact LLaRA ids, truncation included (text cut, suffix kept)."""
    model, encoder = loaded
    texts = QUERIES + cranfield_texts(20)
    for task, side, length in (("query", "query", encoder.spec.query_max_length),
                               ("document", "passage", encoder.spec.passage_max_length)):
        features = model.preprocess(texts, task=task)
        got = [row[mask.bool()].tolist() for row, mask in zip(features["input_ids"], features["attention_mask"])]
        assert got == encoder.prompt_tokenizer.build(texts, side, length)


def test_reserved_token_in_text_is_dropped(loaded):
    model, encoder = loaded
    texts = ["<s3>boundary layer", "boundary layer<s12>"]
    np.testing.assert_allclose(model.encode_query(texts), encoder.encode_queries(texts), atol=1e-5, rtol=0)


@pytest.mark.skipif("length_budget" not in EncoderSpec.__dataclass_fields__, reason="no length_budget in specs")
def test_text_length_budget_adds_the_prompt(encoder_dir, tmp_path):
    folder = tmp_path / "encoder"
    shutil.copytree(encoder_dir, folder)
    spec = replace(EncoderSpec.load(folder / SPEC_FILE), query_max_length=8, length_budget="text")
    spec = replace(spec, base_model=".")
    spec.save(folder / SPEC_FILE)
    st_integration.export(folder)
    encoder = LlaraEncoder.from_pretrained(folder, device="cpu", dtype="float32")
    model = SentenceTransformer(str(folder), device="cpu")
    np.testing.assert_allclose(model.encode_query(QUERIES), encoder.encode_queries(QUERIES), atol=1e-5, rtol=0)


def test_export_converts_an_older_dir(encoder_dir, tmp_path):
    folder = tmp_path / "old"
    shutil.copytree(encoder_dir, folder)
    for name in ENTRIES:
        path = folder / name
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    with pytest.raises(LlaraError, match="no sentence-transformers files"):
        st_integration.load(folder)
    from llara_retrieval.integrations.__main__ import main

    assert main(["sentence-transformers", str(folder)]) == 0
    model = st_integration.load(folder, device="cpu")
    encoder = LlaraEncoder.from_pretrained(folder, device="cpu", dtype="float32")
    np.testing.assert_allclose(model.encode_query(QUERIES), encoder.encode_queries(QUERIES), atol=1e-5, rtol=0)


def test_export_refuses_what_is_not_an_encoder_dir(tmp_path, tiny_model_dir):
    with pytest.raises(LlaraError, match="not an encoder dir"):
        st_integration.export(tmp_path)
    spec_file = tmp_path / SPEC_FILE
    EncoderSpec(base_model=str(tiny_model_dir)).save(spec_file)
    with pytest.raises(LlaraError, match="weights are not in this dir"):
        st_integration.export(tmp_path)


def test_slow_tokenizer_is_refused_or_skipped(tmp_path):
    class Slow:
        pass

    with pytest.raises(LlaraError, match="not a fast one"):
        write_st_files(tmp_path, Slow(), EncoderSpec(), 8)
    with pytest.warns(Warning, match="not a fast one"):
        assert write_st_files(tmp_path, Slow(), EncoderSpec(), 8, required=False) is False
    assert not (tmp_path / "modules.json").exists()


def test_trainer_output_dir_saved_twice_still_loads(tiny_model_dir, tmp_path):
    """save_encoder moves the staged files in: a second save replaces the folders of the first."""
    from llara_retrieval.train.outputs import save_encoder

    encoder = LlaraEncoder.from_pretrained(tiny_model_dir, device="cpu", dtype="float32")
    for _ in range(2):
        save_encoder(encoder.model, encoder.tokenizer, encoder.spec, tmp_path / "out")
    model = SentenceTransformer(str(tmp_path / "out"), device="cpu")
    np.testing.assert_allclose(model.encode_query(QUERIES), encoder.encode_queries(QUERIES), atol=1e-5, rtol=0)


def test_integrations_import_lazily():
    code = ("import sys, llara_retrieval.integrations, llara_retrieval.integrations.sentence_transformers; "
            "print(sorted(m for m in ('torch', 'sentence_transformers', 'mteb') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
