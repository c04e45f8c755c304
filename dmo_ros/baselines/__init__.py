"""Baselines beside DMO: the ACT behaviour-cloning trainer (its deployable policy is :mod:`dmo_ros.policy.act`)."""
