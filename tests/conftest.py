import json
import os
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest

from recmill.runtime import offline_defaults

offline_defaults()

REPO = Path(__file__).resolve().parent.parent
SHARED_ML100K = REPO.parent / "shared" / "datasets" / "ml-100k"


@pytest.fixture
def ml100k_dir() -> Path:
    if not (SHARED_ML100K / "ml-100k.inter").exists():
        pytest.skip("shared MovieLens 100K data is not present")
    return SHARED_ML100K


@pytest.fixture(autouse=True, scope="session")
def _prefect_home(tmp_path_factory):
    """Prefect keeps its database and settings under a home of the test session's own."""
    os.environ["PREFECT_HOME"] = str(tmp_path_factory.mktemp("prefect-home"))


@pytest.fixture
def receiver():
    """An HTTP server on loopback keeping the JSON bodies POSTed to it."""
    received = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/hook", received
    server.shutdown()
