"""Simulated stand-ins for the robots: plain Python (numpy, MuJoCo, pymunk), no ROS."""
