"""The policy server alone, for real hardware: the robot's drivers publish eef_pose,
gripper_state and object_poses; the server answers with action_chunk.

    ros2 launch otpr_ros serve.launch.py task:=lift backend:=onnx namespace:=arm start_enabled:=false
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare


def generate_launch_description():
    task = LaunchConfiguration("task")
    return LaunchDescription([
        DeclareLaunchArgument("task", default_value="lift", description="lift | can | square"),
        DeclareLaunchArgument("backend", default_value="torch", description="torch | onnx"),
        DeclareLaunchArgument("model_dir", default_value="", description="empty: the shipped model of the task"),
        DeclareLaunchArgument("namespace", default_value="", description="namespace of the robot's topics"),
        DeclareLaunchArgument("start_enabled", default_value="false",
                              description="publish before an operator calls policy_server/enable"),
        Node(
            package="otpr_ros",
            executable="policy_server",
            name="policy_server",
            namespace=LaunchConfiguration("namespace"),
            output="screen",
            parameters=[
                PathJoinSubstitution([FindPackageShare("otpr_ros"), "config", [task, ".yaml"]]),
                # strings typed as strings: an empty model_dir must not become a YAML null
                {"task": ParameterValue(task, value_type=str),
                 "backend": ParameterValue(LaunchConfiguration("backend"), value_type=str),
                 "model_dir": ParameterValue(LaunchConfiguration("model_dir"), value_type=str),
                 "start_enabled": ParameterValue(LaunchConfiguration("start_enabled"), value_type=bool)},
            ],
        ),
    ])
