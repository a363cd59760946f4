"""The HTTP door: `serve`'s FastAPI application (POST /analyze, GET /health, the page in static/), one
FaceAnalyzer built at start-up.

May import: analyzer and everything below; not training, evaluation, runners or reporting. Never TensorFlow."""
