"""``python -m llara_retrieval.encode``: kept as a short name for :mod:`llara_retrieval.pyserini.encode`."""
import sys

from llara_retrieval.pyserini.encode import main

if __name__ == "__main__":
    sys.exit(main())
