"""Thin shim for `python pretrain.py`; the program is `tfbert.scripts.pretrain_main` (console script `tfbert-pretrain`)."""

import sys

from tfbert.scripts import pretrain_main as main

if __name__ == "__main__":
    sys.exit(main())
