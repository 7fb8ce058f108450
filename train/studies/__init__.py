"""Studies built on the training core (:mod:`train.core`): ``augment`` (VAE/CVAE augmentation of a scarce measured
set), ``adapt`` (domain-VAE adaptation of simulations to measured spectra), ``nested`` (conditions <-> swelling
micrographs), ``demo`` (the main job end to end) and ``check_models`` (each simulator's corpus is learnable).

Each study is a ``simtrain`` subcommand (registered by :mod:`train.cli`) and writes a result JSON holding a
``{"verdict": "PASS" | "FAIL", "reason": ...}`` judged by its own measure.
"""
