"""Load the Hypothesis profile: ``ci`` unless HYPOTHESIS_PROFILE says otherwise."""

from replication.conformance.profiles import load_profile

PROFILE = load_profile(default="ci")
