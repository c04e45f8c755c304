"""Tests of dmo_ros.local_model (a package: its test module names repeat other folders')."""
