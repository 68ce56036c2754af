"""Where the reference scripts write: a JSON file beside them, which the tests read."""

import json
import os


def write_json(name: str, obj: dict) -> str:
    """Writes ``obj`` to ``tests/reference/<name>`` (indented, newline-terminated); returns the path."""
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), name)
    with open(path, "w") as f:
        json.dump(obj, f, indent=1)
        f.write("\n")
    return path
