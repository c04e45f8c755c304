"""Bags to training datasets: the format, the converter, the loaders, exports."""
