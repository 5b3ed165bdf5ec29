"""Our ML backend for Label Studio: the model in the loop.

``app.py`` speaks Label Studio's ML backend protocol (FastAPI routes on an ``APIRouter``),
``auth.py`` guards them with basic auth, ``state.py`` is what the routes call (the served model,
predictions, annotation events), and ``retrain.py`` trains new models in child processes. Only
this package imports fastapi, starlette and uvicorn (the ``serve`` extra).
"""
