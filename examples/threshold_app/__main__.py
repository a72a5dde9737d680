"""``python -m threshold_app [--host H] [--port P]``: serve the app under uvicorn."""

from __future__ import annotations

import argparse

from radpacs.client.app_kit import serve
from threshold_app.app import NAME, analyze

parser = argparse.ArgumentParser(prog="threshold_app", description=__doc__)
parser.add_argument("--host", default="127.0.0.1")
parser.add_argument("--port", type=int, default=9000)
arguments = parser.parse_args()
serve(analyze, name=NAME, host=arguments.host, port=arguments.port)
