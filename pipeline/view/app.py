"""The web app: the page (static ES modules and CSS shipped with the package) and the JSON API it uses.

Every route is listed in `docs/view.md`. Requests name samples by id only: an id is looked up in
the index, and the image path comes from the validated sample record (relative, inside the
dataset), so no path from a request ever reaches the file system. Static files are served from a
table of the package's own files read at start, never by joining a request path.

Off loopback (`--host 0.0.0.0`) every request needs the token printed at start, given as
`?token=` once (the page then keeps it in a cookie) or as an `Authorization: token ...` header.
POST bodies must be `application/json`, which a form on another site cannot send without the
browser asking first, and on loopback the `Host` header must name the loopback address, so
another site's page cannot drive the API through DNS rebinding.
"""

from __future__ import annotations

import hmac
import json
from importlib import resources
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from pipeline.core.errors import DataError, PipelineError
from pipeline.view.index import Filters
from pipeline.view.session import Session

MAX_LIMIT = 500  # samples per page request
MAX_OFFSET = 10**9
MAX_QUERY = 200  # characters of the text search
MAX_BODY = 64 * 2**20  # bytes of a POST body (10,000 edits with their objects)
COOKIE = "pipeline_view_token"
MEDIA = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8",
         ".html": "text/html; charset=utf-8", ".svg": "image/svg+xml"}
PARAMS = {"split", "label", "finding", "q", "augmented", "issues", "max_rank", "disagree", "edited", "offset", "limit"}
# No request to anything but this server, and no inline script: the page is ours alone.
CSP = ("default-src 'self'; img-src 'self' data: blob:; style-src 'self'; script-src 'self'; "
       "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'")


class ApiError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def static_files() -> dict[str, tuple[bytes, str]]:
    """name -> (bytes, media type) of every file under pipeline/view/static (read once)."""
    out: dict[str, tuple[bytes, str]] = {}
    root = resources.files("pipeline.view") / "static"
    for entry in sorted(root.iterdir(), key=lambda e: e.name):
        suffix = "." + entry.name.rsplit(".", 1)[-1]
        if entry.is_file() and suffix in MEDIA:
            out[entry.name] = (entry.read_bytes(), MEDIA[suffix])
    return out


def _flag(value: str | None, name: str) -> bool | None:
    if value is None or value == "":
        return None
    if value in ("1", "true"):
        return True
    if value in ("0", "false"):
        return False
    raise ApiError(400, f"{name}: expected 1 or 0, got {value!r}")


def _int(value: str | None, name: str, low: int, high: int, default: int | None) -> int | None:
    if value is None or value == "":
        return default
    try:
        number = int(value)
    except ValueError:
        raise ApiError(400, f"{name}: expected an integer, got {value[:40]!r}") from None
    if not low <= number <= high:
        raise ApiError(400, f"{name}: expected {low} to {high}, got {number}")
    return number


def parse_filters(session: Session, query: Any) -> Filters:
    """The filters of a query string; a bad value is an ApiError 400 naming the parameter."""
    from pipeline.check import CHECKS

    unknown = sorted(set(query.keys()) - PARAMS)
    if unknown:
        raise ApiError(400, f"unknown parameter {unknown[0]!r} (expected: {', '.join(sorted(PARAMS))})")
    split = query.get("split") or None
    if split is not None and split not in ("train", "val", "test", "none"):
        raise ApiError(400, f"split: expected train, val, test or none, got {split[:40]!r}")
    label = query.get("label") or None
    if label is not None and label not in session.info.classes:
        raise ApiError(400, f"label: not a class of this dataset: {label[:60]!r}")
    finding = query.get("finding") or None
    if finding is not None and finding != "any" and finding not in CHECKS:
        raise ApiError(400, f"finding: expected 'any' or a check code ({', '.join(CHECKS)}), got {finding[:40]!r}")
    q = query.get("q") or None
    if q is not None and len(q) > MAX_QUERY:
        raise ApiError(400, f"q: expected at most {MAX_QUERY} characters, got {len(q)}")
    issues = bool(_flag(query.get("issues"), "issues"))
    if issues and not session.index.has_issues:
        raise ApiError(400, "issues: no label issues loaded (start `pipeline view` with --issues DIR)")
    max_rank = _int(query.get("max_rank"), "max_rank", 1, MAX_OFFSET, None)
    disagree = bool(_flag(query.get("disagree"), "disagree"))
    if disagree and not session.index.has_predictions:
        raise ApiError(400, "disagree: no predictions loaded (start `pipeline view` with --run RUN)")
    return Filters(split=split, label=label, finding=finding, q=q, augmented=_flag(query.get("augmented"), "augmented"),
                   issues=issues, max_rank=max_rank, disagree=disagree,
                   edited=bool(_flag(query.get("edited"), "edited")))


