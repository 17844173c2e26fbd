"""Thin shim for `python predict.py`; the program is `tfbert.scripts.predict_main` (console script `tfbert-predict`)."""

import sys

from tfbert.scripts import predict_main as main

if __name__ == "__main__":
    sys.exit(main())
