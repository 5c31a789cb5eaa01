"""The seeds' test protocol in numbers: repeats x pairs drawn from the test set with a fixed seed, at weight 0.5.

Its own module so that what scores by the protocol (``evaluation``) and what breaks its results down
(``breakdowns``) share the settings without importing each other.
"""

PROTOCOL_REPEATS = 10
PROTOCOL_PAIRS = 10_000
PROTOCOL_SEED = 2024
PROTOCOL_ALPHA = 0.5  # the seeds' plain average
