"""`POST /enrol`: an agent redeems its one-time enrolment token for its broker credentials and
site settings (docs/deploy.md "Enrol an agent"). The token is the credential: no login."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request
from pydantic import BaseModel, ConfigDict, Field

from hub.api.v1.deps import client_ip
from hub.api.v1.services import ApiServices
from hub.devices import BrokerIdentities, Dynsec, DynsecError
from hub.devices.enrolment import EnrolmentError, Enrolments

__all__ = ["EnrolIn", "EnrolOut", "enrol_router"]

# Each try from one address spends this budget: a token cannot be guessed (192 bits), and this
# keeps a script from even trying.
ENROLS_PER_MINUTE = 10


class EnrolIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    token: str = Field(min_length=1, max_length=200)


class EnrolMqtt(BaseModel):
    url: str
    username: str
    password: str


class EnrolOut(BaseModel):
    """Everything `edge-agent init --token` writes into a new agent's config."""

    agent_id: str
    site: str
    line: str
    mqtt: EnrolMqtt


def enrol_router(services: ApiServices) -> APIRouter:
    router = APIRouter(tags=["broker identities"])

    @router.post("/enrol", responses={403: {}, 429: {}, 503: {}})
    async def enrol(body: EnrolIn, request: Request) -> EnrolOut:
        """Redeem a one-time token: a new broker password for its agent, in this answer only."""
        await services.limit(f"enrol-ip:{client_ip(request)}", ENROLS_PER_MINUTE)
        enrolments = Enrolments(services.db, services.now_ms)
        try:
            await enrolments.check(body.token)  # a bad token is refused without the broker
            if services.publish is None:
                raise HTTPException(503, "this hub has no broker connection; try again later")
            async with Dynsec(services.config.mqtt) as dynsec:
                identities = BrokerIdentities(services.db, dynsec, services.now_ms)
                done = await enrolments.redeem(body.token, identities, client_ip(request))
        except EnrolmentError as exc:
            raise HTTPException(403, str(exc)) from None
        except DynsecError as exc:
            raise HTTPException(503, f"the broker did not take the new password: {exc}") from None
        agent = done.identity
        return EnrolOut(
            agent_id=agent.name,
            site=agent.site,
            line=agent.line,
            mqtt=EnrolMqtt(url=done.broker_url, username=agent.name, password=done.password),
        )

    return router
