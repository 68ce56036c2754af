import numpy as np

from tinyjax.runs import plots


def test_confusion_matrix_counts():
    labels = np.array([0, 0, 1, 2, 2, 2])
    predictions = np.array([0, 1, 1, 2, 0, 2])
    matrix = plots.confusion_matrix(labels, predictions, num_classes=3)
    np.testing.assert_array_equal(matrix, [[1, 1, 0], [0, 1, 0], [1, 0, 2]])
    assert matrix.sum() == len(labels)


def test_misclassified_draws_up_to_limit_images_ten_to_a_row(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    for channels in (1, 3):
        images = rng.integers(0, 256, (60, 12, 10, channels), dtype=np.uint8)
        labels = np.zeros(60, np.int64)
        for wrong, rows in ((0, 1), (3, 1), (45, 4)):  # At most `limit` (40) tiles: 4 rows of 10.
            predictions = np.where(np.arange(60) < wrong, 1, 0)
            path = str(tmp_path / f"{channels}-{wrong}.png")
            plots.misclassified(images, labels, predictions, path, "t", class_names=["zero", "one"])
            width, height = Image.open(path).size
            assert (width, height) == (1210, round(rows * 1.3 * 110)), (channels, wrong)
