"""Tests of dmo_ros.reward (a package: its test module names repeat other folders')."""
