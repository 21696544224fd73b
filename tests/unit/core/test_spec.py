"""Encoder specs: committed specs parse, relative paths resolve, bad specs fail with file and line."""
import json
from pathlib import Path

import pytest

from llara_retrieval import EncoderSpec, LlaraEncoder, LlaraError
from llara_retrieval.core.loading import resolve_spec

ENCODERS = Path(__file__).resolve().parents[3] / "encoders"


@pytest.mark.parametrize("path", sorted(ENCODERS.glob("*.json")), ids=lambda p: p.name)
def test_committed_specs_parse_with_the_method_prompts(path):
    spec = EncoderSpec.load(path)
    assert spec.prompts.passage_suffix.endswith("<s1><s2><s3><s4><s5><s6><s7><s8>")
    assert spec.prompts.query_suffix.endswith("<s9><s10><s11><s12><s13><s14><s15><s16>")
    assert spec.query_max_length <= spec.passage_max_length


def test_default_spec_names_the_embedded_model():
    assert resolve_spec(ENCODERS / "llara-gemma3-270m.json").base_model == "default"
    assert resolve_spec(None) == resolve_spec("default") == EncoderSpec()
    llama = resolve_spec(ENCODERS / "llara-llama2-7b.json")
    assert (llama.base_model, llama.query_max_length, llama.passage_max_length) == ("meta-llama/Llama-2-7b-hf", 64, 160)


def test_spec_with_relative_base_model_loads_that_model(tiny_model_dir, tmp_path):
    model_link = tmp_path / "models" / "tiny"
    model_link.parent.mkdir()
    model_link.symlink_to(tiny_model_dir)
    spec_path = tmp_path / "tiny.json"
    EncoderSpec(base_model="models/tiny", passage_max_length=100, dtype="float32").save(spec_path)
    enc = LlaraEncoder.from_pretrained(spec_path)
    assert Path(enc.spec.base_model) == model_link.resolve()
    direct = LlaraEncoder.from_pretrained(tiny_model_dir, dtype="float32")
    text = ["boundary layer " * 80]
    assert (enc.encode_passages(text) == direct.encode_passages(text, max_length=100)).all()


def test_spec_round_trips_through_json(tmp_path):
    spec = EncoderSpec(base_model="x/y", adapter=None, query_max_length=32, title_separator=None)
    spec.save(tmp_path / "s.json")
    assert EncoderSpec.load(tmp_path / "s.json") == spec


def test_invalid_json_names_file_and_line(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{\n  "format": "llara-encoder/1",\n  "base_model": oops\n}\n')
    with pytest.raises(LlaraError, match=rf"{bad}:3: invalid JSON"):
        EncoderSpec.load(bad)


@pytest.mark.parametrize("content, message", [
    ({"base_model": "x"}, "not a LLaRA encoder spec"),
    ({"format": "llara-encoder/1", "pooling": "cls"}, "unsupported pooling"),
    ({"format": "llara-encoder/1", "normlized": True}, "unknown spec fields"),
])
def test_wrong_specs_are_rejected(tmp_path, content, message):
    path = tmp_path / "s.json"
    path.write_text(json.dumps(content))
    with pytest.raises(LlaraError, match=message):
        EncoderSpec.load(path)
