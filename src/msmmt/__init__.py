"""msmmt: multi-scale multi-modal transformer for facial micro-expression recognition.

Implements Wang et al., "Multi-scale multi-modal micro-expression recognition
algorithm based on transformer", and the tooling around it: dataset readers,
preprocessing, training, leave-one-subject-out evaluation, prediction and
explanation.
"""

__version__ = "0.1.0"
