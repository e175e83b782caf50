"""NIST SP 800-63B password rule: long enough and not guessable; no composition rules.

Guessability comes from zxcvbn (the Python port of Dropbox's estimator, a PyPI package). It
ships the 30,000 most common passwords of public breach corpora plus English words, names and
film/TV vocabulary, and matches a password against them with their usual disguises (l33t,
reversed, digits appended), keyboard walks, repeats, sequences and dates, and against
context words (the user's email). A password it estimates below 10^8 guesses (score < 3) is
refused, with its own explanation.
"""

from __future__ import annotations

from collections.abc import Sequence

from zxcvbn import zxcvbn

MIN_LENGTH = 12
MAX_LENGTH = 1024
MIN_SCORE = 3  # zxcvbn: ~10^8 guesses or more ("safely unguessable" against throttled and slow-hash attacks)
_ESTIMATED_CHARS = 72  # zxcvbn's cost grows with length; past this, the prefix already decides


class NistPasswordPolicy:
    def problem(self, password: str, context: Sequence[str]) -> str | None:
        if len(password) < MIN_LENGTH:
            return f"password must be at least {MIN_LENGTH} characters"
        if len(password) > MAX_LENGTH:
            return f"password must be at most {MAX_LENGTH} characters"
        estimate = zxcvbn(password[:_ESTIMATED_CHARS], user_inputs=[c for c in context if c])
        if estimate["score"] >= MIN_SCORE:
            return None
        feedback = estimate["feedback"]
        why = feedback["warning"] or next(iter(feedback["suggestions"]), "")
        return (
            f"password is too easy to guess{': ' + why if why else ''} "
            "A few unrelated words, or a password manager's random password, work well."
        )
