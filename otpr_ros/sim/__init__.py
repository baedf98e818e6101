"""Simulated tasks (robosuite/MuJoCo Robomimic tasks, CALVIN), scripted experts, parallel runners."""
