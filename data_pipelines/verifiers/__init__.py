"""Ground truth for critique labels: verifiers registered by the name YAML uses.

``VERIFIERS.get("math")`` etc.; every verifier returns a ``Verdict`` (see ``base``).
"""

from .base import VERIFIERS, Verdict
from .code import CodeVerifier, code_verifier
from .exact import choice_verifier, exact_verifier
from .math import extract_final_answer, math_verifier

__all__ = [
    "VERIFIERS",
    "CodeVerifier",
    "code_verifier",
    "Verdict",
    "choice_verifier",
    "exact_verifier",
    "extract_final_answer",
    "math_verifier",
]
