"""The business dashboard: a JSON API (FastAPI, OpenAPI at ``/openapi.json``) and a self-refreshing
web page over the gold Delta tables, read without Spark. ``python -m jobs.serving.dashboard`` serves it."""

from lib.dashboard.app import create_app

__all__ = ["create_app"]
