"""`serve`: the analyser behind HTTP (FastAPI, run by uvicorn), with a small page to try it in a browser.

POST /analyze takes a multipart field `image` and answers the same JSON object that `run --json` writes for
one image. The model is loaded once per process; at most as many requests are analysed at once as the
process has cores (the others wait), so parallel clients neither crash it nor oversubscribe the CPU.
Uploads larger than the limit are refused while they are being received, not after."""
import json
import threading
from pathlib import Path

from fastapi import FastAPI, File, HTTPException, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from starlette.concurrency import run_in_threadpool

from face_analysis import __version__
from face_analysis.analyzer import FaceAnalyzer
from face_analysis.errors import ImageError
from face_analysis.io import images as image_io
from face_analysis.results import ImageResult

STATIC = Path(__file__).resolve().parent / "static"


class UploadTooLarge(Exception):
    """The request body passed the upload limit while it was being received."""


class _BodyLimit:
    """ASGI middleware: counts the bytes of each request body as they arrive and stops at `limit`."""

    def __init__(self, app, limit: int):
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            return await _too_large(send, self.limit)
        received, exceeded, cut, tail = 0, False, False, b""
        closing = _closing_delimiter(headers.get(b"content-type", b""))

        async def counting_receive():
            nonlocal received, exceeded, cut, tail
            message = await receive()
            body = message.get("body", b"")
            received += len(body)
            if received > self.limit:
                exceeded = True
                raise UploadTooLarge
            tail = (tail + body)[-(len(closing or b"") + 256):]
            if closing and message.get("type") == "http.request" and not message.get("more_body", False):
                cut = closing not in tail  # a multipart body must end with its closing boundary
            return message

        async def guarded_send(message):
            if not exceeded and not cut:  # the app's own answer about a cut body is replaced by a clear one
                await send(message)

        try:
            await self.app(scope, counting_receive, guarded_send)
        except UploadTooLarge:
            pass
        if exceeded:
            await _too_large(send, self.limit)
        elif cut:
            await _answer(send, 400, "truncated multipart body: it does not end with its closing boundary (was "
                                     "the upload cut short, or its Content-Length smaller than the body?)")


def _closing_delimiter(content_type: bytes) -> bytes | None:
    """b"--BOUNDARY--" for a multipart/form-data request, else None."""
    kind, _, options = content_type.partition(b";")
    if kind.strip().lower() != b"multipart/form-data":
        return None
    for option in options.split(b";"):
        name, _, value = option.strip().partition(b"=")
        if name.strip().lower() == b"boundary" and value.strip(b'" '):
            return b"--" + value.strip(b'" ') + b"--"
    return None


async def _too_large(send, limit: int) -> None:
    await _answer(send, 413, f"upload too large: at most {limit / 2**20:g} MB")


async def _answer(send, status: int, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


async def _short_validation_error(request, error: RequestValidationError) -> JSONResponse:
    """422 naming each field at fault and why, never echoing what was sent (FastAPI's own answer holds the
    input: a photo sent as a text field would come back whole)."""
    problems = []
    for item in error.errors():
        field = ".".join(str(part) for part in item.get("loc", ())[1:]) or "request"
        if "UploadFile" in str(item.get("msg", "")):
            problems.append(f"{field}: a file upload is needed (a multipart part with a filename, as curl -F "
                            f"{field}=@photo.jpg sends), not a text field")
        else:
            problems.append(f"{field}: {str(item.get('msg', 'invalid'))[:200]}")
    return JSONResponse({"detail": "; ".join(problems)}, status_code=422)


def create_app(analyzer: FaceAnalyzer, max_upload_mb: float = 20):
    """The FastAPI application around one loaded analyser."""
    app = FastAPI(title="Face Analysis", version=__version__,
                  description="Find every face in a photo and predict age, gender and race.")
    slots = threading.Semaphore(analyzer.threads)  # as many analyses at once as there are cores

    def analyse(data: bytes, name: str) -> dict:
        with slots:
            image = image_io.decode_image(data, name)
            faces = analyzer.analyze(image)
        return ImageResult(name, int(image.shape[1]), int(image.shape[0]), faces, model=analyzer.model_type).to_json()

    @app.get("/health")
    async def health() -> dict:
        return {"status": "ok", "version": __version__, "model_type": analyzer.model_type,
                "detector": analyzer.detector_name}

    @app.get("/", include_in_schema=False)
    async def page():
        return FileResponse(STATIC / "index.html", media_type="text/html")

    @app.post("/analyze")
    async def analyze(image: UploadFile = File(..., description="a photo (JPEG, PNG, WebP, BMP, TIFF)"),
                      model_type: str | None = None, detector: str | None = None):
        """Every face of the uploaded photo: the object `run --json` writes for one image."""
        for asked, loaded, what in ((model_type, analyzer.model_type, "model_type"),
                                    (detector, analyzer.detector_name, "detector")):
            if asked is not None and asked != loaded:
                raise HTTPException(422, f"{what} {asked!r} is not loaded here; this server runs {loaded!r}")
        data = await image.read()
        name = Path(image.filename or "").name
        name = "upload" if name in ("", ".", "..") else name
        try:
            return await run_in_threadpool(analyse, data, name)
        except ImageError as error:
            raise HTTPException(422, str(error)) from None

    app.add_exception_handler(RequestValidationError, _short_validation_error)
    app.add_middleware(_BodyLimit, limit=int(max_upload_mb * 2**20))
    return app


def serve(analyzer: FaceAnalyzer, host: str = "127.0.0.1", port: int = 8000, max_upload_mb: float = 20) -> None:
    """Run the service until interrupted."""
    import uvicorn

    uvicorn.run(create_app(analyzer, max_upload_mb), host=host, port=port, log_level="warning")
