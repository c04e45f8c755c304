"""Tests of dmo_ros.world_model_v4 (a package: its test module names repeat other folders')."""
