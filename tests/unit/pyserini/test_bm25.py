"""BM25 through real Pyserini/Lucene: the published SciFact figures, caching, bad corpora."""
import json
import warnings

import pytest

from llara_retrieval._utils.errors import LlaraError
from llara_retrieval.pyserini.bm25 import MARKER, bm25_search, build_bm25_index
from llara_retrieval.retrieval.data import LlaraWarning, load_dataset
from llara_retrieval.retrieval.metrics import evaluate
from tests.support.beir_data import write_beir
from tests.support.tiny import SHARED

pytestmark = [pytest.mark.jvm]

SCIFACT = SHARED / "data" / "beir" / "scifact"


@pytest.mark.skipif(not (SCIFACT / "corpus.jsonl").exists(), reason="shared SciFact not found")
def test_scifact_reproduces_published_pyserini_figures(tmp_path):
    ds = load_dataset(SCIFACT, "test")
    run = bm25_search(build_bm25_index(SCIFACT, cache_dir=tmp_path), ds.queries, k=100, show_progress_bar=False)
    metrics = evaluate(ds.qrels, run)
    assert metrics["nDCG@10"] == pytest.approx(0.6789, abs=0.001)
    assert metrics["Recall@100"] == pytest.approx(0.9253, abs=0.001)


def test_index_is_cached_by_corpus_checksum_and_finds_the_obvious_doc(tmp_path):
    folder = write_beir(tmp_path / "toy")
    index = build_bm25_index(folder, cache_dir=tmp_path / "cache")
    assert index.parent == tmp_path / "cache" / "bm25" and index.name.startswith("toy-")
    stamp = (index / MARKER).stat().st_mtime_ns
    assert build_bm25_index(folder, cache_dir=tmp_path / "cache") == index
    assert (index / MARKER).stat().st_mtime_ns == stamp  # reused, not rebuilt
    run = bm25_search(index, {"q1": "propeller slipstream", "q2": "cylindrical shells", "q3": ""}, k=10,
                      show_progress_bar=False)
    assert max(run["q1"], key=run["q1"].get) == "d1"
    assert max(run["q2"], key=run["q2"].get) == "d4"
    assert run["q3"] == {}
    # A title word is searchable: title and text are indexed together, as in Pyserini's BEIR flat index.
    assert "d3" in bm25_search(index, {"q": "heat"}, k=10, show_progress_bar=False)["q"]
    # A changed corpus gets a new index.
    (folder / "corpus.jsonl").write_text((folder / "corpus.jsonl").read_text() + '{"_id": "d5", "text": "new"}\n')
    assert build_bm25_index(folder, cache_dir=tmp_path / "cache") != index


def test_duplicate_doc_ids_warn_with_file_and_line_and_keep_the_first(tmp_path):
    folder = write_beir(tmp_path / "dup", extra_corpus_lines=[json.dumps({"_id": "d1", "text": "zebra"})])
    with pytest.warns(LlaraWarning, match=r"corpus\.jsonl:5: duplicate doc id 'd1' \(first at line 1\)"):
        index = build_bm25_index(folder, cache_dir=tmp_path / "cache")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert bm25_search(index, {"q": "zebra"}, k=10, show_progress_bar=False)["q"] == {}


def test_refuses_a_foreign_index_dir_and_a_folder_without_corpus(tmp_path):
    folder = write_beir(tmp_path / "toy")
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(LlaraError, match="mine: exists and is not a BM25 index"):
        build_bm25_index(folder, index_dir=tmp_path / "mine")
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"
    with pytest.raises(LlaraError, match=r"empty/corpus\.jsonl: missing"):
        build_bm25_index(tmp_path / "empty")
