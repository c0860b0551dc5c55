"""Development settings: the embedded defaults of `make run`."""

from __future__ import annotations

from .base import *
from .base import env

DEBUG = env.bool("DJANGO_DEBUG", default=True)
# Serve static files straight from the app directories while developing.
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = True
