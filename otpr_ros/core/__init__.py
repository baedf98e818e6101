"""The OTPR algorithm in plain PyTorch. Nothing in this package imports ROS."""
