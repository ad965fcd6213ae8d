"""The labelling web app (FastAPI): two static pages (ranking, stats) and a small JSON API over a
``LabellingSession``.

Safe by default: request bodies are validated (pydantic, unknown fields refused, a size cap); with a
token every API call must carry it (``X-Label-Token``); on loopback only loopback host names are served
(no DNS rebinding); and every response forbids inline scripts (Content-Security-Policy), so model output,
which the page only ever writes as text, could not run even if it were written as markup.
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import Depends, FastAPI, Header, HTTPException, Query, Request
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator
from starlette.middleware.trustedhost import TrustedHostMiddleware

from rlhf_ray.config.schema.feedback import MAX_RESPONSES
from rlhf_ray.labelling.items import LabelItem
from rlhf_ray.labelling.session import FLAGS, Judgement, JudgementRejected, LabellingSession

STATIC = Path(__file__).with_name("static")
MAX_BODY_BYTES = 16 * 1024
LOOPBACK_HOSTS = ["127.0.0.1", "localhost", "::1", "[::1]"]
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; "
        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
STATUS_OF_REJECTION = {"unknown": 404, "changed": 409, "invalid": 422}

LabellerName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)]
Tier = Annotated[list[Annotated[int, Field(ge=0, lt=MAX_RESPONSES)]], Field(min_length=1, max_length=MAX_RESPONSES)]


class JudgementBody(BaseModel):
    """A judgement as the page posts it: a ranking (tiers of response indices, best first), a flag, or
    neither (a skip)."""

    model_config = ConfigDict(extra="forbid")

    item: Annotated[int, Field(ge=0)]
    digest: Annotated[str, Field(pattern=r"^[0-9a-f]{16}$")]
    labeller: LabellerName
    ranking: Annotated[list[Tier], Field(min_length=1, max_length=MAX_RESPONSES)] | None = None
    flag: Literal[FLAGS] | None = None
    seconds: Annotated[float, Field(ge=0.0, le=7 * 24 * 3600.0)]

    @model_validator(mode="after")
    def _ranked_or_flagged(self) -> JudgementBody:
        if self.ranking is not None and self.flag is not None:
            raise ValueError("a judgement is a ranking or a flag, not both")
        return self


def create_app(session: LabellingSession, token: str | None, loopback: bool) -> FastAPI:
    """The app over ``session``; ``token``: what every API call must carry (None: nothing); ``loopback``:
    serve loopback host names only."""
    app = FastAPI(title="rlhf-ray labelling", docs_url=None, redoc_url=None, openapi_url=None)
    if loopback:
        app.add_middleware(TrustedHostMiddleware, allowed_hosts=LOOPBACK_HOSTS)

    @app.middleware("http")
    async def guard(request: Request, call_next):
        if int(request.headers.get("content-length") or 0) > MAX_BODY_BYTES:
            return JSONResponse({"detail": f"request body over {MAX_BODY_BYTES} bytes"}, status_code=413)
        response = await call_next(request)
        response.headers.update(SECURITY_HEADERS)
        return response

    def check_token(x_label_token: Annotated[str | None, Header()] = None) -> None:
        if token is not None and not secrets.compare_digest(x_label_token or "", token):
            raise HTTPException(401, "this app needs the token it printed at start (X-Label-Token)")

    api = [Depends(check_token)]

    @app.get("/", include_in_schema=False)
    def ranking_page() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    @app.get("/stats", include_in_schema=False)
    def stats_page() -> FileResponse:
        return FileResponse(STATIC / "stats.html")

    @app.get("/api/item", dependencies=api)
    def next_item(labeller: Annotated[LabellerName, Query()]) -> dict[str, Any]:
        return _next(session, labeller)

    @app.post("/api/judgements", dependencies=api)
    def judge(body: JudgementBody) -> dict[str, Any]:
        judgement = Judgement(body.item, body.digest, body.labeller, body.ranking, body.flag, body.seconds)
        try:
            session.judge(judgement)
        except JudgementRejected as exc:
            raise HTTPException(STATUS_OF_REJECTION[exc.kind], str(exc)) from None
        return _next(session, body.labeller)

    @app.get("/api/stats", dependencies=api)
    def stats() -> dict[str, Any]:
        return session.stats().as_dict()

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app


def _next(session: LabellingSession, labeller: str) -> dict[str, Any]:
    """What the page shows next: the labeller's item (None when none is left) and the progress."""
    item = session.next_item(labeller)
    progress = session.progress(labeller)
    return {
        "item": None if item is None else _shown(item),
        "progress": {"done": progress.done, "target": progress.target, "yours": progress.yours},
    }


def _shown(item: LabelItem) -> dict[str, Any]:
    return {"index": item.index, "digest": item.digest, "prompt": item.shown_prompt(), "responses": item.responses}
