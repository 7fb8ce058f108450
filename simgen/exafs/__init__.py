"""EXAFS and EXELFS simulators from FEFF10 scattering tables (see simulator.py)."""
from .simulator import ETOK, EXAFSSimulator, EXELFSSimulator, chi_of_paths

__all__ = ["EXAFSSimulator", "EXELFSSimulator", "chi_of_paths", "ETOK"]
