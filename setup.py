"""ament_python package: ``colcon build`` installs it like any ROS 2 Python package, and
``pip install -e '.[ros,test]'`` installs it where there is no ROS (the ``ros`` extra brings
rclpy and the message packages as wheels; leave it out where ROS provides them)."""

import os
from glob import glob

from setuptools import find_packages, setup

PACKAGE = "otpr_ros"

def installed_tree(root):
    """Every file under root, installed at the same relative path under share/otpr_ros."""
    return [(f"share/{PACKAGE}/{directory}", sorted(os.path.join(directory, name) for name in files))
            for directory, _, files in sorted(os.walk(root)) if files]


setup(
    name=PACKAGE,
    version="0.1.0",
    packages=find_packages(exclude=["test", "test.*"]),
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/launch", glob("launch/*.py")),
        (f"share/{PACKAGE}/config", glob("config/*.yaml")),
        # the nodes, where `ros2 run otpr_ros <node>` and the launch files look: lib/otpr_ros in a colcon
        # install; a pip install puts them in <prefix>/lib/otpr_ros too, off PATH (python -m otpr_ros.nodes.X)
        (f"lib/{PACKAGE}", sorted(glob("ros_executables/*"))),
    ] + installed_tree("models"),
    python_requires=">=3.10",
    install_requires=[
        "setuptools",
        "torch==2.13.0",
        "numpy>=2,<2.6",
        "gymnasium>=1.0,<2",
        "h5py>=3.10,<4",
        "onnxruntime-gpu>=1.20,<2",
        "openvino==2026.4.1",         # the fastest CPU backend; a minor release changes its kernels
        "pyyaml>=6,<7",
        "tqdm>=4.60,<5",
        "onnx>=1.16,<2",
        "tensorboard>=2.15,<3",
        "matplotlib>=3.8,<4",         # learning curves (PNG)
    ],
    extras_require={
        "ros": [
            "ros-rclpy[fastrtps]>=9,<10",
            "ros-std-msgs>=5,<6",
            "ros-sensor-msgs>=5,<6",
            "ros-geometry-msgs>=5,<6",
            "ros-trajectory-msgs>=5,<6",
            "ros-std-srvs>=5,<6",
            "rosbags>=0.11,<0.12",        # rosbag2 (MCAP, sqlite3) in pure Python: otpr-record-bag, -bag-to-demos
        ],
        # robosuite 1.5.2 itself is installed with --no-deps (see Makefile): it pins
        # mink==0.0.5, which needs numpy<2 and serves only GR1's whole-body IK. These are
        # the dependencies it does import, with a MuJoCo it works with (not 4.x).
        "sim": ["mujoco==3.3.7", "numba>=0.60", "scipy>=1.11", "Pillow>=10", "opencv-python-headless>=4.9",
                "termcolor>=2"],
        # Franka Kitchen (FrankaKitchen-v1 on the same MuJoCo): otpr_ros/sim/kitchen_env.py
        "kitchen": ["gymnasium-robotics==1.4.2"],
        # CALVIN: calvin_env's runtime dependencies (it is not on PyPI: `make setup` installs it from
        # ../shared/vendor/calvin_env where that exists; elsewhere from its git repository, --no-deps)
        "calvin": ["pybullet==3.2.7", "gym==0.26.2", "hydra-core==1.3.8", "omegaconf==2.3.1",
                   "numpy-quaternion==2024.0.13", "GitPython==3.2.1"],
        # colcon: the packaging test builds the package the way a ROS workspace does
        "test": ["pytest>=8", "scipy>=1.11", "hypothesis>=6", "pot>=0.9.4", "colcon-common-extensions>=0.3"],
    },
    zip_safe=True,
    maintainer="otpr_ros maintainers",
    description="OTPR online fine-tuning of diffusion robot policies on ROS 2",
    license="Apache-2.0",
    tests_require=["pytest"],
    entry_points={"console_scripts": [
        "otpr-collect-demos = otpr_ros.tools.collect_demos:main",
        "otpr-pretrain = otpr_ros.tools.pretrain:main",
        "otpr-evaluate = otpr_ros.tools.evaluate:main",
        "otpr-export-onnx = otpr_ros.tools.export_onnx:main",
        "otpr-configure-model = otpr_ros.tools.configure_model:main",
        "otpr-finetune = otpr_ros.tools.finetune:main",
        "otpr-launch = otpr_ros.tools.launch:main",
        "otpr-keygen = otpr_ros.tools.keygen:main",
        "otpr-record-bag = otpr_ros.tools.record_bag:main",
        "otpr-bag-to-demos = otpr_ros.tools.bag_to_demos:main",
    ]},
)
