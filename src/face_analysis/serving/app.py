"""`serve`: the analyser behind HTTP (FastAPI, run by uvicorn), with a small page to try it in a browser.

POST /analyze takes a multipart field `image` and answers the same JSON object that `run --json` writes for
one image. The model is loaded once per process; at most as many requests are analysed at once as the
process has cores (the others wait), so parallel clients neither crash it nor oversubscribe the CPU.
Uploads larger than the limit are refused while they are being received, not after."""
import json
import threading
from pathlib import Path

from fastapi import FastAPI, File, HTTPException, UploadFile
from fastapi.responses import FileResponse
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
        received, exceeded = 0, False

        async def counting_receive():
            nonlocal received, exceeded
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.limit:
                exceeded = True
                raise UploadTooLarge
            return message

        async def guarded_send(message):
            if not exceeded:  # once over the limit, the app's own answer (about a cut body) is replaced
                await send(message)

        try:
            await self.app(scope, counting_receive, guarded_send)
        except UploadTooLarge:
            pass
        if exceeded:
            await _too_large(send, self.limit)


async def _too_large(send, limit: int) -> None:
    body = json.dumps({"detail": f"upload too large: at most {limit / 2**20:g} MB"}).encode()
    await send({"type": "http.response.start", "status": 413,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


def create_app(analyzer: FaceAnalyzer, max_upload_mb: float = 20):
    """The FastAPI application around one loaded analyser."""
    app = FastAPI(title="Face Analysis", version=__version__,
                  description="Find every face in a photo and predict age, gender and race.")
    slots = threading.Semaphore(analyzer.threads)  # as many analyses at once as there are cores

    def analyse(data: bytes, name: str) -> dict:
        with slots:
            image = image_io.decode_image(data, name)
            faces = analyzer.analyze(image)
        return ImageResult(name, int(image.shape[1]), int(image.shape[0]), faces).to_json()

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
        name = Path(image.filename or "upload").name
        try:
            return await run_in_threadpool(analyse, data, name)
        except ImageError as error:
            raise HTTPException(422, str(error)) from None

    app.add_middleware(_BodyLimit, limit=int(max_upload_mb * 2**20))
    return app


def serve(analyzer: FaceAnalyzer, host: str = "127.0.0.1", port: int = 8000, max_upload_mb: float = 20) -> None:
    """Run the service until interrupted."""
    import uvicorn

    uvicorn.run(create_app(analyzer, max_upload_mb), host=host, port=port, log_level="warning")
