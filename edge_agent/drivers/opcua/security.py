"""Parse a device entry's `security`: `None`, `Sign/<policy>` or `SignAndEncrypt/<policy>`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["POLICIES", "SecuritySpec", "parse_security"]

SecurityMode = Literal["None", "Sign", "SignAndEncrypt"]

# Config spelling (OPC 10000-7 profile names, with or without underscores) -> asyncua class suffix.
POLICIES: dict[str, str] = {
    "basic256sha256": "Basic256Sha256",
    "aes128_sha256_rsaoaep": "Aes128Sha256RsaOaep",
    "aes128sha256rsaoaep": "Aes128Sha256RsaOaep",
}


@dataclass(frozen=True, slots=True)
class SecuritySpec:
    """A message security mode and, unless mode is None, a security policy name."""

    mode: SecurityMode
    policy: str | None = None

    @property
    def secure(self) -> bool:
        """True when messages are at least signed, so the server certificate matters."""
        return self.mode != "None"

    def __str__(self) -> str:
        return "None" if self.policy is None else f"{self.mode}/{self.policy}"


def parse_security(text: str) -> SecuritySpec:
    """Parse e.g. `SignAndEncrypt/Aes128_Sha256_RsaOaep`; ValueError with a hint otherwise."""
    cleaned = text.strip()
    if cleaned.lower() == "none":
        return SecuritySpec("None")
    mode, sep, policy = cleaned.partition("/")
    hint = (
        "use None, Sign/<policy> or SignAndEncrypt/<policy> "
        "with policy Basic256Sha256 or Aes128_Sha256_RsaOaep"
    )
    if not sep or mode not in ("Sign", "SignAndEncrypt"):
        raise ValueError(f"security {text!r}: {hint}")
    policy_class = POLICIES.get(policy.strip().lower())
    if policy_class is None:
        raise ValueError(f"security {text!r}: unknown policy {policy!r}; {hint}")
    return SecuritySpec(mode, policy_class)  # type: ignore[arg-type]
