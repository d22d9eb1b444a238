"""Entry point for gunicorn (``gunicorn wsgi:app``) and ``flask``.

Everything built at start-up (the app, its routes, schemas, models and libraries) lives
as long as the process. ``gc.freeze()`` moves it out of the garbage collector's sight, so
a full collection only scans what requests created since: without it each full
collection walked some 190,000 start-up objects with the interpreter lock held, pausing
every request and socket of the process for 120-370 ms.
"""

import gc

from app import create_app

app = create_app()
gc.freeze()
