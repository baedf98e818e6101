"""The policy server alone, for real hardware: the robot's drivers publish eef_pose,
gripper_state and object_poses; the server answers with action_chunk. config/nodes.yaml and
config/<task>.yaml from FindPackageShare('otpr_ros'); the plan is otpr_ros/launch_plan.py's (``otpr-launch
serve`` without ROS tooling).

    ros2 launch otpr_ros serve.launch.py task:=lift backend:=onnx namespace:=arm start_enabled:=false
"""

from otpr_ros.launch_description import launch_description


def generate_launch_description():
    return launch_description("serve")
