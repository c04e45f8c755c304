"""dmo_ros: vision policies learned in a diffusion world model, deployed over ROS 2."""