def create_app(session: Session, *, token: str | None = None, allowed_hosts: list[str] | None = None) -> Starlette:
    """The ASGI app for `session`. `token`: required on every request (off loopback). `allowed_hosts`:
    the Host headers accepted (None: any, for tests through `TestClient`)."""
    static = static_files()

    def error(status: int, message: str) -> JSONResponse:
        return JSONResponse({"error": message}, status_code=status)

    def guarded(handler):
        def run(request: Request) -> Response:
            try:
                return handler(request)
            except ApiError as exc:
                return error(exc.status, exc.message)
            except LookupError as exc:
                return error(404, str(exc.args[0]) if exc.args else "not found")
            except DataError as exc:
                return error(422 if request.method == "POST" else 404, str(exc))
            except PipelineError as exc:
                return error(400, str(exc))
        return run

    def sample_id(request: Request) -> str:
        value = request.path_params["sample_id"]
        if not value or len(value) > 4096:
            raise ApiError(400, "id: expected a sample id")
        return value

    def page(request: Request) -> Response:
        body, media = static["index.html"]
        response = Response(body, media_type=media)
        given = request.query_params.get("token")
        if token is not None and given is not None and hmac.compare_digest(given, token):
            response.set_cookie(COOKIE, token, httponly=True, samesite="strict")
        return response

    def static_file(request: Request) -> Response:
        name = request.path_params["name"]
        if name not in static or name == "index.html":
            return error(404, f"no static file {name[:60]!r}")
        body, media = static[name]
        return Response(body, media_type=media)

    def info(request: Request) -> Response:
        return JSONResponse(session.info_json())

    def samples(request: Request) -> Response:
        query = request.query_params
        filters = parse_filters(session, query)
        offset = _int(query.get("offset"), "offset", 0, MAX_OFFSET, 0)
        limit = _int(query.get("limit"), "limit", 1, MAX_LIMIT, 100)
        return JSONResponse(session.page(filters, offset, limit))  # type: ignore[arg-type]

    def sample(request: Request) -> Response:
        sid = sample_id(request)
        detail = session.detail(sid)
        if detail is None:
            raise ApiError(404, f"no sample with id {sid[:80]!r}")
        return JSONResponse(detail)

    def _sample_or_404(request: Request):
        sid = sample_id(request)
        found = session.sample(sid)
        if found is None:
            raise ApiError(404, f"no sample with id {sid[:80]!r}")
        return found

    def image(request: Request) -> Response:
        from pipeline.view.images import original

        data, media = original(session.dataset, _sample_or_404(request))
        return Response(data, media_type=media, headers={"Cache-Control": "private, max-age=3600"})

    def thumb(request: Request) -> Response:
        from pipeline.view.images import thumbnail

        data, media = thumbnail(session.dataset, _sample_or_404(request), session.cache)
        return Response(data, media_type=media, headers={"Cache-Control": "private, max-age=3600"})

    def stats(request: Request) -> Response:
        query = {k: v for k, v in request.query_params.items() if k not in ("offset", "limit")}
        return JSONResponse(session.index.stats(parse_filters(session, query)))

    def _json_body(request: Request, body: bytes) -> Any:
        if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
            raise ApiError(415, "expected a JSON body (Content-Type: application/json)")
        if len(body) > MAX_BODY:
            raise ApiError(413, f"body too large (at most {MAX_BODY} bytes)")
        try:
            return json.loads(body)
        except (ValueError, RecursionError):
            raise ApiError(400, "body: not valid JSON") from None

    async def edits_post(request: Request) -> Response:
        from starlette.concurrency import run_in_threadpool

        body = await request.body()
        return await run_in_threadpool(guarded(lambda r: _edits(r, body)), request)

    def _edits(request: Request, body: bytes) -> Response:
        doc = _json_body(request, body)
        if not isinstance(doc, dict) or "edits" not in doc:
            raise ApiError(400, "body: expected {\"edits\": [...]}")
        cards = session.add_edits(doc["edits"])
        return JSONResponse({"samples": cards, "pending": len(session.pending)})

    def edits_get(request: Request) -> Response:
        from pipeline.view.session import edit_json

        return JSONResponse({"file": str(session.edits_path), "pending": len(session.pending),
                             "edits": [{"id": k, **edit_json(v)} for k, v in sorted(session.pending.items())]})

    async def save_post(request: Request) -> Response:
        from starlette.concurrency import run_in_threadpool

        body = await request.body()
        return await run_in_threadpool(guarded(lambda r: _save(r, body)), request)

    def _save(request: Request, body: bytes) -> Response:
        doc = _json_body(request, body)
        if not isinstance(doc, dict):
            raise ApiError(400, "body: expected {\"name\": \"new-version\"}")
        return JSONResponse(session.save(doc.get("name")))

    def not_found(request: Request) -> Response:
        return error(404, f"no such route: {request.url.path[:100]}")

    routes = [
        Route("/", page),
        Route("/static/{name}", guarded(static_file)),
        Route("/api/info", guarded(info)),
        Route("/api/samples", guarded(samples)),
        Route("/api/samples/{sample_id:path}", guarded(sample)),
        Route("/api/image/{sample_id:path}", guarded(image)),
        Route("/api/thumb/{sample_id:path}", guarded(thumb)),
        Route("/api/stats", guarded(stats)),
        Route("/api/edits", edits_post, methods=["POST"]),
        Route("/api/edits", guarded(edits_get), methods=["GET"]),
        Route("/api/save", save_post, methods=["POST"]),
        Route("/{rest:path}", not_found, methods=["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD"]),
    ]
    app = Starlette(routes=routes)
    return Guard(app, token=token, allowed_hosts=allowed_hosts)


