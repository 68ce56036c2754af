"""The clone's root on ``sys.path``: a script run as ``python scripts/<name>.py`` then imports
``experiments``, a folder of the clone that ``pip install`` does not install (``tinyjax`` is)."""

import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)
