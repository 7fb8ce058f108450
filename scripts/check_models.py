#!/usr/bin/env python
"""Each simulator's corpus is learnable: see train/studies/check_models.py (``python scripts/check_models.py -h``)."""
import sys
from train.studies.check_models import main
sys.exit(main())
