"""otpr_ros: online fine-tuning of diffusion robot policies with OTPR, on ROS 2."""

__version__ = "0.1.0"
