"""``python -m llara_retrieval.search``: kept as a short name for :mod:`llara_retrieval.pyserini.search`."""
import sys

from llara_retrieval.pyserini.search import main

if __name__ == "__main__":
    sys.exit(main())
