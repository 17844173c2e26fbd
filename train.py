"""Thin shim for `python train.py`; the program is `tfbert.scripts.train_main` (console script `tfbert-train`)."""

import sys

from tfbert.scripts import train_main as main

if __name__ == "__main__":
    sys.exit(main())