class Guard:
    """ASGI middleware: the token (when set), the Host header (when limited) and the page's headers."""

    def __init__(self, app, *, token: str | None, allowed_hosts: list[str] | None) -> None:
        self.app = app
        self.token = token
        self.allowed_hosts = set(allowed_hosts) if allowed_hosts is not None else None

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        if self.allowed_hosts is not None and request.headers.get("host", "") not in self.allowed_hosts:
            await JSONResponse({"error": "unexpected Host header"}, status_code=400)(scope, receive, send)
            return
        if self.token is not None and not self._authorized(request):
            await JSONResponse({"error": "a token is required: open the address `pipeline view` printed "
                                         "(…/?token=…)"}, status_code=403)(scope, receive, send)
            return

        async def send_with_headers(message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers += [(b"content-security-policy", CSP.encode()), (b"x-content-type-options", b"nosniff"),
                            (b"referrer-policy", b"no-referrer")]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)

    def _authorized(self, request: Request) -> bool:
        assert self.token is not None
        candidates = [request.query_params.get("token"), request.cookies.get(COOKIE)]
        header = request.headers.get("authorization", "")
        if header.lower().startswith("token "):
            candidates.append(header[6:].strip())
        return any(c is not None and hmac.compare_digest(c, self.token) for c in candidates)
