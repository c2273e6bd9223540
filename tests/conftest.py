"""Suite-wide settings: property tests draw the same examples on every run, so CI is
reproducible; set HYPOTHESIS_PROFILE=explore to draw fresh ones."""

import os

from hypothesis import settings

settings.register_profile("ci", derandomize=True)
settings.register_profile("explore", derandomize=False)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
