"""Datasets: the robomimic HDF5 format, both ways."""
