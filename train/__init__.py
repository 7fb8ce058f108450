"""train: PyTorch inverse networks, VAEs and validation on measurements, on simgen corpora."""
__version__ = "0.1.0"
