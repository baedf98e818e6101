"""Online fine-tuning: simulation bridges (or a robot's drivers), policy servers and the
learner under one namespace; config/nodes.yaml and config/<task>.yaml from FindPackageShare('otpr_ros'). The
nodes, parameters and remappings are otpr_ros/launch_plan.py's, which ``otpr-launch
finetune`` also starts where there is no ROS tooling.

    ros2 launch otpr_ros finetune.launch.py task:=lift num_envs:=2
    ros2 launch otpr_ros finetune.launch.py task:=can use_sim:=false namespace:=arm
"""

from otpr_ros.launch_description import launch_description


def generate_launch_description():
    return launch_description("finetune")
