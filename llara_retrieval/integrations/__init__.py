"""Integrations with the embedding tools users already run: sentence-transformers and MTEB.

The top layer beside ``reproduce``. Nothing here is imported by ``import llara_retrieval``, and each
module imports its tool (``sentence_transformers``, ``mteb``) only when it is used:

- ``sentence_transformers``: ``export(dir)`` adds the sentence-transformers files to an existing encoder
  dir (``LlaraEncoder.save_pretrained`` and the trainers write them already); ``load(dir)``.
- ``mteb``: ``LlaraMtebEncoder`` (MTEB's encoder protocol), ``beir_task(folder)`` (a local BEIR folder as
  an MTEB retrieval task) and ``evaluate_beir_folder``.
- ``python -m llara_retrieval.integrations sentence-transformers DIR`` / ``... mteb --encoder E --dataset D``.
"""
