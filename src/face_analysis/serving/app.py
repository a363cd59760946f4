"""`serve`: the analyser behind HTTP (FastAPI, run by uvicorn), with a small page to try it in a browser.

POST /analyze takes a multipart field `image` and answers the same JSON object that `run --json` writes for
one image. The model is loaded once per process; at most as many requests are analysed at once as the
process has cores (the others wait), so parallel clients neither crash it nor oversubscribe the CPU.
Uploads larger than the limit are refused while they are being received, not after; slow or stalled requests
are cut off (limits.py); SIGTERM, SIGHUP or Ctrl-C gives the requests under way GRACE_S seconds, then it ends."""
import contextlib
import errno
import signal
import socket
import sys
from pathlib import Path, PureWindowsPath

from fastapi import FastAPI, File, HTTPException, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from starlette.concurrency import run_in_threadpool

from face_analysis import __version__
from face_analysis.analyzer import FaceAnalyzer
from face_analysis.errors import FaceAnalysisError, ImageError
from face_analysis.io import images as image_io
from face_analysis.results import ImageResult
from face_analysis.serving.limits import BodyGuard, HeadDeadline, Slots

STATIC = Path(__file__).resolve().parent / "static"
GRACE_S = 5  # on SIGTERM, SIGHUP or Ctrl-C: how long the requests under way may take before they are cancelled


async def _short_validation_error(request, error: RequestValidationError) -> JSONResponse:
    """422 naming each field at fault and why, never echoing what was sent (FastAPI's own answer holds the
    input: a photo sent as a text field would come back whole)."""
    problems = []
    for item in error.errors():
        field = ".".join(str(part) for part in item.get("loc", ())[1:]) or "request"
        if "UploadFile" in str(item.get("msg", "")):
            problems.append(f"{field}: a file upload is needed (a multipart part with a filename, as curl -F "
                            f"{field}=@photo.jpg sends), not a text field")
        elif item.get("type") == "missing":
            problems.append(f"{field}: missing; send the photo as the multipart/form-data field {field!r} (as curl "
                            f"-F {field}=@photo.jpg does)")
        else:
            problems.append(f"{field}: {str(item.get('msg', 'invalid'))[:200]}")
    return JSONResponse({"detail": "; ".join(problems)}, status_code=422)


def create_app(analyzer: FaceAnalyzer, max_upload_mb: float = 20):
    """The FastAPI application around one loaded analyser."""
    slots = Slots(analyzer.threads)  # as many analyses at once as there are cores

    @contextlib.asynccontextmanager
    async def lifespan(app):
        yield
        slots.stop()  # the grace after SIGTERM is over: the photos still waiting are not analysed

    app = FastAPI(title="Face Analysis", version=__version__, docs_url=None, redoc_url=None, lifespan=lifespan,
                  description="Find every face in a photo and predict age, gender and race.")

    def analyse(data: bytes, name: str) -> dict:
        with slots:
            prepared = analyzer.prepare(image_io.decode_for_detection(data, name, analyzer.detect_size))
            faces = analyzer.finish([prepared])[0]
        return ImageResult(name, prepared.width, prepared.height, faces, model=analyzer.model_type).to_json()

    @app.head("/health", include_in_schema=False)
    @app.get("/health")
    async def health() -> dict:
        return {"status": "ok", "version": __version__, "model_type": analyzer.model_type,
                "detector": analyzer.detector_name}

    @app.head("/", include_in_schema=False)
    @app.get("/", include_in_schema=False)
    async def page():
        return FileResponse(STATIC / "index.html", media_type="text/html")

    @app.get("/docs", include_in_schema=False)
    @app.get("/redoc", include_in_schema=False)
    async def no_docs_page():
        raise HTTPException(404, "no documentation page here (FastAPI's loads its scripts from a CDN); the API is "
                                 "described by /openapi.json and docs/serve.md")

    @app.post("/analyze")
    async def analyze(request: Request,
                      image: UploadFile = File(..., description="a photo (JPEG, PNG, WebP, BMP, TIFF)"),
                      model_type: str | None = None, detector: str | None = None):
        """Every face of the uploaded photo: the object `run --json` writes for one image."""
        for asked, loaded, what in ((model_type, analyzer.model_type, "model_type"),
                                    (detector, analyzer.detector_name, "detector")):
            if asked is not None and asked != loaded:
                raise HTTPException(422, f"{what} {asked!r} is not loaded here; this server runs {loaded!r}")
        sent = len((await request.form()).getlist("image"))  # parsed already: not read twice
        if sent > 1:
            raise HTTPException(422, f"image: one photo per request ({sent} sent); send each in its own request")
        data = await image.read()
        name = PureWindowsPath(image.filename or "").name  # `/` and `\` both end a folder: a Windows path too
        name = "upload" if name in ("", ".", "..") else name
        try:
            return await run_in_threadpool(analyse, data, name)
        except ImageError as error:
            raise HTTPException(422, str(error)) from None

    app.add_exception_handler(RequestValidationError, _short_validation_error)
    app.add_middleware(BodyGuard, limit=int(max_upload_mb * 2**20))
    return app


def serve(analyzer: FaceAnalyzer, host: str = "127.0.0.1", port: int = 8000, max_upload_mb: float = 20) -> None:
    """Bind the address, then say where it serves (never before), and serve until SIGTERM, SIGHUP or Ctrl-C: then
    no new connection is taken, the requests under way get GRACE_S seconds, the others 503, and it returns."""
    import uvicorn

    listening = _bind(host, port)
    shown = f"[{host}]" if ":" in host else host
    print(f"serving the {analyzer.model_type} model on http://{shown}:{listening.getsockname()[1]}/ (Ctrl-C stops)",
          file=sys.stderr, flush=True)
    server = uvicorn.Server(uvicorn.Config(create_app(analyzer, max_upload_mb), http=HeadDeadline,
                                           log_level="warning", timeout_graceful_shutdown=GRACE_S))
    hangups = []

    def hang_up(signum, frame):  # a closed terminal stops it as gracefully as SIGTERM does (uvicorn's own)
        hangups.append(signum)
        server.should_exit = True

    previous = signal.signal(signal.SIGHUP, hang_up)
    try:
        server.run(sockets=[listening])
    finally:
        signal.signal(signal.SIGHUP, previous)
    if hangups:
        signal.raise_signal(signal.SIGHUP)


def _bind(host: str, port: int) -> socket.socket:
    """The listening socket (connections are queued from now on); one line naming the port or the host when it
    cannot be had."""
    # IPPROTO_TCP named, not left 0: asyncio sets TCP_NODELAY only on connections whose socket says TCP, and
    # without it every answer waited for the client's delayed ACK (about 40 ms: 90 requests/s at most for /health)
    listening = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM,
                              socket.IPPROTO_TCP)
    listening.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listening.bind((host, port))
        listening.listen(2048)  # connections made before uvicorn starts wait in the queue, as its own socket's do
    except OSError as error:
        listening.close()
        where = f"port {port}" if error.errno in (errno.EADDRINUSE, errno.EACCES) else f"host {host}"
        raise FaceAnalysisError(f"{where}: {(error.strerror or str(error)).lower()}") from None
    return listening
