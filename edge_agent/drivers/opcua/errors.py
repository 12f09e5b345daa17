"""OPC-UA failures a technician must act on, and the mapping of asyncua exceptions to ours.

```
DeviceUnavailable (edge_agent.errors)
├── ServerCertificateChanged    the server presents a certificate other than the pinned one
├── ClientCertificateRejected   the server does not (yet) trust the agent's certificate
└── AuthenticationFailed        user name or password refused
```

All stay `DeviceUnavailable`: the agent keeps retrying with backoff, so once the technician fixes
the cause (`edge-agent opcua trust`, trusting our certificate on the PLC, the password) data flows
again without restarting the agent.
"""

from __future__ import annotations

import socket

from asyncua.ua import uaerrors

from edge_agent.errors import DeviceUnavailable, MillstreamAgentError

__all__ = [
    "AuthenticationFailed",
    "ClientCertificateRejected",
    "ServerCertificateChanged",
    "map_error",
]


class ServerCertificateChanged(DeviceUnavailable):
    """The server certificate differs from the pinned one; refused until `opcua trust`."""


class ClientCertificateRejected(DeviceUnavailable):
    """The server refused the agent's application certificate."""


class AuthenticationFailed(DeviceUnavailable):
    """The server refused the user name or password."""


_AUTH_ERRORS = (
    uaerrors.BadUserAccessDenied,
    uaerrors.BadIdentityTokenInvalid,
    uaerrors.BadIdentityTokenRejected,
)
_CERT_ERRORS = (
    uaerrors.BadCertificateUntrusted,
    uaerrors.BadCertificateInvalid,
    uaerrors.BadSecurityChecksFailed,
    uaerrors.BadCertificateUriInvalid,
    uaerrors.BadCertificateTimeInvalid,
    uaerrors.BadCertificateUseNotAllowed,
    uaerrors.BadSecurityPolicyRejected,
)


def map_error(  # noqa: PLR0911 -- one return per failure family, in order of precedence
    exc: BaseException, device: str, *, username: str | None = None
) -> MillstreamAgentError:
    """Translate an asyncua/socket exception into our tree with a message that says what to do."""
    if isinstance(exc, MillstreamAgentError):
        return exc
    if isinstance(exc, _AUTH_ERRORS):
        who = f"user {username!r}" if username else "anonymous login"
        return AuthenticationFailed(
            f"server refused {who} ({type(exc).__name__}): check the user name and the password "
            "in the environment variable named by password_env",
            device=device,
        )
    if isinstance(exc, _CERT_ERRORS):
        return ClientCertificateRejected(
            f"server rejected the agent's certificate ({type(exc).__name__}): run "
            "`edge-agent opcua cert` and have the PLC administrator trust that thumbprint "
            "(on many servers: move it from the rejected to the trusted folder)",
            device=device,
        )
    if isinstance(exc, ConnectionRefusedError):
        return DeviceUnavailable(
            "connection refused: is the OPC-UA server running, and are host and port right?",
            device=device,
            hint="check that the PLC's OPC-UA server is enabled and that the endpoint URL in the "
            "config has its host and port (the standard port is 4840): nc -vz HOST PORT",
        )
    if isinstance(exc, socket.gaierror):
        return DeviceUnavailable(
            f"cannot resolve the host name in the URL ({exc})",
            device=device,
            hint="check the host name in the endpoint URL, or write the PLC's IP address instead",
        )
    if isinstance(exc, TimeoutError):
        return DeviceUnavailable(
            "no answer in time (timeout)",
            device=device,
            hint="check that the PLC is reachable from this PC (ping it) and that no firewall "
            "drops the endpoint's port; a busy server may need a longer timeout in the config",
        )
    if isinstance(exc, uaerrors.UaStatusCodeError):
        return DeviceUnavailable(f"server answered {exc}", device=device)
    return DeviceUnavailable(f"{type(exc).__name__}: {exc}", device=device)
