"""CW EPR simulator (S = 1/2 to 7/2, hyperfine, zero-field splitting, powder and solution spectra)."""
from .physics import Experiment, Options, SpinSystem, cw_spectrum, from_easyspin, isotopologues, nuclei

__all__ = ["SpinSystem", "Experiment", "Options", "cw_spectrum", "from_easyspin", "isotopologues", "nuclei"]
