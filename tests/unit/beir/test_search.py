"""LLaRA through BEIR: the model wrapper, BEIR exact search, BEIR Faiss and Pyserini Faiss agree with a
numpy dot product; the embedding cache resumes; the whole job writes correct runs, metrics, tables."""
import csv
import json

import faiss
import numpy as np
import pytest
import pytrec_eval
import torch
from beir.retrieval.search.dense import DenseRetrievalExactSearch

from llara_retrieval.beir.faiss_search import FlatIPFaissSearch, HNSWFaissSearch
from llara_retrieval.beir.model import LlaraBeirModel
from llara_retrieval.beir.run import run_beir
from llara_retrieval.retrieval.data import load_dataset
from llara_retrieval.retrieval.embedding_cache import cached_corpus_embeddings, encoder_key
from llara_retrieval.retrieval.faiss_index import flat_search
from llara_retrieval.retrieval.fusion import interpolate, rrf
from llara_retrieval.retrieval.runs import ranked, read_run
from tests.support.beir_data import write_beir

N_DOCS, N_QUERIES, K, QLEN, PLEN = 300, 30, 20, 64, 96


@pytest.fixture(scope="module")
def model(tiny_model_dir):
    return LlaraBeirModel(tiny_model_dir, query_max_length=QLEN, passage_max_length=PLEN, dtype="float32")


@pytest.fixture(scope="module")
def small(cranfield_dir):
    """Part of Cranfield; query ids get a prefix so none equals a doc id (BEIR's exact search drops those)."""
    ds = load_dataset(cranfield_dir)
    corpus = dict(list(ds.corpus.items())[:N_DOCS])
    queries = {f"q{q}": t for q, t in list(ds.queries.items())[:N_QUERIES]}
    return corpus, queries


@pytest.fixture(scope="module")
def reference(model, small):
    """Independent top-K: numpy dot products of the encoder's own vectors."""
    corpus, queries = small
    ids = list(corpus)
    d = model.encoder.encode_passages([corpus[i] for i in ids], max_length=PLEN)
    q = model.encoder.encode_queries(list(queries.values()), max_length=QLEN)
    scores = q @ d.T
    return {qid: {ids[j]: float(row[j]) for j in np.argsort(-row, kind="stable")[:K]}
            for qid, row in zip(queries, scores)}, d, ids


def assert_same_ranking(run, ref, k=K, tol=1e-5):
    assert set(run) == set(ref)
    for qid in ref:
        a, b = ranked(run[qid], k), ranked(ref[qid], k)
        assert len(a) == len(b) == k
        sa, sb = [run[qid][x] for x in a], [ref[qid][x] for x in b]
        np.testing.assert_allclose(sa, sb, atol=tol)
        for i, (x, y) in enumerate(zip(a, b)):  # a different doc only where the scores tie
            assert x == y or min(abs(sb[i] - sb[j]) for j in (i - 1, i + 1) if 0 <= j < k) < tol, (qid, i)


def test_model_follows_beir_protocol(model, small):
    corpus, queries = small
    records = list(corpus.values())[:10]
    vectors = model.encode_corpus(records, batch_size=4, show_progress_bar=False, convert_to_tensor=True,
                                  normalize_embeddings=True)
    assert isinstance(vectors, torch.Tensor) and vectors.shape == (10, model.encoder.dim)
    expected = model.encoder.encode_passages(records, max_length=PLEN)
    np.testing.assert_allclose(vectors.numpy(), expected, atol=1e-5)
    columns = {"title": [r["title"] for r in records], "text": [r["text"] for r in records]}
    np.testing.assert_allclose(model.encode_corpus(columns, batch_size=4), expected, atol=1e-5)
    q = model.encode_queries(list(queries.values())[:5], batch_size=2, show_progress_bar=False)
    assert isinstance(q, np.ndarray) and np.allclose(np.linalg.norm(q, axis=1), 1.0, atol=1e-5)


