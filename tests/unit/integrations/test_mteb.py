"""MTEB: LLaRA's query/passage sides by prompt type, and an offline BEIR folder scored as llara-beir scores it."""
import numpy as np
import pytest

from llara_retrieval.core.encoder import LlaraEncoder

pytest.importorskip("mteb", minversion="2.0")
from mteb.types import PromptType  # noqa: E402

from llara_retrieval.integrations.mteb import LlaraMtebEncoder, beir_task, evaluate_beir_folder  # noqa: E402


@pytest.fixture(scope="module")
def encoder_dir(tiny_model_dir, tmp_path_factory):
    folder = tmp_path_factory.mktemp("mteb") / "tiny-encoder"
    LlaraEncoder.from_pretrained(tiny_model_dir, device="cpu", dtype="float32").save_pretrained(folder, dtype="float32")
    return folder


def test_prompt_type_picks_the_side(encoder_dir):
    encoder = LlaraEncoder.from_pretrained(encoder_dir, device="cpu", dtype="float32")
    model = LlaraMtebEncoder(encoder, max_length=40, query_max_length=48)
    queries = [{"text": ["boundary layer flow", "shock waves"]}, {"text": ["heat transfer"]}]
    corpus = [{"id": ["a", "b"], "text": ["T body", "body two"], "body": ["body", "body two"], "title": ["T", None]}]
    kwargs = {"task_metadata": None, "hf_split": "test", "hf_subset": "default"}
    np.testing.assert_array_equal(model.encode(queries, prompt_type=PromptType.query, **kwargs),
                                  encoder.encode_queries(["boundary layer flow", "shock waves", "heat transfer"],
                                                         max_length=48))
    np.testing.assert_array_equal(model.encode(corpus, prompt_type=PromptType.document, **kwargs),
                                  encoder.encode_passages([{"title": "T", "text": "body"}, "body two"], max_length=40))
    np.testing.assert_array_equal(model.encode([{"text": ["plain"]}], **kwargs),
                                  encoder.encode_passages(["plain"], max_length=40))


def test_beir_task_holds_the_folder(cranfield_dir):
    from llara_retrieval.retrieval.data import load_dataset

    data = load_dataset(cranfield_dir, "test")
    task = beir_task(cranfield_dir)
    task.load_data()
    split = task.dataset["default"]["test"]
    assert task.metadata.main_score == "ndcg_at_10" and task.metadata.dataset["revision"] == data.corpus_sha256[:16]
    assert split["corpus"]["id"] == list(data.corpus) and split["queries"]["id"] == list(data.queries)
    assert split["relevant_docs"] == data.qrels


@pytest.mark.slow
def test_offline_cranfield_equals_beir_runner(encoder_dir, cranfield_dir, tmp_path):
    from llara_retrieval.beir.run import run_beir

    lengths = {"max_length": 64, "query_max_length": 48}
    record = run_beir([cranfield_dir], encoder_dir, tmp_path / "runs", cache_dir=tmp_path / "cache", device="cpu",
                      dtype="float32", show_progress_bar=False, **lengths)[0]
    scores = evaluate_beir_folder(encoder_dir, cranfield_dir, device="cpu", dtype="float32", show_progress_bar=False,
                                  **lengths)
    assert record["metrics"]["nDCG@10"] > 0.005  # a real ranking, not an empty one
    assert abs(scores["ndcg_at_10"] - record["metrics"]["nDCG@10"]) <= 1e-4
    assert abs(scores["recall_at_100"] - record["metrics"]["Recall@100"]) <= 1e-4
    assert abs(scores["map_at_10"] - record["metrics"]["MAP@10"]) <= 1e-4
