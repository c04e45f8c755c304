"""Tests of dmo_ros.gates: each gate passes a model known to be good and fails ones known to be broken."""
