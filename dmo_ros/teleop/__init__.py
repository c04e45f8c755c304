"""The operator side of data collection: scripted play/demonstrations and gamepad teleop."""
