"""A model directory and acting from it: the policy over torch, ONNX Runtime or OpenVINO, the
one candidate-selection rule, observations, and the ONNX export. Training lives in
``otpr_ros.training``."""
