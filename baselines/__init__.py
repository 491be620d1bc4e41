"""Real-image baselines. Importing the package registers every method in it."""

from . import centroids, full_data, herding, kmeans, neighbors, random_real  # noqa: F401
