"""Example modalities: small, fast simulators that exercise the engine and show how to add one."""
