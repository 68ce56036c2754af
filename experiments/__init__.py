"""Experiments: each module is one ``Config`` plus ``main``; run ``python -m experiments.<name>``."""
