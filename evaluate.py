"""Thin shim for `python evaluate.py`; the program is `tfbert.scripts.evaluate_main` (console script `tfbert-evaluate`)."""

import sys

from tfbert.scripts import evaluate_main as main

if __name__ == "__main__":
    sys.exit(main())
