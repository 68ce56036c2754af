"""Prepares a TFDS dataset from files already on disk, for machines that cannot reach its download
servers: TFDS's own builder and writer (array_record), with its download step pointed at a local
folder holding the files the builder would download (same base names; a ``.gz`` is decompressed).

    # In an environment with TensorFlow (TFDS needs it to write; tinyjax reads without it):
    pip install tensorflow-cpu tensorflow-datasets array_record importlib_resources
    apt-get install dataset-fashion-mnist     # Debian: the four Fashion-MNIST IDX .gz files
    python scripts/tfds_from_local.py fashion_mnist /usr/share/datasets/fashion-mnist ~/tensorflow_datasets
    python scripts/tfds_from_local.py mnist ../shared/data/mnist ~/tensorflow_datasets

This replaces ``tfds.download.DownloadManager.download_and_extract`` (tensorflow-datasets 4.9's
name for it), so TFDS's checksums of the downloads are not checked: the builder's own counts of
examples per split still are. For datasets whose builder downloads one URL per file (MNIST,
Fashion-MNIST); where TFDS can download, use ``tfds build NAME --file_format=array_record``.
"""

import gzip
import os
import shutil
import sys


def main(name: str, files: str, data_dir: str) -> None:
    import tensorflow_datasets as tfds

    def local(self, urls, *args, **kwargs):
        paths = {}
        for key, url in urls.items():
            base = os.path.basename(url)
            source = os.path.join(files, base)
            if not os.path.exists(source):
                sys.exit(f"error: {source} not found: put the file the builder downloads from {url} there.")
            target = os.path.join(self.download_dir, base[:-3] if base.endswith(".gz") else base)
            os.makedirs(self.download_dir, exist_ok=True)
            with (gzip.open if base.endswith(".gz") else open)(source, "rb") as f, open(target, "wb") as g:
                shutil.copyfileobj(f, g)
            paths[key] = tfds.core.Path(target)
        return paths

    tfds.download.DownloadManager.download_and_extract = local
    builder = tfds.builder(name, data_dir=os.path.expanduser(data_dir), file_format="array_record")
    builder.download_and_prepare()
    print(f"{name} {builder.info.version}: {builder.info.splits} -> {builder.data_dir}")


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    main(*sys.argv[1:])