@pytest.mark.jvm
def test_exact_beir_faiss_pyserini_faiss_and_pipeline_rank_alike(model, small, reference, tmp_path):
    from pyserini.search.faiss import FaissSearcher

    from llara_retrieval.pyserini.encoders import LlaraQueryEncoder

    corpus, queries = small
    ref, doc_vectors, ids = reference
    exact = DenseRetrievalExactSearch(model, batch_size=64, corpus_chunk_size=128, show_progress_bar=False)
    assert_same_ranking(exact.search(corpus, queries, K, "dot"), ref)
    assert_same_ranking(FlatIPFaissSearch(model, batch_size=64).search(corpus, queries, K, "dot"), ref)

    index = faiss.IndexFlatIP(doc_vectors.shape[1])  # Pyserini's index layout: "index" + "docid"
    index.add(doc_vectors)
    faiss.write_index(index, str(tmp_path / "index"))
    (tmp_path / "docid").write_text("\n".join(ids) + "\n")
    searcher = FaissSearcher(str(tmp_path), LlaraQueryEncoder(encoder=model.encoder, max_length=QLEN))
    hits = searcher.batch_search(list(queries.values()), list(queries), k=K)
    assert_same_ranking({q: {h.docid: float(h.score) for h in hits[q]} for q in queries}, ref)

    doc_ids, cached = cached_corpus_embeddings(model.encode_corpus, corpus, tmp_path / "cache", batch_size=64,
                                               show_progress_bar=False)
    q = model.encode_queries(list(queries.values()))
    assert_same_ranking(flat_search(q, list(queries), cached, doc_ids, K), ref)


def test_beir_faiss_searchers_are_usable(model, small, reference, tmp_path):
    corpus, queries = small
    ref, _, _ = reference
    flat = FlatIPFaissSearch(model, batch_size=64)
    everything = flat.search(corpus, queries, 10_000, "dot")  # more than the corpus: no padded -1 hits
    assert all(len(docs) == len(corpus) for docs in everything.values())
    assert set(flat.search(corpus, dict(list(queries.items())[:2]), 5)) == set(list(queries)[:2])  # no pile-up
    hnsw = HNSWFaissSearch(model, batch_size=64)
    approx = hnsw.search(corpus, queries, 10, "dot")
    overlap = np.mean([len(set(approx[q]) & set(ranked(ref[q], 10))) / 10 for q in queries])
    assert overlap >= 0.9
    flat.encode(corpus, queries, encode_output_path=str(tmp_path))  # BEIR's own encode, now inherited
    from_files = flat.search_from_files(str(tmp_path / "queries.pkl"), [str(tmp_path / "corpus.0.pkl")], K)
    assert_same_ranking(from_files, ref)


class Flaky:
    """Counts encode_corpus calls and can fail at a given one, like a run killed mid-way."""

    def __init__(self, model, fail_at=None):
        self.model, self.fail_at, self.calls = model, fail_at, 0

    def encode_corpus(self, records, **kwargs):
        self.calls += 1
        if self.calls == self.fail_at:
            raise KeyboardInterrupt
        return self.model.encode_corpus(records, **kwargs)


def test_embedding_cache_resumes_after_an_interruption(model, small, reference, tmp_path):
    corpus, _ = small
    _, doc_vectors, ids = reference
    folder = tmp_path / "emb"
    with pytest.raises(KeyboardInterrupt):
        cached_corpus_embeddings(Flaky(model, fail_at=5).encode_corpus, corpus, folder, batch_size=32, chunk_size=64,
                                 show_progress_bar=False)
    assert sorted(p.name for p in folder.iterdir()) == ["chunk-00000.npy", "chunk-00001.npy", "doc_ids.txt",
                                                        "meta.json"]
    resumed = Flaky(model)
    doc_ids, vectors = cached_corpus_embeddings(resumed.encode_corpus, corpus, folder, batch_size=32, chunk_size=64,
                                                show_progress_bar=False)
    assert resumed.calls == 6  # chunks 2, 3, 4 (64 + 64 + 44 docs) in batches of 32
    order = [ids.index(d) for d in doc_ids]
    np.testing.assert_allclose(vectors, doc_vectors[order], atol=1e-5)
    again = Flaky(model)
    cached_corpus_embeddings(again.encode_corpus, corpus, folder, show_progress_bar=False)
    assert again.calls == 0
    assert encoder_key(model.encoder, 96) != encoder_key(model.encoder, 128)


