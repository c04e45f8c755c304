"""Tests of dmo_ros.dmo: the decoupled gradient, the actor and critics, SAPO."""
