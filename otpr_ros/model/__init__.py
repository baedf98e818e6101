"""Model directories, the acting policy over torch or ONNX Runtime, and the ONNX export."""
