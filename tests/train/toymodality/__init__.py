"""A toy modality kept entirely in the tests: one simulator module and one adapter module, registered at run time.
It proves that a new modality needs no edit anywhere else in simgen/ or train/."""
