"""AWS Batch's retry decision, evaluated on the job definitions of infra/stac-coh.yaml.

Tests use it to re-run a worker child exactly when Batch would: the first
``EvaluateOnExit`` rule whose conditions all match decides (``*`` at the end of a pattern
matches any suffix); a failure that matches no rule is retried; an attempt Batch timed
out is never retried; attempts stop at ``RetryStrategy.Attempts``.
"""

from __future__ import annotations

import signal
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cfnlint.decode import cfn_yaml

TEMPLATE = Path(__file__).resolve().parents[1] / "infra" / "stac-coh.yaml"


def load_template() -> dict[str, Any]:
    """The template, intrinsics as Ref/Fn::... dicts."""
    return cfn_yaml.load(str(TEMPLATE))  # type: ignore[no-any-return]


def _glob(pattern: str, value: str | None) -> bool:
    if value is None:
        return False
    return value.startswith(pattern[:-1]) if pattern.endswith("*") else value == pattern


@dataclass(frozen=True)
class RetryRules:
    """One job definition's retry strategy."""

    rules: list[dict[str, str]]
    attempts: int

    @classmethod
    def of(cls, template: dict[str, Any], job_definition: str) -> RetryRules:
        """The rules of a job definition; ``Attempts`` from its parameter's default."""
        strategy = template["Resources"][job_definition]["Properties"]["RetryStrategy"]
        attempts = strategy["Attempts"]
        if isinstance(attempts, dict):
            attempts = template["Parameters"][attempts["Ref"]]["Default"]
        return cls(strategy["EvaluateOnExit"], int(attempts))

    def action(self, **job: str) -> str:
        """``RETRY`` or ``EXIT`` for a failed attempt (keys: OnExitCode, OnReason, ...)."""
        for rule in self.rules:
            conditions = {k: v for k, v in rule.items() if k != "Action"}
            if all(_glob(conditions[k], job.get(k)) for k in conditions):
                return rule["Action"].upper()
        return "RETRY"

    def retries(self, returncode: int, attempt: int, *, timed_out: bool = False) -> bool:
        """Whether Batch starts another attempt after a child process ended like this.

        ``returncode`` is the process's (negative for a signal, as Docker reports it:
        128 + the signal number); 0 ends the job.
        """
        if returncode == 0 or timed_out or attempt >= self.attempts:
            return False
        code = 128 + -returncode if returncode < 0 else returncode
        reason = "OutOfMemoryError: Container killed" if returncode == -signal.SIGKILL else ""
        return self.action(OnExitCode=str(code), OnReason=reason) == "RETRY"
