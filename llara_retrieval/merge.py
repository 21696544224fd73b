"""``python -m llara_retrieval.merge``: kept as a short name for :mod:`llara_retrieval.pyserini.merge`."""
import sys

from llara_retrieval.pyserini.merge import main

if __name__ == "__main__":
    sys.exit(main())
