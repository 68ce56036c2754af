"""``pip install .`` (not editable): the wheel holds the library and its console scripts, and works outside the clone."""

import os
import subprocess
import sys
import zipfile

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.slow  # Builds a wheel and installs it into a new virtual environment.
def test_wheel_installs_a_working_tinyjax_without_a_top_level_experiments_package(tmp_path):
    # No build isolation: the venv's setuptools builds it, no registry needed.
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                    "-w", str(tmp_path / "dist"), ROOT], check=True, capture_output=True, timeout=300)
    (wheel,) = (tmp_path / "dist").iterdir()
    names = zipfile.ZipFile(wheel).namelist()
    assert {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")} == {"tinyjax"}
    assert "tinyjax/distributed/parallel.py" in names and "tinyjax/data/pipeline.py" in names
    (entry_points,) = [n for n in names if n.endswith("entry_points.txt")]
    scripts = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "tinyjax-report = tinyjax.runs.report:main" in scripts and "tinyjax-evaluate = tinyjax.evaluate:main" in scripts
    assert "tinyjax-export = tinyjax.export:main" in scripts

    # Installed into a folder of its own and imported from elsewhere (not the clone), dependencies from this venv.
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), str(wheel)],
                   check=True, capture_output=True, timeout=300)
    code = ("import tinyjax, tinyjax.runs.report, tinyjax.models as m; "
            "print(tinyjax.__file__); print(m.create('mnist_cnn_7k').__class__.__name__)")
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(target)})
    assert done.returncode == 0, done.stderr[-2000:]
    location, model = done.stdout.split()
    assert location.startswith(str(target)) and model == "CNN"
    assert not (target / "experiments").exists()


def test_the_version_is_the_package_metadata_version():
    import tomllib

    import tinyjax

    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
        assert tinyjax.__version__ == tomllib.load(f)["project"]["version"]
