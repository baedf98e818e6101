"""The ROS 2 launch description of a plan (otpr_ros/launch_plan.py), for the launch files.

Imports ``launch``/``launch_ros`` only when called: they exist in a ROS installation, not in
pip-only installs (where ``otpr-launch`` starts the same plan).
"""

from otpr_ros.launch_plan import FINETUNE_ARGUMENTS, SERVE_ARGUMENTS, plan_from_arguments, prepare
from otpr_ros.package_files import config_names

ARGUMENTS = {"finetune": FINETUNE_ARGUMENTS, "serve": SERVE_ARGUMENTS}


def launch_description(kind: str):
    from launch import LaunchDescription
    from launch.actions import DeclareLaunchArgument, OpaqueFunction
    from launch.substitutions import LaunchConfiguration
    from launch_ros.actions import Node
    from launch_ros.substitutions import FindPackageShare

    def nodes(context):
        values = {name: LaunchConfiguration(name).perform(context) for name in ARGUMENTS[kind]}
        share = f"{FindPackageShare('otpr_ros').perform(context)}/config"
        plan = plan_from_arguments(kind, values)       # a bad task is refused here, by name
        configs = [f"{share}/{name}" for name in config_names(values["task"], share)]   # a later value wins
        prepare(plan)                    # the run's update key
        return [Node(package="otpr_ros", executable=node.executable, name=node.name, namespace=node.namespace,
                     output="screen", parameters=[*configs, node.parameters],
                     remappings=list(node.remappings.items()), additional_env=node.environment,
                     ros_arguments=["--enclave", node.enclave] if node.enclave else [])
                for node in plan]

    return LaunchDescription([
        *(DeclareLaunchArgument(name, default_value=default, description=text)
          for name, (default, text) in ARGUMENTS[kind].items()),
        OpaqueFunction(function=nodes),
    ])
