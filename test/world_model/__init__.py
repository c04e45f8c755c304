"""Tests of dmo_ros.world_model (a package: its test module names repeat other folders')."""
