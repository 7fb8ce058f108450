"""EXAFS and EXELFS simulators from FEFF10 scattering tables (see simulator.py); ``measured_chi`` prepares a
measured mu(E) as the exafs simulator's chi(k) k^w input (background.py)."""
from .simulator import ETOK, EXAFSSimulator, EXELFSSimulator, chi_of_paths
from .background import measured_chi, measured_chi_file

__all__ = ["EXAFSSimulator", "EXELFSSimulator", "chi_of_paths", "ETOK", "measured_chi", "measured_chi_file"]