def _pytrec(qrels, run, measure):
    judged = {q: d for q, d in qrels.items() if any(r > 0 for r in d.values())}
    per_query = pytrec_eval.RelevanceEvaluator(judged, {measure}).evaluate(run)
    return sum(per_query.get(q, {}).get(measure, 0.0) for q in judged) / len(judged)


@pytest.mark.jvm
def test_the_whole_job_writes_named_runs_metrics_and_tables(tiny_model_dir, small, cranfield_dir, tmp_path):
    corpus, queries = small
    qrels = load_dataset(cranfield_dir).qrels
    rows = [(f"q{q}", d, r) for q, docs in qrels.items() for d, r in docs.items() if f"q{q}" in queries and d in corpus]
    root = write_beir(tmp_path / "cran", docs={d: (r["title"], r["text"]) for d, r in corpus.items()},
                      queries=queries, qrels=rows)
    out, cache = tmp_path / "runs", tmp_path / "cache"
    kwargs = dict(bm25=True, hybrid=True, top_k=50, max_length=PLEN, query_max_length=QLEN, dtype="float32",
                  cache_dir=cache, show_progress_bar=False)
    records = run_beir([root], str(tiny_model_dir), out, **kwargs)
    enc = tiny_model_dir.name
    systems = ["bm25", enc, f"hybrid-rrf-{enc}", f"hybrid-linear-{enc}"]
    assert [r["system"] for r in records] == systems
    ds = load_dataset(root)
    runs = {}
    for system in systems:
        run_file = out / f"run.cran.test.{system}.trec"
        runs[system] = read_run(run_file)
        saved = json.loads(run_file.with_suffix(".metrics.json").read_text())
        assert saved["metrics"]["nDCG@10"] == pytest.approx(_pytrec(ds.qrels, runs[system], "ndcg_cut_10"), abs=1e-6)
        assert saved["metrics"]["Recall@100"] == pytest.approx(_pytrec(ds.qrels, runs[system], "recall_100"), abs=1e-6)
    fused = rrf([runs[enc], runs["bm25"]], k=60, depth=50)
    for q in ds.queries:
        assert list(runs[f"hybrid-rrf-{enc}"][q]) == ranked(fused[q], 50)
    z_out = tmp_path / "runs-z"  # the same job fused over z-scores (the fusion's arithmetic: test_fusion.py)
    run_beir([root], str(tiny_model_dir), z_out, **{**kwargs, "hybrid_normalisation": "z-score"})
    z_linear = read_run(z_out / f"run.cran.test.hybrid-linear-{enc}.trec")
    expected = interpolate(runs[enc], runs["bm25"], weight=0.5, depth=50, normalisation="z-score")
    assert z_linear != runs[f"hybrid-linear-{enc}"]
    for q in ds.queries:
        assert list(z_linear[q]) == ranked(expected[q], 50)
    params = json.loads((z_out / f"run.cran.test.hybrid-linear-{enc}.metrics.json").read_text())["params"]
    assert params["normalisation"] == "z-score per query"
    table = (out / "results.md").read_text()
    assert all(f"| cran | test | {s} |" in table for s in systems)
    with open(out / "results.csv") as handle:
        assert [r["system"] for r in csv.DictReader(handle)] == systems
    chunks = {p: p.stat().st_mtime_ns for p in (cache / "embeddings").rglob("chunk-*.npy")}
    assert chunks
    run_beir([root], str(tiny_model_dir), out, **{**kwargs, "top_k": 10})  # only the search changes
    assert {p: p.stat().st_mtime_ns for p in (cache / "embeddings").rglob("chunk-*.npy")} == chunks
    assert max(len(d) for d in read_run(out / f"run.cran.test.{enc}.trec").values()) == 10
